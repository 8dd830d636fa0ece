"""One write session: the sequence every writer of the store goes through, in one place.

Take the writer lock; clear and log what a killed writer left (stale git locks, temp
objects); open the catalog and catch it up with git; hand out a ``Capture``.  Restore,
rollback, snapshot, verify, the mirror and the git hooks all enter through here, so a
fix to the sequence reaches every one of them.  (The watcher keeps one store open for
its lifetime and runs the same steps through ``Project.sweep_store`` and ``sync_catalog``.)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from guardian.capture.engine import Capture
from guardian.catalog.sync import sync_catalog

if TYPE_CHECKING:
    from guardian.capture.budget import CaptureBudget
    from guardian.catalog.db import Catalog
    from guardian.project import Project
    from guardian.store.repo import ShadowRepo


@dataclass
class WriteSession:
    project: Project
    repo: ShadowRepo
    catalog: Catalog
    capture: Capture
    cleared: list[str]  # stale locks and temp files swept on entry (already logged)


@contextmanager
def write_session(
    project: Project,
    trigger: str,
    *,
    repo: ShadowRepo | None = None,
    lock_timeout: float | None = None,
    budget: CaptureBudget | None = None,
    deep_sweep: bool = False,
) -> Iterator[WriteSession]:
    """Hold the store for writing; the catalog is closed and the lock released on the way out."""
    repo = repo if repo is not None else project.open_repo()
    lock = project.writer_lock() if lock_timeout is None else project.writer_lock(lock_timeout)
    with lock:
        cleared = project.sweep_store(repo, trigger, deep=deep_sweep)
        catalog = project.open_catalog()
        try:
            sync_catalog(project.events, repo, catalog)
            capture = Capture(project, repo, catalog)
            if budget is not None:
                capture.budget = budget
            yield WriteSession(project, repo, catalog, capture, cleared)
        finally:
            catalog.close()
