"""What one capture did: each file's change and verdict, what it skipped, what to look at again.

``change`` is add, modify, delete, accept, settle (unchanged content judged again once its
writer closed it) or error (the file could not be read: nothing of it was stored, and
its last captured version stays the one in the snapshots).  ``verdict`` is valid,
suspect, invalid or error; an ``error`` version is never restored, like an invalid one.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class CapturedFile(NamedTuple):
    """One file a capture judged.

    A NamedTuple, not a frozen dataclass: the same fields, equality, repr and immutability,
    without ~1 ms of generated methods on every capture's import (the git hooks' included).
    """

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


class SnapshotResult:
    """What one capture did.  ``snapshot`` is None when it stored nothing new.

    A plain slotted class, not a dataclass (~1 ms of generated methods on every capture's
    import): it is filled in by the engine and read by attribute, never compared or printed.
    """

    __slots__ = ("deferred", "files", "parent", "skipped", "snapshot", "time", "trigger", "unstable")

    def __init__(
        self,
        snapshot: str | None,
        parent: str | None,
        time: float,
        trigger: str,
        files: list[CapturedFile] | None = None,
        skipped: list[tuple[str, str]] | None = None,
        unstable: list[str] | None = None,
        deferred: list[str] | None = None,
    ) -> None:
        self.snapshot = snapshot
        self.parent = parent
        self.time = time
        self.trigger = trigger
        self.files: list[CapturedFile] = [] if files is None else files
        self.skipped: list[tuple[str, str]] = [] if skipped is None else skipped
        # Files that changed while they were read: what was captured may already be stale (or torn),
        # so the caller should capture them again (the watcher re-queues them).
        self.unstable: list[str] = [] if unstable is None else unstable
        # Databases another connection kept locked past the bounded wait: retried (they are unstable too).
        self.deferred: list[str] = [] if deferred is None else deferred

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
