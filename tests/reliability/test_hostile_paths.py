"""Case 14: hostile paths and crafted shadow trees never steer a write outside the root.

Typed paths (``../x``, ``/etc/passwd``, ``a/../../x``, a NUL byte, ``.GIT/hooks/x``)
go to restore and rollback.  Crafted shadow trees are written into the store
with stock git (``git hash-object --literally``, ``commit-tree``, ``update-ref``),
the way an attacker with write access to the store, or a corrupted store, would
leave them: entries named ``..``, ``.``, ``.git`` and ``.GIT``, names holding
slashes, and names in guardian's own ``.guardian-bytes-`` encoding that decode
to any of those (git's checks cannot see through that encoding).

Then every command that writes user files runs against them: restore (by path,
by bare name, ``--at``), rollback (to the crafted snapshot and away from it),
``check --repair``, ``verify --repair`` and snapshot.  The invariant: nothing
outside the root changes (a fingerprint of the whole temp dir, the canaries, the
project's own ``.git``), and the hostile entries are refused, not followed.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from guardian.project import ProjectPaths
from tests.conftest import git, run_cli
from tests.reliability.harness import (
    all_object_bytes,
    fingerprint,
    head,
    init_project,
    record,
    store_git,
)

CANARY = b"CANARY: must never be written by guardian\n"
PAYLOAD = b"PAYLOAD from a crafted shadow tree\n"


def _encoded(name: bytes) -> bytes:
    """A name component in guardian's own escape (guardian/pathcodec.py) that decodes to ``name``."""
    return b".guardian-bytes-" + base64.urlsafe_b64encode(name)


def _tree(paths: ProjectPaths, entries: list[tuple[bytes, bytes, str]]) -> str:
    """Write a raw tree object: (mode, name, object id) entries, exactly as given (no validation)."""
    body = b"".join(mode + b" " + name + b"\0" + bytes.fromhex(oid) for mode, name, oid in entries)
    out = store_git(paths, "hash-object", "-t", "tree", "--literally", "-w", "--stdin", data=body)
    return out.decode().strip()


def _blob(paths: ProjectPaths, data: bytes) -> str:
    return store_git(paths, "hash-object", "-w", "--stdin", data=data).decode().strip()


def _nest(paths: ProjectPaths, components: list[bytes], blob: str) -> tuple[bytes, bytes, str]:
    """A chain of trees named components[:-1] ending in a blob named components[-1]: one top-level entry."""
    mode, name, oid = b"100644", components[-1], blob
    for part in reversed(components[:-1]):
        oid = _tree(paths, [(mode, name, oid)])
        mode, name = b"40000", part
    return mode, name, oid


def _crafted_commit(paths: ProjectPaths, hostile: list[list[bytes]]) -> str:
    """A snapshot commit whose tree is the current head's plus the hostile entries; the ref moves to it."""
    parent = head(paths)
    assert parent is not None
    base_entries: list[tuple[bytes, bytes, str]] = []
    for item in store_git(paths, "ls-tree", "-z", parent).split(b"\0"):
        if item:
            meta, name = item.split(b"\t", 1)
            mode, _kind, oid = meta.split()
            base_entries.append((mode, name, oid.decode()))
    blob = _blob(paths, PAYLOAD)
    entries = base_entries + [_nest(paths, components, blob) for components in hostile]
    tree = _tree(paths, entries)
    message = "manual: 1 added\n\nTrigger: manual\n"
    commit = store_git(paths, "commit-tree", tree, "-p", parent, "-m", message, check=True).decode().strip()
    store_git(paths, "update-ref", "refs/heads/snapshots", commit, parent)
    return commit


HOSTILE_TREES: dict[str, list[list[bytes]]] = {
    "dotdot": [[b"..", b"x"]],
    "nested-dotdot": [[b"a", b"..", b"..", b"x"]],
    "dot": [[b".", b"x"]],
    "dot-git": [[b".git", b"hooks", b"pre-commit"]],
    "dot-GIT": [[b".GIT", b"hooks", b"x"]],
    "slash-in-name": [[b"a/../../x"]],
    "encoded-dotdot": [[_encoded(b".."), b"x"]],
    "encoded-slashes": [[_encoded(b"../../x")]],
    "encoded-dot-git": [[_encoded(b".git"), b"hooks", b"pre-commit"]],
    "encoded-nul": [[_encoded(b"nul\0byte")]],
}


def _project(tmp_path: Path) -> tuple[Path, ProjectPaths]:
    root = tmp_path / "proj"
    root.mkdir()
    git("init", "-q", cwd=root)
    (root / ".git" / "hooks" / "pre-commit").write_text("#!/bin/sh\nexit 0\n")
    paths = init_project(root, {"keep.txt": b"keep\n", "sub/inner.txt": b"inner\n"})
    (tmp_path / "x").write_bytes(CANARY)  # where ../x and a/../../x point
    return root, paths


