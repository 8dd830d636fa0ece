"""How capture is going, for ``guardian status``: the last failure, failures in a row, and what is skipped.

One file guardian cannot read never stops a capture (it gets an ``error`` verdict and
the rest goes on), so a capture that fails as a whole is a store problem (a full disk,
damage), and a file that is skipped or cannot be read stays skipped until it changes:
both must show up somewhere other than the log.  ``<store>/capture.json`` keeps them:

    {"failed_in_a_row": 0, "last_error": {"ts", "error"} | null,
     "problems": {path: {"kind": "error" | "skip", "reason", "ts": first seen}}}

A full scan replaces the problems; a capture of some paths replaces only the problems
at or under those paths.  The file is rewritten only when something in it changed, so
a quiet watcher does not write it at every batch.  Every caller holds the writer lock,
except a failure's note, which at worst loses a count to a concurrent capture.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from guardian.util.fs import atomic_write_file
from guardian.util.records import Record

STATE_FILE = "capture.json"
# status lists this many problems; the count covers them all
SHOWN_PROBLEMS = 20


class CaptureHealth(Record):
    """The state in ``capture.json``, as read, changed and written back (a mutable Record)."""

    __slots__ = ("failed_in_a_row", "last_error", "problems")
    __match_args__ = ("failed_in_a_row", "last_error", "problems")

    def __init__(
        self,
        failed_in_a_row: int = 0,
        last_error: dict[str, Any] | None = None,
        problems: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.failed_in_a_row = failed_in_a_row
        self.last_error = last_error
        self.problems: dict[str, dict[str, Any]] = {} if problems is None else problems  # a new dict for each

    def to_json(self) -> dict[str, Any]:
        return {
            "failed_in_a_row": self.failed_in_a_row,
            "last_error": self.last_error,
            "problems": self.problems,
        }

    def summary(self) -> dict[str, Any]:
        """What ``status --json`` shows: the counts, the last error and the first problems."""
        shown = sorted(self.problems.items())[:SHOWN_PROBLEMS]
        return {
            "failed_in_a_row": self.failed_in_a_row,
            "last_error": self.last_error,
            "skipping": len(self.problems),
            "problems": [{"path": path, **info} for path, info in shown],
        }


def state_path(store: Path) -> Path:
    return store / STATE_FILE


def read_health(store: Path) -> CaptureHealth:
    """The recorded state; an absent or unreadable file is a clean one (it is only a report)."""
    try:
        raw = json.loads(state_path(store).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return CaptureHealth()
    if not isinstance(raw, dict):
        return CaptureHealth()
    problems = raw.get("problems")
    last_error = raw.get("last_error")
    failed = raw.get("failed_in_a_row")
    return CaptureHealth(
        failed if isinstance(failed, int) and failed >= 0 else 0,
        last_error if isinstance(last_error, dict) else None,
        {str(p): dict(v) for p, v in problems.items() if isinstance(v, dict)} if isinstance(problems, dict) else {},
    )


def _write(store: Path, health: CaptureHealth) -> None:
    try:
        atomic_write_file(state_path(store), (json.dumps(health.to_json(), indent=2) + "\n").encode(), 0o600)
    except OSError:
        pass  # a report only: a full or read-only store is reported by the capture itself


def _in_scope(path: str, scope: Iterable[str] | None) -> bool:
    if scope is None:
        return True
    return any(s == "" or path == s or path.startswith(s + "/") for s in scope)


def _ancestors(path: str) -> Iterator[str]:
    parts = path.split("/")
    for i in range(1, len(parts)):
        yield "/".join(parts[:i])


def note_capture(
    store: Path, scope: Iterable[str] | None, problems: dict[str, tuple[str, str]]
) -> list[tuple[str, str, str]]:
    """Record a capture that completed with these problems ({path: (kind, reason)}) among ``scope``.

    ``scope`` is the paths the capture looked at (None: the whole tree).  Returns the
    problems that are new, or whose reason changed, as (path, kind, reason): the ones to
    log, since the others were logged when they first appeared.
    """
    scope = None if scope is None else list(scope)
    health = read_health(store)
    before = dict(health.problems)
    now = time.time()
    kept = {p: info for p, info in before.items() if not _in_scope(p, scope)}
    fresh: list[tuple[str, str, str]] = []
    for path, (kind, reason) in sorted(problems.items()):
        old = before.get(path)
        if old is not None and old.get("kind") == kind and old.get("reason") == reason:
            kept[path] = old
            continue
        kept[path] = {"kind": kind, "reason": reason, "ts": now}
        fresh.append((path, kind, reason))
    # A path under a directory that is itself not captured says nothing more: keep the directory.
    covered = {p for p in kept if any(a in kept for a in _ancestors(p))}
    kept = {p: info for p, info in kept.items() if p not in covered}
    fresh = [item for item in fresh if item[0] not in covered]
    changed = kept != before or health.failed_in_a_row != 0
    health.problems = kept
    health.failed_in_a_row = 0
    if changed:
        _write(store, health)
    return fresh


def note_failure(store: Path, error: str) -> int:
    """Record a capture that failed as a whole; returns how many in a row have failed."""
    health = read_health(store)
    health.failed_in_a_row += 1
    health.last_error = {"ts": time.time(), "error": error[:1000]}
    _write(store, health)
    return health.failed_in_a_row
