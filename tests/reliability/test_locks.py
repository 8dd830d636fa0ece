"""Case 3: stale ``*.lock`` files made by hand, with a live holder and with a dead one.

A git lock file left by a killed writer blocks every later commit, so guardian
clears it, but only when its holder is dead and only while guardian holds its
own writer lock.  A lock some live process still has open is respected.

Holders are real processes: a child that has the lock file open (alive), or one
that created it and exited (dead).  guardian runs as a real process too.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from guardian.errors import LockHeld
from guardian.ops.snapshot import take_snapshot
from guardian.project import Project, ProjectPaths
from tests.conftest import run_cli
from tests.reliability.harness import (
    event_lines,
    fsck_problems,
    guardian_argv,
    guardian_env,
    init_project,
    record,
    trials,
    wait_until,
)

# Cleared by every write (guardian/snapshot.py _GIT_LOCK_NAMES) and by verify --repair.
KNOWN_LOCKS = ["refs/heads/snapshots.lock", "packed-refs.lock", "config.lock", "HEAD.lock", "index.lock"]
# Any other *.lock in the git dir: cleared by verify --repair only.
OTHER_LOCKS = ["objects/info/alternates.lock", "refs/heads/other.lock"]


def _run(root: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        guardian_argv(*args),
        cwd=root,
        env=guardian_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _dead_holder(lock: Path) -> None:
    """A process creates the lock file the way git does (O_EXCL) and dies without removing it."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    code = (
        "import os, signal, sys; os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644); "
        "os.kill(os.getpid(), signal.SIGKILL)"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(lock)], timeout=30, check=False)
    assert proc.returncode == -signal.SIGKILL and lock.exists()


