"""guardian undo (of a restore, a rollback, a repair, and of itself) and guardian diff --from/--to."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.conftest import run_cli

TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d\d:\d\d"


def _init(project: Path) -> None:
    (project / "a.txt").write_text("one\n")
    (project / "b.txt").write_text("keep\n")
    r = run_cli("init", cwd=project)
    assert r.exit_code == 0, r.stderr


def _snap(project: Path) -> str:
    r = run_cli("snapshot", "--json", cwd=project)
    assert r.exit_code == 0, r.stderr
    return str(json.loads(r.stdout)["snapshot"])


def test_undo_of_a_restore_that_recreated_a_deleted_file(project: Path) -> None:
    _init(project)
    (project / "a.txt").unlink()
    _snap(project)
    r = run_cli("restore", "a.txt", cwd=project)
    assert r.exit_code == 0, r.stderr
    hint = r"the state before this restore is snapshot ([0-9a-f]{12}) \(undo with 'guardian undo'\)$"
    pre = re.search(hint, r.stdout)
    assert pre is not None, r.stdout
    assert (project / "a.txt").read_text() == "one\n"
    r = run_cli("undo", "--list", cwd=project)
    assert re.fullmatch(
        rf"{TIME}  restore  a\.txt  \(before: {pre.group(1)}\)  <- 'guardian undo' reverses this one\n", r.stdout
    ), r.stdout
    r = run_cli("undo", cwd=project)
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert re.fullmatch(rf"undoing the restore of {TIME}: back to snapshot {pre.group(1)}", lines[0])
    assert lines[1] == "deleted a.txt"
    assert lines[2].startswith("rolled back 1 file(s) to ")
    again = r"the state before this undo is snapshot [0-9a-f]{12}; 'guardian undo' again redoes it"
    assert re.fullmatch(again, lines[3])
    assert not (project / "a.txt").exists()
    assert (project / "b.txt").read_text() == "keep\n"
    # Undo of the undo puts the restored file back.
    r = run_cli("undo", cwd=project)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.splitlines()[0].startswith("undoing the undo of ")
    assert (project / "a.txt").read_text() == "one\n"


def test_undo_of_a_rollback_and_its_json(project: Path) -> None:
    _init(project)
    head = json.loads(run_cli("log", "--json", cwd=project).stdout)["snapshots"][0]["snapshot"]
    (project / "a.txt").write_text("two\n")
    (project / "c.txt").write_text("new\n")
    _snap(project)
    r = run_cli("rollback", "--to", head[:12], cwd=project)
    assert r.exit_code == 0, r.stderr
    assert (project / "a.txt").read_text() == "one\n" and not (project / "c.txt").exists()
    r = run_cli("undo", "--dry-run", "--json", cwd=project)
    data = json.loads(r.stdout)
    assert data["undone"]["kind"] == "rollback"
    assert sorted(c["path"] for c in data["rollback"]["applied"]) == ["a.txt", "c.txt"]
    assert (project / "a.txt").read_text() == "one\n"  # a dry run changes nothing
    r = run_cli("undo", cwd=project)
    assert r.exit_code == 0, r.stderr
    assert (project / "a.txt").read_text() == "two\n" and (project / "c.txt").read_text() == "new\n"


def test_undo_of_a_repair(project: Path) -> None:
    _init(project)
    (project / "a.txt").write_text("")  # shrank to nothing: suspect
    _snap(project)
    r = run_cli("check", "--repair", cwd=project)
    assert (project / "a.txt").read_text() == "one\n", r.stdout + r.stderr
    r = run_cli("undo", "--list", "--json", cwd=project)
    ops = json.loads(r.stdout)
    assert [op["kind"] for op in ops] == ["repair"]  # its restore event is the same operation
    r = run_cli("undo", cwd=project)
    assert r.exit_code == 0, r.stderr
    assert (project / "a.txt").read_text() == ""


def test_nothing_to_undo(project: Path) -> None:
    _init(project)
    r = run_cli("undo", cwd=project)
    assert r.exit_code == 1
    assert r.stderr == (
        "guardian: error: nothing to undo: no restore, rollback or repair is on the record "
        "('guardian undo --list' shows them)\n"
    )
    r = run_cli("undo", "--list", cwd=project)
    assert r.stdout == "nothing to undo: no restore, rollback or repair is on the record\n"


def test_diff_between_two_snapshots(project: Path) -> None:
    _init(project)
    (project / "b.txt").write_text("two\n")
    two = _snap(project)
    (project / "b.txt").write_text("three\n")
    three = _snap(project)
    (project / "b.txt").write_text("four\n")
    r = run_cli("diff", "b.txt", "--from", two[:8], "--to", three[:8], cwd=project)
    assert r.exit_code == 0, r.stderr
    assert r.stdout == (
        f"--- b.txt@{two[:12]}\n+++ b.txt@{three[:12]}\n@@ -1 +1 @@\n-two\n+three\n"
    )
    r = run_cli("diff", "b.txt", "--from", three[:8], cwd=project)  # --to defaults to the working file
    assert r.stdout == f"--- b.txt@{three[:12]}\n+++ b.txt\n@@ -1 +1 @@\n-three\n+four\n"
    r = run_cli("diff", "b.txt", "--at", two[:8], "--at", three[:8], cwd=project)
    assert r.exit_code == 2
    assert r.stderr == "guardian: error: --at given 2 times; to compare two snapshots use --from SNAP --to SNAP\n"
    r = run_cli("diff", "b.txt", "--from", "ffff", cwd=project)
    assert r.exit_code == 2
    assert r.stderr == "guardian: error: --from: no snapshot 'ffff' in this store; list them with 'guardian log'\n"
    r = run_cli("diff", "b.txt", "--from", two[:8], "--to", three[:8], "--json", cwd=project)
    data = json.loads(r.stdout)
    assert (data["from"], data["to"], data["identical"]) == (two, three, False)


def test_diff_against_a_snapshot_without_the_file(project: Path) -> None:
    _init(project)
    first = json.loads(run_cli("log", "--json", cwd=project).stdout)["snapshots"][0]["snapshot"]
    (project / "c.txt").write_text("new\n")
    second = _snap(project)
    r = run_cli("diff", "c.txt", "--from", first[:8], "--to", second[:8], cwd=project)
    assert r.stdout == f"--- /dev/null\n+++ c.txt@{second[:12]}\n@@ -0,0 +1 @@\n+new\n"
