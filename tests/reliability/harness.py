"""Shared helpers for the reliability campaign: modes, counters, and reading the store with stock git.

Nothing here mocks guardian, pygit2 or watchdog.  The store is read back with
stock ``git`` (the same way a user falling back to git would), the user's tree
is read with plain ``os`` calls on bytes paths, and guardian itself runs either
in process through the real CLI (``run_cli``) or as a real child process.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from guardian.project import ProjectPaths
from tests.conftest import run_cli

LONG = os.environ.get("GUARDIAN_LONG", "").strip().lower() not in ("", "0", "false", "no")
REPORT_ENV = "GUARDIAN_RELIABILITY_REPORT"
TEMP_PREFIX = b".guardian-tmp-"


def trials(short: int, long: int) -> int:
    """The trial count for the current mode."""
    return long if LONG else short


def record(case: str, **counters: int | float) -> None:
    """Append this test's counters to the campaign report (a no-op unless GUARDIAN_RELIABILITY_REPORT is set).

    Counters are summed across tests by scripts/reliability.py, except names ending
    in ``_max``, which keep the largest value.
    """
    path = os.environ.get(REPORT_ENV)
    if not path:
        return
    test = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]
    line = json.dumps({"case": case, "test": test, "counters": counters}, sort_keys=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")


# --------------------------------------------------------------------------- projects


def init_project(root: Path, files: dict[str, bytes] | None = None, policy: str | None = None) -> ProjectPaths:
    """Write files (and guardian.yaml if given) under root, run `guardian init`, return the store paths."""
    root.mkdir(parents=True, exist_ok=True)
    if policy is not None:
        (root / "guardian.yaml").write_text(policy)
    for rel, data in (files or {}).items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    r = run_cli("init", cwd=root)
    assert r.exit_code == 0, r.stderr
    return ProjectPaths.for_root(root.resolve())


def guardian_env(**extra: str) -> dict[str, str]:
    return {**os.environ, **extra}


def guardian_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "guardian", *args]


# --------------------------------------------------------------------------- the store, read with stock git


def store_git(paths: ProjectPaths, *args: str, check: bool = True, data: bytes | None = None) -> bytes:
    proc = subprocess.run(
        ["git", "--git-dir", str(paths.repo), *args],
        input=data,
        capture_output=True,
        timeout=120,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr.decode(errors='replace')}")
    return proc.stdout


def head(paths: ProjectPaths) -> str | None:
    out = subprocess.run(
        ["git", "--git-dir", str(paths.repo), "rev-parse", "--verify", "-q", "refs/heads/snapshots"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return out.stdout.strip() or None


def chain(paths: ProjectPaths) -> list[str]:
    """Every snapshot on the ref, newest first (first parents)."""
    if head(paths) is None:
        return []
    return store_git(paths, "rev-list", "--first-parent", "refs/heads/snapshots").decode().split()


def parent_of(paths: ProjectPaths, commit: str) -> str | None:
    out = store_git(paths, "rev-list", "--parents", "-n", "1", commit).decode().split()
    return out[1] if len(out) > 1 else None


def fsck_problems(paths: ProjectPaths) -> str | None:
    """None when `git fsck --strict` is clean, else its complaint."""
    proc = subprocess.run(
        ["git", "--git-dir", str(paths.repo), "fsck", "--strict", "--no-dangling", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return None if proc.returncode == 0 else (proc.stderr + proc.stdout).strip()


def tree_files(paths: ProjectPaths, rev: str | None = None) -> dict[bytes, tuple[str, str]]:
    """path -> (git mode, blob id) for every entry of a snapshot, names as raw bytes from git."""
    rev = rev or head(paths)
    if rev is None:
        return {}
    out = store_git(paths, "ls-tree", "-r", "-z", "--full-tree", rev)
    entries: dict[bytes, tuple[str, str]] = {}
    for item in out.split(b"\0"):
        if not item:
            continue
        meta, name = item.split(b"\t", 1)
        mode, _kind, oid = meta.decode().split()
        entries[name] = (mode, oid)
    return entries


def read_blob(paths: ProjectPaths, oid: str) -> bytes:
    return store_git(paths, "cat-file", "blob", oid)


def all_object_bytes(paths: ProjectPaths) -> bytes:
    """The content of every object in the store, reachable or not (`git cat-file --batch-all-objects`)."""
    return store_git(paths, "cat-file", "--batch-all-objects", "--batch", "--unordered")


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


# --------------------------------------------------------------------------- the event log and the catalog


def event_lines(paths: ProjectPaths) -> list[dict[str, Any]]:
    """Every parseable event (torn lines skipped, as guardian's reader does)."""
    out: list[dict[str, Any]] = []
    try:
        raw = paths.events.read_bytes()
    except FileNotFoundError:
        return out
    for line in raw.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict):
            out.append(item)
    return out


