"""Check processes (``command`` checks, ``bash -n``): each runs in its own process group that never outlives guardian.

A check runs in a new session, so its process group is its own, and when it ends (exits,
times out, or guardian gives up on it) the whole group is killed: a check that
backgrounded a child (``sleep 600 &``) leaves nothing running.  The group is killed
while the check's leader is still an unreaped zombie, so its process-group id cannot
have been reused by then.

guardian itself may die during a check (SIGKILL, an OOM kill).  On Linux the leader
is then killed by the kernel (``PR_SET_PDEATHSIG``).  Its children cannot be told that
way, so every check process carries ``GUARDIAN_CHECK_DIR=<its private directory>`` in
its environment, the directory is named after guardian's pid, and the next guardian
that runs a check (or starts watching) sweeps directories whose guardian is gone: it
kills the processes that still carry the marker and removes the directory with the
copy of the user's file in it.  ``die_with_parent`` also makes a large capture's parse
workers (``capture.parsepool``) die with guardian.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from guardian.util.lock import pid_alive

CHECK_DIR_PREFIX = "guardian-check-"
MARKER_ENV = "GUARDIAN_CHECK_DIR"
# A directory of the older form (no pid in its name) is stale once it is this old:
# no check runs that long.
STALE_UNNAMED_AFTER = 3600.0

_PR_SET_PDEATHSIG = 1
_swept = False


def die_with_parent(parent: int | None = None) -> Callable[[], None] | None:
    """A function that makes the process calling it die with the thread that started it (Linux only).

    The child calls it: a check as its preexec_fn, a parse worker (``capture.parsepool``) as it
    starts.  ``parent`` is the pid that started the child: by default the process making it.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid() if parent is None else parent

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # guardian died before the signal was armed
            os.kill(os.getpid(), signal.SIGKILL)

    return arm


def run_check(
    argv: list[str], timeout: float, workdir: Path, env: dict[str, str] | None, cwd: Path | None = None
) -> int | None:
    """Run argv in its own process group, output to workdir/stdout and workdir/stderr.

    Returns the exit code (negative: killed by that signal), or None when it ran past
    ``timeout``.  Either way nothing of its group is left running.  Raises OSError
    (FileNotFoundError for a missing program) when it cannot be started.
    """
    import subprocess  # here: only a command check starts a process, and subprocess costs ~5 ms to import

    marked = {**(os.environ if env is None else env), MARKER_ENV: str(workdir)}
    with open(workdir / "stdout", "wb") as out, open(workdir / "stderr", "wb") as err:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=marked,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
    exited = False
    try:
        exited = _wait_unreaped(proc.pid, timeout)
    finally:
        # The leader, if it exited, is a zombie until proc.wait(): its group id is still ours.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
        code = proc.wait()
    return code if exited else None


def _wait_unreaped(pid: int, timeout: float) -> bool:
    """Wait up to timeout for pid to exit, leaving it unreaped; whether it exited."""
    deadline = time.monotonic() + timeout
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    try:
        delay = 0.001
        while True:
            try:
                if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                    return True
            except ChildProcessError:
                return True  # reaped already: it has exited
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if pidfd is not None:
                # Readable once the process exits: no polling delay on the common path.
                select.select([pidfd], [], [], left)
            else:
                time.sleep(min(delay, left))
                delay = min(delay * 2, 0.05)
    finally:
        if pidfd is not None:
            os.close(pidfd)


@contextmanager
def private_check_dir() -> Iterator[Path]:
    """A new 0700 directory for one check, named after this process, removed afterwards.

    The first one a process makes also sweeps the directories of guardians that died.
    """
    global _swept
    if not _swept:
        _swept = True
        sweep_stale_check_dirs()
    import tempfile  # only when a check runs: not on a git hook's capture (~3 ms)

    # mkdtemp creates the directory 0700, so other users cannot read the copies of project files.
    with tempfile.TemporaryDirectory(prefix=f"{CHECK_DIR_PREFIX}{os.getpid()}-") as name:
        yield Path(name)


def sweep_stale_check_dirs(base: Path | None = None) -> list[Path]:
    """Kill what is left of checks whose guardian died, and remove their directories.

    Only this user's directories are looked at; one whose guardian is alive (or whose
    pid is in use again) is left alone.
    """
    import tempfile

    base = Path(tempfile.gettempdir()) if base is None else base
    swept: list[Path] = []
    try:
        entries = [e for e in os.scandir(base) if e.name.startswith(CHECK_DIR_PREFIX)]
    except OSError:
        return swept
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not entry.is_dir(follow_symlinks=False) or st.st_uid != os.geteuid():
            continue
        owner, sep, _rest = entry.name[len(CHECK_DIR_PREFIX) :].partition("-")
        if sep and owner.isdigit():
            if int(owner) == os.getpid() or pid_alive(int(owner)):
                continue
        elif time.time() - st.st_mtime < STALE_UNNAMED_AFTER:
            continue
        kill_marked(entry.path)
        shutil.rmtree(entry.path, ignore_errors=True)
        swept.append(Path(entry.path))
    return swept


def kill_marked(workdir: str) -> list[int]:
    """SIGKILL every process of this user whose environment carries this check directory's marker."""
    marker = f"{MARKER_ENV}={workdir}".encode()
    killed: list[int] = []
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return killed
    for pid in pids:
        if pid == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                environ = handle.read()
        except OSError:
            continue  # gone, or not ours to read
        if marker in environ.split(b"\0"):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                continue
            killed.append(pid)
    return killed
