"""The pure parse checks of a large capture, run in worker processes on the other cores.

``compile()`` of a Python file and the JSON, YAML and TOML parsers hold the GIL, and on a
first snapshot of small source files they are a third of the work.  A capture with at
least ``MIN_FILES`` files to look at hands them to forked workers a batch at a time
(``validate.pure_findings``), while it reads, hashes and stores the next batch itself.
Everything else about a verdict (the shrink and torn-write heuristics, SQLite, shell and
user command checks, open writers) is still decided in the capture's own process, so a
verdict does not depend on where its checks ran: a batch a worker could not finish
(an exception, a worker killed) is simply checked again in the capture's process.

Workers are forked (Linux only: macOS would have to spawn fresh interpreters, which costs
more than it saves, and cannot make them die with guardian), only from a process with one
thread, since a fork copies no other thread and so none of the locks they hold.  Each worker
dies with guardian (``PR_SET_PDEATHSIG``: a SIGKILLed ``guardian init`` leaves no worker
behind), ignores ^C (guardian itself stops them), touches no file and starts no process.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from guardian.capture.checkproc import die_with_parent
from guardian.capture.validate import Finding, pure_findings

if TYPE_CHECKING:
    from concurrent.futures import Future, ProcessPoolExecutor  # only annotations: the module loads with a pool

# Below this many files a capture checks them itself: starting workers costs more than it saves.
MIN_FILES = 2000
# At most this many workers: the capture's own process reads and stores, and is the slower side.
MAX_WORKERS = 4

ParseJob = tuple[str, bytes, tuple[str, ...]]  # (path, content, names of the PURE_CHECKS to run)
Parsed = dict[str, Finding | None]  # check name -> what it found (None: nothing)


def worker_count(files: int) -> int:
    """How many workers a capture of this many files gets: 0 means it checks them itself."""
    if files < MIN_FILES or not sys.platform.startswith("linux") or threading.active_count() > 1:
        return 0
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(0, min(MAX_WORKERS, cpus - 1))


def _start_worker(parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # ^C goes to the whole group: guardian stops the pool
    arm = die_with_parent(parent)
    if arm is not None:
        arm()


def _parse_batch(jobs: Sequence[ParseJob]) -> list[Parsed | None]:
    """Each job's findings; None for one whose check raised (the capture runs it again itself)."""
    results: list[Parsed | None] = []
    for rel, data, names in jobs:
        try:
            results.append(pure_findings(rel, data, names))
        except Exception:  # noqa: BLE001 - the capture's own run of the check reports it
            results.append(None)
    return results


class ParsePool:
    """Worker processes that run pure parse checks; ``submit`` returns a way to wait for a batch."""

    def __init__(self, executor: ProcessPoolExecutor) -> None:
        self._executor = executor

    def submit(self, jobs: list[ParseJob]) -> Callable[[], list[Parsed | None]]:
        """Start checking jobs; the returned callable waits for their findings (None where not run)."""
        if not jobs:
            return list
        future: Future[list[Parsed | None]] | None
        try:
            future = self._executor.submit(_parse_batch, jobs)
        except RuntimeError:  # a broken pool (a worker was killed): the capture checks them itself
            future = None

        def wait() -> list[Parsed | None]:
            if future is not None:
                try:
                    return future.result()
                except Exception:  # noqa: BLE001 - BrokenProcessPool and the like: check them here
                    pass
            return [None] * len(jobs)

        return wait


@contextmanager
def parse_pool(files: int) -> Iterator[ParsePool | None]:
    """Workers for a capture of this many files, stopped at the end; None when it is not worth it."""
    workers = worker_count(files)
    if workers == 0:
        yield None
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    executor = ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("fork"), initializer=_start_worker, initargs=(os.getpid(),)
    )
    try:
        yield ParsePool(executor)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
