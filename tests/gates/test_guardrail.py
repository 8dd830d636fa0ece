"""guardian.guardrail and `guardian check`: drift found, logged and repaired through the normal restore path."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest

from guardian.gates import guardrail
from guardian.gates.guardrail import Drift, check, run_guardrail
from guardian.ops.snapshot import take_snapshot
from guardian.project import Project
from guardian.util.lock import FileLock
from guardian.util.times import format_time, iso_time
from tests.conftest import fsck, run_cli

POLICY = """\
version: 1
protect:
  - paths: ["agents/"]
    reason: pipeline processors
  - paths: ["locked/"]
    restore: force
    reason: hand-tuned settings
  - paths: ["frozen/"]
    restore: block
    reason: frozen by ops
"""

SHEBANG = b"#!/bin/sh\n"
# A 20 KB shell script: truncating it to its shebang still parses, so only the shrink check catches it.
BIG_SCRIPT = SHEBANG + b"".join(b"echo step %05d of a long pipeline processor\n" % i for i in range(470))
DRIFT_HINT = "run 'guardian check --repair' to restore them"


def _init(root: Path, files: dict[str, bytes], policy: str = POLICY) -> Project:
    (root / "guardian.yaml").write_text(policy)
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    r = run_cli("init", cwd=root)
    assert r.exit_code == 0, r.stderr
    return Project.find(root)


@pytest.fixture
def proj(project: Path) -> Project:
    assert len(BIG_SCRIPT) > 20_000
    return _init(
        project,
        {
            "agents/processor.sh": BIG_SCRIPT,
            "agents/config.json": b'{"stages": ["parse", "enrich", "store"]}\n',
            "state.json": b'{"cursor": 1234, "ok": true}\n',
            "notes.txt": b"free-form notes\n",
            "locked/tuning.json": b'{"threads": 8}\n',
            "frozen/schema.json": b'{"version": 3}\n',
        },
    )


def _drift_events(project: Project) -> list[dict[str, object]]:
    return [e.to_json() for e in project.events.read() if e.event == "drift"]


# --------------------------------------------------------------------------- clean


def test_clean_tree_exits_0_and_says_so(proj: Project) -> None:
    assert check(proj).drift == []
    r = run_cli("check", cwd=proj.root)
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "no drift: 7 watched file(s) match their latest valid snapshot\n"
    assert r.stderr == ""
    assert _drift_events(proj) == []


def test_valid_uncaptured_edits_and_new_files_are_not_drift(proj: Project) -> None:
    (proj.root / "state.json").write_text('{"cursor": 1300, "ok": true}\n')
    (proj.root / "brand-new.json").write_text("{not json")  # never captured: not watched history yet
    (proj.root / "agents" / "link").symlink_to("processor.sh")
    assert check(proj).drift == []


# --------------------------------------------------------------------------- detection


def test_deleted_protected_file_is_drift(proj: Project) -> None:
    (proj.root / "agents" / "processor.sh").unlink()
    report = check(proj)
    [d] = report.drift
    valid = _latest_valid(proj, "agents/processor.sh")
    assert d == Drift("agents/processor.sh", "missing", "deleted since the last snapshot", True, valid[0], valid[1])

    r = run_cli("check", cwd=proj.root)
    assert r.exit_code == 1
    assert r.stdout == "drift: agents/processor.sh (protected) is missing: deleted since the last snapshot\n"
    assert r.stderr == f"guardian: 1 file(s) drifted from their latest valid snapshot; {DRIFT_HINT}\n"


def test_captured_deletion_of_protected_file_stays_drift_until_accepted(proj: Project) -> None:
    (proj.root / "agents" / "processor.sh").unlink()
    (proj.root / "notes.txt").unlink()
    deletion = take_snapshot(proj, None, "manual").snapshot
    assert deletion is not None
    # The unprotected deletion was captured: a deliberate deletion looks the same, so it is not drift.
    [d] = check(proj).drift
    assert (d.path, d.problem, d.protected) == ("agents/processor.sh", "missing", True)
    assert d.detail == (
        f"deleted in snapshot {deletion[:12]}; if that was intended, run 'guardian accept agents/processor.sh'"
    )
    assert d.last_valid_snapshot is not None

    # What `guardian accept` writes for a deleted path (see the report): an accept event after the deletion.
    proj.events.append("accept", ["agents/processor.sh"], None, "accept", {"deleted": ["agents/processor.sh"]})
    assert check(proj).drift == []
    r = run_cli("check", cwd=proj.root)
    assert r.exit_code == 0
    assert r.stdout == "no drift: 6 watched file(s) match their latest valid snapshot\n"


def test_accepting_an_uncaptured_deletion(proj: Project) -> None:
    # The sequence proposed for `guardian accept` on a missing path: capture the deletion, then log the accept.
    (proj.root / "agents" / "config.json").unlink()
    result = take_snapshot(proj, ["agents/config.json"], "accept", accept=[])
    assert [f.change for f in result.files] == ["delete"]
    proj.events.append("accept", ["agents/config.json"], result.snapshot, "accept", {"deleted": ["agents/config.json"]})
    assert check(proj).drift == []


def test_accept_before_the_deletion_does_not_count(proj: Project) -> None:
    proj.events.append("accept", ["agents/processor.sh"], None, "accept", {})
    (proj.root / "agents" / "processor.sh").unlink()
    take_snapshot(proj, None, "manual")
    [d] = check(proj).drift
    assert d.path == "agents/processor.sh"
    # Re-created, captured and deleted again: an accept of the first deletion no longer covers it.
    (proj.root / "agents" / "processor.sh").write_bytes(BIG_SCRIPT)
    take_snapshot(proj, None, "manual")
    proj.events.append("accept", ["agents/processor.sh"], None, "accept", {})
    (proj.root / "agents" / "processor.sh").unlink()
    take_snapshot(proj, None, "manual")
    assert [d.path for d in check(proj).drift] == ["agents/processor.sh"]


def test_deleted_unprotected_file_is_drift_until_captured(proj: Project) -> None:
    (proj.root / "notes.txt").unlink()
    [d] = check(proj).drift
    assert (d.path, d.problem, d.protected, d.detail) == (
        "notes.txt",
        "missing",
        False,
        "deleted since the last snapshot",
    )
    take_snapshot(proj, ["notes.txt"], "manual")
    assert check(proj).drift == []


def test_truncated_protected_script_is_suspect(proj: Project) -> None:
    script = proj.root / "agents" / "processor.sh"
    script.write_bytes(SHEBANG)
    size = len(BIG_SCRIPT)
    detail = f"shrank {size} -> {len(SHEBANG)} bytes (-{(size - len(SHEBANG)) * 100 // size}%) since last valid version"
    # Not captured yet: judged now.
    [d] = check(proj).drift
    assert (d.path, d.problem, d.protected, d.detail) == ("agents/processor.sh", "suspect", True, detail)
    # Captured: the verdict recorded with the snapshot is used, with the same reason.
    take_snapshot(proj, None, "manual")
    [d] = check(proj).drift
    assert (d.problem, d.detail) == ("suspect", detail)
    r = run_cli("check", cwd=proj.root)
    assert r.exit_code == 1
    assert r.stdout == f"drift: agents/processor.sh (protected) is suspect: {detail}\n"


def test_invalid_json_state_file(proj: Project) -> None:
    (proj.root / "state.json").write_text('{"cursor": 12')
    [d] = check(proj).drift
    assert (d.path, d.problem, d.protected) == ("state.json", "invalid", False)
    assert d.detail.startswith("json: ")
    take_snapshot(proj, None, "manual")
    [captured] = check(proj).drift
    assert captured.problem == "invalid"
    assert captured.detail == d.detail


def test_accepting_bad_content_ends_the_drift(proj: Project) -> None:
    (proj.root / "state.json").write_text('{"cursor": 12')
    take_snapshot(proj, None, "manual")
    assert [d.path for d in check(proj).drift] == ["state.json"]
    r = run_cli("accept", "state.json", cwd=proj.root)
    assert r.exit_code == 0, r.stderr
    assert check(proj).drift == []


def test_file_replaced_by_a_directory_is_missing(proj: Project) -> None:
    (proj.root / "notes.txt").unlink()
    (proj.root / "notes.txt").mkdir()
    [d] = check(proj).drift
    assert (d.path, d.problem, d.detail) == ("notes.txt", "missing", "replaced by a directory or special file")


def test_protected_paths_come_first(proj: Project) -> None:
    (proj.root / "state.json").write_text("{")
    (proj.root / "notes.txt").unlink()
    (proj.root / "agents" / "config.json").write_text("[")
    (proj.root / "agents" / "processor.sh").unlink()
    report = check(proj)
    assert [(d.path, d.protected) for d in report.drift] == [
        ("agents/config.json", True),
        ("agents/processor.sh", True),
        ("notes.txt", False),
        ("state.json", False),
    ]
    r = run_cli("check", "--json", cwd=proj.root)
    assert r.exit_code == 1
    assert r.stderr == ""
    data = json.loads(r.stdout)
    assert data["clean"] is False
    assert [d["path"] for d in data["drift"]] == [d.path for d in report.drift]
    assert data["drift"][1] == {
        "path": "agents/processor.sh",
        "problem": "missing",
        "detail": "deleted since the last snapshot",
        "protected": True,
        "last_valid_snapshot": report.drift[1].last_valid_snapshot,
        "last_valid_time": report.drift[1].last_valid_time,
        "last_valid_time_iso": iso_time(report.drift[1].last_valid_time or 0),
        "new": True,
    }
    assert data["repaired"] == [] and data["not_repaired"] == []


def test_paths_limit_the_check(proj: Project) -> None:
    (proj.root / "state.json").write_text("{")
    (proj.root / "agents" / "processor.sh").unlink()
    assert [d.path for d in check(proj, ["agents"]).drift] == ["agents/processor.sh"]
    assert [d.path for d in check(proj, ["state.json"]).drift] == ["state.json"]
    assert [d.path for d in check(proj, ["agents/processor.sh"]).drift] == ["agents/processor.sh"]
    r = run_cli("check", "state.json", cwd=proj.root)
    assert r.exit_code == 1
    assert r.stdout.startswith("drift: state.json is invalid: json: ")


def test_paths_limit_finds_captured_protected_deletion(proj: Project) -> None:
    (proj.root / "agents" / "processor.sh").unlink()
    take_snapshot(proj, None, "manual")
    assert [d.path for d in check(proj, ["agents/processor.sh"]).drift] == ["agents/processor.sh"]
    assert [d.path for d in check(proj, ["agents"]).drift] == ["agents/processor.sh"]
    assert check(proj, ["state.json"]).drift == []


# --------------------------------------------------------------------------- events


def test_drift_events_one_per_file(proj: Project) -> None:
    (proj.root / "agents" / "processor.sh").unlink()
    (proj.root / "state.json").write_text("{")
    report = run_guardrail(proj, trigger="watch")
    events = _drift_events(proj)
    assert [e["paths"] for e in events] == [["agents/processor.sh"], ["state.json"]]
    first = events[0]
    assert first["trigger"] == "watch"
    details = first["details"]
    assert isinstance(details, dict)
    assert details["problem"] == "missing"
    assert details["detail"] == "deleted since the last snapshot"
    assert details["protected"] is True
    assert details["last_valid_snapshot"] == report.drift[0].last_valid_snapshot
    # A plain check writes no repair event.
    assert not [e for e in proj.events.read() if e.event == "repair"]


def test_cli_check_writes_drift_events(proj: Project) -> None:
    (proj.root / "notes.txt").unlink()
    assert run_cli("check", cwd=proj.root).exit_code == 1
    [event] = _drift_events(proj)
    assert event["paths"] == ["notes.txt"] and event["trigger"] == "check"


def _events_of(project: Project, *kinds: str) -> list[dict[str, object]]:
    return [e.to_json() for e in project.events.read() if e.event in kinds]


def _state(project: Project) -> dict[str, dict[str, object]]:
    data = json.loads((project.paths.store / "guardrail.json").read_text())
    drift = data["drift"]
    assert isinstance(drift, dict)
    return drift


def test_persisting_drift_is_logged_once(proj: Project) -> None:
    (proj.root / "agents" / "processor.sh").unlink()
    (proj.root / "state.json").write_text("{")
    first = run_guardrail(proj, trigger="watch")
    for _ in range(3):
        again = run_guardrail(proj, trigger="watch")
        # The report still lists every drift each time; only the log is quiet.
        assert again.drift == first.drift
        assert again.logged == set()
    r = run_cli("check", cwd=proj.root)
    assert r.exit_code == 1
    assert (
        r.stdout.splitlines()[0] == "drift: agents/processor.sh (protected) is missing: deleted since the last snapshot"
    )
    assert r.stderr == f"guardian: 2 file(s) drifted from their latest valid snapshot; {DRIFT_HINT}\n"
    assert [e["paths"] for e in _drift_events(proj)] == [["agents/processor.sh"], ["state.json"]]
    assert _events_of(proj, "drift-resolved") == []

    state = _state(proj)
    assert sorted(state) == ["agents/processor.sh", "state.json"]
    entry = state["agents/processor.sh"]
    assert entry["problem"] == "missing"
    assert entry["detail"] == "deleted since the last snapshot"
    assert entry["last_valid_snapshot"] == first.drift[0].last_valid_snapshot
    assert entry["count"] == 5
    first_seen, last_seen = entry["first_seen"], entry["last_seen"]
    assert first_seen == _drift_events(proj)[0]["ts"]
    assert isinstance(first_seen, str) and isinstance(last_seen, str) and first_seen < last_seen

    data = json.loads(run_cli("check", "--json", cwd=proj.root).stdout)
    assert [(d["path"], d["new"]) for d in data["drift"]] == [("agents/processor.sh", False), ("state.json", False)]


def test_changed_drift_is_logged_again(proj: Project) -> None:
    script = proj.root / "agents" / "processor.sh"
    script.write_bytes(SHEBANG)  # suspect: truncated
    assert run_guardrail(proj).logged == {"agents/processor.sh"}
    run_guardrail(proj)
    script.unlink()  # now missing: a different problem
    assert run_guardrail(proj).logged == {"agents/processor.sh"}
    run_guardrail(proj)
    events = _drift_events(proj)
    problems = [e["details"]["problem"] for e in events]  # type: ignore[index]
    assert problems == ["suspect", "missing"]
    # A changed detail alone (the deletion gets captured) is logged too.
    deletion = take_snapshot(proj, None, "manual").snapshot
    assert deletion is not None
    run_guardrail(proj)
    run_guardrail(proj)
    events = _drift_events(proj)
    assert len(events) == 3
    assert str(events[2]["details"]["detail"]).startswith(f"deleted in snapshot {deletion[:12]}")  # type: ignore[index]
    # The episode keeps the time it started.
    entry = _state(proj)["agents/processor.sh"]
    assert entry["first_seen"] == events[0]["ts"]
    assert entry["count"] == 6


def test_resolution_is_logged_and_a_recurrence_is_new_drift(proj: Project) -> None:
    state_file = proj.root / "state.json"
    good = state_file.read_bytes()
    state_file.write_text("{")
    run_guardrail(proj)
    run_guardrail(proj)
    [drift] = _drift_events(proj)
    state_file.write_bytes(good)  # fixed by hand
    assert run_guardrail(proj).drift == []
    [resolved] = _events_of(proj, "drift-resolved")
    assert resolved["paths"] == ["state.json"] and resolved["trigger"] == "check"
    details = resolved["details"]
    assert isinstance(details, dict)
    assert details["problem"] == "invalid"
    assert details["first_seen"] == drift["ts"]
    assert details["last_seen"] is not None and details["last_seen"] > drift["ts"]  # type: ignore[operator]
    assert details["count"] == 2
    assert details["ended"] == "content is valid again"
    assert _state(proj) == {}
    # Clean and resolved: further checks log nothing.
    run_guardrail(proj)
    assert len(_events_of(proj, "drift", "drift-resolved")) == 2

    state_file.write_text("[")  # broken again: a new episode
    assert run_guardrail(proj).logged == {"state.json"}
    kinds = [(e["event"], e["paths"]) for e in _events_of(proj, "drift", "drift-resolved")]
    assert kinds == [("drift", ["state.json"]), ("drift-resolved", ["state.json"]), ("drift", ["state.json"])]
    assert _state(proj)["state.json"]["count"] == 1

    # The new kind is known to 'guardian events --kind'.
    r = run_cli("events", "--kind", "drift-resolved", "--json", cwd=proj.root)
    assert r.exit_code == 0, r.stderr
    assert [e["event"] for e in json.loads(r.stdout)] == ["drift-resolved"]


def test_accept_and_repair_say_how_the_drift_ended(proj: Project) -> None:
    (proj.root / "agents" / "processor.sh").unlink()
    take_snapshot(proj, None, "manual")
    (proj.root / "notes.txt").unlink()
    run_guardrail(proj)
    assert run_cli("accept", "agents/processor.sh", cwd=proj.root).exit_code == 0
    report = run_guardrail(proj, repair=True)
    assert report.repaired == ["notes.txt"]
    resolved = _events_of(proj, "drift-resolved")
    ended = {tuple(e["paths"]): e["details"]["ended"] for e in resolved}  # type: ignore[arg-type,index]
    assert ended == {("agents/processor.sh",): "deletion accepted", ("notes.txt",): "repaired"}
    repaired = next(e for e in resolved if e["paths"] == ["notes.txt"])
    assert repaired["snapshot"] == report.post_snapshot
    assert _state(proj) == {}
    assert run_guardrail(proj).drift == []
    assert len(_events_of(proj, "drift-resolved")) == 2


def test_subset_checks_leave_other_paths_alone(proj: Project) -> None:
    (proj.root / "agents" / "processor.sh").unlink()
    (proj.root / "state.json").write_text("{")
    run_guardrail(proj)
    # A check of other paths does not see this drift, and must not call it resolved.
    assert run_guardrail(proj, ["notes.txt"]).drift == []
    assert run_guardrail(proj, ["agents/config.json", "locked"]).drift == []
    assert run_cli("check", "notes.txt", cwd=proj.root).exit_code == 0
    assert _events_of(proj, "drift-resolved") == []
    assert sorted(_state(proj)) == ["agents/processor.sh", "state.json"]
    # A check of a directory covers the paths under it.
    (proj.root / "agents" / "processor.sh").write_bytes(BIG_SCRIPT)
    run_guardrail(proj, ["agents"])
    assert [e["paths"] for e in _events_of(proj, "drift-resolved")] == [["agents/processor.sh"]]
    assert sorted(_state(proj)) == ["state.json"]
    assert len(_drift_events(proj)) == 2


@pytest.mark.parametrize(
    "damage",
    [b"", b"{not json", b"\xff\xfe", b"[1, 2]", b'{"drift": [1]}', b'{"drift": {"state.json": 7}}', None],
)
def test_damaged_state_file_is_tolerated(proj: Project, damage: bytes | None) -> None:
    (proj.root / "state.json").write_text("{")
    run_guardrail(proj)
    path = proj.paths.store / "guardrail.json"
    if damage is None:
        path.unlink()
        path.mkdir()  # not even a file
    else:
        path.write_bytes(damage)
    r = run_cli("check", cwd=proj.root)
    assert r.exit_code == 1
    assert r.stdout.startswith("drift: state.json is invalid: json: ")
    assert r.stderr == f"guardian: 1 file(s) drifted from their latest valid snapshot; {DRIFT_HINT}\n"
    # Read as empty: the current drift is logged again, never lost.
    assert [e["paths"] for e in _drift_events(proj)] == [["state.json"], ["state.json"]]
    if damage is not None:
        # Rewritten whole: the next check is quiet again.
        assert sorted(_state(proj)) == ["state.json"]
        assert run_cli("check", cwd=proj.root).exit_code == 1
        assert len(_drift_events(proj)) == 2
    (proj.root / "state.json").write_text("{}")
    assert run_cli("check", cwd=proj.root).exit_code == 0


def test_a_held_state_lock_delays_but_never_blocks_the_check(proj: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(guardrail, "STATE_LOCK_TIMEOUT", 0.05)
    (proj.root / "state.json").write_text("{")
    with FileLock(proj.paths.store / "guardrail.lock", "test"):
        report = run_guardrail(proj)
        assert [d.path for d in report.drift] == ["state.json"]
        assert report.logged == {"state.json"}
    assert [e["paths"] for e in _drift_events(proj)] == [["state.json"]]
    assert sorted(_state(proj)) == ["state.json"]


def test_clean_checks_write_no_state(proj: Project) -> None:
    run_guardrail(proj)
    assert run_cli("check", cwd=proj.root).exit_code == 0
    assert not (proj.paths.store / "guardrail.json").exists()
    assert not (proj.paths.store / "guardrail.lock").exists()


# --------------------------------------------------------------------------- repair


def test_repair_brings_back_deleted_and_truncated_files(proj: Project) -> None:
    script = proj.root / "agents" / "processor.sh"
    script.chmod(0o755)
    state = proj.root / "state.json"
    state.chmod(0o640)
    take_snapshot(proj, None, "manual")  # capture the exec bit
    good_state = state.read_bytes()
    script.unlink()
    state.write_text("{")
    drift = check(proj).drift
    assert [d.path for d in drift] == ["agents/processor.sh", "state.json"]

    r = run_cli("check", "--repair", cwd=proj.root)
    assert r.exit_code == 0, r.stdout + r.stderr
    assert script.read_bytes() == BIG_SCRIPT
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(script.stat().st_mode) == 0o777 & ~umask
    assert state.read_bytes() == good_state
    assert stat.S_IMODE(state.stat().st_mode) == 0o640  # the user's mode is kept

    repair = [e for e in proj.events.read() if e.event == "repair"][-1]
    pre = repair.details["pre_snapshot"]
    assert isinstance(pre, str)
    assert repair.paths == ["agents/processor.sh", "state.json"]
    assert repair.details["not_repaired"] == []
    lines = r.stdout.splitlines()
    assert lines == [
        "drift: agents/processor.sh (protected) is missing: deleted since the last snapshot",
        lines[1],
        *(
            f"repaired: {d.path} from snapshot {d.last_valid_snapshot[:12]} ({format_time(d.last_valid_time)})"
            for d in drift
            if d.last_valid_snapshot and d.last_valid_time is not None
        ),
        f"the state before this repair is snapshot {pre[:12]} (undo with 'guardian restore --at {pre[:12]} PATH')",
    ]
    assert lines[1].startswith("drift: state.json is invalid: json: ")
    assert r.stderr == ""

    # The pre-restore snapshot holds the damaged state, so the repair itself can be undone.
    with proj.reader() as (repo, catalog):
        snap = catalog.snapshot(pre)
        assert snap is not None and snap.trigger == "pre-restore"
        entry = repo.entry_at(pre, "state.json")
        assert entry is not None and repo.read_blob(entry.oid) == b"{"
        assert repo.entry_at(pre, "agents/processor.sh") is None
    assert check(proj).drift == []
    assert run_cli("check", cwd=proj.root).exit_code == 0
    fsck(proj.paths.repo)


def test_repair_within_five_seconds_of_the_damage(proj: Project) -> None:
    script = proj.root / "agents" / "processor.sh"
    script.unlink()
    damaged = time.monotonic()
    report = run_guardrail(proj, ["agents/processor.sh"], repair=True, trigger="watch")
    assert time.monotonic() - damaged < 5.0
    assert report.repaired == ["agents/processor.sh"] and report.not_repaired == []
    assert script.read_bytes() == BIG_SCRIPT
    kinds = [(e.event, e.trigger) for e in proj.events.read() if e.event in ("drift", "restore", "repair")]
    assert kinds == [("drift", "watch"), ("restore", "restore"), ("repair", "watch")]


def test_repair_respects_restore_force_and_block(proj: Project) -> None:
    (proj.root / "locked" / "tuning.json").unlink()
    (proj.root / "frozen" / "schema.json").write_text("{")
    (proj.root / "notes.txt").unlink()
    frozen, _locked, notes = check(proj).drift
    assert notes.last_valid_snapshot is not None and notes.last_valid_time is not None
    r = run_cli("check", "--repair", cwd=proj.root)
    assert r.exit_code == 1
    repair = [e for e in proj.events.read() if e.event == "repair"][-1]
    pre = str(repair.details["pre_snapshot"])[:12]
    assert r.stdout.splitlines() == [
        f"drift: frozen/schema.json (protected) is invalid: {frozen.detail}",
        "drift: locked/tuning.json (protected) is missing: deleted since the last snapshot",
        "drift: notes.txt is missing: deleted since the last snapshot",
        f"repaired: notes.txt from snapshot {notes.last_valid_snapshot[:12]} ({format_time(notes.last_valid_time)})",
        "not repaired: frozen/schema.json: restore of 'frozen/schema.json' is blocked by policy (frozen by ops)",
        "not repaired: locked/tuning.json: restore of 'locked/tuning.json' needs --force "
        "(protected: hand-tuned settings); run 'guardian restore --force locked/tuning.json'",
        f"the state before this repair is snapshot {pre} (undo with 'guardian restore --at {pre} PATH')",
    ]
    assert r.stderr == "guardian: 2 drifting file(s) not repaired\n"
    assert not (proj.root / "locked" / "tuning.json").exists()
    assert (proj.root / "frozen" / "schema.json").read_text() == "{"
    assert (proj.root / "notes.txt").read_text() == "free-form notes\n"  # the allowed one was repaired
    assert repair.paths == ["notes.txt"]
    assert [item["path"] for item in repair.details["not_repaired"]] == ["frozen/schema.json", "locked/tuning.json"]


def test_repair_json_output_and_exit_code(proj: Project) -> None:
    (proj.root / "locked" / "tuning.json").unlink()
    r = run_cli("check", "--repair", "--json", cwd=proj.root)
    assert r.exit_code == 1
    assert r.stderr == ""
    data = json.loads(r.stdout)
    assert data["repaired"] == []
    assert data["not_repaired"] == [
        {
            "path": "locked/tuning.json",
            "reason": "restore of 'locked/tuning.json' needs --force (protected: hand-tuned settings); "
            "run 'guardian restore --force locked/tuning.json'",
        }
    ]
    assert data["pre_snapshot"] is None


def test_file_never_valid_is_reported_not_repaired(project: Path) -> None:
    proj = _init(project, {"bad.json": b"{", "good.json": b"{}"})
    [d] = check(proj).drift
    assert (d.path, d.problem, d.last_valid_snapshot, d.last_valid_time) == ("bad.json", "invalid", None, None)
    report = run_guardrail(proj, repair=True)
    assert report.repaired == []
    assert report.not_repaired == [("bad.json", "no valid version in any snapshot; see 'guardian history bad.json'")]
    r = run_cli("check", "--repair", cwd=project)
    assert r.exit_code == 1
    assert "not repaired: bad.json: no valid version in any snapshot; see 'guardian history bad.json'" in r.stdout
    assert r.stderr == "guardian: 1 drifting file(s) not repaired\n"


def test_one_unrestorable_file_does_not_block_the_others(proj: Project) -> None:
    (proj.root / "notes.txt").unlink()
    (proj.root / "notes.txt").mkdir()  # a directory in the way of the restore
    (proj.root / "state.json").write_text("{")
    report = run_guardrail(proj, repair=True)
    assert report.repaired == ["state.json"]
    assert report.not_repaired == [
        ("notes.txt", "cannot restore 'notes.txt': a directory is in the way; move it aside first")
    ]
    assert json.loads((proj.root / "state.json").read_text()) == {"cursor": 1234, "ok": True}


def test_check_outside_a_project_is_a_usage_error(tmp_path: Path) -> None:
    r = run_cli("check", cwd=tmp_path)
    assert r.exit_code == 2
    assert r.stderr == (
        f"guardian: error: no guardian.yaml found in {tmp_path} or any parent; "
        "run 'guardian init' there, or pass -C DIR\n"
    )


def test_check_path_outside_the_root_is_refused(proj: Project, tmp_path: Path) -> None:
    r = run_cli("check", str(tmp_path), cwd=proj.root)
    assert r.exit_code == 2
    assert r.stderr == (f"guardian: error: refusing path '{tmp_path}': it is outside the project root {proj.root}\n")


def _latest_valid(project: Project, rel: str) -> tuple[str, float]:
    with project.reader() as (_repo, catalog):
        version = catalog.latest_valid(rel)
    assert version is not None
    return version.snapshot, version.ts


def test_check_runs_user_command_checks_from_the_project_root(tmp_path: Path) -> None:
    # The guardrail judges changed files exactly as snapshots do: a relative program resolves at the root.
    project = tmp_path / "proj"
    (project / "scripts").mkdir(parents=True)
    checker = project / "scripts" / "check.sh"
    checker.write_text('#!/bin/sh\ngrep -q FORBIDDEN "$1" && { echo "found FORBIDDEN" >&2; exit 1; }\nexit 0\n')
    checker.chmod(0o755)
    (project / "guardian.yaml").write_text(
        "version: 1\nvalidate:\n  - paths: ['*.cfg']\n    checks: [{command: ['./scripts/check.sh', '{path}']}]\n"
        "protect:\n  - paths: ['app.cfg']\n    reason: config\n"
    )
    (project / "app.cfg").write_text("ok\n")
    assert run_cli("-C", str(project), "init", cwd=tmp_path).exit_code == 0
    (project / "app.cfg").write_text("FORBIDDEN\n")
    r = run_cli("-C", str(project), "check", "--json", cwd=tmp_path)
    assert r.exit_code == 1
    assert "command './scripts/check.sh': found FORBIDDEN" in r.stdout