def _outside(tmp_path: Path, root: Path) -> dict[str, tuple[int, int, str]]:
    home = Path(os.environ["GUARDIAN_HOME"])
    # Everything in the temp dir except the work tree's captured files and guardian's own store;
    # the project's .git is included: guardian must never write into it.
    state = fingerprint(tmp_path, exclude=[home])
    state.update({f"git:{k}": v for k, v in fingerprint(root / ".git").items()})
    return {k: v for k, v in state.items() if not k.startswith(str(root) + os.sep) or k.startswith("git:")}


def _etc_passwd() -> str:
    return hashlib.sha256(Path("/etc/passwd").read_bytes()).hexdigest()


@pytest.mark.parametrize(
    "typed", ["../x", "/etc/passwd", "a/../../x", "bad\x00name", ".GIT/hooks/x", ".git/hooks/pre-commit", "sub/../../x"]
)
def test_typed_hostile_paths_are_refused_by_restore_and_rollback(tmp_path: Path, typed: str) -> None:
    root, paths = _project(tmp_path)
    snap = head(paths)
    assert snap is not None
    before, passwd = _outside(tmp_path, root), _etc_passwd()
    refused = 0
    for args in (["restore", typed], ["restore", "--at", snap, typed], ["rollback", "--to", snap, "--force", typed]):
        r = run_cli(*args, cwd=root)
        assert r.exit_code == 2, (args, r.exit_code, r.stderr)
        assert r.stderr.startswith("guardian: error: refusing path"), r.stderr
        refused += 1
    changed = sorted(
        k for k in before.keys() | _outside(tmp_path, root).keys() if before.get(k) != _outside(tmp_path, root).get(k)
    )
    record("14", hostile_inputs=refused, hostile_refused=refused, writes_outside_root=len(changed))
    assert not changed
    assert _etc_passwd() == passwd


@pytest.mark.parametrize("kind", sorted(HOSTILE_TREES))
def test_crafted_shadow_tree_is_refused(tmp_path: Path, kind: str) -> None:
    root, paths = _project(tmp_path)
    good = head(paths)
    assert good is not None
    crafted = _crafted_commit(paths, HOSTILE_TREES[kind])
    before = _outside(tmp_path, root)
    attempts: list[tuple[str, int, str]] = []

    def attempt(*args: str) -> None:
        r = run_cli(*args, cwd=root)
        attempts.append((" ".join(args), r.exit_code, r.stderr.strip()[:300]))

    attempt("log")  # indexes the crafted commit into the catalog
    attempt("restore", "x")  # a bare name that the crafted tree also holds
    attempt("restore", "--at", crafted, "x")
    attempt("restore", "pre-commit")
    attempt("rollback", "--to", crafted, "--force")  # towards the crafted tree: recreate its entries
    attempt("check", "--repair")
    attempt("rollback", "--to", good, "--force")  # away from it: delete its entries
    attempt("verify", "--repair")
    attempt("snapshot")
    after = _outside(tmp_path, root)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    leaked = CANARY in all_object_bytes(paths)
    bugs = [a for a in attempts if a[1] == 70]
    record(
        "14",
        hostile_inputs=1,
        hostile_refused=int(not changed and not leaked and not bugs),
        writes_outside_root=len(changed),
        canary_leaks=int(leaked),
        faults_escaped=len(bugs),
    )
    report = "\n".join(f"  guardian {a}: exit {c} {e}" for a, c, e in attempts)
    assert not changed, f"written outside the root: {changed}\n{report}"
    assert not leaked, f"a file outside the root was read into the store\n{report}"
    assert not bugs, f"internal errors (exit 70)\n{report}"
    assert (tmp_path / "x").read_bytes() == CANARY
    # The hostile payload may only ever land inside the root, and never in a .git directory.
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            full = Path(dirpath) / name
            if full.read_bytes() == PAYLOAD:
                rel = full.relative_to(root).as_posix()
                assert ".git" not in rel.lower().split("/"), f"payload written into {rel}"


def test_crafted_tree_names_keep_stock_git_happy_after_rollback_away(tmp_path: Path) -> None:
    """After rolling away from a crafted snapshot, the head guardian writes is clean again for git fsck."""
    root, paths = _project(tmp_path)
    good = head(paths)
    assert good is not None
    _crafted_commit(paths, HOSTILE_TREES["dotdot"])
    r = run_cli("rollback", "--to", good, "--force", cwd=root)
    assert r.exit_code in (0, 1), r.stderr
    newest = head(paths)
    assert newest is not None
    names = store_git(paths, "ls-tree", "-r", "-z", "--name-only", newest).split(b"\0")
    assert not [n for n in names if b".." in n.split(b"/")]


def test_hostile_rollback_scope_arguments(tmp_path: Path) -> None:
    root, paths = _project(tmp_path)
    snap = head(paths)
    assert snap is not None
    before = _outside(tmp_path, root)
    for typed in ("..", "../", str(tmp_path), "/", "sub/../.."):
        r = run_cli("rollback", "--to", snap, "--force", typed, cwd=root)
        assert r.exit_code == 2, (typed, r.stderr)
    assert _outside(tmp_path, root) == before
    proc = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, check=True)
    assert ".git" not in proc.stdout
