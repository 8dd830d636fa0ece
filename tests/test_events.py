"""guardian.events: the append-only JSONL log, written and read on a real file, by several processes."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from guardian.errors import UsageError
from guardian.events import EVENT_KINDS, KNOWN_TRIGGERS, Event, EventLog, check_kinds


@pytest.fixture
def log(tmp_path: Path) -> EventLog:
    return EventLog(tmp_path / "events.jsonl")


def test_append_and_read_round_trip(log: EventLog) -> None:
    odd = "dir/" + os.fsdecode(b"caf\xc3\xa9 \xff\nname.txt")
    written = log.append("restore", ["a.txt", odd], "f" * 40, "manual", {"force": True, "bytes": 12})
    (read,) = list(log.read())
    assert read == written
    assert read.paths == ["a.txt", odd]
    assert (read.event, read.snapshot, read.trigger) == ("restore", "f" * 40, "manual")
    assert read.details["pid"] == os.getpid()
    assert read.details["user"]
    assert (read.details["force"], read.details["bytes"]) == (True, 12)
    when = dt.datetime.fromisoformat(read.ts)
    assert when.utcoffset() == dt.timedelta(0)
    assert abs((dt.datetime.now(dt.UTC) - when).total_seconds()) < 60
    # One ASCII line per record, whatever the paths hold.
    raw = log.path.read_bytes()
    assert raw.endswith(b"\n") and raw.count(b"\n") == 1 and raw.isascii()
    assert json.loads(raw)["paths"][1] == odd
    assert stat.S_IMODE(log.path.stat().st_mode) == 0o600


def test_details_given_override_nothing_but_their_own_keys(log: EventLog) -> None:
    event = log.append("snapshot", details={"recovered": True})
    assert set(event.details) == {"user", "pid", "recovered"}


def test_read_of_a_missing_log_is_empty(log: EventLog) -> None:
    assert list(log.read()) == []
    assert log.torn_lines() == 0
    assert not log.path.exists()


def test_a_torn_last_line_is_skipped_counted_and_not_glued_to(log: EventLog) -> None:
    first = log.append("snapshot", ["a"], "1" * 40, "watch")
    with open(log.path, "ab") as handle:
        handle.write(b'{"ts":"2024-01-01T00:00:00.000+00:00","event":"resto')  # the writer died here
    assert [e.snapshot for e in log.read()] == [first.snapshot]
    assert log.torn_lines() == 1
    second = log.append("restore", ["a"], "2" * 40, "manual")
    assert list(log.read()) == [first, second]
    assert log.torn_lines() == 1  # the torn piece stays on its own line
    lines = log.path.read_bytes().split(b"\n")
    assert lines[1].endswith(b'"event":"resto')
    assert json.loads(lines[2])["snapshot"] == "2" * 40


def test_lines_of_the_wrong_shape_are_skipped(log: EventLog) -> None:
    good = log.append("gc")
    with open(log.path, "ab") as handle:
        for line in (
            b"[1, 2]",
            b'{"ts": "x"}',
            b'{"event": 5}',
            b'{"event": "gc", "paths": "a.txt"}',
            b'{"event": "gc", "details": ["x"]}',
            b'{"event": "gc", "snapshot": 7}',
            b"\xff\xfe not utf-8",
        ):
            handle.write(line + b"\n")
        handle.write(b'{"event": "gc"}\n')
    assert list(log.read()) == [good, Event("", "gc", [], None, None, {})]
    assert log.torn_lines() == 1  # only the line that is not JSON at all


def test_tail_filters(log: EventLog) -> None:
    log.append("snapshot", ["src/a.py"], None, "watch")
    log.append("restore", ["src/sub/b.py"], None, "manual")
    log.append("gate", ["srcs/c.py"], None, "hook", {"force": True})
    log.append("snapshot", ["docs/d.md"], None, "pre-restore")
    assert [e.event for e in log.tail()] == ["snapshot", "restore", "gate", "snapshot"]
    assert [e.paths for e in log.tail(2)] == [["srcs/c.py"], ["docs/d.md"]]
    assert [e.paths for e in log.tail(path="src")] == [["src/a.py"], ["src/sub/b.py"]]
    assert [e.paths for e in log.tail(path="src/")] == [["src/a.py"], ["src/sub/b.py"]]
    assert [e.paths for e in log.tail(path="src/a.py")] == [["src/a.py"]]
    assert [e.trigger for e in log.tail(kinds=["snapshot"])] == ["watch", "pre-restore"]
    assert [e.event for e in log.tail(kinds=["pre-restore"])] == ["snapshot"]  # kinds match triggers too
    assert [e.event for e in log.tail(kinds=["force"])] == ["gate"]
    assert log.tail(kinds=["restore"], path="docs") == []


_APPENDER = """
import sys
from pathlib import Path
from guardian.events import EventLog
log = EventLog(Path(sys.argv[1]))
for i in range(int(sys.argv[3])):
    log.append("snapshot", [f"{sys.argv[2]}/{i}" + "x" * 300], None, "watch")
"""


def test_concurrent_writers_never_interleave_inside_a_line(log: EventLog) -> None:
    writers, each = 4, 100
    procs = [
        subprocess.Popen([sys.executable, "-c", _APPENDER, str(log.path), f"w{n}", str(each)]) for n in range(writers)
    ]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    events = list(log.read())
    assert log.torn_lines() == 0
    assert len(events) == writers * each
    for n in range(writers):
        mine = [int(e.paths[0].split("/")[1].rstrip("x")) for e in events if e.paths[0].startswith(f"w{n}/")]
        assert mine == list(range(each))  # each writer's own records stay in order


# --------------------------------------------------------------------------- --kind


def test_check_kinds_accepts_event_kinds_and_triggers() -> None:
    assert check_kinds(["snapshot", "pre-restore", "force"]) == ["snapshot", "pre-restore", "force"]
    assert check_kinds([]) == []


def test_a_misspelt_kind_gets_a_suggestion() -> None:
    with pytest.raises(UsageError) as info:
        check_kinds(["snapshot", "restroe"])
    assert str(info.value) == "--kind: unknown kind 'restroe'; did you mean 'restore'?"
    assert info.value.exit_code == 2


def test_an_unknown_kind_lists_them_all() -> None:
    with pytest.raises(UsageError) as info:
        check_kinds(["zzzzzz"])
    known = sorted(set(EVENT_KINDS) | set(KNOWN_TRIGGERS))
    assert str(info.value) == f"--kind: unknown kind 'zzzzzz'; known kinds: {', '.join(known)}"
    assert {"snapshot", "restore", "pre-restore", "manual", "repair"} <= set(known)
    assert known == sorted(known) and len(known) == len(set(known))
