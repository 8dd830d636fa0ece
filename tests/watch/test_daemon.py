"""The watcher as a real process: guardian watch/start/stop, signals, SIGKILL, one authority, fallbacks."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from guardian.capture.secret_record import pending_scans
from guardian.project import Project
from guardian.util.lock import is_locked
from guardian.watch.observer import count_watchable_dirs
from tests.conftest import fsck, guardian_subprocess, run_cli
from tests.watch.inotify_limits import needs_private_limits, with_limits
from tests.watch.test_watcher import all_captured, events, has, make_project, wait_captured, wait_until


def spawn_watch(
    project: Project, env: dict[str, str] | None = None, prefix: list[str] | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*(prefix or []), sys.executable, "-m", "guardian", "watch"],
        cwd=project.root,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def heartbeat(project: Project) -> dict[str, object]:
    try:
        data = json.loads(project.paths.heartbeat.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def wait_watching(project: Project, proc: subprocess.Popen[str], timeout: float = 30) -> dict[str, object]:
    def ready() -> bool:
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the watcher exited {proc.returncode}: {err}{out}")
        beat = heartbeat(project)
        return beat.get("pid") == proc.pid and beat.get("state") == "watching" and beat.get("catching_up") is False

    wait_until(ready, "the watcher to be watching, its start rescan done", timeout)
    return heartbeat(project)


def finish(proc: subprocess.Popen[str], sig: int = signal.SIGTERM, timeout: float = 30) -> tuple[int, str]:
    if proc.poll() is None:
        proc.send_signal(sig)
    _out, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    """Every watcher a test spawns is killed at the end, whatever happened."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


@pytest.fixture(autouse=True)
def no_guardrail(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "guardian.gates.guardrail", None)


# --------------------------------------------------------------------------- watch, signals


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_signal_flushes_pending_changes_then_exits_0(
    tmp_path: Path, procs: list[subprocess.Popen[str]], sig: int
) -> None:
    project = make_project(tmp_path / "p", {"a.txt": "a\n", "first.txt": "1\n"})
    # A long quiet window keeps the change pending: only the flush on shutdown can capture it.
    proc = spawn_watch(project, {"GUARDIAN_WATCH_QUIET": "60", "GUARDIAN_WATCH_MAX_DELAY": "120"})
    procs.append(proc)
    wait_watching(project, proc)
    # The first change after quiet is captured at once (the leading edge); what follows waits.
    (project.root / "first.txt").write_text("leading edge\n")
    wait_until(lambda: has(project, "first.txt", "leading edge\n"), "the leading edge", 20)
    (project.root / "a.txt").write_text("pending at shutdown\n")
    (project.root / "b.txt").write_text("new at shutdown\n")
    time.sleep(0.3)  # let the events reach the pending set; the long quiet window holds them there
    assert not has(project, "a.txt", "pending at shutdown\n")
    code, err = finish(proc, sig)
    assert code == 0, err
    assert has(project, "a.txt", "pending at shutdown\n")
    assert has(project, "b.txt", "new at shutdown\n")
    assert "watching" in err and "watcher stopped" in err
    assert not is_locked(project.paths.watcher_lock)
    assert any(e.details.get("action") == "stop" for e in events(project, "watcher"))
    assert "watching" in project.paths.watcher_log.read_text()


def test_second_watcher_is_refused_naming_the_pid(tmp_path: Path, procs: list[subprocess.Popen[str]]) -> None:
    project = make_project(tmp_path / "p", {"a.txt": "a\n"})
    first = spawn_watch(project)
    procs.append(first)
    wait_watching(project, first)
    for command in ("watch", "start"):
        started = time.monotonic()
        second = guardian_subprocess(command, cwd=project.root, timeout=30)
        took = time.monotonic() - started
        assert second.returncode == 1, second.stderr
        assert second.stderr.strip() == (
            f"guardian: error: a watcher is already running for {project.root} (pid {first.pid}); "
            "stop it with 'guardian stop'"
        )
        assert took < 2.0, took
    assert first.poll() is None
    assert finish(first)[0] == 0


