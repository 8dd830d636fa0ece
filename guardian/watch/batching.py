"""Debounced batches: changed paths wait in a pending set until the tree goes quiet.

Observer threads add paths; the watcher's loop takes them all as one batch once no event
came for ``quiet`` seconds, or once the oldest pending change is ``max_delay`` old, so a
long burst is still captured in pieces.  A path changed many times before its batch is
taken is captured once.  After a failure nothing is retried before ``retry_at``: the delay
starts at 1 s and doubles up to 30 s until a capture succeeds again.
"""

from __future__ import annotations

import threading
import time

Batch = dict[str, None]  # pending root-relative paths, in arrival order

MAX_RETRY_DELAY = 30.0


class PendingChanges:
    """The pending set, its quiet window and the retry backoff, behind one condition.

    ``cond`` is also the lock and wake-up for every other request the watcher's loop
    waits on (stop, rescan, restart), so one wait covers them all.
    """

    def __init__(self, quiet: float, max_delay: float) -> None:
        self.cond = threading.Condition(threading.RLock())
        self.quiet = quiet
        self.max_delay = max_delay
        self.retry_at = 0.0
        self._retry_delay = 1.0
        self._pending: Batch = {}
        self._first = 0.0
        self._last = 0.0

    def __len__(self) -> int:
        with self.cond:
            return len(self._pending)

    def __contains__(self, path: object) -> bool:
        with self.cond:
            return path in self._pending

    def add(self, paths: list[str]) -> None:
        with self.cond:
            now = time.monotonic()
            if not self._pending:
                self._first = now
                # The loop sleeps until the oldest deadline; only the first change needs to wake it.
                self.cond.notify_all()
            self._last = now
            for path in paths:
                self._pending[path] = None

    def take(self) -> Batch:
        with self.cond:
            batch, self._pending = self._pending, {}
            return batch

    def requeue(self, batch: Batch) -> None:
        """Put a batch that failed back, and hold it for the next backoff delay."""
        with self.cond:
            now = time.monotonic()
            if not self._pending:
                self._first = now
            self._last = now
            for path in batch:
                self._pending[path] = None
            self.retry_at = now + self._bump_retry()

    def back_off(self) -> None:
        """Hold every retry (batches, rescans, observer restarts) for the next backoff delay."""
        with self.cond:
            self.retry_at = time.monotonic() + self._bump_retry()

    def succeeded(self) -> None:
        self._retry_delay = 1.0

    def ready(self, now: float) -> bool:
        """Is there a batch to take: changes, no backoff, and quiet long enough (or waited too long)?"""
        with self.cond:
            return (
                bool(self._pending)
                and now >= self.retry_at
                and (now - self._last >= self.quiet or now - self._first >= self.max_delay)
            )

    def due(self) -> float | None:
        """When the pending changes become a batch, or None with nothing pending."""
        with self.cond:
            if not self._pending:
                return None
            return max(self.retry_at, min(self._last + self.quiet, self._first + self.max_delay))

    def _bump_retry(self) -> float:
        delay = self._retry_delay
        self._retry_delay = min(self._retry_delay * 2, MAX_RETRY_DELAY)
        return delay
