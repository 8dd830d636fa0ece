"""What one capture did: each file's change and verdict, what it skipped, what to look at again.

``change`` is add, modify, delete, accept, settle (unchanged content judged again once its
writer closed it) or error (the file could not be read: nothing of it was stored, and
its last captured version stays the one in the snapshots).  ``verdict`` is valid,
suspect, invalid or error; an ``error`` version is never restored, like an invalid one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CapturedFile:
    path: str
    # add, modify, delete, accept, settle, error (see the module docstring)
    change: str
    size: int | None
    verdict: str
    reason: str
    blob: str | None = None
    mode: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "change": self.change,
            "size": self.size,
            "verdict": self.verdict,
            "reason": self.reason,
        }


@dataclass
class SnapshotResult:
    snapshot: str | None
    parent: str | None
    time: float
    trigger: str
    files: list[CapturedFile] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    # Files that changed while they were read: what was captured may already be stale (or torn),
    # so the caller should capture them again (the watcher re-queues them).
    unstable: list[str] = field(default_factory=list)
    # Databases another connection kept locked past the bounded wait: retried (they are unstable too).
    deferred: list[str] = field(default_factory=list)

    @property
    def bad(self) -> list[CapturedFile]:
        return [f for f in self.files if f.verdict != "valid"]

    def to_json(self) -> dict[str, Any]:
        return {
            "snapshot": self.snapshot,
            "parent": self.parent,
            "time": self.time,
            "trigger": self.trigger,
            "files": [f.to_json() for f in self.files],
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
        }


def summarize(trigger: str, files: list[CapturedFile]) -> str:
    counts: dict[str, int] = {}
    for f in files:
        if f.change != "error":  # not read, nothing stored: counted by its verdict only
            counts[f.change] = counts.get(f.change, 0) + 1
    words = {"add": "added", "modify": "modified", "delete": "deleted", "accept": "accepted", "settle": "settled"}
    parts = [f"{counts[k]} {words[k]}" for k in ("modify", "add", "delete", "accept", "settle") if counts.get(k)]
    text = f"{trigger}: " + (", ".join(parts) if parts else "no changes")
    bad = [f for f in files if f.verdict != "valid"]
    if bad:
        kinds: dict[str, int] = {}
        for f in bad:
            kinds[f.verdict] = kinds.get(f.verdict, 0) + 1
        text += " (" + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) + ")"
    return text
