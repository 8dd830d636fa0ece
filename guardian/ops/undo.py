"""``guardian undo``: reverse the last restore, rollback or repair, from the snapshot it took first.

Every one of them snapshots the state it is about to change (``pre-restore``,
``pre-rollback``) and names that snapshot in its event (``pre_snapshot``).  Undo is a
rollback of the paths the operation changed to that snapshot, through
:func:`guardian.ops.rollback.rollback`: the policy is asked, a file the operation
recreated is deleted again, and undo itself takes a pre-rollback snapshot, so running
``guardian undo`` again re-applies what was undone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from guardian.errors import OperationFailed
from guardian.events import Event
from guardian.ops.rollback import RollbackReport, rollback
from guardian.project import Project

UNDOABLE = ("restore", "rollback", "repair")
# How far back the event log is searched for operations; a filtered tail reads only what it needs.
_SEARCH = 50


@dataclass(frozen=True)
class Operation:
    """One restore, rollback or repair that can be undone."""

    kind: str
    ts: str
    paths: tuple[str, ...]  # what it changed; () for a whole-tree rollback too large to list
    pre_snapshot: str
    post_snapshot: str | None
    command: str | None

    @property
    def label(self) -> str:
        """'restore', 'rollback', 'repair', or 'undo' for a rollback that 'guardian undo' made."""
        words = (self.command or "").split()
        return "undo" if self.kind == "rollback" and words[1:2] == ["undo"] else self.kind

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "label": self.label,
            "ts": self.ts,
            "paths": list(self.paths),
            "pre_snapshot": self.pre_snapshot,
            "post_snapshot": self.post_snapshot,
            "command": self.command,
        }


def _operation(event: Event) -> Operation | None:
    pre = event.details.get("pre_snapshot")
    if not isinstance(pre, str) or not pre:
        return None  # a repair that only cleared locks or temp files: nothing to put back
    paths: Sequence[str] = event.paths
    if event.event == "rollback":
        counts = event.details.get("counts") or {}
        applied = sum(int(counts.get(k, 0)) for k in ("rewritten", "deleted", "recreated"))
        if applied == 0:
            return None  # it changed nothing (everything was skipped or already there)
        if applied > len(paths):
            # The event lists at most MAX_EVENT_PATHS paths: undo the rollback's whole scope instead.
            paths = [str(p) for p in event.details.get("scope") or []]
    if not paths and event.event != "rollback":
        return None
    command = event.details.get("command")
    return Operation(
        event.event, event.ts, tuple(paths), pre, event.snapshot, command if isinstance(command, str) else None
    )


def recent_operations(project: Project, limit: int = 10) -> list[Operation]:
    """The newest undoable operations, newest first.

    A guardrail repair logs a restore and then a repair with the same pre-operation
    snapshot: that is one operation, listed as the repair.
    """
    project.require_store()
    found: list[Operation] = []
    seen: set[str] = set()
    for event in reversed(project.events.tail(_SEARCH, UNDOABLE)):
        if event.event not in UNDOABLE:
            continue  # matched by its trigger only (a snapshot taken by a rollback, say)
        op = _operation(event)
        if op is None or op.pre_snapshot in seen:
            continue
        seen.add(op.pre_snapshot)
        found.append(op)
        if len(found) >= limit:
            break
    return found


@dataclass
class UndoReport:
    undone: Operation
    rollback: RollbackReport
    changed_since: list[str]  # paths snapshotted again after the operation: undo replaced those edits too

    def to_json(self) -> dict[str, Any]:
        return {
            "undone": self.undone.to_json(),
            "rollback": self.rollback.to_json(),
            "changed_since": self.changed_since,
        }


def _changed_since(project: Project, op: Operation) -> list[str]:
    if op.post_snapshot is None:
        return []
    with project.reader() as (_repo, catalog):
        post = catalog.snapshot(op.post_snapshot)
        if post is None:
            return []
        return [p for p in op.paths if any(v.seq > post.seq for v in catalog.versions_of(p))]


def undo(
    project: Project, *, force: bool = False, dry_run: bool = False, argv: Sequence[str] = ()
) -> UndoReport:
    """Roll the paths the last restore, rollback or repair changed back to its pre-operation snapshot."""
    ops = recent_operations(project, limit=1)
    if not ops:
        raise OperationFailed(
            "nothing to undo: no restore, rollback or repair is on the record ('guardian undo --list' shows them)"
        )
    op = ops[0]
    changed = _changed_since(project, op)
    report = rollback(
        project,
        to=op.pre_snapshot,
        before=None,
        paths=op.paths,
        cwd=project.root,
        force=force,
        dry_run=dry_run,
        argv=argv,
    )
    return UndoReport(op, report, changed)
