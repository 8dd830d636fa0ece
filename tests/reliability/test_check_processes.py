"""Check processes never outlive their check, nor guardian (issue 13).

A ``command`` check that backgrounds a child, and a guardian killed with SIGKILL in the
middle of a check, must leave nothing running: not the check, not its children, and
not the private directory holding a copy of the user's file.  Each check here writes
the pids it started to files outside the project, and the test watches those pids.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.reliability.harness import guardian_argv, guardian_env, init_project, record

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to watch the check's pids")


def running(pid: int) -> bool:
    """Whether pid is a live process (a zombie waiting for its reaper is not)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return fields[0] not in ("Z", "X")


def wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not running(pid):
            return True
        time.sleep(0.02)
    return not running(pid)


def wait_file(path: Path, seconds: float) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.02)
    raise AssertionError(f"{path} was never written")


def _policy(script: Path, timeout: str = "20s") -> str:
    return (
        "version: 1\nvalidate:\n  - paths: ['*.cfg']\n"
        f"    checks: [{{command: [sh, '{script}', '{{path}}'], timeout: {timeout}}}]\n"
    )


def test_a_check_that_backgrounds_a_child_leaves_nothing_running(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = tmp_path / "check.sh"
    # The check passes at once, leaving a sleeper behind (as a linter's daemon or a stray '&' would).
    script.write_text(f"sleep 300 &\necho $! > {pids}\nexit 0\n")
    root = tmp_path / "p"
    init_project(root, {"a.cfg": b"one\n"}, policy=_policy(script))
    sleeper = int(wait_file(pids, 5))
    gone = wait_gone(sleeper, 5)
    record("22", check_children_started=1, check_children_left=0 if gone else 1)
    assert gone, f"the check's backgrounded child {sleeper} still runs after the check passed"


def test_a_timed_out_check_and_its_children_are_killed(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = tmp_path / "check.sh"
    script.write_text(f"sleep 300 &\necho $$ $! > {pids}\nsleep 300\n")
    root = tmp_path / "p"
    (root / "a.cfg").parent.mkdir(parents=True)
    (root / "a.cfg").write_text("one\n")
    (root / "guardian.yaml").write_text(_policy(script, "1s"))
    started = time.monotonic()
    proc = subprocess.run(
        guardian_argv("init"), cwd=root, env=guardian_env(), capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started < 30
    leader, sleeper = (int(p) for p in wait_file(pids, 5).split())
    assert wait_gone(leader, 5) and wait_gone(sleeper, 5)
    record("22", check_children_started=2, check_children_left=0)


def test_a_guardian_killed_during_a_check_leaves_no_check_and_no_copy_behind(
    tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    pids = tmp_path / "pids"
    quick = tmp_path / "quick"
    script = tmp_path / "check.sh"
    # Slow (and with a background child) until the 'quick' flag exists, then instant.
    script.write_text(f"if [ -e {quick} ]; then exit 0; fi\nsleep 300 &\necho $$ $! > {pids}\nsleep 300\n")
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = guardian_env(TMPDIR=str(temp))
    root = tmp_path / "p"
    quick.write_text("")
    init_project(root, {"a.cfg": b"one\n"}, policy=_policy(script, "60s"))
    quick.unlink()
    (root / "a.cfg").write_text("two\n")

    guardian = subprocess.Popen(guardian_argv("snapshot"), cwd=root, env=env)
    procs.append(guardian)
    leader, sleeper = (int(p) for p in wait_file(pids, 20).split())
    copies = list(temp.glob("guardian-check-*/in/a.cfg"))
    assert copies and copies[0].read_text() == "two\n"
    guardian.send_signal(signal.SIGKILL)
    guardian.wait(timeout=10)

    leader_gone = wait_gone(leader, 5)
    # The next guardian that runs a check sweeps what the dead one left: its children and its copy.
    quick.write_text("")
    (root / "a.cfg").write_text("three\n")
    after = subprocess.run(
        guardian_argv("snapshot"), cwd=root, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert after.returncode == 0, after.stderr
    sleeper_gone = wait_gone(sleeper, 5)
    left = list(temp.glob("guardian-check-*"))
    record(
        "14",
        guardian_kills_during_check=1,
        check_children_left=int(not leader_gone) + int(not sleeper_gone),
        check_copies_left=len(left),
    )
    assert leader_gone, f"the check {leader} kept running after guardian was killed"
    assert sleeper_gone, f"the check's child {sleeper} kept running after the next guardian started"
    assert left == [], f"the dead guardian's check directory is still there: {left}"


def test_the_sweep_leaves_a_live_guardians_directory_and_other_names_alone(tmp_path: Path) -> None:
    from guardian.capture.checkproc import sweep_stale_check_dirs

    live = tmp_path / f"guardian-check-{os.getppid()}-abc"
    mine = tmp_path / f"guardian-check-{os.getpid()}-abc"
    dead = tmp_path / "guardian-check-999999999-abc"
    other = tmp_path / "guardian-sqlite-xyz"
    for folder in (live, mine, dead, other):
        (folder / "in").mkdir(parents=True)
    assert sweep_stale_check_dirs(tmp_path) == [dead]
    assert live.exists() and mine.exists() and other.exists() and not dead.exists()


def test_a_starting_watcher_sweeps_a_dead_guardians_check(tmp_path: Path, procs: list[subprocess.Popen[bytes]]) -> None:
    temp = tmp_path / "tmp"
    stale = temp / "guardian-check-999999999-abc"
    (stale / "in").mkdir(parents=True)
    (stale / "in" / "copy.cfg").write_text("the user's file\n")
    child = subprocess.Popen(["sleep", "300"], env={**os.environ, "GUARDIAN_CHECK_DIR": str(stale)})
    procs.append(child)
    root = tmp_path / "p"
    init_project(root, {"a.txt": b"a\n"}, policy="version: 1\n")
    watcher = subprocess.Popen(guardian_argv("watch"), cwd=root, env=guardian_env(TMPDIR=str(temp)))
    procs.append(watcher)
    try:
        deadline = time.monotonic() + 30
        while stale.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        watcher.send_signal(signal.SIGTERM)
        watcher.wait(timeout=60)
    assert not stale.exists(), "the starting watcher left a dead guardian's check directory"
    assert wait_gone(child.pid, 5), "the starting watcher left a dead guardian's check running"
    record("22", guardian_kills_during_check=0, check_copies_left=0)