def _live_holder(lock: Path, prefix: list[str] | None = None) -> subprocess.Popen[bytes]:
    """A process that has the lock file open for as long as it lives."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "ab") as handle:
        return subprocess.Popen([*(prefix or []), "sleep", "60"], stdin=handle)


def _project(tmp_path: Path) -> tuple[Path, ProjectPaths]:
    root = tmp_path / "proj"
    return root, init_project(root, {"a.txt": b"one\n"})


@pytest.mark.parametrize("name", KNOWN_LOCKS + OTHER_LOCKS)
def test_dead_holder_lock_is_cleared_live_holder_lock_is_respected(
    tmp_path: Path, name: str, procs: list[subprocess.Popen[bytes]]
) -> None:
    root, paths = _project(tmp_path)
    lock = paths.repo / name
    cleared = respected = 0
    for trial in range(trials(2, 6)):
        # A live holder: nothing guardian runs may remove the lock.
        holder = _live_holder(lock)
        procs.append(holder)
        (root / "a.txt").write_text(f"live {trial}\n")
        snap = _run(root, "snapshot")
        if name == "refs/heads/snapshots.lock":
            assert snap.returncode == 1, snap.stderr
            assert "the snapshot ref is locked by another writer" in snap.stderr
        else:
            assert snap.returncode == 0, snap.stderr
        repair = _run(root, "verify", "--repair")
        assert repair.returncode == 0, repair.stderr
        assert lock.exists(), f"{name} was removed while pid {holder.pid} held it open"
        respected += 1
        holder.kill()
        holder.wait(10)
        lock.unlink()
        # A dead holder: the next write (known names) or verify --repair (any name) clears it.
        _dead_holder(lock)
        (root / "a.txt").write_text(f"dead {trial}\n")
        snap = _run(root, "snapshot")
        assert snap.returncode == 0, snap.stderr
        if name in KNOWN_LOCKS:
            assert not lock.exists(), f"{name} of a dead writer survived a snapshot"
        repair = _run(root, "verify", "--repair")
        assert repair.returncode == 0, repair.stderr
        assert not lock.exists(), f"{name} of a dead writer survived verify --repair"
        cleared += 1
    assert fsck_problems(paths) is None
    logged = [e for e in event_lines(paths) if e.get("event") in ("repair", "verify")]
    assert logged, "clearing a lock must be on the record"
    record("3", stale_locks_cleaned=cleared, live_locks_respected=respected)


def test_stale_lock_is_not_cleared_until_guardian_holds_its_own_lock(
    tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    root, paths = _project(tmp_path)
    stale = paths.repo / "refs" / "heads" / "snapshots.lock"
    _dead_holder(stale)
    # Another guardian-like process holds the store's writer lock (an flock) for now.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600); "
            "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, str(os.getpid()).encode()); print('held', flush=True); "
            "time.sleep(60)",
            str(paths.writer_lock),
        ],
        stdout=subprocess.PIPE,
    )
    procs.append(holder)
    assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
    repair = subprocess.Popen(
        guardian_argv("verify", "--repair"),
        cwd=root,
        env=guardian_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    procs.append(repair)
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:  # guardian waits for its lock; the stale file must stay meanwhile
        assert stale.exists(), "a stale lock was cleared while another process held guardian's writer lock"
        assert repair.poll() is None
        time.sleep(0.05)
    # In process, a bounded wait names the holder.
    with pytest.raises(LockHeld, match=f"pid {holder.pid}"):
        take_snapshot(Project.find(root), None, "manual", lock_timeout=0.2)
    holder.kill()
    holder.wait(10)
    out, err = repair.communicate(timeout=60)
    assert repair.returncode == 0, err
    assert not stale.exists()
    assert b"removed stale lock" in out
    record("3", stale_locks_cleaned=1, live_locks_respected=1)


def test_hand_made_guardian_lock_files_with_dead_pids_do_not_block(tmp_path: Path) -> None:
    """writer.lock and watcher.lock are flocks: a leftover file naming a dead pid is no obstacle."""
    root, paths = _project(tmp_path)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    ).stdout.strip()
    for lock in (paths.writer_lock, paths.watcher_lock):
        lock.write_text(f"{dead}\n")
    (root / "a.txt").write_text("two\n")
    started = time.monotonic()
    assert _run(root, "snapshot").returncode == 0
    assert time.monotonic() - started < 10
    r = run_cli("status", "--json", cwd=root)
    assert r.exit_code == 0, r.stderr
    assert '"running": false' in r.stdout.replace('"running":false', '"running": false')
    record("3", stale_locks_cleaned=2)


def _setpriv() -> str | None:
    return shutil.which("setpriv") if os.geteuid() == 0 else None


@pytest.mark.skipif(_setpriv() is None, reason="needs root and setpriv to run the holder as another user")
def test_live_holder_owned_by_another_user_is_respected(
    request: pytest.FixtureRequest, procs: list[subprocess.Popen[bytes]]
) -> None:
    """guardian runs as one user; a process of another user (whose /proc/PID/fd it cannot read) holds the lock.

    The holder scan must not mistake "cannot see" for "dead".
    """
    # pytest's temp dirs are private to root: this test needs a tree the other user can reach.
    base = Path(tempfile.mkdtemp(prefix="guardian-reliability-"))
    request.addfinalizer(lambda: shutil.rmtree(base, ignore_errors=True))
    base.chmod(0o755)
    root = base / "proj"
    root.mkdir()
    home = base / "home"
    home.mkdir()
    for path in (root, home):
        os.chown(path, 65534, 65534)
    drop = [_setpriv() or "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    env = guardian_env(HOME=str(home), GUARDIAN_HOME=str(home / "guardian"))

    def as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*drop, *guardian_argv(*args)], cwd=root, env=env, capture_output=True, text=True, timeout=60, check=False
        )

    (root / "a.txt").write_text("one\n")
    os.chown(root / "a.txt", 65534, 65534)
    r = as_nobody("init")
    if r.returncode != 0:
        pytest.skip(f"cannot run guardian as nobody here: {r.stderr.strip()}")
    store = next((home / "guardian").iterdir())
    lock = store / "repo.git" / "refs" / "heads" / "snapshots.lock"
    holder = _live_holder(lock, ["setpriv", "--reuid=65533", "--regid=65533", "--clear-groups"])
    procs.append(holder)
    wait_until(lambda: Path(f"/proc/{holder.pid}/exe").exists(), "the holder to start")
    (root / "a.txt").write_text("two\n")
    snap = as_nobody("snapshot")
    still_there = lock.exists()
    record("3", live_locks_respected=int(still_there))
    assert still_there, f"the lock of a live process (pid {holder.pid}, another user) was removed: {snap.stdout}"
    assert snap.returncode == 1
