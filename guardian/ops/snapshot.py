"""``guardian snapshot``: one capture inside a write session, making room first when the store is near a limit."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from guardian.capture.budget import capture_budget
from guardian.capture.engine import ProgressFn, SnapshotResult
from guardian.errors import OperationFailed
from guardian.ops.session import write_session
from guardian.project import Project


def take_snapshot(
    project: Project,
    paths: Iterable[str] | None,
    trigger: str,
    *,
    progress: ProgressFn | None = None,
    lock_timeout: float | None = None,
    **kwargs: Any,
) -> SnapshotResult:
    """Lock the store, make the catalog agree with git, and capture."""
    project.require_store()
    budget = capture_budget(project)
    if budget.usage.state != "ok":
        # Near a size limit: gc first, then skip the largest files.  Only then does the lifecycle
        # layer load (about 10 ms of imports, on every git hook's snapshot otherwise).
        from guardian.lifecycle.gc import capture_budget_with_room

        budget = capture_budget_with_room(project)
    with write_session(project, trigger, lock_timeout=lock_timeout, budget=budget) as session:
        try:
            return session.capture.run(paths, trigger, progress=progress, **kwargs)
        except OSError as exc:
            raise OperationFailed(
                f"snapshot failed: {exc.strerror or exc} ({exc.filename or project.paths.store})"
            ) from None