def test_start_status_stop(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"a.txt": "a\n"})
    started = guardian_subprocess("start", cwd=project.root, timeout=60)
    assert started.returncode == 0, started.stderr
    pid = int(started.stdout.split("(pid ")[1].split(",")[0])
    try:
        assert f"watcher started (pid {pid}, inotify); log: {project.paths.watcher_log}" == started.stdout.strip()
        status = json.loads(guardian_subprocess("status", "--json", cwd=project.root).stdout)
        watcher = status["watcher"]
        assert watcher["running"] is True and watcher["pid"] == pid
        assert watcher["mode"] == "inotify" and watcher["pending"] == 0 and watcher["heartbeat_age"] < 10
        (project.root / "b.txt").write_text("by the background watcher\n")
        wait_captured(project, "b.txt", "by the background watcher\n")
        (project.root / "c.txt").write_text("pending when stopped\n")
        stopped = guardian_subprocess("stop", cwd=project.root, timeout=90)
        assert stopped.returncode == 0, stopped.stderr
        assert stopped.stdout.strip() == f"watcher stopped (pid {pid})"
    finally:
        if is_locked(project.paths.watcher_lock):
            os.kill(pid, signal.SIGKILL)
    assert has(project, "c.txt", "pending when stopped\n")
    assert not is_locked(project.paths.watcher_lock)
    status = json.loads(guardian_subprocess("status", "--json", cwd=project.root).stdout)
    assert status["watcher"]["running"] is False
    assert any("no watcher is running" in w for w in status["warnings"])
    again = guardian_subprocess("stop", cwd=project.root)
    assert again.returncode == 1
    assert again.stderr.strip() == (
        f"guardian: error: no watcher is running for {project.root}; start one with 'guardian start'"
    )


def test_start_and_stop_in_process_with_json(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"a.txt": "a\n"})
    r = run_cli("start", "--json", cwd=project.root)
    assert r.exit_code == 0, r.stderr
    report = json.loads(r.stdout)
    try:
        assert report["mode"] == "inotify" and report["log"] == str(project.paths.watcher_log)
    finally:
        r = run_cli("stop", "--json", cwd=project.root)
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["pid"] == report["pid"]
    assert not is_locked(project.paths.watcher_lock)


def test_watch_and_start_without_a_store_fail_clearly(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "guardian.yaml").write_text("version: 1\n")
    for command in ("watch", "start"):
        r = guardian_subprocess(command, cwd=root)
        assert r.returncode == 1
        assert "no store for" in r.stderr and "run 'guardian init'" in r.stderr


def test_start_reports_why_the_watcher_died(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"a.txt": "a\n"})
    project.paths.catalog.write_bytes(b"this is not a sqlite database" * 100)
    r = guardian_subprocess("start", cwd=project.root, timeout=60)
    assert r.returncode == 1
    assert r.stderr.startswith("guardian: error: the watcher failed to start: the catalog ")
    assert "guardian verify" in r.stderr
    assert not is_locked(project.paths.watcher_lock)


def test_start_gives_up_when_the_watcher_never_gets_ready(tmp_path: Path) -> None:
    from guardian.util.lock import FileLock

    project = make_project(tmp_path / "p", {"a.txt": "a\n"})
    # Holding the store's writer lock keeps the new watcher from opening the store.
    with FileLock(project.paths.writer_lock, "test"):
        r = run_cli("start", "--timeout", "1", cwd=project.root)
    assert r.exit_code == 1
    assert r.stderr.startswith("guardian: error: the watcher (pid ")
    assert "did not become ready within 1s and was stopped; see " in r.stderr
    assert not is_locked(project.paths.watcher_lock)


