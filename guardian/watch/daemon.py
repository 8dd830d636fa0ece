"""The watcher as a process: one authority per project, signals, log file, start and stop.

One watcher per project is enforced by an flock on ``watcher.lock`` held for the
watcher's lifetime.  The kernel drops it when the process dies, even under
SIGKILL, so a restart never needs manual cleanup; the pid written into the file
is only there so that messages can name the holder.

``guardian start`` spawns ``guardian watch --ready-fd N`` in its own session and
waits until the child writes "ready <mode>" on that pipe (the lock is held and
the observer is running).  If the child dies first, its stderr (``watcher.out``
in the store) explains why.  ``guardian stop`` sends SIGTERM to the lock holder
and waits for the lock to be released; the watcher flushes pending changes first.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import select
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from guardian.errors import OperationFailed, WatcherNotRunning, WatcherRunning
from guardian.project import Project
from guardian.util.lock import FileLock, is_locked, read_holder_pid
from guardian.watch.warm_process import WarmServer

if TYPE_CHECKING:
    from guardian.watch.watcher import WatchOptions

START_TIMEOUT = 30.0
STOP_TIMEOUT = 60.0
LOG_MAX_BYTES = 2 * 1024 * 1024
LOG_BACKUPS = 3
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def watcher_out(project: Project) -> Path:
    """The background watcher's stdout and stderr (startup errors land here)."""
    return project.paths.store / "watcher.out"


def holder_pid(path: Path, wait: float = 1.0) -> int | None:
    """The pid in a held lock file, allowing the holder a moment to write it."""
    deadline = time.monotonic() + wait
    while True:
        pid = read_holder_pid(path)
        if pid is not None or time.monotonic() >= deadline:
            return pid
        time.sleep(0.02)


def acquire_watcher_lock(project: Project) -> FileLock:
    lock = FileLock(project.paths.watcher_lock, f"the watcher of {project.root}", 0.0)
    if not lock.try_acquire():
        raise WatcherRunning(project.root, holder_pid(project.paths.watcher_lock))
    return lock


# --------------------------------------------------------------------------- the watcher process


@contextmanager
def watcher_logging(project: Project, echo: bool) -> Iterator[None]:
    """Log to the rotating file in the store (and to stderr when in a terminal)."""
    logger = logging.getLogger("guardian")
    handlers: list[logging.Handler] = []
    file_handler = logging.handlers.RotatingFileHandler(
        project.paths.watcher_log, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
    )
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"))
    handlers.append(file_handler)
    if echo:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(logging.Formatter("guardian watch: %(message)s"))
        handlers.append(stream)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    for handler in handlers:
        logger.addHandler(handler)
    try:
        yield
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
            handler.close()
        logger.setLevel(old_level)


@contextmanager
def stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """SIGTERM, SIGINT and SIGHUP ask for a graceful stop (flush, then exit 0)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(_signum: int, _frame: FrameType | None) -> None:
        stop()

    previous: dict[signal.Signals, Any] = {}
    for sig in _STOP_SIGNALS:
        previous[sig] = signal.signal(sig, handle)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@dataclass
class WatchSummary:
    pid: int
    mode: str
    snapshots: int
    rescans: int
    restarts: int


def run_watcher(
    project: Project,
    *,
    ready_fd: int | None = None,
    echo: bool = True,
    options: WatchOptions | None = None,
) -> WatchSummary:
    """Be the project's watcher until a stop signal; ``ready_fd`` gets "ready <mode>" once watching."""
    if ready_fd is not None:
        try:
            os.setsid()  # detach from the starting terminal's session and its signals
        except OSError:
            pass  # already a session leader
    project.require_store()
    lock = acquire_watcher_lock(project)
    try:
        from guardian.watch.watcher import Watcher

        def on_ready(watcher: Watcher) -> None:
            if ready_fd is not None:
                try:
                    os.write(ready_fd, f"ready {watcher.mode}\n".encode())
                finally:
                    os.close(ready_fd)

        with watcher_logging(project, echo), warnings.catch_warnings():
            # watchdog warns when a quick "mkdir -p a/b" makes it watch a/b twice; harmless noise in the log.
            warnings.filterwarnings("ignore", r"Callback with id .* already exists", RuntimeWarning)
            watcher = Watcher(project, options, on_ready=on_ready)
            # Answers guardian commands while this watcher runs (guardian.warm), from when it has caught up.
            warm = WarmServer(str(project.root), ready=watcher.caught_up.is_set)
            warm.start()
            try:
                with stop_on_signals(watcher.request_stop):
                    watcher.run()
            finally:
                warm.stop()
    finally:
        lock.release()
    s = watcher.stats
    return WatchSummary(os.getpid(), watcher.mode, s.snapshots, s.rescans, s.restarts)


