"""guardian.util.lock: real flock(2) locks, held by this process or by a second real process."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from guardian.errors import LockHeld
from guardian.util.lock import FileLock, is_locked, lock_file_holders, pid_alive, read_holder_pid

# Takes the lock, says so, and keeps it until its stdin closes.
_HOLDER = """
import sys
from pathlib import Path
from guardian.util.lock import FileLock
lock = FileLock(Path(sys.argv[1]), "test").acquire()
print("held", flush=True)
sys.stdin.read()
lock.release()
print("released", flush=True)
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """A second process that holds an flock on tmp_path/writer.lock."""
    path = tmp_path / "writer.lock"
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "held\n"
        yield proc, path
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


def test_the_lock_is_exclusive_within_one_process(tmp_path: Path) -> None:
    path = tmp_path / "a.lock"
    first = FileLock(path, "the store S")
    second = FileLock(path, "the store S")
    assert first.try_acquire() is True
    assert first.held
    assert second.try_acquire() is False  # flock is per open file: a second open is a second owner
    assert not second.held
    first.release()
    assert not first.held
    assert second.try_acquire() is True
    second.release()


def test_held_lock_names_its_holder_after_the_timeout(tmp_path: Path) -> None:
    path = tmp_path / "a.lock"
    with FileLock(path, "the store S"):
        waiter = FileLock(path, "the store S", timeout=0.3)
        started = time.monotonic()
        with pytest.raises(LockHeld) as info:
            waiter.acquire()
        waited = time.monotonic() - started
    assert str(info.value) == f"the store S is locked by pid {os.getpid()}; wait for it to finish or stop it"
    assert info.value.pid == os.getpid()
    assert 0.3 <= waited < 5
    assert not waiter.held


def test_a_holder_without_a_pid_is_another_process(tmp_path: Path) -> None:
    path = tmp_path / "a.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a holder that wrote nothing
        with pytest.raises(LockHeld) as info:
            FileLock(path, "the watcher lock").acquire()
    finally:
        os.close(fd)
    assert str(info.value) == "the watcher lock is locked by another process; wait for it to finish or stop it"
    assert info.value.pid is None


def test_released_on_exit_and_on_error(tmp_path: Path) -> None:
    path = tmp_path / "a.lock"
    with FileLock(path, "x") as lock:
        assert lock.held
        assert is_locked(path)
        assert read_holder_pid(path) == os.getpid()
        assert path.read_text() == f"{os.getpid()}\n"
        assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert not lock.held
    assert not is_locked(path)
    assert read_holder_pid(path) is None  # the pid is cleared before the lock is let go
    assert path.read_bytes() == b""

    with pytest.raises(RuntimeError), FileLock(path, "x") as lock:
        raise RuntimeError("boom")
    assert not lock.held and not is_locked(path)
    lock.release()  # a second release is harmless


def test_a_waiter_gets_the_lock_once_it_is_released(tmp_path: Path, holder: tuple[subprocess.Popen[str], Path]) -> None:
    proc, path = holder
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.close()  # the holder releases and exits
    with FileLock(path, "x", timeout=30) as lock:
        assert lock.held
        assert read_holder_pid(path) == os.getpid()
    assert proc.stdout.readline() == "released\n"


def test_another_process_holding_the_lock(holder: tuple[subprocess.Popen[str], Path]) -> None:
    proc, path = holder
    assert is_locked(path)
    assert read_holder_pid(path) == proc.pid
    assert pid_alive(proc.pid)
    holders = lock_file_holders(path)
    assert holders is not None and proc.pid in holders
    with pytest.raises(LockHeld) as info:
        FileLock(path, f"the store {path.parent}", timeout=0.2).acquire()
    assert str(info.value) == (f"the store {path.parent} is locked by pid {proc.pid}; wait for it to finish or stop it")


def test_the_kernel_releases_the_lock_of_a_killed_holder(holder: tuple[subprocess.Popen[str], Path]) -> None:
    proc, path = holder
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert not pid_alive(proc.pid)
    assert not is_locked(path)
    # The dead holder's pid is still in the file: it names a holder only while the lock is held.
    assert read_holder_pid(path) == proc.pid
    with FileLock(path, "x", timeout=0) as lock:
        assert lock.held
        assert read_holder_pid(path) == os.getpid()


def test_is_locked_on_a_missing_file_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "none.lock"
    assert is_locked(path) is False
    assert not path.exists()


@pytest.mark.parametrize(
    ("content", "expected"), [(b"1234\n", 1234), (b"  77  ", 77), (b"", None), (b"12ab\n", None), (b"-5\n", None)]
)
def test_read_holder_pid(tmp_path: Path, content: bytes, expected: int | None) -> None:
    path = tmp_path / "a.lock"
    path.write_bytes(content)
    assert read_holder_pid(path) == expected


def test_read_holder_pid_of_a_missing_file(tmp_path: Path) -> None:
    assert read_holder_pid(tmp_path / "none.lock") is None


def test_lock_file_holders_sees_this_process(tmp_path: Path) -> None:
    path = tmp_path / "a.lock"
    with FileLock(path, "x"):
        holders = lock_file_holders(path)
        assert holders is not None and os.getpid() in holders
    assert lock_file_holders(path) in ([], None)
