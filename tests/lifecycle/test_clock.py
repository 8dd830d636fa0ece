"""Clock safety: retention keeps the newest snapshots whatever the clock says, gc does not thin on a clock
that is behind, and ``--before`` reads times against the snapshots' order.

Wrong clocks are simulated by writing snapshot commits with chosen times (tests.lifecycle.test_gc.History)
and by gc's ``now=``; one test runs the watcher's automatic gc under a really faked clock (faketime).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from guardian.lifecycle import gc as lifecycle
from guardian.lifecycle.clock import CLOCK_SLACK, count_before, effective_times
from guardian.ops.rollback import snapshot_before
from guardian.project import Project
from guardian.query.lookup import last_snapshot_before, latest_valid_before
from guardian.util.times import format_time
from tests.conftest import run_cli
from tests.lifecycle.test_gc import NOW, History, empty_project

HOUR = 3600.0
DAY = 86400.0
INF = math.inf


# --------------------------------------------------------------------------- the rule, as a pure function


def test_effective_times_trust_only_stamps_in_chain_order_and_not_from_the_future() -> None:
    now = 1000.0
    # In order and in the past: every stamp is its own effective time.
    assert effective_times([100, 200, 300], now) == [100, 200, 300]
    # Stamped 400 days ahead, then the clock was put right: the jumped stamp was taken before the next one.
    assert effective_times([100, now + 400 * DAY, 300], now) == [100, 300, 300]
    # Stamped while the clock was behind (earlier than the snapshot before), then put right.
    assert effective_times([500, 20, 30, 600], now) == [500, 600, 600, 600]
    # ... and not put right yet: those snapshots may have been taken at any time up to now.
    assert effective_times([500, 20, 30], now) == [500, INF, INF]
    # Within CLOCK_SLACK of now is not the future: two readers of one clock differ by a moment.
    assert effective_times([100, now + CLOCK_SLACK], now) == [100, now + CLOCK_SLACK]
    assert effective_times([], now) == []
    # Effective times never decrease, so the snapshots before a time are a prefix of the chain.
    assert count_before([100, now + 400 * DAY, 300, 400], 350, now) == 3
    assert count_before([500, 20, 30, 600], 550, now) == 1
    assert count_before([500, 20, 30, 600], 50, now) == 0


# --------------------------------------------------------------------------- retention and gc


def _hourly(project: Project, count: int, last: float) -> list[str]:
    """count snapshots an hour apart, the last at ``last``, each changing a.txt."""
    history = History(project)
    return [history.commit(last - (count - 1 - i) * HOUR, {"a.txt": f"v{i}\n".encode()}) for i in range(count)]


def _snapshot_count(project: Project) -> int:
    with project.reader() as (_repo, catalog):
        return catalog.snapshot_count()


def test_a_clock_400_days_ahead_keeps_the_last_snapshots(tmp_path: Path) -> None:
    project = empty_project(tmp_path / "proj")
    _hourly(project, 14, NOW)
    result = lifecycle.gc(project, now=NOW + 400 * DAY)
    # Before keep_last, every snapshot but the head was 400 days old to this clock, and dropped.
    assert (result.snapshots, result.dropped) == (14, 0)
    assert result.kept_by_reason == {"head": 1, "keep_last": 13}
    assert _snapshot_count(project) == 14


def test_keep_last_is_the_policys_and_the_rest_follow_the_time_rules(tmp_path: Path) -> None:
    project = empty_project(tmp_path / "proj", "version: 1\nretention:\n  keep_last: 5\n")
    ids = _hourly(project, 14, NOW)
    result = lifecycle.gc(project, now=NOW + 400 * DAY)
    assert (result.kept, result.dropped) == (5, 9)
    assert result.plan is not None
    assert [s.id for s in result.plan.snapshots if s.id in result.plan.keep] == ids[-5:]
    assert _snapshot_count(project) == 5


def test_snapshots_taken_while_the_clock_was_behind_are_not_aged_early(tmp_path: Path) -> None:
    # keep_last 1 (the head alone): the effective times alone must keep them.
    project = empty_project(tmp_path / "proj", "version: 1\nretention:\n  keep_last: 1\n")
    history = History(project)
    for k in range(3):  # the clock right
        history.commit(NOW - 3 * HOUR + k * 1800, {"a.txt": f"right {k}\n".encode()})
    behind = [  # the clock two days behind: stamped 49.5 hours ago, all in one clock hour
        history.commit(NOW - 2 * DAY - 90 * 60 + k * 300, {"a.txt": f"behind {k}\n".encode()}) for k in range(5)
    ]
    history.commit(NOW - 600, {"a.txt": b"right again\n"})  # the clock put right
    result = lifecycle.gc(project, now=NOW)
    # Read by their stamps, four of the five fell in one hour of the hourly window and were dropped.
    assert (result.snapshots, result.dropped) == (9, 0)
    assert result.plan is not None
    assert all(result.plan.keep[sid] == ["keep_all"] for sid in behind)


def test_gc_refuses_to_thin_when_the_clock_is_behind_the_newest_snapshot(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    project = empty_project(tmp_path / "proj", "version: 1\nretention:\n  keep_last: 1\n")
    history = History(project)
    for k in range(200, -1, -1):  # 200 days of daily snapshots: most are past every window
        history.commit(NOW - k * DAY, {"a.txt": f"day {k}\n".encode()})
    behind = NOW - 2 * DAY
    with caplog.at_level(logging.WARNING, logger="guardian.lifecycle.gc"):
        result = lifecycle.gc(project, now=behind)
    refused = (
        f"the clock ({format_time(behind)}) is earlier than the newest snapshot ({format_time(NOW)}); "
        "nothing is thinned until the clock is right"
    )
    assert (result.snapshots, result.dropped, result.thinning_refused) == (201, 0, refused)
    assert result.kept_by_reason == {"head": 1, "clock": 200}
    assert f"gc keeps every snapshot: {refused}" in caplog.text
    assert _snapshot_count(project) == 201
    [event] = [e for e in project.events.read() if e.event == "gc"]
    assert event.details["thinning_refused"] == refused and event.details["dropped"] == 0
    assert lifecycle.read_gc_state(project)["thinning_refused"] == refused
    # With the clock right again, the same history is thinned as usual.
    assert lifecycle.gc(project, now=NOW).dropped > 100


def test_gc_cli_says_why_nothing_was_thinned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = empty_project(tmp_path / "proj")
    _hourly(project, 3, NOW)
    monkeypatch.setattr(lifecycle, "_clock", lambda: NOW - DAY)
    r = run_cli("gc", "--dry-run", cwd=project.root)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.splitlines()[:3] == [
        "would drop 0 of 3 snapshot(s), would keep 3:",
        "       1  the head",
        "       2  the clock is behind the newest snapshot: nothing is thinned",
    ]
    r = run_cli("gc", "--dry-run", "--json", cwd=project.root)
    assert json.loads(r.stdout)["thinning_refused"].startswith(f"the clock ({format_time(NOW - DAY)}) is earlier")


def test_keep_last_must_be_a_whole_number_of_at_least_one(project: Path) -> None:
    for value, shown in (("0", "0"), ("-3", "-3"), ("2.5", "2.5"), ("lots", "'lots'")):
        (project / "guardian.yaml").write_text(f"version: 1\nretention:\n  keep_last: {value}\n")
        r = run_cli("status", cwd=project)
        assert r.exit_code == 2
        assert r.stderr.strip() == (
            f"guardian: error: {project / 'guardian.yaml'}:3:14: retention.keep_last: "
            f"expected a whole number >= 1, got {shown}; write a number of snapshots such as 200"
        )


# --------------------------------------------------------------------------- --before


def _notes_history(project: Project, stamps: list[float]) -> list[str]:
    history = History(project)
    return [history.commit(ts, {"notes.txt": f"version {i}\n".encode()}) for i, ts in enumerate(stamps)]


def test_restore_before_skips_a_snapshot_stamped_while_the_clock_was_behind(tmp_path: Path) -> None:
    project = empty_project(tmp_path / "proj")
    now = time.time()
    # version 0 three hours ago; version 1 ten minutes ago on a clock two days behind; version 2 just now.
    _notes_history(project, [now - 3 * HOUR, now - 2 * DAY - 600, now - 300])
    r = run_cli("restore", "notes.txt", "--before", "1h", cwd=project.root)
    assert r.exit_code == 0, r.stderr
    # By its stamp version 1 is two days old, and was picked; the chain shows it came after version 0.
    assert (project.root / "notes.txt").read_text() == "version 0\n"


def test_rollback_before_skips_a_snapshot_stamped_while_the_clock_was_behind(tmp_path: Path) -> None:
    project = empty_project(tmp_path / "proj")
    now = time.time()
    ids = _notes_history(project, [now - 3 * HOUR, now - 2 * DAY - 600, now - 300])
    with project.reader() as (_repo, catalog):
        assert snapshot_before(catalog, now - HOUR).id == ids[0]
    r = run_cli("rollback", "--before", "1h", "notes.txt", cwd=project.root)
    assert r.exit_code == 0, r.stderr
    assert (project.root / "notes.txt").read_text() == "version 0\n"


def test_before_is_not_blinded_by_a_stamp_from_the_future(tmp_path: Path) -> None:
    project = empty_project(tmp_path / "proj")
    now = time.time()
    # version 1 was taken 2.5 hours ago on a clock 400 days ahead; version 2 two hours ago, the clock right.
    ids = _notes_history(project, [now - 3 * HOUR, now + 400 * DAY, now - 2 * HOUR])
    with project.reader() as (_repo, catalog):
        # Read as a running maximum, the future stamp would hide version 2 for 400 days.
        assert last_snapshot_before(catalog, now - HOUR, now) == catalog.snapshot(ids[2])
        version = latest_valid_before(catalog, "notes.txt", now - HOUR, now)
        assert version is not None and version.snapshot == ids[2]
        # Version 1's time is only known to be before version 2's: it is not picked for an earlier time.
        assert last_snapshot_before(catalog, now - 2.2 * HOUR, now) == catalog.snapshot(ids[0])
        assert last_snapshot_before(catalog, now - 4 * HOUR, now) is None
    r = run_cli("restore", "notes.txt", "--before", "150m", cwd=project.root)
    assert r.exit_code == 0, r.stderr
    assert (project.root / "notes.txt").read_text() == "version 0\n"


# --------------------------------------------------------------------------- a really faked clock

_MAINTENANCE_ROUND = """
import sys, time
from pathlib import Path
from guardian.project import Project
from guardian.watch.maintenance import Maintenance

