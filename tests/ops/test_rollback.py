"""`guardian rollback`: plan, policy, atomic apply, the pre-rollback safety net, and the record."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from guardian.ops.rollback import rollback, snapshot_before
from guardian.project import Project, ProjectPaths
from tests.conftest import fsck, guardian_subprocess, run_cli

POLICY = textwrap.dedent(
    """\
    version: 1
    protect:
      - paths: ["agents/wo_executor/"]
        rollback: force
        delete: block
        reason: "WO pipeline processor"
      - paths: ["frozen/"]
        rollback: block
        delete: block
        reason: "frozen API"
    """
)


def _init(root: Path, policy: str = POLICY) -> ProjectPaths:
    (root / "guardian.yaml").write_text(policy)
    r = run_cli("init", cwd=root)
    assert r.exit_code == 0, r.stderr
    return ProjectPaths.for_root(root.resolve())


def _snap(root: Path) -> str:
    r = run_cli("snapshot", cwd=root)
    assert r.exit_code == 0, r.stderr
    return _head(root)


def _head(root: Path) -> str:
    r = run_cli("log", "--json", "-n", "1", cwd=root)
    return str(json.loads(r.stdout)["snapshots"][0]["snapshot"])


def _triggers(root: Path) -> list[str]:
    r = run_cli("log", "--json", cwd=root)
    return [s["trigger"] for s in json.loads(r.stdout)["snapshots"]]


def _events(paths: ProjectPaths, kind: str) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in paths.events.read_text().splitlines()]
    return [e for e in records if e["event"] == kind]


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "guardian.yaml"
    }


def _dirs(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir())


def _time(paths: ProjectPaths, snap: str) -> str:
    from guardian.util.times import format_time

    out = subprocess.run(
        ["git", "--git-dir", str(paths.repo), "log", "-1", "--format=%ct", snap],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return format_time(float(out))


# --------------------------------------------------------------------------- the three kinds of change


def test_rewrites_deletes_and_recreates(project: Path) -> None:
    (project / "a.txt").write_text("a1\n")
    (project / "b.txt").write_text("b1\n")
    (project / "dir").mkdir()
    (project / "dir" / "c.txt").write_text("c1\n")
    paths = _init(project)
    target = _head(project)
    before = _tree(project)
    # Some of this is snapshotted, some is not: both must be compared and kept.
    (project / "a.txt").write_text("a2\n")
    (project / "b.txt").unlink()
    _snap(project)
    (project / "dir" / "c.txt").write_text("c2, never snapshotted\n")
    (project / "new.txt").write_text("added since\n")
    (project / "newdir" / "deep").mkdir(parents=True)
    (project / "newdir" / "deep" / "n.txt").write_text("n\n")

    r = run_cli("rollback", "--to", target[:8], cwd=project)
    assert r.exit_code == 0, r.stderr
    pre = _events(paths, "rollback")[0]["details"]["pre_snapshot"]
    assert r.stdout.splitlines() == [
        "rewrote a.txt",
        "recreated b.txt",
        "rewrote dir/c.txt",
        "deleted new.txt",
        "deleted newdir/deep/n.txt",
        f"rolled back 5 file(s) to {target[:12]} ({_time(paths, target)}): "
        "2 rewritten, 2 deleted, 1 recreated; 0 skipped (protected), 0 blocked",
        f"the state before this rollback is snapshot {pre[:12]}; undo with 'guardian rollback --to {pre[:12]}'",
    ]
    assert _tree(project) == before
    # The directories that only held files added since are gone too.
    assert _dirs(project) == ["dir"]
    assert _triggers(project)[:3] == ["rollback", "pre-rollback", "manual"]
    fsck(paths.repo)


def test_rollback_event_says_who_what_and_what_was_decided(project: Path) -> None:
    (project / "a.txt").write_text("a1\n")
    paths = _init(project)
    target = _head(project)
    (project / "a.txt").write_text("a2\n")
    assert run_cli("rollback", "--to", target, cwd=project).exit_code == 0
    [event] = _events(paths, "rollback")
    d = event["details"]
    assert event["trigger"] == "rollback"
    assert event["paths"] == ["a.txt"]
    assert event["snapshot"] == _head(project) == d["post_snapshot"]
    assert d["user"] and d["pid"] == os.getpid() and d["argv"] == sys.argv
    assert (d["target"], d["force"], d["complete"], d["exit_code"]) == (target, False, True, 0)
    assert d["scope"] == []
    assert d["counts"] == {"rewritten": 1, "deleted": 0, "recreated": 0, "skipped": 0, "blocked": 0, "failed": 0}
    assert d["decision"]["outcome"] == "allow" and d["decision"]["unprotected"] == 1
    assert d["summary"].startswith(f"rolled back 1 file(s) to {target[:12]} (")
    # The post-rollback snapshot names its source and the command.
    message = subprocess.run(
        ["git", "--git-dir", str(paths.repo), "log", "-1", "--format=%B"], capture_output=True, text=True, check=True
    ).stdout
    assert f"Guardian-Source: {target}" in message
    assert "Guardian-Trigger: rollback" in message


def test_pre_rollback_snapshot_undoes_the_rollback(project: Path) -> None:
    (project / "a.txt").write_text("a1\n")
    paths = _init(project)
    target = _head(project)
    (project / "a.txt").write_text("a2, never snapshotted\n")
    (project / "new.txt").write_text("new\n")
    after = _tree(project)
    assert run_cli("rollback", "--to", target, cwd=project).exit_code == 0
    assert _tree(project) == {"a.txt": b"a1\n"}
    pre = _events(paths, "rollback")[0]["details"]["pre_snapshot"]
    r = run_cli("rollback", "--to", pre, cwd=project)
    assert r.exit_code == 0, r.stderr
    assert _tree(project) == after
    fsck(paths.repo)


def test_paths_limit_the_rollback(project: Path) -> None:
    (project / "keep").mkdir()
    (project / "keep" / "x.txt").write_text("x1\n")
    (project / "roll").mkdir()
    (project / "roll" / "y.txt").write_text("y1\n")
    _init(project)
    target = _head(project)
    (project / "keep" / "x.txt").write_text("x2\n")
    (project / "roll" / "y.txt").write_text("y2\n")
    (project / "roll" / "z.txt").write_text("z\n")
    r = run_cli("rollback", "--to", target, "y.txt", "z.txt", cwd=project / "roll")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.splitlines()[:2] == ["rewrote roll/y.txt", "deleted roll/z.txt"]
    assert (project / "keep" / "x.txt").read_text() == "x2\n"
    assert (project / "roll" / "y.txt").read_text() == "y1\n"
    # A directory, and "." for everything.
    (project / "roll" / "y.txt").write_text("y3\n")
    assert run_cli("rollback", "--to", target, "roll", cwd=project).exit_code == 0
    assert (project / "roll" / "y.txt").read_text() == "y1\n"
    assert (project / "keep" / "x.txt").read_text() == "x2\n"
    assert run_cli("rollback", "--to", target, ".", cwd=project).exit_code == 0
    assert (project / "keep" / "x.txt").read_text() == "x1\n"


def test_before_picks_the_latest_snapshot_strictly_before(project: Path) -> None:
    (project / "a.txt").write_text("one\n")
    _init(project)
    first = _head(project)
    time.sleep(1.05 - time.time() % 1)  # snapshot times are whole seconds
    (project / "a.txt").write_text("two\n")
    second = _snap(project)
    r = run_cli("log", "--json", cwd=project)
    ts = {s["snapshot"]: s["time"] for s in json.loads(r.stdout)["snapshots"]}
    assert ts[second] > ts[first]
    with Project.find(project).reader() as (_repo, catalog):
        assert snapshot_before(catalog, ts[second] + 0.5).id == second
        # Exactly at the second snapshot's time: that one is not *before* it.
        assert snapshot_before(catalog, ts[second]).id == first
    (project / "a.txt").write_text("three\n")
    r = run_cli("rollback", "--before", f"@{ts[second]}", cwd=project)
    assert r.exit_code == 0, r.stderr
    assert f"to {first[:12]} (" in r.stdout
    assert (project / "a.txt").read_text() == "one\n"


# --------------------------------------------------------------------------- protected paths


def _protected_project(root: Path) -> tuple[ProjectPaths, str]:
    (root / "agents" / "wo_executor").mkdir(parents=True)
    (root / "agents" / "wo_executor" / "run.sh").write_text("#!/bin/sh\necho fixed\n")
    (root / "frozen").mkdir()
    (root / "frozen" / "api.py").write_text("API = 1\n")
    (root / "notes.txt").write_text("n1\n")
    paths = _init(root)
    return paths, _head(root)


def test_protected_paths_are_skipped_then_rolled_back_with_force(project: Path) -> None:
    paths, target = _protected_project(project)
    run_sh = project / "agents" / "wo_executor" / "run.sh"
    run_sh.write_text("#!/bin/sh\necho the fix, newer\n")
    (project / "agents" / "wo_executor" / "extra.py").write_text("print('added since')\n")
    (project / "notes.txt").write_text("n2\n")

    r = run_cli("rollback", "--to", target, cwd=project)
    assert r.exit_code == 4, r.stderr  # blocked wins over skipped
    lines = r.stdout.splitlines()
    assert lines[:4] == [
        "rewrote notes.txt",
        # Deleting extra.py is a delete, and this rule's delete action is block.
        "SKIP agents/wo_executor/run.sh (protected: WO pipeline processor)",
        "BLOCKED agents/wo_executor/extra.py (protected: WO pipeline processor)",
        f"rolled back 1 file(s) to {target[:12]} ({_time(paths, target)}): "
        "1 rewritten, 0 deleted, 0 recreated; 1 skipped (protected), 1 blocked",
    ]
    assert run_sh.read_text() == "#!/bin/sh\necho the fix, newer\n"
    assert (project / "notes.txt").read_text() == "n1\n"
    [event] = _events(paths, "rollback")
    assert event["trigger"] == "block"
    decided = {p["path"]: p["outcome"] for p in event["details"]["decision"]["paths"]}
    assert decided == {"agents/wo_executor/run.sh": "force", "agents/wo_executor/extra.py": "block"}

    r = run_cli("rollback", "--to", target, "--force", cwd=project)
    assert r.stdout.splitlines()[:2] == [
        "rewrote agents/wo_executor/run.sh (forced: WO pipeline processor)",
        "BLOCKED agents/wo_executor/extra.py (protected: WO pipeline processor)",
    ]
    assert run_sh.read_text() == "#!/bin/sh\necho fixed\n"
    assert (project / "agents" / "wo_executor" / "extra.py").exists()
    forced = json.loads(run_cli("events", "--kind", "force", "--json", cwd=project).stdout)
    assert [(e["event"], e["details"]["forced"]) for e in forced] == [("rollback", ["agents/wo_executor/run.sh"])]


def test_exit_codes_skip_3_block_4(project: Path) -> None:
    _paths, target = _protected_project(project)
    (project / "agents" / "wo_executor" / "run.sh").write_text("#!/bin/sh\necho newer\n")
    r = run_cli("rollback", "--to", target, cwd=project)
    assert r.exit_code == 3
    assert r.stdout.splitlines()[-1] == "1 protected path(s) skipped; rerun with --force to roll them back too"
    assert run_cli("rollback", "--to", target, "--force", cwd=project).exit_code == 0
    (project / "frozen" / "api.py").write_text("API = 2\n")
    (project / "agents" / "wo_executor" / "run.sh").write_text("#!/bin/sh\necho newer\n")
    r = run_cli("rollback", "--to", target, cwd=project)
    assert r.exit_code == 4
    assert "BLOCKED frozen/api.py (protected: frozen API)" in r.stdout.splitlines()
    assert "SKIP agents/wo_executor/run.sh (protected: WO pipeline processor)" in r.stdout.splitlines()


def test_blocked_paths_are_never_touched_even_with_force(project: Path) -> None:
    _paths, target = _protected_project(project)
    api = project / "frozen" / "api.py"
    api.write_text("API = 2\n")
    api.chmod(0o600)
    inode = api.stat().st_ino
    (project / "frozen" / "v2.py").write_text("added\n")
    (project / "notes.txt").write_text("n2\n")
    r = run_cli("rollback", "--to", target, "--force", cwd=project)
    assert r.exit_code == 4
    assert r.stdout.splitlines()[:3] == [
        "rewrote notes.txt",
        "BLOCKED frozen/api.py (protected: frozen API)",
        "BLOCKED frozen/v2.py (protected: frozen API)",
    ]
    assert api.read_text() == "API = 2\n"
    assert api.stat().st_ino == inode and stat.S_IMODE(api.stat().st_mode) == 0o600
    assert (project / "frozen" / "v2.py").read_text() == "added\n"
    assert (project / "notes.txt").read_text() == "n1\n"


def test_rollback_to_before_a_protected_component_existed_keeps_it(project: Path) -> None:
    """The incident: a rollback to a time before the processor existed must not delete it."""
    (project / "notes.txt").write_text("n1\n")
    _init(project)
    target = _head(project)
    fixed = "#!/bin/sh\necho fixed apply_patch_processor\n"
    (project / "agents" / "wo_executor").mkdir(parents=True)
    (project / "agents" / "wo_executor" / "run.sh").write_text(fixed)
    r = run_cli("rollback", "--to", target, "--force", cwd=project)
    assert r.exit_code == 4
    assert "BLOCKED agents/wo_executor/run.sh (protected: WO pipeline processor)" in r.stdout
    assert (project / "agents" / "wo_executor" / "run.sh").read_text() == fixed


def test_policy_file_needs_force(project: Path) -> None:
    (project / "a.txt").write_text("a\n")
    _init(project)
    target = _head(project)
    policy = project / "guardian.yaml"
    policy.write_text(POLICY + "# edited\n")
    r = run_cli("rollback", "--to", target, cwd=project)
    assert r.exit_code == 3
    assert "SKIP guardian.yaml (protected: the guardian policy file)" in r.stdout.splitlines()
    assert policy.read_text().endswith("# edited\n")


# --------------------------------------------------------------------------- dry run, modes, odd shapes


def test_dry_run_changes_nothing(project: Path) -> None:
    paths, target = _protected_project(project)
    (project / "notes.txt").write_text("n2\n")
    (project / "agents" / "wo_executor" / "run.sh").write_text("#!/bin/sh\necho newer\n")
    (project / "new.txt").write_text("new\n")
    before = _tree(project)
    mtimes = {p: (project / p).stat().st_mtime_ns for p in before}
    r = run_cli("rollback", "--to", target, "--dry-run", cwd=project)
    assert r.exit_code == 3  # what the real run would exit with
    assert r.stdout.splitlines() == [
        "would delete new.txt",
        "would rewrite notes.txt",
        "SKIP agents/wo_executor/run.sh (protected: WO pipeline processor)",
        f"would roll back 2 file(s) to {target[:12]} ({_time(paths, target)}): "
        "1 rewritten, 1 deleted, 0 recreated; 1 skipped (protected), 0 blocked",
        "1 protected path(s) skipped; rerun with --force to roll them back too",
    ]
    assert _tree(project) == before
    assert {p: (project / p).stat().st_mtime_ns for p in before} == mtimes
    assert _events(paths, "rollback") == []
    # The current state was captured so the plan is exact; a second dry run adds nothing.
    head = _head(project)
    assert run_cli("rollback", "--to", target, "--dry-run", cwd=project).exit_code == 3
    assert _head(project) == head
    data = json.loads(run_cli("rollback", "--to", target, "--dry-run", "--json", cwd=project).stdout)
    assert data["dry_run"] is True and data["counts"]["skipped"] == 1
    assert [c["path"] for c in data["applied"]] == ["new.txt", "notes.txt"]


def test_nothing_to_roll_back(project: Path) -> None:
    (project / "a.txt").write_text("a\n")
    paths = _init(project)
    target = _head(project)
    r = run_cli("rollback", "--to", target, cwd=project)
    assert r.exit_code == 0
    assert r.stdout == (
        f"nothing to roll back: the tree already matches snapshot {target[:12]} ({_time(paths, target)})\n"
    )


def test_modes_are_kept(project: Path) -> None:
    script = project / "run.sh"
    script.write_text("#!/bin/sh\necho 1\n")
    script.chmod(0o750)
    private = project / "private.txt"
    private.write_text("p1\n")
    private.chmod(0o640)
    _init(project)
    target = _head(project)
    script.write_text("#!/bin/sh\necho 2\n")
    script.chmod(0o640)  # lost its exec bit since
    private.write_text("p2\n")
    assert run_cli("rollback", "--to", target, cwd=project).exit_code == 0
    assert script.read_text() == "#!/bin/sh\necho 1\n"
    assert stat.S_IMODE(script.stat().st_mode) == 0o750  # exec bit from the snapshot, read bits from the user
    assert private.read_text() == "p1\n"
    assert stat.S_IMODE(private.stat().st_mode) == 0o640


def test_mode_only_change_is_rolled_back(project: Path) -> None:
    script = project / "run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    _init(project)
    target = _head(project)
    script.chmod(0o644)
    r = run_cli("rollback", "--to", target, cwd=project)
    assert r.stdout.splitlines()[0] == "rewrote run.sh"
    assert stat.S_IMODE(script.stat().st_mode) == 0o755


def test_file_and_directory_swap_places(project: Path) -> None:
    (project / "a").write_text("a was a file\n")
    (project / "b").mkdir()
    (project / "b" / "inner.txt").write_text("b was a directory\n")
    _init(project)
    target = _head(project)
    (project / "a").unlink()
    (project / "a").mkdir()
    (project / "a" / "inner.txt").write_text("now a directory\n")
    (project / "b" / "inner.txt").unlink()
    (project / "b").rmdir()
    (project / "b").write_text("now a file\n")
    r = run_cli("rollback", "--to", target, cwd=project)
    assert r.exit_code == 0, r.stdout + r.stderr
    assert (project / "a").read_text() == "a was a file\n"
    assert (project / "b" / "inner.txt").read_text() == "b was a directory\n"


def test_symlinks_come_back_as_links(project: Path) -> None:
    (project / "target.txt").write_text("t\n")
    (project / "link").symlink_to("target.txt")
    _init(project)
    snap = _head(project)
    (project / "link").unlink()
    (project / "link").write_text("a plain file now\n")
    assert run_cli("rollback", "--to", snap, cwd=project).exit_code == 0
    assert (project / "link").is_symlink() and os.readlink(project / "link") == "target.txt"


def test_one_file_in_the_way_does_not_strand_the_rest(project: Path) -> None:
    (project / "a.txt").write_text("a1\n")
    (project / "sub").mkdir()
    (project / "sub" / "f.txt").write_text("f1\n")
    _init(project)
    target = _head(project)
    (project / "a.txt").write_text("a2\n")
    (project / "sub" / "f.txt").unlink()
    # A directory now stands where the target has a file, and a file guardian never
    # captures (bytecode) keeps it from being removed as "emptied".
    (project / "sub" / "f.txt" / "__pycache__").mkdir(parents=True)
    (project / "sub" / "f.txt" / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"\0")
    r = run_cli("rollback", "--to", target, cwd=project)
    assert r.exit_code == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert "rewrote a.txt" in lines
    assert "FAILED sub/f.txt: cannot restore 'sub/f.txt': a directory is in the way; move it aside first" in lines
    assert next(line for line in lines if line.startswith("rolled back")).endswith(
        "1 rewritten, 0 deleted, 0 recreated; 0 skipped (protected), 0 blocked, 1 failed"
    )
    assert (project / "a.txt").read_text() == "a1\n"


# --------------------------------------------------------------------------- errors users can hit


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ((), 2, "say where to roll back to: --to SNAPSHOT (see 'guardian log') or --before TIME"),
        (("--to", "abcd1234", "--before", "2h"), 2, "--to and --before cannot be used together; pick one"),
        (("--to", "abcd1234"), 2, "--to: no snapshot 'abcd1234' in this store; list them with 'guardian log'"),
        (("--to", "xyz"), 2, "--to: 'xyz' is not a snapshot id; use an id from 'guardian log' (at least 4 hex digits)"),
        (
            ("--before", "yesterday-ish"),
            2,
            "--before: cannot read time 'yesterday-ish'; use 2026-11-21, 2026-11-21T14:30, 16:38 (today), "
            "today, yesterday, 2h, 1h30m or 2 hours ago (that long ago), @1700000000",
        ),
        (("--before", "@1000"), 1, "--before: no snapshot was taken before {t1000}; list them with 'guardian log'"),
        (
            ("--before", "1s", "../outside.txt"),
            2,
            "refusing path '../outside.txt': it is outside the project root {root}",
        ),
        (
            ("--to", "{head}", "ghost.txt"),
            1,
            "'ghost.txt' is neither in snapshot {head12} nor in the work tree; "
            "check the path with 'guardian log' or 'guardian history'",
        ),
    ],
)
def test_errors(project: Path, args: tuple[str, ...], code: int, message: str) -> None:
    from guardian.util.times import format_time

    (project / "a.txt").write_text("a\n")
    paths = _init(project)
    head = _head(project)
    fill = {"head": head, "head12": head[:12], "root": str(project.resolve()), "t1000": format_time(1000)}
    (project / "a.txt").write_text("changed\n")
    before_events = paths.events.read_text()
    r = run_cli("rollback", *(a.format(**fill) for a in args), cwd=project)
    assert (r.exit_code, r.stderr) == (code, f"guardian: error: {message.format(**fill)}\n")
    assert r.stdout == ""
    assert (project / "a.txt").read_text() == "changed\n"
    # Nothing was snapshotted: errors come before the pre-rollback snapshot.
    new_events = [json.loads(line) for line in paths.events.read_text()[len(before_events) :].splitlines()]
    assert [e for e in new_events if e["event"] in ("snapshot", "rollback")] == []


# --------------------------------------------------------------------------- crashes and progress


def test_crash_mid_rollback_then_rerun_completes(project: Path) -> None:
    for i in range(6):
        (project / f"f{i}.txt").write_text(f"v1 {i}\n")
    paths = _init(project)
    target = _head(project)
    for i in range(6):
        (project / f"f{i}.txt").write_text(f"v2 {i}\n")
    (project / "added.txt").write_text("added\n")
    proc = guardian_subprocess("rollback", "--to", target, cwd=project, env={"GUARDIAN_CRASH_AT": "rollback-mid"})
    assert proc.returncode == -signal.SIGKILL
    # Exactly one change landed (the deletion goes first), and the state before it is safe in the store.
    assert not (project / "added.txt").exists()
    assert all((project / f"f{i}.txt").read_text() == f"v2 {i}\n" for i in range(6))
    assert not list(project.rglob(".guardian-tmp-*"))
    fsck(paths.repo)
    assert _triggers(project)[0] == "pre-rollback"
    first_pre = _head(project)

    proc = guardian_subprocess("rollback", "--to", target, cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-2].startswith(f"rolled back 6 file(s) to {target[:12]} (")
    assert all((project / f"f{i}.txt").read_text() == f"v1 {i}\n" for i in range(6))
    fsck(paths.repo)
    [event] = _events(paths, "rollback")
    assert event["details"]["complete"] is True
    assert event["details"]["argv"][1:] == ["rollback", "--to", target]
    # The crashed run's pre-rollback snapshot still holds the v2 content.
    r = run_cli("show", "f0.txt", "--at", first_pre, cwd=project)
    assert r.stdout == "v2 0\n"
    assert run_cli("verify", cwd=project).exit_code == 0


def test_progress_is_reported_for_large_rollbacks(project: Path) -> None:
    for i in range(120):
        (project / f"f{i:03}.txt").write_text("1\n")
    _init(project)
    target = _head(project)
    for i in range(120):
        (project / f"f{i:03}.txt").write_text("2\n")
    calls: list[tuple[int, int]] = []
    report = rollback(
        Project.find(project),
        to=target,
        before=None,
        argv=["guardian", "rollback"],
        progress=lambda done, total: calls.append((done, total)),
    )
    assert report.exit_code == 0 and report.count("rewrite") == 120
    assert (50, 120) in calls and (100, 120) in calls and calls[-1] == (120, 120)


def test_interrupted_rollback_is_snapshotted_and_recorded(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(3):
        (project / f"f{i}.txt").write_text("v1\n")
    paths = _init(project)
    target = _head(project)
    for i in range(3):
        (project / f"f{i}.txt").write_text("v2\n")
    import guardian.ops.rollback

    real = guardian.ops.rollback.write_entry
    calls: list[str] = []

    def interrupt_second(root: Path, repo: Any, rel: str, entry: Any, **kwargs: Any) -> int:
        calls.append(rel)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(root, repo, rel, entry, **kwargs)

    monkeypatch.setattr(guardian.ops.rollback, "write_entry", interrupt_second)
    with pytest.raises(KeyboardInterrupt):
        rollback(Project.find(project), to=target, before=None, argv=["guardian", "rollback"])
    [event] = _events(paths, "rollback")
    assert event["details"]["complete"] is False
    assert event["details"]["counts"]["rewritten"] == 1
    # What did land is in the post snapshot, so the log matches the disk.
    assert event["snapshot"] == _head(project)
    assert run_cli("show", "f0.txt", "--at", event["snapshot"], cwd=project).stdout == "v1\n"
    assert (project / "f1.txt").read_text() == "v2\n"
