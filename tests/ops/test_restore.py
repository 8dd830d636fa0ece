"""Validated restore, end to end: the worker_pool incident, bare names, traversal, symlinks, SQLite."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest

from guardian.project import ProjectPaths
from tests.conftest import fsck, guardian_subprocess, run_cli

SHEBANG = "#!/usr/bin/env python3\n"


def _worker_pool_source() -> str:
    body = "".join(f"def task_{i}(queue):\n    return queue.get({i})\n\n" for i in range(500))
    return SHEBANG + '"""Worker pool."""\n\n' + body


def _init(root: Path) -> ProjectPaths:
    r = run_cli("init", cwd=root)
    assert r.exit_code == 0, r.stderr
    return ProjectPaths.for_root(root.resolve())


def test_worker_pool_incident_end_to_end(project: Path) -> None:
    module = project / "src" / "agentdb" / "worker_pool.py"
    module.parent.mkdir(parents=True)
    original = _worker_pool_source().encode()
    assert len(original) > 20_000
    module.write_bytes(original)
    module.chmod(0o755)
    assert guardian_subprocess("init", cwd=project).returncode == 0
    # The agent's "fix": sed -i leaves only the shebang (23 bytes), which still parses as Python.
    subprocess.run(["sed", "-i", "2,$d", str(module)], check=True)
    assert module.read_bytes() == SHEBANG.encode() and len(SHEBANG) == 23
    snap = guardian_subprocess("snapshot", cwd=project)
    assert snap.returncode == 0
    assert "SUSPECT: shrank" in snap.stdout

    r = guardian_subprocess("restore", "worker_pool.py", cwd=project)
    assert r.returncode == 0, r.stderr
    assert module.read_bytes() == original
    assert stat.S_IMODE(module.stat().st_mode) == 0o755
    assert "restored src/agentdb/worker_pool.py from snapshot" in r.stdout
    assert "23 B -> " in r.stdout

    paths = ProjectPaths.for_root(project.resolve())
    log = subprocess.run(
        ["git", "--git-dir", str(paths.repo), "log", "--format=%s"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert log[0].startswith("restore:")
    assert any(line.startswith("pre-restore:") for line in log) or "manual" in log[1]
    events = [json.loads(line) for line in paths.events.read_text().splitlines()]
    restore_events = [e for e in events if e["event"] == "restore"]
    assert restore_events and restore_events[-1]["details"]["pre_snapshot"]
    fsck(paths.repo)


def test_pre_restore_snapshot_captures_unsnapshotted_state(project: Path) -> None:
    f = project / "notes.txt"
    f.write_text("good\n")
    paths = _init(project)
    f.write_text("bad but never snapshotted\n")
    r = run_cli("restore", "--at", _head(paths)[:8], "notes.txt", cwd=project)
    assert r.exit_code == 0, r.stderr
    assert f.read_text() == "good\n"
    # The overwritten content is still in the store, so the restore can be undone.
    out = run_cli("log", "--json", cwd=project)
    snaps = json.loads(out.stdout)["snapshots"]
    assert [s["trigger"] for s in snaps][:2] == ["restore", "pre-restore"]
    shown = run_cli("show", "notes.txt", "--at", snaps[1]["snapshot"], cwd=project)
    assert shown.stdout == "bad but never snapshotted\n"
    fsck(paths.repo)


def _head(paths: ProjectPaths) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(paths.repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_restore_deleted_file_by_bare_name(project: Path) -> None:
    deep = project / "a" / "b" / "c"
    deep.mkdir(parents=True)
    (deep / "config.json").write_text('{"ok": true}\n')
    paths = _init(project)
    (deep / "config.json").unlink()
    deep.rmdir()
    assert run_cli("snapshot", cwd=project).exit_code == 0
    r = run_cli("restore", "config.json", cwd=project)
    assert r.exit_code == 0, r.stderr
    assert (deep / "config.json").read_text() == '{"ok": true}\n'
    fsck(paths.repo)


def test_ambiguous_bare_name_lists_candidates_exit_2(project: Path) -> None:
    for d in ("x", "y"):
        (project / d).mkdir()
        (project / d / "run.py").write_text("print(1)\n")
    _init(project)
    (project / "x" / "run.py").unlink()
    r = run_cli("restore", "run.py", cwd=project)
    assert r.exit_code == 2
    assert r.stderr.strip() == (
        "guardian: error: 'run.py' is ambiguous: it matches 2 paths: x/run.py, y/run.py; "
        "give the path relative to the project root"
    )
    assert run_cli("restore", "x/run.py", cwd=project).exit_code == 0


def test_never_existed(project: Path) -> None:
    _init(project)
    r = run_cli("restore", "ghost.py", cwd=project)
    assert r.exit_code == 1
    assert r.stderr.strip() == (
        "guardian: error: 'ghost.py' never existed in any snapshot; "
        "check the name with 'guardian log' or 'guardian history'"
    )


def test_no_valid_version(project: Path) -> None:
    (project / "state.json").write_text("{broken")
    _init(project)
    r = run_cli("restore", "state.json", cwd=project)
    assert r.exit_code == 1
    assert r.stderr.strip() == (
        "guardian: error: no valid version of 'state.json'; see 'guardian history state.json', "
        "then pick one with --at SNAPSHOT"
    )


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("../x", "refusing path '../x': it is outside the project root {root}"),
        ("/etc/passwd", "refusing path '/etc/passwd': it is outside the project root {root}"),
        ("a/../../x", "refusing path 'a/../../x': it is outside the project root {root}"),
        ("bad\x00name", "refusing path 'bad\\x00name': it contains a NUL byte"),
        (".GIT/hooks/x", "refusing path '.GIT/hooks/x': guardian never reads or writes inside a .git directory"),
        (".git/config", "refusing path '.git/config': guardian never reads or writes inside a .git directory"),
    ],
)
def test_traversal_is_refused(project: Path, typed: str, message: str) -> None:
    (project / "f.txt").write_text("x")
    _init(project)
    outside = project.parent / "x"
    r = run_cli("restore", typed, cwd=project)
    assert r.exit_code == 2
    expected = message.format(root=project.resolve())
    if "\x00" in typed:
        expected = expected.replace("'bad\\x00name'", repr(typed))
    assert r.stderr.strip() == f"guardian: error: {expected}"
    assert not outside.exists()


def test_symlinked_parent_escape_is_refused(project: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (project / "sub").mkdir()
    (project / "sub" / "file.txt").write_text("inside\n")
    paths = _init(project)
    # Swap the parent for a symlink that points outside the root.
    (project / "sub" / "file.txt").unlink()
    (project / "sub").rmdir()
    (project / "sub").symlink_to(outside)
    r = run_cli("restore", "sub/file.txt", cwd=project)
    assert r.exit_code == 2
    assert "'sub' is a symlink or not a directory; guardian never follows symlinks in a path" in r.stderr
    assert list(outside.iterdir()) == []
    fsck(paths.repo)


def test_restore_never_writes_through_a_symlinked_leaf(project: Path, tmp_path: Path) -> None:
    canary = tmp_path / "canary.txt"
    canary.write_text("canary\n")
    (project / "target.txt").write_text("v1\n")
    _init(project)
    (project / "target.txt").unlink()
    (project / "target.txt").symlink_to(canary)
    r = run_cli("restore", "target.txt", cwd=project)
    assert r.exit_code == 0, r.stderr
    assert canary.read_text() == "canary\n"
    assert not (project / "target.txt").is_symlink()
    assert (project / "target.txt").read_text() == "v1\n"


def test_symlinks_are_recorded_not_followed(project: Path, tmp_path: Path) -> None:
    secret = tmp_path / "outside-secret.txt"
    secret.write_text("TOP-SECRET-CANARY\n")
    (project / "link").symlink_to(secret)
    paths = _init(project)
    blobs = subprocess.run(
        ["git", "--git-dir", str(paths.repo), "cat-file", "--batch-all-objects", "--batch"],
        capture_output=True,
        check=True,
    ).stdout
    assert b"TOP-SECRET-CANARY" not in blobs
    assert str(secret).encode() in blobs  # the link target is what is stored
    tree = subprocess.run(
        ["git", "--git-dir", str(paths.repo), "ls-tree", "HEAD", "link"], capture_output=True, text=True, check=True
    ).stdout
    assert tree.startswith("120000 blob")
    (project / "link").unlink()
    assert run_cli("restore", "link", cwd=project).exit_code == 0
    assert os.readlink(project / "link") == str(secret)


def test_mode_0640_with_hard_link(project: Path) -> None:
    f = project / "data.txt"
    f.write_text("original\n")
    f.chmod(0o640)
    _init(project)
    other = project.parent / "hardlink.txt"
    os.link(f, other)
    f.write_text("clobbered\n")
    r = run_cli("restore", "--at", _head(ProjectPaths.for_root(project.resolve())), "data.txt", cwd=project)
    assert r.exit_code == 0, r.stderr
    assert f.read_text() == "original\n"
    assert stat.S_IMODE(f.stat().st_mode) == 0o640
    # Documented policy: a restore replaces the file (new inode); other hard links keep the old content.
    assert other.read_text() == "clobbered\n"
    assert f.stat().st_ino != other.stat().st_ino


def test_dry_run_changes_nothing(project: Path) -> None:
    f = project / "a.py"
    f.write_text("x = 1\n" * 200)
    _init(project)
    f.write_text("x = (\n")
    r = run_cli("restore", "--dry-run", "a.py", cwd=project)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith("would restore a.py from snapshot")
    assert f.read_text() == "x = (\n"


def test_before_and_at_conflict(project: Path) -> None:
    (project / "a.txt").write_text("x")
    _init(project)
    r = run_cli("restore", "--at", "abcd", "--before", "1h", "a.txt", cwd=project)
    assert r.exit_code == 2
    assert r.stderr.strip() == "guardian: error: --at and --before cannot be used together; pick one"
    r = run_cli("restore", "--at", "zz", "a.txt", cwd=project)
    assert r.exit_code == 2
    assert "--at: 'zz' is not a snapshot id" in r.stderr
    r = run_cli("restore", "--before", "someday", "a.txt", cwd=project)
    assert r.exit_code == 2
    assert "--before: cannot read time 'someday'" in r.stderr


def test_restore_before_time(project: Path) -> None:
    f = project / "a.txt"
    f.write_text("one\n")
    _init(project)
    f.write_text("two, longer\n")
    assert run_cli("snapshot", cwd=project).exit_code == 0
    r = run_cli("restore", "--before", "@9999999999", "a.txt", cwd=project)
    assert r.exit_code == 0
    assert f.read_text() == "two, longer\n"
    r = run_cli("restore", "--before", "@1", "a.txt", cwd=project)
    assert r.exit_code == 1
    assert "no valid version of 'a.txt' before that time" in r.stderr


def _wal_db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE jobs(id INTEGER PRIMARY KEY, state TEXT)")
    conn.executemany("INSERT INTO jobs(state) VALUES(?)", [("done",)] * 100)
    conn.commit()
    return conn


def test_sqlite_wal_capture_and_restore(project: Path) -> None:
    db = project / "state.db"
    conn = _wal_db(db)
    assert (project / "state.db-wal").stat().st_size > 0  # committed rows still live in the WAL
    paths = _init(project)
    stale_wal = (project / "state.db-wal").read_bytes()
    conn.close()
    # Damage: the base file is replaced by garbage while a stale WAL/SHM stays behind.
    db.write_bytes(b"garbage" * 100)
    (project / "state.db-wal").write_bytes(stale_wal)
    (project / "state.db-shm").write_bytes(b"\0" * 32768)
    r = run_cli("restore", "--at", _head(paths), "state.db", cwd=project)
    assert r.exit_code == 0, r.stderr
    assert not (project / "state.db-wal").exists()
    assert not (project / "state.db-shm").exists()
    check = sqlite3.connect(db)
    assert check.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    assert check.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 100
    check.close()
    fsck(paths.repo)


def test_restore_protected_needs_force(project: Path) -> None:
    (project / "guardian.yaml").write_text(
        "version: 1\nprotect:\n  - paths: [core/]\n    restore: force\n    reason: core engine\n"
        "  - paths: [frozen/]\n    restore: block\n    reason: frozen area\n"
    )
    (project / "core").mkdir()
    (project / "core" / "engine.py").write_text("x = 1\n")
    (project / "frozen").mkdir()
    (project / "frozen" / "f.txt").write_text("f\n")
    _init(project)
    (project / "core" / "engine.py").write_text("x = 2\n")
    r = run_cli("restore", "--at", _head(ProjectPaths.for_root(project.resolve())), "core/engine.py", cwd=project)
    assert r.exit_code == 3
    assert r.stderr.strip() == "guardian: error: restore of 'core/engine.py' needs --force (protected: core engine)"
    assert (project / "core" / "engine.py").read_text() == "x = 2\n"
    r = run_cli(
        "restore", "--force", "--at", _head(ProjectPaths.for_root(project.resolve())), "core/engine.py", cwd=project
    )
    assert r.exit_code == 0, r.stderr
    assert (project / "core" / "engine.py").read_text() == "x = 1\n"
    (project / "frozen" / "f.txt").write_text("g\n")
    r = run_cli("restore", "--force", "frozen/f.txt", cwd=project)
    assert r.exit_code == 4
    assert r.stderr.strip() == "guardian: error: restore of 'frozen/f.txt' is blocked by policy (frozen area)"


# --------------------------------------------------------------------------- rolled back, and nothing to do (issue 11)

_PROTECT = 'version: 1\nprotect:\n  - paths: ["agents/"]\n    reason: "WO pipeline"\n'


def test_bare_restore_of_a_rolled_back_protected_file_brings_back_the_newest_valid(project: Path) -> None:
    (project / "guardian.yaml").write_text(_PROTECT)
    run = project / "agents" / "wo_executor.zsh"
    run.parent.mkdir()
    run.write_text("echo old\n")
    _init(project)
    run.write_text("echo fix\n")
    run_cli("snapshot", cwd=project)
    run.write_text("echo old\n")  # a stale copy put back: it still parses, so it is "valid"
    run_cli("snapshot", cwd=project)
    r = run_cli("restore", "wo_executor.zsh", cwd=project)
    assert r.exit_code == 0, r.stderr
    assert run.read_text() == "echo fix\n"
    assert r.stdout.startswith("restored agents/wo_executor.zsh from snapshot ")


def test_a_restore_that_would_change_nothing_says_so(project: Path) -> None:
    (project / "a.txt").write_text("a\n")
    paths = _init(project)
    before = paths.events.read_text()
    r = run_cli("restore", "a.txt", cwd=project)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith("nothing to restore: a.txt already has that content (snapshot ")
    assert "restored" not in r.stdout and "undo" not in r.stdout
    assert '"event":"restore"' not in paths.events.read_text()[len(before) :]
    j = json.loads(run_cli("restore", "--json", "a.txt", cwd=project).stdout)
    assert j["restored"] == [] and j["unchanged"][0]["path"] == "a.txt" and j["pre_snapshot"] is None


def test_a_person_restoring_an_older_protected_version_leaves_a_grant(project: Path) -> None:
    (project / "guardian.yaml").write_text(_PROTECT)
    run = project / "agents" / "run.py"
    run.parent.mkdir()
    run.write_text("v = 'old'\n")
    _init(project)
    first = json.loads(run_cli("log", "--json", cwd=project).stdout)["snapshots"][-1]["snapshot"]
    run.write_text("v = 'fix'\n")
    run_cli("snapshot", cwd=project)
    assert run_cli("restore", "--at", first[:12], "agents/run.py", cwd=project).exit_code == 0
    assert run.read_text() == "v = 'old'\n"
    grants = json.loads(run_cli("grants", "--json", cwd=project).stdout)["grants"]
    assert [(g["operation"], g["paths"], g["by"]) for g in grants] == [
        ("rollback", ["agents/run.py"], "guardian restore")
    ]
    # A version a person restored on purpose is not a rollback: it is the newest valid one.
    bare = run_cli("restore", "run.py", cwd=project)
    assert bare.exit_code == 0 and bare.stdout.startswith("nothing to restore: agents/run.py already has that content")
