"""The watcher's long-lived hold on the store: one ShadowRepo, Catalog and Capture for its whole run.

Opening them for every batch would cost more than most batches do.  Keeping them open is
safe because each capture still takes the project's writer lock, and first brings the
catalog up to date when another writer (a manual snapshot, a restore) committed since.
A thread of its own scans, a slice at a time, the versions short commands queued for the
secret scan (guardian.capture.secret_record).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from guardian.capture.checkproc import sweep_stale_check_dirs
from guardian.capture.engine import Capture, ProgressFn, SnapshotResult
from guardian.errors import GuardianError

if TYPE_CHECKING:
    from guardian.capture.filters import PathFilter
    from guardian.catalog.db import Catalog
    from guardian.project import Project
    from guardian.store.repo import ShadowRepo

# The watcher's log file names the logger on every line; these lines have always been the watcher's.
log = logging.getLogger("guardian.watch.watcher")

# The secret-scan queue's thread: how often it looks for a queue, and its pause between slices
# (about half its time, so a capture or a restore gets the writer lock between two slices).
QUEUE_IDLE_PAUSE = 1.0
QUEUE_BUSY_PAUSE = 0.05

Budget = Callable[[str, int], str | None]  # (path, size) -> why it is over the disk budget, or None


class StoreSession:
    """Open once with ``open``, capture many times, ``close`` at the end.

    ``keep`` is the watcher's own filter, so a ``.gitignore`` invalidation seen by the
    event handler reaches the capture too; ``budget`` is asked about every new file.
    """

    def __init__(self, project: Project, keep: PathFilter, budget: Budget, scan_after: threading.Event) -> None:
        self.project = project
        self.keep = keep
        self._budget = budget
        self._repo: ShadowRepo | None = None
        self._catalog: Catalog | None = None
        self._capture: Capture | None = None
        self._stop_scanning = threading.Event()
        self._scanner: threading.Thread | None = None
        # The watcher's caught_up: what changed while no watcher ran comes before the queue.  The
        # scan's library load (~0.3 s) and its slices (half the interpreter, the GIL's) otherwise
        # ran in the middle of that start rescan: 5 s at 100k files, and longer.
        self._scan_after = scan_after

    def open(self) -> None:
        from guardian.catalog.sync import sync_catalog

        repo = self.project.open_repo()
        catalog = self.project.open_catalog()
        try:
            with self.project.writer_lock():
                # A writer killed by SIGKILL leaves git lock files and temp objects behind;
                # holding guardian's writer lock, nobody else can be using them.
                cleared = self.project.sweep_store(repo, "watch", deep=True)
                if cleared:
                    log.info("cleared %d stale lock/temp file(s)", len(cleared))
                sync_catalog(self.project.events, repo, catalog)
            # A guardian killed during a check left its check's children and a copy of a file behind.
            swept = sweep_stale_check_dirs()
            if swept:
                log.info("removed %d check director(ies) of guardians that died", len(swept))
        except BaseException:
            catalog.close()
            raise
        self._repo = repo
        self._catalog = catalog
        self._capture = self._new_capture()
        self._stop_scanning.clear()
        self._scanner = threading.Thread(target=self._scan_queue, name="guardian-secret-queue", daemon=True)
        self._scanner.start()

    def use(self, project: Project, keep: PathFilter) -> None:
        """The policy was reloaded: capture with its rules and the new filter from now on."""
        self.project = project
        self.keep = keep
        self._capture = self._new_capture()

    def capture(self, paths: list[str] | None, reason: str, progress: ProgressFn) -> SnapshotResult:
        """Snapshot these paths, or with None whatever a full rescan finds changed."""
        from guardian.catalog.sync import sync_catalog

        assert self._repo is not None and self._catalog is not None and self._capture is not None
        with self.project.writer_lock():
            if self._catalog.indexed_head != self._repo.head():
                # Someone else (a manual snapshot, a restore) committed since our last batch.
                sync_catalog(self.project.events, self._repo, self._catalog)
            if paths == []:
                return SnapshotResult(None, None, time.time(), "watch")
            try:
                return self._capture.run(paths, "watch", progress=progress, details={"reason": reason})
            except GuardianError:
                # A dead git writer's ref lock blocks every commit; clear it (we hold the lock) and retry once.
                if not self.project.sweep_store(self._repo, "watch"):
                    raise
                return self._capture.run(paths, "watch", progress=progress, details={"reason": reason})

    def _scan_queue(self) -> None:
        """The secret-scan queue's thread: slices of at most ``WATCH_SCAN_BUDGET`` seconds, oldest first.

        init, restores and git hooks append their versions to secrets-pending.jsonl.  Each slice
        holds the writer lock (a flock of its own: captures wait for it, the ~50 ms at most)
        and never waits for it: a writer holding it (a capture, a restore) goes first.  Nothing
        is scanned before the warm-up thread has loaded detect-secrets (a queue starts it), nor
        before ``scan_after`` is set.
        """
        from guardian.capture.secret_record import queue_waiting, scan_queued
        from guardian.capture.secrets import detector_ready, warm_up

        while not self._scan_after.wait(QUEUE_BUSY_PAUSE):
            if self._stop_scanning.is_set():
                return
        repo: ShadowRepo | None = None
        pause = QUEUE_IDLE_PAUSE
        while not self._stop_scanning.wait(pause):
            pause = QUEUE_IDLE_PAUSE
            project = self.project  # a policy reload swaps it
            if not queue_waiting(project.paths.store):
                continue
            if not detector_ready():
                warm_up()  # once per process, on a thread of its own
                continue
            lock = project.writer_lock(timeout=0.0)
            try:
                if repo is None:
                    repo = project.open_repo()  # its own: a pygit2 repository is not shared across threads
                if not lock.try_acquire():
                    pause = QUEUE_BUSY_PAUSE
                    continue
                try:
                    found = scan_queued(project, repo)
                    if found:
                        project.events.append_many(found, durable=False)
                        log.info("secret scan of the queue: %d version(s) hold a secret", len(found))
                finally:
                    lock.release()
                pause = QUEUE_BUSY_PAUSE
            except (GuardianError, OSError) as exc:  # a full disk: the queue stays, try again later
                log.warning("could not scan the queued versions for secrets: %s", exc)
            except Exception:
                log.exception("secret scan of the queue failed")

    @property
    def catalog(self) -> Catalog:
        assert self._catalog is not None, "the store session is not open"
        return self._catalog

    @property
    def repo(self) -> ShadowRepo:
        assert self._repo is not None, "the store session is not open"
        return self._repo

    def close(self) -> None:
        self._stop_scanning.set()
        if self._scanner is not None:
            self._scanner.join(10)  # one slice: about WATCH_SCAN_BUDGET seconds
            self._scanner = None
        if self._catalog is not None:
            self._catalog.close()
        self._catalog = None
        self._capture = None
        self._repo = None

    def _new_capture(self) -> Capture:
        assert self._repo is not None and self._catalog is not None
        capture = Capture(self.project, self._repo, self._catalog)
        capture.keep = self.keep  # one filter, so a .gitignore invalidation reaches both
        capture.budget = self._budget
        return capture
