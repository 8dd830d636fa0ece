"""Case 5: a zeroed object or ref in the store, and a torn or garbled event log.

The damage is done by hand to a real store, the way a disk or a crash leaves it
(files of NUL bytes, truncated files).  guardian must fail closed: ``verify``
exits 5 and names the damage, commands that need the damaged data exit 5
instead of guessing, and ``verify --repair`` returns the ref to the last good
snapshot.  The event log reader survives whatever the last line holds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from guardian.project import ProjectPaths
from tests.conftest import run_cli
from tests.reliability.harness import (
    chain,
    fsck_problems,
    head,
    init_project,
    record,
    store_git,
)


def _history(root: Path) -> tuple[ProjectPaths, list[str]]:
    """Four snapshots: a.txt, then sub/b.txt, then a change to a.txt, then sub/c.txt."""
    paths = init_project(root, {"a.txt": b"a one\n"})
    for rel, data in (("sub/b.txt", b"b one\n"), ("a.txt", b"a two\n"), ("sub/c.txt", b"c one\n")):
        (root / rel).parent.mkdir(exist_ok=True)
        (root / rel).write_bytes(data)
        assert run_cli("snapshot", cwd=root).exit_code == 0
    return paths, chain(paths)


def _loose(paths: ProjectPaths, rev: str) -> tuple[str, Path]:
    oid = store_git(paths, "rev-parse", rev).decode().strip()
    return oid, paths.repo / "objects" / oid[:2] / oid[2:]


def _zero(path: Path) -> None:
    path.chmod(0o644)
    path.write_bytes(b"\0" * max(path.stat().st_size, 1))


# (revision whose loose object is zeroed, the snapshot --repair must return to: index into the chain, newest first)
OBJECTS = {
    "head-commit": ("HEAD", 1),
    "head-tree": ("HEAD^{tree}", 1),
    "head-subtree": ("HEAD:sub", 1),
    "head-new-blob": ("HEAD:sub/c.txt", 1),
}


@pytest.mark.parametrize("kind", sorted(OBJECTS))
def test_zeroed_object_fails_closed_and_repair_returns_to_last_good(tmp_path: Path, kind: str) -> None:
    root = tmp_path / "proj"
    paths, commits = _history(root)
    rev, good_index = OBJECTS[kind]
    oid, path = _loose(paths, rev)
    _zero(path)
    problems: list[str] = []
    r = run_cli("verify", cwd=root)
    named = r.exit_code == 5 and "DAMAGE:" in r.stderr and (oid in r.stderr or "snapshot" in r.stderr)
    if not named or not r.stderr.strip().endswith("run 'guardian verify --repair'"):
        problems.append(f"verify: exit {r.exit_code}, damage not named: {r.stderr.strip()[:300]}")
    # Commands that need the damaged data fail closed too (and never start a new history).
    for args in (["log"], ["snapshot"], ["restore", "--at", commits[0], "sub/c.txt"]):
        r2 = run_cli(*args, cwd=root)
        if r2.exit_code not in (0, 5):
            problems.append(f"guardian {' '.join(args)}: exit {r2.exit_code}: {r2.stderr.strip()[:300]}")
    r = run_cli("verify", "--repair", cwd=root)
    repaired = r.exit_code == 0 and head(paths) == commits[good_index] and run_cli("verify", cwd=root).exit_code == 0
    if not repaired:
        problems.append(f"--repair did not return to the last good snapshot: {r.stdout}{r.stderr}")
    # Every file of the last good snapshot is still restorable.
    (root / "a.txt").unlink()
    if run_cli("restore", "a.txt", cwd=root).exit_code != 0:
        problems.append("a.txt of the last good snapshot is not restorable")
    record("5", damage_trials=1, damage_detected=int(named), damage_repaired=int(repaired))
    assert not problems, "\n".join(problems)


def test_zeroed_blob_in_an_older_snapshot_is_named_and_fails_closed(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    paths, commits = _history(root)
    oid, path = _loose(paths, "HEAD~2:a.txt")  # "a one": only in the two oldest snapshots
    _zero(path)
    r = run_cli("verify", cwd=root)
    assert r.exit_code == 5
    assert f"blob {oid}" in r.stderr and "(a.txt)" in r.stderr
    r = run_cli("restore", "--at", commits[-1], "a.txt", cwd=root)
    assert r.exit_code == 5, r.stderr  # never writes garbage into the work tree
    assert (root / "a.txt").read_bytes() == b"a two\n"
    record("5", damage_trials=1, damage_detected=1)


def test_repair_then_snapshot_of_the_same_content_is_readable(tmp_path: Path) -> None:
    """After --repair, capturing a file whose content hashes to the zeroed blob must write a good copy.

    A loose object that exists but is unreadable still "exists" for the odb; if
    the blob is not rewritten (or the bad file quarantined), the new snapshot
    points at the same unreadable object and the content is lost again.
    """
    root = tmp_path / "proj"
    paths, _commits = _history(root)
    _oid, path = _loose(paths, "HEAD:sub/c.txt")
    _zero(path)
    assert run_cli("verify", "--repair", cwd=root).exit_code == 0
    r = run_cli("snapshot", cwd=root)  # sub/c.txt (same content) is captured again
    assert r.exit_code == 0, r.stderr
    r = run_cli("verify", cwd=root)
    record("5", damage_trials=1, damage_detected=1, damage_repaired=int(r.exit_code == 0))
    assert r.exit_code == 0, r.stderr
    (root / "sub" / "c.txt").unlink()
    r = run_cli("restore", "sub/c.txt", cwd=root)
    assert r.exit_code == 0, r.stderr
    assert (root / "sub" / "c.txt").read_bytes() == b"c one\n"
    assert fsck_problems(paths) is None


REFS = {
    "zeroed": b"\0" * 41,
    "empty": b"",
    "truncated": None,  # filled in with half of the real id
    "missing-commit": b"0123456789abcdef0123456789abcdef01234567\n",
    "garbage": b"not a ref at all\n",
    "symbolic-loop": b"ref: refs/heads/snapshots\n",
}


@pytest.mark.parametrize("kind", sorted(REFS))
def test_damaged_ref_fails_closed_and_repair_returns_to_the_tip(tmp_path: Path, kind: str) -> None:
    root = tmp_path / "proj"
    paths, commits = _history(root)
    ref = paths.repo / "refs" / "heads" / "snapshots"
    content = REFS[kind]
    if content is None:
        content = commits[0][:20].encode() + b"\n"
    ref.write_bytes(content)
    r = run_cli("verify", cwd=root)
    named = (
        "the snapshot ref" in r.stderr
        or "refs/heads/snapshots" in r.stderr
        or (kind == "missing-commit" and f"snapshot {content.decode().strip()} is missing" in r.stderr)
    )
    detected = r.exit_code == 5 and named
    assert r.exit_code == 5, r.stdout + r.stderr
    assert named, r.stderr
    # No command may start a fresh history on top of a damaged ref: that would orphan every snapshot.
    (root / "a.txt").write_bytes(b"a three\n")
    for args in (["snapshot"], ["log"], ["restore", "a.txt"]):
        r2 = run_cli(*args, cwd=root)
        assert r2.exit_code == 5, (args, r2.exit_code, r2.stderr)
    r = run_cli("verify", "--repair", cwd=root)
    assert r.exit_code == 0, r.stdout + r.stderr
    assert chain(paths) == commits, "the repaired ref does not reach every acknowledged snapshot"
    assert run_cli("snapshot", cwd=root).exit_code == 0
    assert fsck_problems(paths) is None
    record("5", damage_trials=1, damage_detected=int(detected), damage_repaired=1)


# --------------------------------------------------------------------------- the event log

BAD_TAILS = {
    "torn-mid-line": None,  # the real last line cut in half
    "nul-bytes": b"\0" * 300,
    "binary": bytes(range(256)),
    "json-array": b"[1, 2, 3]",
    "json-string": b'"just a string"',
    "wrong-types": b'{"event": 5, "paths": "abc", "snapshot": 7, "details": [1, 2], "ts": null}',
    "details-not-object": b'{"event": "snapshot", "paths": [], "details": "text"}',
    "huge-line": b'{"event": "note", "details": {"x": "' + b"y" * 2_000_000,
}


@pytest.mark.parametrize("kind", sorted(BAD_TAILS))
def test_event_log_reader_survives_a_bad_last_line(tmp_path: Path, kind: str) -> None:
    root = tmp_path / "proj"
    paths, _commits = _history(root)
    raw = paths.events.read_bytes()
    tail = BAD_TAILS[kind]
    if tail is None:
        paths.events.write_bytes(raw[: len(raw) - len(raw.splitlines()[-1]) // 2 - 1])
    else:
        with open(paths.events, "ab") as handle:
            handle.write(tail)
    failures = []
    for args in (["events"], ["events", "--json"], ["events", "--kind", "snapshot"], ["log"], ["verify"]):
        r = run_cli(*args, cwd=root)
        if r.exit_code != 0:
            failures.append((args, r.exit_code, r.stderr.strip()[:300]))
    record("5", log_trials=1, log_reader_survived=int(not failures))
    assert not failures, failures
    data = json.loads(run_cli("events", "--json", "-n", "500", cwd=root).stdout)
    assert any(e["event"] == "snapshot" for e in data)
    # The next record starts on a line of its own and is readable.
    (root / "a.txt").write_bytes(b"after the bad line\n")
    assert run_cli("snapshot", cwd=root).exit_code == 0
    last = paths.events.read_bytes().rstrip(b"\n").split(b"\n")[-1]
    assert json.loads(last)["event"] in ("snapshot", "verdict", "verify")


def test_truncated_catalog_is_rebuilt_from_git(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    paths, commits = _history(root)
    size = paths.catalog.stat().st_size
    with open(paths.catalog, "r+b") as handle:
        handle.truncate(size // 2)
    for name in ("catalog.db-wal", "catalog.db-shm"):
        (paths.store / name).unlink(missing_ok=True)
    r = run_cli("log", cwd=root)
    assert r.exit_code in (0, 5), r.stderr
    r = run_cli("verify", "--repair", cwd=root)
    assert r.exit_code == 0, r.stdout + r.stderr
    r = run_cli("log", "--json", cwd=root)
    assert [s["snapshot"] for s in json.loads(r.stdout)["snapshots"]] == commits
    assert os.path.exists(paths.catalog)
    record("5", damage_trials=1, damage_detected=1, damage_repaired=1)