def test_stop_gives_up_on_a_watcher_that_ignores_sigterm(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"a.txt": "a\n"})
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, sys, time; from pathlib import Path; from guardian.util.lock import FileLock; "
            "signal.signal(signal.SIGTERM, signal.SIG_IGN); FileLock(Path(sys.argv[1]), 'w').acquire(); "
            "print('held', flush=True); time.sleep(120)",
            str(project.paths.watcher_lock),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        r = run_cli("stop", "--timeout", "1", cwd=project.root)
    finally:
        holder.kill()
        holder.communicate(timeout=30)
    assert r.exit_code == 1
    assert r.stderr.startswith(f"guardian: error: the watcher (pid {holder.pid}) did not stop within 1s;")
    assert f"'kill -9 {holder.pid}' loses nothing" in r.stderr


# --------------------------------------------------------------------------- crash safety


def test_kill_9_during_a_burst_then_restart_captures_every_final_state(
    tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    project = make_project(tmp_path / "p", {"seed.txt": "seed\n"})
    first = spawn_watch(project)
    procs.append(first)
    wait_watching(project, first)
    expected: dict[str, str] = {}
    killed = False
    for d in range(30):
        folder = project.root / f"d{d:02}"
        folder.mkdir()
        for i in range(100):
            text = f"{d}/{i} first\n"
            (folder / f"f{i:03}.txt").write_text(text)
            expected[f"d{d:02}/f{i:03}.txt"] = text
        if d == 10:
            # Mid-burst, once the watcher is busy snapshotting: the hardest moment to die.
            wait_until(lambda: has(project, "d00/f000.txt", "0/0 first\n"), "the first batch", 30)
            first.kill()
            first.wait(10)
            killed = True
    for d in range(0, 30, 4):  # final states written while no watcher runs
        for i in range(0, 100, 5):
            text = f"{d}/{i} final\n"
            (project.root / f"d{d:02}" / f"f{i:03}.txt").write_text(text)
            expected[f"d{d:02}/f{i:03}.txt"] = text
    (project.root / "seed.txt").unlink()
    assert killed and not is_locked(project.paths.watcher_lock)
    started = time.monotonic()
    second = spawn_watch(project)  # at once: no cleanup step
    procs.append(second)
    wait_watching(project, second)
    assert time.monotonic() - started < 30
    wait_until(lambda: all_captured(project, expected) and has(project, "seed.txt", None), "every final state", 60)
    assert finish(second)[0] == 0
    assert len(expected) == 3000
    fsck(project.paths.repo)


# --------------------------------------------------------------------------- fallback, bounds


# The fallback reasons each limit may give, as full matches.  Running out of instances (EMFILE when the
# observer is created) or of watches on the root (ENOSPC) makes watchdog raise at start.  Running out
# below the root depends on the watchdog release: some raise ENOSPC at start too (7.1.1 does), others log it
# and carry on, and then only guardian's count of the watches it holds shows the tree is half-watched.
# Both are a correct fallback; any other reason (or none) is not.
RAISED_AT_START = "cannot watch with inotify: inotify {} limit reached"
COUNTED_SHORT = r"inotify watch limit reached: 3 of (?P<needed>\d+) directories watched"


@needs_private_limits
@pytest.mark.parametrize(
    ("watches", "instances", "reasons"),
    [
        (1000, 0, [re.escape(RAISED_AT_START.format("instance"))]),
        (0, 1000, [re.escape(RAISED_AT_START.format("watch"))]),
        (3, 1000, [re.escape(RAISED_AT_START.format("watch")), COUNTED_SHORT]),
    ],
    ids=["no-instances", "no-watches", "watches-run-out"],
)
def test_inotify_exhaustion_falls_back_to_polling(
    tmp_path: Path, procs: list[subprocess.Popen[str]], watches: int, instances: int, reasons: list[str]
) -> None:
    # The limits are lowered inside a private user namespace: they bind only the watcher, not the machine.
    project = make_project(tmp_path / "p", {f"d{i}/f.txt": f"{i}\n" for i in range(6)})
    proc = spawn_watch(project, {"GUARDIAN_POLL_INTERVAL": "0.1"}, with_limits(watches=watches, instances=instances))
    procs.append(proc)
    beat = wait_watching(project, proc)
    assert beat["mode"] == "polling"
    (project.root / "d3" / "f.txt").write_text("seen by polling\n")
    (project.root / "d9").mkdir()
    (project.root / "d9" / "new.txt").write_text("new dir\n")
    wait_captured(project, "d3/f.txt", "seen by polling\n")
    wait_captured(project, "d9/new.txt", "new dir\n")
    code, err = finish(proc)
    assert code == 0, err
    warning = next(e for e in events(project, "warning") if e.details.get("what") == "polling fallback")
    reason = warning.details["reason"]
    matched = next((m for m in (re.fullmatch(p, reason) for p in reasons) if m is not None), None)
    assert matched is not None, f"unexpected fallback reason {reason!r}; expected one of {reasons}"
    if "needed" in matched.groupdict():
        assert int(matched["needed"]) > watches  # the count found the tree bigger than the limit
    # One fallback, for that reason, logged as such: no flapping between observers.
    fallbacks = [e for e in events(project, "watcher") if e.details.get("action") == "fallback"]
    assert [e.details["reason"] for e in fallbacks] == [reason]
    assert f"falling back to polling every 0.1s: {reason}\n" in err


@needs_private_limits
def test_watches_running_out_while_watching_fall_back_to_polling(
    tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    # The tree outgrows the limit after start.  A running watchdog observer only logs the watches it
    # could not add, so guardian's periodic count of the watches it holds is what must notice.
    project = make_project(tmp_path / "p", {f"d{i}/f.txt": f"{i}\n" for i in range(3)}, interval="1s")
    limit = count_watchable_dirs(project.root) + 2
    proc = spawn_watch(project, {"GUARDIAN_POLL_INTERVAL": "0.1"}, with_limits(watches=limit))
    procs.append(proc)
    assert wait_watching(project, proc)["mode"] == "inotify"
    for i in range(6):
        (project.root / f"new{i}").mkdir()
        (project.root / f"new{i}" / "f.txt").write_text(f"new {i}\n")

    def fallbacks() -> list[str]:
        return [e.details["reason"] for e in events(project, "watcher") if e.details.get("action") == "fallback"]

    wait_until(lambda: bool(fallbacks()), "the fallback to polling", 30)
    (project.root / "new5" / "f.txt").write_text("changed after the fallback\n")
    for i in range(5):
        wait_captured(project, f"new{i}/f.txt", f"new {i}\n")
    wait_captured(project, "new5/f.txt", "changed after the fallback\n")
    code, err = finish(proc)
    assert code == 0, err
    [reason] = fallbacks()
    counted = re.fullmatch(r"inotify watch limit reached: (\d+) of (\d+) directories watched", reason)
    assert counted is not None, reason
    assert int(counted[1]) <= limit < int(counted[2])
    assert f"falling back to polling every 0.1s: {reason}\n" in err


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_idle_watcher_uses_almost_no_cpu(tmp_path: Path, procs: list[subprocess.Popen[str]]) -> None:
    project = make_project(tmp_path / "p", {f"d{i // 100}/f{i}.txt": f"{i}\n" for i in range(2000)})
    proc = spawn_watch(project)
    procs.append(proc)
    wait_watching(project, proc)
    # First the secret scan init queued (a slice at a time, on a thread): then the watcher is idle.
    wait_until(lambda: pending_scans(project.paths.store) == 0, "the queued secret scan to be done", 60)
    before = _cpu_seconds(proc.pid)
    time.sleep(3.0)  # measuring idleness takes wall time
    used = _cpu_seconds(proc.pid) - before
    assert used < 0.15, f"{used:.2f}s of CPU in 3s idle"
    assert finish(proc)[0] == 0
