"""The watcher's long-lived hold on the store: one ShadowRepo, Catalog and Capture for its whole run.

Opening them for every batch would cost more than most batches do.  Keeping them open is
safe because each capture still takes the project's writer lock, and first brings the
catalog up to date when another writer (a manual snapshot, a restore) committed since.
"""

from __future__ import annotations

import logging
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

Budget = Callable[[str, int], str | None]  # (path, size) -> why it is over the disk budget, or None


class StoreSession:
    """Open once with ``open``, capture many times, ``close`` at the end.

    ``keep`` is the watcher's own filter, so a ``.gitignore`` invalidation seen by the
    event handler reaches the capture too; ``budget`` is asked about every new file.
    """

    def __init__(self, project: Project, keep: PathFilter, budget: Budget) -> None:
        self.project = project
        self.keep = keep
        self._budget = budget
        self._repo: ShadowRepo | None = None
        self._catalog: Catalog | None = None
        self._capture: Capture | None = None

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

    @property
    def catalog(self) -> Catalog:
        assert self._catalog is not None, "the store session is not open"
        return self._catalog

    @property
    def repo(self) -> ShadowRepo:
        assert self._repo is not None, "the store session is not open"
        return self._repo

    def close(self) -> None:
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
