"""Cases 1, 9, 11, 12 and 13: the watcher under kill -9, competition, bursts, failures and exhaustion.

1.  ``guardian watch`` (a real process) is SIGKILLed at random moments while
    another thread churns the tree (writes, deletes, renames, ``sed -i``-style
    replacements, new directories).  After each kill: ``git fsck --strict`` is
    clean, every snapshot that reached the ref is still reachable, and after a
    restart the newest snapshot equals the work tree and stale ``*.lock`` and
    temp files are gone.
9.  Two watchers started at once (``guardian watch`` and ``guardian start``):
    exactly one runs, the other exits 1 within 2 s naming the pid (on a loaded
    machine, within 2.5 times what a ``guardian --version`` started with them
    takes; in one trial at least, as a busy machine can delay any one of them).
11. A burst of many files, and events dropped at the observer seam
    (``ChangeHandler.tap``): the rescan brings capture to 100 %.
12. The event handler raises: the watcher keeps capturing within 2 s.
13. inotify watches or instances exhausted (limits lowered inside a private
    user namespace, so the machine is not affected): a polling fallback, a
    warning event, and every change still captured.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from watchdog.events import FileSystemEvent

from guardian.project import Project, ProjectPaths
from guardian.watch.watcher import Watcher, WatchOptions
from tests.reliability.harness import (
    LONG,
    chain,
    event_lines,
    expected_tree,
    fsck_problems,
    guardian_argv,
    init_project,
    record,
    store_leftovers,
    temp_files,
    tree_files,
    trials,
    wait_until,
)
from tests.watch.inotify_limits import needs_private_limits, with_limits

# Case 9's loser gives up within 2 s or, where starting guardian is itself slow (a loaded CI runner),
# within 2.5 times what a plain 'guardian --version' started with it took: it does a little more
# than that command (0.4 s of CPU to 0.3 s), then exits.  One lingering would pass in no trial.
GIVE_UP_SECONDS = 2.0
GIVE_UP_STARTUPS = 2.5
FAST_ENV = {"GUARDIAN_WATCH_QUIET": "0.05", "GUARDIAN_WATCH_MAX_DELAY": "0.3", "GUARDIAN_POLL_INTERVAL": "0.1"}
CAMPAIGN_TIMEOUT = 3600 if LONG else 300


def _spawn(
    root: Path, *args: str, env: dict[str, str] | None = None, prefix: list[str] | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*(prefix or []), *guardian_argv(*args)],
        cwd=root,
        env={**os.environ, **FAST_ENV, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _heartbeat(paths: ProjectPaths) -> dict[str, Any]:
    try:
        data = json.loads(paths.heartbeat.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _wait_watching(paths: ProjectPaths, proc: subprocess.Popen[str], timeout: float = 30) -> dict[str, Any]:
    def ready() -> bool:
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the watcher exited {proc.returncode}: {err}{out}")
        beat = _heartbeat(paths)
        return beat.get("pid") == proc.pid and beat.get("state") == "watching"

    wait_until(ready, "the watcher to be watching", timeout, step=0.02)
    return _heartbeat(paths)


def _settled(paths: ProjectPaths, root: Path) -> bool:
    return tree_files(paths) == expected_tree(root)


# --------------------------------------------------------------------------- case 1: kill -9 under churn


class Churn:
    """A thread that keeps changing the tree the way tools and editors do, until stopped."""

    def __init__(self, root: Path, rng: random.Random) -> None:
        self.root = root
        self.rng = rng
        self.ops = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="churn", daemon=True)

    def __enter__(self) -> Churn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _files(self) -> list[Path]:
        return [p for p in self.root.glob("d*/**/*") if p.is_file()]

    def _run(self) -> None:
        rng = self.rng
        while not self._stop.is_set():
            folder = self.root / f"d{rng.randrange(5)}"
            if rng.random() < 0.1:
                folder = folder / f"sub{rng.randrange(3)}"
            folder.mkdir(parents=True, exist_ok=True)
            roll = rng.random()
            files = self._files()
            try:
                if roll < 0.45 or len(files) < 20:
                    target = folder / f"f{rng.randrange(60)}.txt"
                    target.write_bytes(rng.randbytes(rng.randrange(10, 4000)))
                elif roll < 0.6:
                    rng.choice(files).unlink()
                elif roll < 0.75:
                    source = rng.choice(files)
                    source.rename(folder / f"r{rng.randrange(60)}.txt")
                elif roll < 0.9:  # sed -i / editor save: a temp file renamed onto the target
                    target = rng.choice(files)
                    tmp = target.with_name(f".tmp{rng.randrange(1 << 30)}")
                    tmp.write_bytes(rng.randbytes(rng.randrange(10, 2000)))
                    tmp.rename(target)
                else:
                    target = rng.choice(files)
                    with open(target, "ab") as handle:
                        handle.write(b"appended\n")
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                pass  # racing with our own deletes and renames
            self.ops += 1
            time.sleep(0.001)


@pytest.mark.timeout(CAMPAIGN_TIMEOUT)
def test_kill_9_the_watcher_at_random_moments_during_churn(tmp_path: Path, procs: list[subprocess.Popen[str]]) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    root = tmp_path / "proj"
    paths = init_project(root, {f"d{d}/f{i}.txt": b"seed %d %d\n" % (d, i) for d in range(5) for i in range(20)})
    problems: list[str] = []
    fsck_failures = acked_lost = finals_lost = leftovers_seen = leftovers_cleaned = ops = 0
    acked: list[str] = []
    n = trials(30, 500)
    for trial in range(n + 1):
        where = f"trial {trial} (seed {seed})"
        proc = _spawn(root, "watch")
        procs.append(proc)
        _wait_watching(paths, proc)
        # The restart after the previous kill: the tree settles into the newest snapshot.
        try:
            wait_until(lambda: _settled(paths, root), "the final state to be captured", 30, step=0.05)
        except AssertionError:
            finals_lost += 1
            want, have = expected_tree(root), tree_files(paths)
            stale = sorted(os.fsdecode(k) for k in want.keys() | have.keys() if want.get(k) != have.get(k))
            problems.append(f"{where}: after the restart the newest snapshot is not the work tree: {stale[:3]}")
        if not set(acked) <= set(chain(paths)):
            acked_lost += 1
            problems.append(f"{where}: snapshots acknowledged before the kill are no longer reachable")
        left = store_leftovers(paths) + [os.fsdecode(p) for p in temp_files(root)]
        if left:
            problems.append(f"{where}: stale lock or temp files survived the restart: {left[:3]}")
        else:
            leftovers_cleaned += leftovers_seen
        leftovers_seen = 0
        if trial == n:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=60)
            break
        with Churn(root, rng) as churn:
            time.sleep(rng.uniform(0.05, 0.8))
            proc.kill()
            proc.communicate(timeout=30)
            time.sleep(rng.uniform(0, 0.1))  # the churn outlives the watcher a little
        ops += churn.ops
        acked = chain(paths)
        leftovers_seen = len(store_leftovers(paths))
        if not LONG or trial % 10 == 0:
            complaint = fsck_problems(paths)
            if complaint:
                fsck_failures += 1
                problems.append(f"{where}: git fsck --strict after the kill: {complaint[:300]}")
    complaint = fsck_problems(paths)
    if complaint:
        fsck_failures += 1
        problems.append(f"final git fsck --strict: {complaint[:300]}")
    record(
        "1",
        kill_trials_random=n,
        kill_trial_failures=len({p.split(":")[0] for p in problems}),
        fsck_failures=fsck_failures,
        acked_snapshots_lost=acked_lost,
        final_states_lost=finals_lost,
        stale_locks_cleaned=leftovers_cleaned,
        watcher_changes=ops,
    )
    assert not problems, "\n".join(problems[:20])


# --------------------------------------------------------------------------- case 9: one authority


@pytest.mark.timeout(CAMPAIGN_TIMEOUT)
def test_two_watchers_started_at_once(tmp_path: Path, procs: list[subprocess.Popen[str]]) -> None:
    root = tmp_path / "proj"
    paths = init_project(root, {"a.txt": b"a\n"})
    problems: list[str] = []
    slowest = 0.0
    late: list[str] = []  # the 'watch' trials whose loser gave up after its bound
    watch_trials = 0
    n = trials(6, 20)
    for trial in range(n):
        command = "watch" if trial % 2 == 0 else "start"
        # Started with the pair, a plain 'guardian --version' measures what starting guardian takes
        # right now: 0.5 s on an idle machine, seconds on a loaded CI runner.  The loser cannot beat it.
        control = _spawn(root, "--version") if command == "watch" else None
        started = time.monotonic()
        pair = [_spawn(root, command), _spawn(root, command)]
        procs.extend(pair)
        if control is not None:
            procs.append(control)
            # One of the two must give up, with exit 1, without waiting for the other.
            ended: dict[int, float] = {}
            while time.monotonic() - started < 10 and not (control.pid in ended and any(p.pid in ended for p in pair)):
                for proc in (control, *pair):
                    if proc.pid not in ended and proc.poll() is not None:
                        ended[proc.pid] = time.monotonic() - started
                time.sleep(0.01)
            loser = next((p for p in pair if p.pid in ended), None)
            if loser is None:
                problems.append(f"trial {trial}: both watchers are still running after 10 s")
                continue
            elapsed = ended[loser.pid]
            startup = ended.get(control.pid, time.monotonic() - started)
            slowest = max(slowest, elapsed)
            winner = pair[1] if loser is pair[0] else pair[0]
            _out, err = loser.communicate(timeout=10)
            if loser.returncode != 1 or f"pid {winner.pid}" not in err:
                problems.append(f"trial {trial}: the second watcher exited {loser.returncode}: {err.strip()}")
            watch_trials += 1
            if elapsed > max(GIVE_UP_SECONDS, GIVE_UP_STARTUPS * startup):
                late.append(f"trial {trial}: {elapsed:.2f}s ('guardian --version' took {startup:.2f}s)")
            _wait_watching(paths, winner)
            winner.send_signal(signal.SIGTERM)
            winner.communicate(timeout=60)
            if winner.returncode != 0:
                problems.append(f"trial {trial}: the running watcher exited {winner.returncode} on SIGTERM")
        else:
            results = [p.communicate(timeout=60) for p in pair]
            codes = sorted(p.returncode for p in pair)
            slowest = max(slowest, time.monotonic() - started)
            if codes != [0, 1]:
                problems.append(f"trial {trial}: two 'guardian start' gave {codes}: {results}")
            stop = subprocess.run(
                guardian_argv("stop"), cwd=root, capture_output=True, text=True, timeout=60, check=False
            )
            if stop.returncode != 0:
                problems.append(f"trial {trial}: guardian stop failed: {stop.stderr}")
    # A loser that lingers is late in every trial; a trial made late by a busy machine's scheduling is not that.
    if watch_trials and len(late) == watch_trials:
        problems.append("the second watcher was slow to give up in every trial: " + "; ".join(late))
    record("9", watcher_race_trials=n, watcher_race_failures=len(problems), watcher_race_worst_ms_max=slowest * 1000)
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- in-process watcher helpers


@contextmanager
def _running(
    project: Project, options: WatchOptions, tap: Callable[[FileSystemEvent], bool] | None = None
) -> Iterator[tuple[Watcher, dict[str, float]]]:
    """A real Watcher on a thread; yields it and a map path -> monotonic time of its first capture."""
    captured: dict[str, float] = {}
    lock = threading.Lock()

    def on_snapshot(result: Any) -> None:
        now = time.monotonic()
        with lock:
            for f in result.files:
                captured.setdefault(f.path, now)

    watcher = Watcher(project, options, on_snapshot=on_snapshot)
    watcher.handler.tap = tap
    errors: list[BaseException] = []

    def target() -> None:
        try:
            watcher.run()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name="guardian-watcher", daemon=True)
    thread.start()
    try:
        wait_until(lambda: watcher.state == "watching" or bool(errors), "the watcher to be watching", 30)
        if errors:
            raise errors[0]
        yield watcher, captured
    finally:
        watcher.request_stop()
        thread.join(60)
        assert not thread.is_alive(), "the watcher did not stop"
        if errors:
            raise errors[0]


def _project_with_interval(root: Path, interval: str, files: dict[str, bytes] | None = None) -> Project:
    init_project(root, files or {"seed.txt": b"seed\n"}, policy=f"version: 1\nguardrail:\n  interval: {interval}\n")
    return Project.find(root)


OPTIONS = WatchOptions(quiet=0.05, max_delay=0.3, heartbeat=0.5, supervise=0.2, poll_interval=0.1)


# --------------------------------------------------------------------------- case 11: bursts and dropped events


@pytest.mark.timeout(CAMPAIGN_TIMEOUT)
def test_burst_of_files_is_fully_captured_by_a_watcher_process(
    tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    count = 60_000 if LONG else 5_000
    root = tmp_path / "proj"
    paths = init_project(root, {"seed.txt": b"seed\n"})
    proc = _spawn(root, "watch")
    procs.append(proc)
    _wait_watching(paths, proc)
    started = time.monotonic()
    for i in range(count):
        folder = root / f"b{i // 1000:03d}"
        if i % 1000 == 0:
            folder.mkdir()
        (folder / f"f{i:06d}.txt").write_bytes(b"burst %d\n" % i)
    written = time.monotonic() - started
    wait_until(lambda: len(tree_files(paths)) >= count + 2 and _settled(paths, root), "the whole burst", 600, step=0.5)
    took = time.monotonic() - started
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert proc.returncode == 0
    beat = _heartbeat(paths)
    record(
        "11",
        watcher_changes=count,
        watcher_captured=count,
        watcher_burst_files=count,
        watcher_burst_seconds_max=round(took, 2),
        watcher_burst_write_seconds_max=round(written, 2),
        watcher_rescans=int(beat.get("rescans", 0)),
    )
    assert fsck_problems(paths) is None


@pytest.mark.timeout(CAMPAIGN_TIMEOUT)
def test_events_dropped_at_the_seam_are_recovered_by_the_periodic_rescan(tmp_path: Path) -> None:
    # The files exist before the watcher starts and are only rewritten while it runs: no directory
    # event can lead the watcher to them, only their own events (some dropped) and the rescan.
    files = {f"drop/f{i:03d}.txt": b"initial %d\n" % i for i in range(200)}
    project = _project_with_interval(tmp_path / "proj", "3s", files)
    root = project.root
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    rounds = trials(2, 10)
    made = missed = recovered = 0
    worst = 0.0
    for round_ in range(rounds):
        drop = rng.uniform(0.1, 0.4)
        salt = rng.random()

        def tap(event: FileSystemEvent, drop: float = drop, salt: float = salt) -> bool:
            # Every event of a dropped path is lost, as in a kernel queue overflow (a rewrite sends
            # modified and closed events; losing only one of them would lose nothing).
            name = os.fsdecode(event.src_path)
            if not name.endswith(".txt"):
                return True
            return random.Random(f"{salt}{name}").random() >= drop

        with _running(project, OPTIONS, tap) as (_watcher, captured):
            written: dict[str, float] = {}
            for rel in files:
                (root / rel).write_bytes(b"round %d %s %f\n" % (round_, rel.encode(), rng.random()))
                written[rel] = time.monotonic()
            time.sleep(1.0)  # events only: the periodic rescan is 3 s away
            by_events = {r for r in written if r in captured}
            made += len(written)
            missed += len(written) - len(by_events)

            def complete(written: dict[str, float] = written, captured: dict[str, float] = captured) -> bool:
                return all(r in captured for r in written)

            wait_until(complete, "the rescan to capture what the events missed", 30, step=0.05)
            recovered += len(written) - len(by_events)
            worst = max([worst, *(captured[r] - written[r] for r in by_events)])
        assert _settled(project.paths, root)
    record(
        "11",
        watcher_changes=made,
        watcher_missed=missed,
        watcher_recovered_by_rescan=recovered,
        watcher_captured=made,
        watcher_latency_ms_max=round(worst * 1000, 1),
    )
    assert missed > 0, "nothing was dropped: the seam is not wired"
    assert recovered == missed


# --------------------------------------------------------------------------- case 12: the handler raises


@pytest.mark.timeout(CAMPAIGN_TIMEOUT)
def test_a_raising_event_handler_does_not_stop_capture(tmp_path: Path) -> None:
    project = _project_with_interval(tmp_path / "proj", "300s")
    root = project.root
    raised = 0

    def tap(event: FileSystemEvent) -> bool:
        nonlocal raised
        if "boom" in os.fsdecode(event.src_path):
            raised += 1
            raise RuntimeError("simulated handler bug")
        return True

    worst = 0.0
    problems: list[str] = []
    n = trials(5, 50)
    with _running(project, OPTIONS, tap) as (_watcher, captured):
        for trial in range(n):
            started = time.monotonic()
            (root / f"boom{trial}.txt").write_bytes(b"boom %d\n" % trial)
            time.sleep(0.02)
            (root / f"after{trial}.txt").write_bytes(b"after %d\n" % trial)
            try:
                names = (f"boom{trial}.txt", f"after{trial}.txt")
                wait_until(
                    lambda names=names: all(n in captured for n in names),  # type: ignore[misc]
                    "capture after a handler exception",
                    2.0,
                    step=0.01,
                )
            except AssertionError:
                problems.append(f"trial {trial}: not captured within 2 s of a handler exception")
            worst = max(worst, time.monotonic() - started)
    errors = [e for e in event_lines(project.paths) if e.get("event") == "error"]
    record(
        "12",
        handler_exceptions=raised,
        watcher_changes=2 * n,
        watcher_captured=2 * n - len(problems),
        watcher_recovery_ms_max=round(worst * 1000, 1),
    )
    assert raised >= n
    assert errors, "a handler exception must be on the record"
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- case 13: inotify exhausted


@needs_private_limits
@pytest.mark.parametrize(
    ("watches", "instances"), [(1000, 0), (0, 1000), (3, 1000)], ids=["no-instances", "no-watches", "watches-run-out"]
)
@pytest.mark.timeout(CAMPAIGN_TIMEOUT)
def test_inotify_exhaustion_falls_back_to_polling_and_captures_everything(
    tmp_path: Path, procs: list[subprocess.Popen[str]], watches: int, instances: int
) -> None:
    root = tmp_path / "proj"
    paths = init_project(root, {f"d{i}/f.txt": b"%d\n" % i for i in range(8)})
    proc = _spawn(root, "watch", prefix=with_limits(watches=watches, instances=instances))
    procs.append(proc)
    beat = _wait_watching(paths, proc)
    changes = trials(20, 200)
    worst = 0.0
    for i in range(changes):
        rel = f"d{i % 10}/new{i}.txt"
        (root / rel).parent.mkdir(exist_ok=True)
        started = time.monotonic()
        (root / rel).write_bytes(b"polled %d\n" % i)
        if i % max(1, changes // 5) == 0:  # measure some latencies one by one
            wanted = rel.encode()
            wait_until(
                lambda wanted=wanted: wanted in tree_files(paths),  # type: ignore[misc]
                f"{rel} captured",
                10,
                step=0.02,
            )
            worst = max(worst, time.monotonic() - started)
    wait_until(lambda: _settled(paths, root), "every change captured by polling", 30, step=0.1)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    warnings = [
        e
        for e in event_lines(paths)
        if e.get("event") == "warning" and e.get("details", {}).get("what") == "polling fallback"
    ]
    record(
        "13",
        watcher_changes=changes,
        watcher_captured=changes,
        polling_fallbacks=int(bool(warnings)),
        watcher_polling_latency_ms_max=round(worst * 1000, 1),
    )
    assert beat["mode"] == "polling"
    assert warnings, "the fallback must leave a warning event"
    assert proc.returncode == 0, err


# --------------------------------------------------------------------------- case 1: the stat cache under a writer


def test_a_write_between_read_and_stat_is_not_hidden_by_the_stat_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Case 1 found a rescan that trusted the stat cache for a file whose content it never captured.

    A writer rewrites the file in place (same inode, same size) just after guardian has read it
    and before guardian takes its stat.  The stat then describes content guardian never saw; if
    it is recorded, every later stat-based rescan skips the file and the new content is never
    captured.  The writer is placed deterministically by running it from the first fstat of the
    file (a seam, like the fault seam; the capture, catalog and store are real).
    """
    from guardian.ops.snapshot import take_snapshot
    from guardian.project import Project as _Project

    root = tmp_path / "proj"
    paths = init_project(root, {"state.txt": b"A" * 4096})
    target = root / "state.txt"
    target.write_bytes(b"B" * 4096)
    real_fstat = os.fstat
    fired: list[int] = []

    def fstat_with_a_racing_writer(fd: int) -> os.stat_result:
        if not fired and os.readlink(f"/proc/self/fd/{fd}") == str(target):
            fired.append(fd)
            with open(target, "r+b") as handle:  # the concurrent writer: in place, same size
                handle.write(b"C" * 4096)
        return real_fstat(fd)

    project = _Project.find(root)
    monkeypatch.setattr(os, "fstat", fstat_with_a_racing_writer)
    take_snapshot(project, None, "manual")
    monkeypatch.setattr(os, "fstat", real_fstat)
    assert fired, "guardian read the file without an fstat: the seam needs another way in"
    take_snapshot(project, None, "manual")  # a later full, stat-based rescan (what a restarted watcher does)
    captured = tree_files(paths)[b"state.txt"][1]
    record("1", stat_cache_races=1, stat_cache_races_lost=int(captured != expected_tree(root)[b"state.txt"][1]))
    assert captured == expected_tree(root)[b"state.txt"][1], "the rewritten content was never captured"
