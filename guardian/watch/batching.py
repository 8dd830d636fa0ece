"""Debounced batches, with a leading edge: changed paths wait until the tree goes quiet.

Observer threads add paths; the watcher's loop takes them all as one batch once no event
came for ``quiet`` seconds, or once the oldest pending change is ``max_delay`` old, so a
long burst is still captured in pieces.  A path changed many times before its batch is
taken is captured once.

The leading edge: when the tree has been quiet (nothing pending, no event for ``quiet``
seconds), the first *complete* change (a file closed after writing, or a finished temp
file renamed over its target: the observer decides, see ``ChangeHandler``) is taken at
once, alone, as its own batch; whatever follows waits in the usual window until the tree
is quiet again.  Other paths of the same moment (a delete, a file still being written)
keep waiting: they may be half of a rename dance.

After a failure nothing is retried before ``retry_at``: the delay starts at 1 s and
doubles up to 30 s until a capture succeeds again.
"""

from __future__ import annotations

import threading
import time

Batch = dict[str, None]  # pending root-relative paths, in arrival order

MAX_RETRY_DELAY = 30.0


class PendingChanges:
    """The pending set, its quiet window, the leading edge and the retry backoff, behind one condition.

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
        self._leading: Batch = {}  # a complete first change after quiet: taken at once
        self._armed = False  # the tree was quiet: the next complete change is a leading edge
        self._first = 0.0
        self._last = float("-inf")

    def __len__(self) -> int:
        with self.cond:
            return len(self._pending) + len(self._leading)

    def __contains__(self, path: object) -> bool:
        with self.cond:
            return path in self._pending or path in self._leading

    def add(self, paths: list[str]) -> None:
        """Paths that changed: they wait for the quiet window (or the max delay)."""
        with self.cond:
            now = time.monotonic()
            self._arm(now)
            if not self._pending:
                self._first = now
                # The loop sleeps until the oldest deadline; only the first change needs to wake it.
                self.cond.notify_all()
            self._last = now
            for path in paths:
                self._pending[path] = None

    def add_complete(self, paths: list[str]) -> None:
        """Paths whose writer is done with them: after quiet, the first such change is taken at once."""
        with self.cond:
            now = time.monotonic()
            self._arm(now)
            if not self._armed:
                self.add(paths)
                return
            self._armed = False
            self._last = now
            for path in paths:
                self._pending.pop(path, None)  # its earlier events are covered by capturing it now
                self._leading[path] = None
            self.cond.notify_all()

    def take(self) -> Batch:
        """The leading change if there is one, else everything pending."""
        with self.cond:
            if self._leading:
                batch, self._leading = self._leading, {}
            else:
                batch, self._pending = self._pending, {}
            return batch

    def take_all(self) -> Batch:
        """Everything waiting, leading change included (a full rescan or the last flush covers it all)."""
        with self.cond:
            batch = {**self._leading, **self._pending}
            self._leading, self._pending = {}, {}
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
        """Is there a batch to take: a leading change, or changes quiet long enough (or waited too long); no backoff."""
        with self.cond:
            if now < self.retry_at:
                return False
            return bool(self._leading) or (
                bool(self._pending) and (now - self._last >= self.quiet or now - self._first >= self.max_delay)
            )

    def due(self) -> float | None:
        """When the waiting changes become a batch, or None with nothing waiting."""
        with self.cond:
            if self._leading:
                return self.retry_at
            if not self._pending:
                return None
            return max(self.retry_at, min(self._last + self.quiet, self._first + self.max_delay))

    def _arm(self, now: float) -> None:
        # Quiet means nothing waiting and no event for a whole window: a new burst begins here.
        if not self._pending and not self._leading and now - self._last >= self.quiet:
            self._armed = True

    def _bump_retry(self) -> float:
        delay = self._retry_delay
        self._retry_delay = min(self._retry_delay * 2, MAX_RETRY_DELAY)
        return delay