def ledger_problems(paths: ProjectPaths, root: Path) -> list[str]:
    """After a restart: the ref, the event log and the catalog must agree.

    Every snapshot on the ref has a snapshot event; every snapshot event names a
    commit on the ref; `guardian log` lists exactly the ref's chain.
    """
    problems: list[str] = []
    # The restart: any command that opens the store catches the catalog and the log up with git.
    # --all: the log stops at 20 by default, and a long campaign takes more snapshots than that.
    r = run_cli("log", "--all", "--json", cwd=root)
    commits = chain(paths)
    if r.exit_code != 0:
        problems.append(f"guardian log failed after the restart ({r.exit_code}): {r.stderr.strip()}")
    else:
        listed = [s["snapshot"] for s in json.loads(r.stdout)["snapshots"]]
        if listed != commits:
            problems.append(f"guardian log lists {len(listed)} snapshot(s), the ref has {len(commits)}")
    on_ref = set(commits)
    logged = {e.get("snapshot") for e in event_lines(paths) if e.get("event") == "snapshot"}
    missing = [c for c in commits if c not in logged]
    if missing:
        problems.append(f"{len(missing)} snapshot(s) on the ref have no snapshot event: {missing[:3]}")
    stray = sorted(str(s) for s in logged if s and s not in on_ref)
    if stray:
        problems.append(f"snapshot events name commits that are not on the ref: {stray[:3]}")
    return problems


# --------------------------------------------------------------------------- the user's tree


FileSig = tuple[str, int, str]  # (kind, permission bits, sha256 of content or link target)


def tree_state(root: Path, skip: Iterable[bytes] = (b"guardian.yaml",)) -> dict[bytes, FileSig]:
    """Every file and symlink under root (bytes names), without following symlinks."""
    skipped = set(skip)
    state: dict[bytes, FileSig] = {}
    base = os.fsencode(root)
    for dirpath, dirnames, filenames in os.walk(base):
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        dirnames[:] = [d for d in dirnames if d not in links]
        for name in filenames + links:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, base)
            if rel in skipped:
                continue
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                state[rel] = ("link", 0, hashlib.sha256(os.readlink(full)).hexdigest())
            elif stat.S_ISREG(st.st_mode):
                with open(full, "rb") as handle:
                    digest = hashlib.sha256(handle.read()).hexdigest()
                state[rel] = ("file", stat.S_IMODE(st.st_mode), digest)
    return state


def temp_files(root: Path) -> list[bytes]:
    """guardian's own `.guardian-tmp-*` files anywhere under root."""
    found: list[bytes] = []
    for dirpath, _dirnames, filenames in os.walk(os.fsencode(root)):
        found.extend(os.path.join(dirpath, n) for n in filenames if n.startswith(TEMP_PREFIX))
    return found


def store_leftovers(paths: ProjectPaths) -> list[str]:
    """Lock files and half-written temp objects left in the store by a killed writer."""
    found: list[str] = []
    for dirpath, _dirnames, filenames in os.walk(paths.repo):
        for name in filenames:
            if name.endswith(".lock") or name.startswith(("tmp_object_git2_", "pack_git2_", ".guardian-tmp-")):
                found.append(os.path.join(dirpath, name))
    return found


def fingerprint(directory: Path, exclude: Iterable[Path] = ()) -> dict[str, tuple[int, int, str]]:
    """(mode, size, sha256) of everything under directory, except the excluded subtrees."""
    excluded = {os.fspath(p) for p in exclude}
    out: dict[str, tuple[int, int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in excluded]
        for name in filenames + dirnames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            digest = ""
            if stat.S_ISREG(st.st_mode):
                with open(full, "rb") as handle:
                    digest = hashlib.sha256(handle.read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                digest = os.readlink(full)
            out[full] = (st.st_mode, st.st_size if not stat.S_ISDIR(st.st_mode) else 0, digest)
    return out


# --------------------------------------------------------------------------- processes and errors


def clean_error(stderr: str) -> str | None:
    """None if stderr is guardian's one-line error and nothing else; else what is wrong with it."""
    if "Traceback" in stderr:
        return "a traceback escaped"
    lines = [line for line in stderr.splitlines() if line.strip()]
    if len(lines) != 1:
        return f"expected one line on stderr, got {len(lines)}: {stderr[:400]!r}"
    if not lines[0].startswith("guardian: error: "):
        return f"stderr is not a 'guardian: error:' message: {lines[0][:300]!r}"
    return None


def wait_until(check: Callable[[], bool], what: str, timeout: float = 20.0, step: float = 0.01) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)
    return time.monotonic() - start


def expected_tree(root: Path, skip_prefixes: Iterable[str] = ()) -> dict[bytes, tuple[str, str]]:
    """What a full snapshot of root must hold, computed without guardian: path -> (git mode, blob id).

    For trees of plain ASCII names that no filter excludes (the campaign's own fixtures).
    """
    out: dict[bytes, tuple[str, str]] = {}
    for rel, _sig in tree_state(root, skip=()).items():
        if any(rel.startswith(os.fsencode(p)) for p in skip_prefixes):
            continue
        full = os.path.join(os.fsencode(root), rel)
        st = os.lstat(full)
        if stat.S_ISLNK(st.st_mode):
            out[rel] = ("120000", git_blob_id(os.readlink(full)))
        else:
            with open(full, "rb") as handle:
                data = handle.read()
            out[rel] = ("100755" if st.st_mode & 0o100 else "100644", git_blob_id(data))
    return out
