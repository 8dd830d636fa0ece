"""The watcher's maintenance: the store's disk budget, and when to gc and push, on a thread of its own."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from guardian.capture.budget import CaptureBudget, measure_usage, protected_matcher
from guardian.lifecycle.gc import maybe_gc

if TYPE_CHECKING:
    from guardian.project import Project

log = logging.getLogger("guardian.watch.maintenance")


class Maintenance:
    """gc, size checks and mirror pushes for the watcher, run on a thread off its capture loop.

    ``poll()`` is cheap and is called from the loop; ``budget`` is the callable to give
    each capture; ``close()`` asks a running gc or push to stop and waits a bounded time.
    """

    def __init__(self, project: Project, *, check_every: float = 30.0, budget_ttl: float = 30.0) -> None:
        self.project = project
        self.check_every = check_every
        self.budget_ttl = budget_ttl
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_check = time.monotonic() + check_every
        self._budget: CaptureBudget | None = None
        self._budget_at = 0.0
        self._protected = protected_matcher(project)
        self.last_error: str | None = None

    def budget(self, rel: str, size: int) -> str | None:
        now = time.monotonic()
        budget = self._budget
        if budget is None or now - self._budget_at >= self.budget_ttl:
            budget = self._budget = CaptureBudget(measure_usage(self.project, self.budget_ttl), self._protected)
            self._budget_at = now
        return budget(rel, size)

    def use_project(self, project: Project) -> None:
        """The watcher reloaded the policy: limits, protected paths and the mirror may have changed."""
        self.project = project
        self._protected = protected_matcher(project)
        self._budget = None

    def poll(self) -> bool:
        """Start a maintenance round if one is due to be checked; True if it started."""
        now = time.monotonic()
        if now < self._next_check or (self._thread is not None and self._thread.is_alive()):
            return False
        self._next_check = now + self.check_every
        self._thread = threading.Thread(target=self._round, name="guardian-maintenance", daemon=True)
        self._thread.start()
        return True

    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _round(self) -> None:
        from guardian.lifecycle.mirror import maybe_push

        try:
            result = maybe_gc(self.project, cancel=self._cancel)
            if result is not None:
                self._budget = None  # measure again: the store just shrank
                log.info("gc (%s): kept %d, dropped %d snapshot(s)", result.reason, result.kept, result.dropped)
            if not self._cancel.is_set():
                maybe_push(self.project)
        except Exception as exc:  # noqa: BLE001 - maintenance must never take the watcher down
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.error("maintenance failed: %s", self.last_error)
            try:
                self.project.events.append("error", [], None, "maintenance", {"error": self.last_error})
            except OSError:
                pass

    def close(self, timeout: float = 10.0) -> None:
        self._cancel.set()
        if self._thread is not None:
            self._thread.join(timeout)
