"""log, history (timeline, sparkline, diagnosis), show, diff, events, projects."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from guardian.project import ProjectPaths
from tests.conftest import git, run_cli


def _init(root: Path) -> ProjectPaths:
    r = run_cli("init", cwd=root)
    assert r.exit_code == 0, r.stderr
    return ProjectPaths.for_root(root.resolve())


def test_history_worked_then_broke(project: Path) -> None:
    f = project / "proc.py"
    f.write_text("def run():\n    return 1\n" * 100)
    _init(project)
    f.write_text("#!/usr/bin/env python3\n")
    run_cli("snapshot", cwd=project)
    f.unlink()
    run_cli("snapshot", cwd=project)
    r = run_cli("history", "proc.py", cwd=project)
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("proc.py  █▁·")
    assert "created" in lines[1] and "changed" in lines[2] and "SUSPECT" in lines[2] and "deleted" in lines[3]
    diagnosis = lines[-1]
    assert diagnosis.startswith("diagnosis: last valid version at ")
    assert "; since then: suspect at " in diagnosis and "(manual), deleted at " in diagnosis


def test_history_never_existed(project: Path) -> None:
    _init(project)
    r = run_cli("history", "--json", "nothing.py", cwd=project)
    assert r.exit_code == 0
    assert json.loads(r.stdout)["diagnosis"] == "never existed in any snapshot"


def test_history_lists_user_git_commits(project: Path) -> None:
    git("init", "-q", cwd=project)
    (project / "a.py").write_text("x = 1\n")
    git("add", "a.py", cwd=project)
    git("commit", "-qm", "add a", cwd=project)
    _init(project)
    h = json.loads(run_cli("history", "--json", "a.py", cwd=project).stdout)
    assert len(h["git_commits"]) == 1 and h["git_commits"][0].endswith("Test: add a")
    # guardian never touches the user's git state, but for the hooks init installs in a git repo.
    assert git("status", "--porcelain", cwd=project).stdout.strip() == "?? guardian.yaml"
    assert "guardian-hook-shim" in (project / ".git" / "hooks" / "post-checkout").read_text()


def test_log_window_says_what_changed(project: Path) -> None:
    (project / "keep.txt").write_text("k\n")
    (project / "gone.txt").write_text("g\n")
    (project / "state.json").write_text('{"v": 1}\n')
    _init(project)
    (project / "gone.txt").unlink()
    (project / "state.json").write_text('{"v": ')
    run_cli("snapshot", cwd=project)
    r = run_cli("log", "--since", "1h", "--json", cwd=project)
    window = json.loads(r.stdout)["window"]
    assert window["deleted"] == ["gone.txt"]
    assert window["not_valid"][0]["path"] == "state.json"
    r = run_cli("log", "--since", "1h", cwd=project)
    assert "in this window:" in r.stdout and "deleted  gone.txt" in r.stdout
    r = run_cli("log", "-n", "1", cwd=project)
    assert len(r.stdout.splitlines()) == 2  # the snapshot line and its one non-valid file
    r = run_cli("log", "gone.txt", "--json", cwd=project)
    assert len(json.loads(r.stdout)["snapshots"]) == 2


def test_show_and_diff(project: Path) -> None:
    f = project / "a.txt"
    f.write_text("one\ntwo\n")
    _init(project)
    f.write_text("one\nthree\n")
    r = run_cli("show", "a.txt", cwd=project)
    assert r.stdout == "one\ntwo\n"
    r = run_cli("diff", "a.txt", cwd=project)
    assert "-two\n+three\n" in r.stdout
    r = run_cli("show", "--at", "ffff", "a.txt", cwd=project)
    assert r.exit_code == 2
    assert r.stderr.strip() == "guardian: error: --at: no snapshot 'ffff' in this store; list them with 'guardian log'"


def test_events_and_projects(project: Path, tmp_path: Path) -> None:
    (project / "a.txt").write_text("a\n")
    _init(project)
    r = run_cli("events", "--json", cwd=project)
    kinds = [e["event"] for e in json.loads(r.stdout)]
    assert "snapshot" in kinds and "init" in kinds
    for e in json.loads(r.stdout):
        assert {"ts", "event", "paths", "snapshot", "trigger", "details"} <= e.keys()
    other = tmp_path / "other"
    other.mkdir()
    _init(other)
    r = run_cli("projects", "--json", cwd=tmp_path)
    roots = {p["root"]: p for p in json.loads(r.stdout)}
    assert str(project.resolve()) in roots and str(other.resolve()) in roots
    assert roots[str(project.resolve())]["snapshots"] == 1
    subprocess.run(["rm", "-rf", str(other)], check=True)
    r = run_cli("projects", cwd=tmp_path)
    assert "(root is gone)" in r.stdout


def test_torn_event_line_is_tolerated(project: Path) -> None:
    (project / "a.txt").write_text("a\n")
    paths = _init(project)
    with open(paths.events, "ab") as handle:
        handle.write(b'{"ts": "2026-11-22", "event": "snap')
    (project / "a.txt").write_text("b\n")
    assert run_cli("snapshot", cwd=project).exit_code == 0
    r = run_cli("events", "--json", cwd=project)
    assert r.exit_code == 0
    assert json.loads(r.stdout)[-1]["event"] == "snapshot"


def test_events_kind_is_checked_and_output_names_who(project: Path) -> None:
    (project / "a.txt").write_text("a\n")
    _init(project)
    r = run_cli("events", "--kind", "rolback", cwd=project)
    assert r.exit_code == 2
    assert r.stderr.strip() == "guardian: error: --kind: unknown kind 'rolback'; did you mean 'rollback'?"
    r = run_cli("events", "--kind", "init", cwd=project)
    assert r.exit_code == 0
    import getpass

    assert f"  {getpass.getuser()}" in r.stdout and " init " in r.stdout


# --------------------------------------------------------------------------- rollbacks of protected files (issue 11)

_PROTECT = 'version: 1\nprotect:\n  - paths: ["agents/"]\n    reason: "WO pipeline"\n'


def _rolled_back(project: Path) -> tuple[str, str]:
    """agents/run.py: old (captured at init), fix (snapshot), then old again by some process (snapshot)."""
    (project / "guardian.yaml").write_text(_PROTECT)
    run = project / "agents" / "run.py"
    run.parent.mkdir()
    run.write_text("v = 'old'\n")
    _init(project)
    run.write_text("v = 'fix'\n")
    fix = json.loads(run_cli("snapshot", "--json", cwd=project).stdout)["snapshot"]
    run.write_text("v = 'old'\n")
    rolled = json.loads(run_cli("snapshot", "--json", cwd=project).stdout)["snapshot"]
    return fix, rolled


def test_history_of_a_rolled_back_protected_file_names_the_rollback_and_the_newest_valid(project: Path) -> None:
    fix, rolled = _rolled_back(project)
    r = run_cli("history", "agents/run.py", cwd=project)
    assert r.exit_code == 0, r.stderr
    diagnosis = r.stdout.splitlines()[-1]
    assert diagnosis.startswith("diagnosis: rolled back at ")
    assert " to the version of " in diagnosis and "by an unknown process" in diagnosis
    assert diagnosis.endswith(f"; the newest valid version is snapshot {fix[:12]} ({_time_of(project, fix)})")
    h = json.loads(run_cli("history", "--json", "agents/run.py", cwd=project).stdout)
    assert h["rollback"]["snapshot"] == rolled and h["rollback"]["newest_valid"]["snapshot"] == fix
    assert "no changes since" not in h["diagnosis"]


def test_history_names_the_git_command_and_the_watchers_undo(project: Path) -> None:
    from guardian.gates.enforce import enforce_capture
    from guardian.ops.snapshot import take_snapshot
    from guardian.project import Project

    git("init", "-q", "-b", "main", cwd=project)
    (project / "guardian.yaml").write_text(_PROTECT)
    run = project / "agents" / "run.py"
    run.parent.mkdir()
    run.write_text("v = 'old'\n")
    git("add", "-A", cwd=project)
    git("commit", "-qm", "base", cwd=project)
    assert run_cli("init", "--no-hooks", cwd=project).exit_code == 0  # the watcher's part alone
    run.write_text("v = 'fix'\n")
    git("commit", "-qam", "fix", cwd=project)
    guarded = Project.find(project)
    take_snapshot(guarded, None, "manual")
    git("reset", "-q", "--hard", "HEAD~1", cwd=project)
    [undone] = enforce_capture(guarded, take_snapshot(guarded, None, "watch"))
    h = json.loads(run_cli("history", "--json", "agents/run.py", cwd=project).stdout)
    assert "by git reset: moving to HEAD~1; the watcher undid it at " in h["diagnosis"]
    put_back = h["rollback"]["undone_by"][0]["snapshot"]
    assert h["rollback"]["newest_valid"]["snapshot"] == put_back
    newest = f"; the newest valid version is snapshot {put_back[:12]} ({_time_of(project, put_back)})"
    assert h["diagnosis"].endswith(newest)
    assert undone.action == "undone" and h["timeline"][-1]["event"] == "put back"
    assert run.read_text() == "v = 'fix'\n"


def test_an_unprotected_file_keeps_the_plain_diagnosis(project: Path) -> None:
    (project / "notes.txt").write_text("one\n")
    _init(project)
    (project / "notes.txt").write_text("two\n")
    run_cli("snapshot", cwd=project)
    (project / "notes.txt").write_text("one\n")
    run_cli("snapshot", cwd=project)
    diagnosis = json.loads(run_cli("history", "--json", "notes.txt", cwd=project).stdout)["diagnosis"]
    assert diagnosis.startswith("last valid version at ")


def _time_of(project: Path, snapshot: str) -> str:
    from guardian.project import Project
    from guardian.util.times import format_time

    with Project.find(project).reader() as (_repo, catalog):
        row = catalog.snapshot(snapshot)
        assert row is not None
        return format_time(row.ts)