maintenance = Maintenance(Project.find(Path(sys.argv[1])), check_every=0.0)
assert maintenance.poll()
while maintenance.busy():
    time.sleep(0.05)
print(time.time())
"""


@pytest.mark.skipif(shutil.which("faketime") is None, reason="needs faketime (Debian package 'faketime')")
def test_the_watchers_automatic_gc_under_a_clock_400_days_ahead_keeps_every_snapshot(tmp_path: Path) -> None:
    project = empty_project(tmp_path / "proj")
    now = time.time()
    _hourly(project, 14, now - 2 * HOUR)
    assert _snapshot_count(project) == 14  # indexed, as the watcher's captures index theirs
    assert lifecycle.gc_due(project, now) is None  # the first look starts the gc clock, as a watcher would
    History(project).commit(now - HOUR, {"b.txt": b"new\n"})  # a capture since: a gc 24 h on is due
    assert _snapshot_count(project) == 15
    # libfaketime's defaults: with FAKETIME_DONT_FAKE_MONOTONIC, Python's time.sleep fails with EINVAL.
    done = subprocess.run(
        ["faketime", "-f", "+400d", sys.executable, "-c", _MAINTENANCE_ROUND, str(project.root)],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert float(done.stdout.split()[-1]) > now + 399 * DAY  # the clock really was 400 days ahead
    state = lifecycle.read_gc_state(project)
    assert (state.get("ok"), state.get("reason"), state.get("snapshots"), state.get("dropped")) == (
        True,
        "time",
        15,
        0,
    ), state
    assert _snapshot_count(project) == 15
