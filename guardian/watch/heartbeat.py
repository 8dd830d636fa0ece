"""The watcher's heartbeat file: what it records and when it is written.

``guardian status`` reads it to tell a live watcher from a stuck or dead one, so the
watcher writes it every ``interval`` seconds, at each change of state, and during long
captures.  It is replaced atomically, so a reader never sees half of it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guardian.util.fs import atomic_write_file

# The watcher's log file names the logger on every line; these lines have always been the watcher's.
log = logging.getLogger("guardian.watch.watcher")


@dataclass
class WatchStats:
    started: float = 0.0
    batches: int = 0
    snapshots: int = 0
    rescans: int = 0
    restarts: int = 0
    errors: int = 0
    last_snapshot: float | None = None
    last_snapshot_id: str | None = None


def heartbeat_record(*, pending: int, mode: str, state: str, root: Path, stats: WatchStats) -> dict[str, Any]:
    return {
        "ts": time.time(),
        "pid": os.getpid(),
        "pending": pending,
        "mode": mode,
        "state": state,
        "root": str(root),
        "started": stats.started,
        "last_snapshot": stats.last_snapshot,
        "last_snapshot_id": stats.last_snapshot_id,
        "snapshots": stats.snapshots,
        "rescans": stats.rescans,
        "restarts": stats.restarts,
        "errors": stats.errors,
    }


class Heartbeat:
    """Writes the heartbeat file at ``path``; ``next_due`` is when it should be written again."""

    def __init__(self, path: Path, interval: float) -> None:
        self.path = path
        self.interval = interval
        self.next_due = 0.0

    def due(self) -> bool:
        return time.monotonic() >= self.next_due

    def write(self, record: Callable[[], dict[str, Any]]) -> None:
        import json

        self.next_due = time.monotonic() + self.interval
        data = json.dumps(record(), indent=2) + "\n"
        try:
            atomic_write_file(self.path, data.encode(), 0o600)
        except OSError as exc:
            log.error("cannot write the heartbeat %s: %s", self.path, exc)

    def write_quietly(self, record: Callable[[], dict[str, Any]]) -> None:
        try:
            self.write(record)
        except Exception:  # noqa: BLE001 - shutting down; nothing left to report to
            pass
