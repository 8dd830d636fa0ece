"""Acting on the watcher's enforcement decisions: let a change stand under a grant, or undo it.

``guardian.gates.enforce`` judges; this module writes.  An undo goes through the same
steps as ``guardian restore``: under the writer lock it checks the file still holds what
was judged (a newer change is judged on its own), writes the version from before the
change atomically with its mode, and snapshots the result with trigger ``enforce``.
Every decision becomes one ``enforce`` event (the change, the rule, the process when git
names it, the command that undoes the undo, a one-line summary for ``status``) and one
line in the watcher log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from guardian.config import ProtectRule
from guardian.errors import GuardianError
from guardian.events import Event, current_user, now_iso
from guardian.ops.restore import write_entry
from guardian.ops.session import write_session
from guardian.policy import Operation, rule_outcome
from guardian.query.rollbacks import Change
from guardian.store.repo import hash_blob
from guardian.store.tree import Entry
from guardian.trust.grants import Grant
from guardian.util.fs import read_state
from guardian.util.times import format_time

if TYPE_CHECKING:
    from guardian.catalog.db import VersionRow
    from guardian.project import Project
    from guardian.store.repo import ShadowRepo

# The watcher's log file names the logger on every line; enforcement is the watcher's work.
log = logging.getLogger("guardian.watch.watcher")

TRIGGER = "enforce"


@dataclass(frozen=True)
class Enforcement:
    """One decision: ``action`` is "undone", "granted" (a grant let it stand) or "failed"."""

    path: str
    action: str
    details: dict[str, Any]

    @property
    def summary(self) -> str:
        return str(self.details.get("summary", ""))


@dataclass(frozen=True)
class Verdict:
    """A protected change the policy does not let stand (yet): what it was and what says so."""

    path: str
    change: Change
    operation: Operation
    outcome: str
    rule: ProtectRule
    process: str | None
    captured: str  # the snapshot that recorded the change
    captured_at: float
    target: VersionRow | None  # the version to put back
    before_blob: str | None  # what the path held before the change (to judge again after a wait)
    since: float  # the time of the version before the change


def granted(v: Verdict, grant: Grant) -> Enforcement:
    """A grant covers the change: it stands, and the event names the grant."""
    details = _details(v, "granted")
    details["grant"] = grant.to_json()
    details["summary"] = (
        f"let the {v.change.kind} of {v.path} stand: grant {grant.id} ({grant.by}) until {format_time(grant.expires)}"
    )
    return Enforcement(v.path, "granted", details)


def undo_changes(project: Project, verdicts: Sequence[Verdict], repo: ShadowRepo | None) -> list[Enforcement]:
    """Put back the version from before each change, in one write session, and snapshot the result."""
    root = project.root
    done: list[Enforcement] = []
    written: list[Verdict] = []
    try:
        with write_session(project, TRIGGER, repo=repo) as session:
            for v in verdicts:
                if _current_blob(project, v.path) != v.change.version.blob:
                    # Changed again since the capture: that change is captured and judged on its own.
                    log.info("enforce: %s changed again before its undo; judging the newer change", v.path)
                    continue
                assert v.target is not None and v.target.blob is not None and v.target.mode is not None
                write_entry(root, session.repo, v.path, Entry(v.target.blob, v.target.mode), perm=v.target.perm)
                written.append(v)
            if not written:
                return []
            sources = ",".join(sorted({v.target.snapshot for v in written if v.target is not None}))
            post = session.capture.run([v.path for v in written], TRIGGER, source=sources)
    except (GuardianError, OSError) as exc:
        for v in verdicts:
            if v in written:
                continue
            details = _details(v, "failed")
            details["error"] = str(exc)
            details["summary"] = f"could not undo the {v.change.kind} of {v.path}: {exc}"
            done.append(Enforcement(v.path, "failed", details))
        if not written:
            return done
        post = None
    for v in written:
        details = _details(v, "undone")
        details["snapshot"] = post.snapshot if post is not None else None
        done.append(Enforcement(v.path, "undone", details))
    return done


def record(project: Project, done: Sequence[Enforcement]) -> None:
    """One enforce event per decision, and one line each in the watcher log."""
    user = current_user()
    records: list[Event] = []
    for e in done:
        ts = now_iso()
        details = dict(e.details)
        details["latency_ms"] = round((time.time() - float(details["captured_at"])) * 1000, 1)
        details["user"] = user
        snapshot = details.pop("snapshot", None) if e.action == "undone" else details["captured"]
        records.append(Event(ts, "enforce", [e.path], snapshot, TRIGGER, details))
        level = logging.WARNING if e.action == "failed" else logging.INFO
        log.log(level, "enforce: %s", details["summary"])
    try:
        project.events.append_many(records)
    except OSError as exc:
        log.error("cannot write the event log: %s", exc)


def _current_blob(project: Project, rel: str) -> str | None:
    state = read_state(project.root, rel)
    if state.kind not in ("file", "symlink"):
        return None
    return hash_blob(state.data)


def _details(v: Verdict, action: str) -> dict[str, Any]:
    target = v.target
    origin = v.change.origin
    restored_from = {"snapshot": target.snapshot, "time": target.ts} if target is not None else None
    details: dict[str, Any] = {
        "change": v.change.kind,
        "operation": v.operation,
        "outcome": v.outcome,
        "action": action,
        "rule": {"paths": list(v.rule.paths), "reason": v.rule.reason},
        "captured": v.captured,
        "captured_at": v.captured_at,
        "to_version": origin.to_json() if origin is not None else None,
        "restored_from": restored_from,
        "process": v.process,
    }
    if action == "undone" and target is not None:
        force = " --force" if rule_outcome(v.rule, "restore") == "force" else ""
        details["undo_hint"] = f"guardian restore --at {v.captured[:12]} {v.path}{force}"
        went = f" to {origin.describe()}" if origin is not None else ""
        details["summary"] = (
            f"undid the {v.change.kind} of {v.path}{went} by {v.process or 'an unknown process'}: "
            f"put back snapshot {target.snapshot[:12]} ({format_time(target.ts)}); rule: {v.rule.reason}"
        )
    return details
