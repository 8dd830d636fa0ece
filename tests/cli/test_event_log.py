"""The event log reads from the end (events -n costs the same at any size) and rotates at a size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import guardian.events
from guardian.events import KEEP_ROTATED, Event, EventLog
from guardian.project import ProjectPaths
from tests.conftest import run_cli


def _event(i: int, kind: str = "snapshot") -> Event:
    return Event(f"2026-12-01T00:00:{i % 60:02}.000+00:00", kind, [f"f{i}.txt"], None, "manual", {"i": i})


def test_rotation_keeps_a_few_files_and_read_all_covers_them(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "events.jsonl", rotate_bytes=1000)
    for i in range(200):
        log.append_many([_event(i)], durable=False)
    rotated = log.rotated_files()
    assert [p.name for p in rotated] == [f"events.{n}.jsonl" for n in range(KEEP_ROTATED, 0, -1)]
    assert all(p.stat().st_size < 1200 for p in [*rotated, log.path])
    seen = [e.details["i"] for e in log.read_all()]
    assert seen == list(range(seen[0], 200))  # oldest first, nothing missing from the files kept
    assert [e.details["i"] for e in log.read()] == seen
    assert [e.details["i"] for e in log.tail(5)] == [195, 196, 197, 198, 199]
    # Across the boundary between the current file and the rotated ones, still in order.
    current = len(log.path.read_bytes().splitlines())
    assert [e.details["i"] for e in log.tail(current + 2)] == list(range(200 - current - 2, 200))


def test_tail_filters_read_back_only_as_far_as_needed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = EventLog(tmp_path / "events.jsonl")
    with open(log.path, "wb") as handle:
        for i in range(20000):
            handle.write(json.dumps(_event(i, "rollback" if i in (10, 19990) else "snapshot").to_json()).encode())
            handle.write(b"\n")
    parsed: list[bytes] = []
    real = guardian.events._parse_line

    def counting(line: bytes) -> Event | None:
        parsed.append(line)
        return real(line)

    monkeypatch.setattr(guardian.events, "_parse_line", counting)
    assert [e.details["i"] for e in log.tail(5)] == [19995, 19996, 19997, 19998, 19999]
    assert len(parsed) == 5
    parsed.clear()
    assert [e.details["i"] for e in log.tail(1, ["rollback"])] == [19990]
    assert len(parsed) == 1  # the byte test skips the snapshot lines unparsed
    assert [e.details["i"] for e in log.tail(2, ["rollback"])] == [10, 19990]
    assert [e.details["i"] for e in log.tail(2, [], "f7.txt")] == [7]


def test_events_n_through_the_cli_reads_only_the_end(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (project / "a.txt").write_text("a\n")
    assert run_cli("init", cwd=project).exit_code == 0
    log = EventLog(ProjectPaths.for_root(project.resolve()).events)
    old = b"".join(json.dumps(_event(i).to_json()).encode() + b"\n" for i in range(30000))
    log.path.write_bytes(old + log.path.read_bytes())
    parsed: list[bytes] = []
    real = guardian.events._parse_line
    monkeypatch.setattr(guardian.events, "_parse_line", lambda line: parsed.append(line) or real(line))
    r = run_cli("events", "-n", "2", "--json", cwd=project)
    assert r.exit_code == 0, r.stderr
    assert [e["event"] for e in json.loads(r.stdout)] == ["snapshot", "init"]
    assert len(parsed) < 50


def test_a_rotated_log_still_answers_events_and_gc(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Small enough to rotate whatever the temp path's length (events name paths: ~150-250 bytes each).
    monkeypatch.setattr(guardian.events, "ROTATE_BYTES", 700)
    (project / "a.txt").write_text("a\n")
    assert run_cli("init", cwd=project).exit_code == 0
    for i in range(6):
        (project / "a.txt").write_text(f"a{i}\n")
        assert run_cli("snapshot", cwd=project).exit_code == 0
    paths = ProjectPaths.for_root(project.resolve())
    assert (paths.store / "events.1.jsonl").is_file()
    r = run_cli("events", "-n", "100", "--kind", "snapshot", "--json", cwd=project)
    snaps = [e for e in json.loads(r.stdout) if e["event"] == "snapshot"]
    assert len(snaps) >= 6
    r = run_cli("gc", "--dry-run", cwd=project)
    assert r.exit_code == 0, r.stderr
