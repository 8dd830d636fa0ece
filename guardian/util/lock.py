"""One writer per store: OS-level advisory locks that die with their holder.

flock(2) locks are released by the kernel when the holding process exits, even
under SIGKILL, so a crash never leaves a lock that needs manual cleanup.  The
holder's pid is written into the file only so that error messages can name it.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from types import TracebackType

from guardian.errors import LockHeld, OperationFailed


def read_holder_pid(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class FileLock:
    """An exclusive flock on a file, acquired with a bounded wait."""

    def __init__(self, path: Path, what: str, timeout: float = 0.0) -> None:
        self.path = path
        self.what = what
        self.timeout = timeout
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:
            # The pid only names the holder in messages, but a disk that cannot take these
            # few bytes cannot take a snapshot either: say so cleanly, holding nothing.
            os.close(fd)
            raise OperationFailed(
                f"cannot write to the lock file {self.path}: {exc.strerror or exc}; check free space and permissions"
            ) from None
        self._fd = fd
        return True

    def acquire(self) -> FileLock:
        deadline = time.monotonic() + self.timeout
        delay = 0.005
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                raise LockHeld(self.what, read_holder_pid(self.path))
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
        return self

    def release(self) -> None:
        if self._fd is not None:
            # Clear the pid first so a reader never names a process that let go.
            try:
                os.ftruncate(self._fd, 0)
            except OSError:
                pass  # informational only, as in try_acquire
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def is_locked(path: Path) -> bool:
    """True if some process holds an flock on path right now."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def lock_file_holders(path: Path) -> list[int] | None:
    """Pids that have path open, found through /proc (Linux).  Empty where /proc is absent.

    None means "unknown": no holder was seen, but the open files of some process
    (another user's, or a non-dumpable one) could not be read, so one may hold it.
    """
    holders: list[int] = []
    unknown = False
    proc = Path("/proc")
    if not proc.is_dir():
        return holders
    target = os.path.realpath(path)
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                try:
                    if os.readlink(fd) == target:
                        holders.append(int(entry.name))
                        break
                except OSError:
                    # Some listable fds still refuse readlink (a process guarded by an LSM or
                    # another namespace, even from root): skipped, as counting them as unknown
                    # would make every lock look held.
                    continue
        except PermissionError:
            unknown = True  # cannot see this process's files: that is not "it has none open"
        except OSError:
            continue  # the process exited meanwhile
    return None if unknown and not holders else holders
