"""The watcher's warm server process (guardian.warm.server): started with the watcher, stopped with it.

Started by module name in a fresh interpreter, not forked from the watcher: the watcher
has threads, and the server forks per command, which is only safe in a single-threaded
process.  ``GUARDIAN_WARM=0`` starts none (every command then runs in its own process).
The server ends with the watcher even under SIGKILL (its parent-death signal), so only
its socket file can outlive it, and the next server removes such leftovers.  It starts
once the watcher has caught up (its start rescan done): its ~0.5 s of imports would
otherwise compete for the CPU with the watcher's own start.  A server
that exits on its own (it found guardian's code changed, or it failed) is started again
after RESTART_INTERVAL, with the code then installed.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable

log = logging.getLogger("guardian.watch")

ENV_WARM = "GUARDIAN_WARM"  # guardian.warm.wire.ENV_WARM: that layer is above this one
STOP_WAIT = 5.0  # seconds the server gets to close its socket after SIGTERM
WAIT_READY = 0.1  # seconds between checks that the watcher has caught up
CHECK_EVERY = 0.5  # seconds between checks that the server still runs
RESTART_INTERVAL = 30.0  # at most one start per this many seconds: a server that keeps failing costs little
ENV_RESTART = "GUARDIAN_WARM_RESTART_SECONDS"  # another RESTART_INTERVAL (tests use a short one)


def restart_interval() -> float:
    try:
        return max(0.5, float(os.environ.get(ENV_RESTART, RESTART_INTERVAL)))
    except ValueError:
        return RESTART_INTERVAL


class WarmServer:
    """Keeps one warm server running beside the watcher, on a thread of its own."""

    def __init__(self, root: str, ready: Callable[[], bool] = lambda: True) -> None:
        self.root = root  # the watcher's project: the server compiles its path patterns ahead
        self.ready = ready  # true once the watcher has caught up: the first start waits for it
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.starts = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if os.environ.get(ENV_WARM) == "0":
            return
        self._thread = threading.Thread(target=self._keep, name="guardian-warm-server", daemon=True)
        self._thread.start()

    def _spawn(self) -> None:
        # -P: nothing from the current directory shadows guardian's modules in the server.
        argv = [sys.executable, "-P", "-m", "guardian.warm.server", "--parent", str(os.getpid()), "--root", self.root]
        self.started_at = time.monotonic()
        self.starts += 1
        try:
            self.process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, close_fds=True, cwd="/"
            )
        except OSError as exc:
            self.process = None
            log.warning("warm server not started (commands run in their own processes): %s", exc)

    def _keep(self) -> None:
        while not self.ready():
            if self._stop.wait(WAIT_READY):
                return
        self._spawn()
        while not self._stop.wait(CHECK_EVERY):
            process = self.process
            if process is not None and process.poll() is None:
                continue
            if time.monotonic() - self.started_at >= restart_interval() and not self._stop.is_set():
                if process is not None:
                    log.info("warm server exited (status %s); starting a new one", process.returncode)
                self._spawn()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(STOP_WAIT)
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(timeout=STOP_WAIT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