# --------------------------------------------------------------------------- start and stop


@dataclass
class StartReport:
    pid: int
    mode: str
    log: Path

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "mode": self.mode, "log": str(self.log)}


def start_watcher(project: Project, timeout: float = START_TIMEOUT) -> StartReport:
    """Launch a detached watcher and return once it is watching."""
    project.require_store()
    if is_locked(project.paths.watcher_lock):
        raise WatcherRunning(project.root, holder_pid(project.paths.watcher_lock))
    out = watcher_out(project)
    read_end, write_end = os.pipe()
    try:
        os.set_inheritable(write_end, True)
        # -P: the child starts in this process's directory, often the project's root; `-m` would put
        # it first on sys.path, and a guardian/ package of the project's own would be the watcher.
        argv = [sys.executable, "-P", "-m", "guardian", "-C", str(project.root), "watch", "--ready-fd", str(write_end)]
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(out), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
            (os.POSIX_SPAWN_DUP2, 1, 2),
            (os.POSIX_SPAWN_CLOSE, read_end),
        ]
        pid = os.posix_spawn(sys.executable, argv, dict(os.environ), file_actions=actions)
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    try:
        line = _read_line(read_end, timeout)
    finally:
        os.close(read_end)
    if line is None:
        _terminate(pid)
        raise OperationFailed(
            f"the watcher (pid {pid}) did not become ready within {timeout:g}s and was stopped; "
            f"see {project.paths.watcher_log} and {out}"
        )
    if not line.startswith("ready"):
        _reap(pid, wait=2.0)
        raise OperationFailed(f"the watcher failed to start: {_last_error(out)}")
    mode = line.split(" ", 1)[1].strip() if " " in line else "unknown"
    return StartReport(pid, mode, project.paths.watcher_log)


def _read_line(fd: int, timeout: float) -> str | None:
    """One line from fd; "" when the writer closed it without one; None on timeout."""
    deadline = time.monotonic() + timeout
    buf = b""
    while b"\n" not in buf:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        readable, _, _ = select.select([fd], [], [], remaining)
        if not readable:
            continue
        chunk = os.read(fd, 256)
        if not chunk:
            return ""
        buf += chunk
    return buf.split(b"\n", 1)[0].decode("utf-8", "replace")


def _last_error(out: Path) -> str:
    try:
        lines = [line.strip() for line in out.read_text(encoding="utf-8", errors="replace").splitlines()]
    except OSError:
        lines = []
    lines = [line for line in lines if line]
    if not lines:
        return f"it exited without saying why (see {out})"
    last = lines[-1]
    return last.removeprefix("guardian: error: ")


def _terminate(pid: int, grace: float = 3.0) -> None:
    """SIGTERM our child, and SIGKILL it if it is still there after grace seconds (a watcher loses nothing)."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        if _reap(pid, wait):
            return


def _reap(pid: int, wait: float = 0.0) -> bool:
    """Collect our own child's exit status so it does not linger as a zombie; True once it is gone."""
    deadline = time.monotonic() + wait
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return True  # not our child (or already collected)
        if done:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


@dataclass
class StopReport:
    pid: int
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "seconds": round(self.seconds, 3)}


def stop_watcher(project: Project, timeout: float = STOP_TIMEOUT) -> StopReport:
    """SIGTERM the watcher, then wait until it has flushed and let go of its lock."""
    lock_path = project.paths.watcher_lock
    if not is_locked(lock_path):
        raise WatcherNotRunning(project.root)
    pid = holder_pid(lock_path)
    if pid is None:
        raise OperationFailed(f"the watcher lock {lock_path} is held but names no pid; stop the watcher by hand")
    started = time.monotonic()
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass  # it is exiting already; wait for the lock below
    except PermissionError:
        raise OperationFailed(
            f"cannot signal the watcher (pid {pid}): permission denied; stop it as the user that started it"
        ) from None
    deadline = started + timeout
    while is_locked(lock_path):
        if time.monotonic() >= deadline:
            raise OperationFailed(
                f"the watcher (pid {pid}) did not stop within {timeout:g}s; it may still be flushing a large "
                f"batch (see {project.paths.watcher_log}); 'kill -9 {pid}' loses nothing, the next start rescans"
            )
        time.sleep(0.05)
    _reap(pid)
    return StopReport(pid, time.monotonic() - started)
