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
from typing import TYPE_CHECKING

from guardian.capture.engine import Capture
from guardian.catalog.sync import sync_catalog

if TYPE_CHECKING:
    from guardian.capture.budget import CaptureBudget
    from guardian.catalog.db import Catalog
    from guardian.project import Project
    from guardian.store.repo import ShadowRepo


class WriteSession:
    """What a writer holds: the store, the catalog and a capture over them.

    A plain slotted class, not a dataclass (~1 ms of generated methods on every writer's
    import, the git hooks' included): it is read by attribute, never compared or printed.
    """

    __slots__ = ("capture", "catalog", "cleared", "project", "repo")

    def __init__(
        self, project: Project, repo: ShadowRepo, catalog: Catalog, capture: Capture, cleared: list[str]
    ) -> None:
        self.project = project
        self.repo = repo
        self.catalog = catalog
        self.capture = capture
        self.cleared = cleared  # stale locks and temp files swept on entry (already logged)


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
