"""The guardrail: find watched files that drifted from their latest valid snapshot, and put them back.

A file has *drifted* when

- it is tracked in the latest snapshot and is now missing on disk, or its
  current content is invalid or suspect (the verdict captured for that content,
  or, for content changed since the last capture, a verdict worked out now); or
- it is protected, had a valid version once, and its deletion was captured in
  a snapshot without anyone accepting it since (``guardian accept PATH`` writes
  an ``accept`` event; one newer than the deletion ends the drift).  A deleted
  file that is not protected stops drifting once the deletion is captured,
  because a deliberate deletion looks exactly the same; or
- it is protected and its content went back to an older version (``gates.rolled_back``).

:func:`check` only reads.  :func:`run_guardrail` is what ``guardian check``, the
watcher and the git hooks call: it logs a ``drift`` event per file whose drift is
new or changed and, with ``repair``, restores the latest valid versions through
:func:`guardian.restore.restore`, so a pre-restore snapshot is taken first and
the policy's ``restore`` actions hold (a file whose restore needs ``--force`` is
reported, never forced).

Which drift was already logged lives in ``<store>/guardrail.json``: drift that
persists only bumps ``last_seen`` and ``count`` there, and drift that ends is
dropped from it with one ``drift-resolved`` event.  The file is bookkeeping:
damaged or missing, it reads as empty (current drift is logged again), and its
updates are serialised by ``guardrail.lock`` with a bounded wait, so concurrent
checks can at worst log an event twice, never lose one.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import stat
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guardian.capture.engine import FileReader, judge_content, stat_matches
from guardian.capture.filters import PathFilter
from guardian.capture.validate import is_in_progress
from guardian.capture.writers import OpenWriters
from guardian.catalog.db import Catalog, FileRow, VersionRow
from guardian.errors import GuardianError, LockHeld
from guardian.events import Event, current_user, now_iso
from guardian.gates.rolled_back import RollbackFinder
from guardian.ops.restore import RestoreReport, restore
from guardian.policy import ChangeKind, PathChange, PolicyEngine
from guardian.project import Project
from guardian.store.repo import ShadowRepo, hash_blob
from guardian.util.fs import atomic_write_file, lstat_at
from guardian.util.lock import FileLock

PROBLEMS = ("missing", "invalid", "suspect", "error", "rolled-back")  # error: a check broke on the captured content

STATE_FILE = "guardrail.json"  # in the store: the drift already logged
STATE_LOCK_FILE = "guardrail.lock"
STATE_LOCK_TIMEOUT = 10.0  # then the state is updated without the lock: at worst a duplicate event


@dataclass(frozen=True)
class Drift:
    """One file that no longer matches its latest valid snapshot."""

    path: str
    problem: str  # one of PROBLEMS
    detail: str
    protected: bool
    last_valid_snapshot: str | None
    last_valid_time: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "problem": self.problem,
            "detail": self.detail,
            "protected": self.protected,
            "last_valid_snapshot": self.last_valid_snapshot,
            "last_valid_time": self.last_valid_time,
        }


@dataclass
class GuardrailReport:
    drift: list[Drift] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    not_repaired: list[tuple[str, str]] = field(default_factory=list)
    checked: int = 0
    pre_snapshot: str | None = None
    post_snapshot: str | None = None
    logged: set[str] = field(default_factory=set)  # paths whose drift is new or changed: logged by this run

    @property
    def clean(self) -> bool:
        return not self.drift

    @property
    def all_repaired(self) -> bool:
        done = set(self.repaired)
        return all(d.path in done for d in self.drift)

    def to_json(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "checked": self.checked,
            "drift": [{**d.to_json(), "new": d.path in self.logged} for d in self.drift],
            "repaired": list(self.repaired),
            "not_repaired": [{"path": p, "reason": r} for p, r in self.not_repaired],
            "pre_snapshot": self.pre_snapshot,
            "post_snapshot": self.post_snapshot,
        }


# --------------------------------------------------------------------------- finding drift


def _normalise(paths: Sequence[str] | None) -> list[str] | None:
    if paths is None:
        return None
    out: list[str] = []
    for path in paths:
        rel = path.strip("/")
        if rel in ("", "."):
            return None  # the whole tree
        out.append(rel)
    return out


def _event_time(event: Event) -> float | None:
    try:
        return dt.datetime.fromisoformat(event.ts).timestamp()
    except ValueError:
        return None


class _Inspector:
    """Works out the drift of single paths against one catalog.  Reads only."""

    def __init__(self, project: Project, catalog: Catalog, repo: ShadowRepo, *, whole_tree: bool) -> None:
        self.project = project
        self.catalog = catalog
        self.repo = repo
        self.writers = OpenWriters(project.root)
        self.engine = PolicyEngine(project.policy.protect_rules)
        self.keep = PathFilter(project.root, project.policy.watch, project.policy.protect_rules)
        self.reader = FileReader(project)
        self.rolled_back = RollbackFinder(project, catalog, self.engine)
        # On a whole-tree check, the paths that ever had a non-valid version are collected
        # once, so a file with only valid versions costs no history query.
        self._ever_bad: set[str] | None = None
        if whole_tree:
            self._ever_bad = set()
            for snap in self.catalog.snapshots():
                if snap.nbad:
                    self._ever_bad.update(v.path for v in self.catalog.versions_in(snap.seq) if v.verdict != "valid")

    # ---------------------------------------------------------------- candidates

    def tracked(self, paths: list[str] | None) -> list[FileRow]:
        if paths is None:
            rows = list(self.catalog.files())
        else:
            found: dict[str, FileRow] = {}
            for rel in paths:
                row = self.catalog.file(rel)
                if row is not None:
                    found[row.path] = row
                found.update((r.path, r) for r in self.catalog.files_under(rel))
            rows = [found[p] for p in sorted(found)]
        return self.rolled_back.note([r for r in rows if self.keep(r.path)])

    def deleted_protected(self, paths: list[str] | None, tracked: set[str]) -> dict[str, VersionRow]:
        """Protected paths whose latest captured change is a deletion: path -> that deletion."""
        if paths is None:
            candidates: Iterable[str] = self.catalog.deleted_paths()
        else:
            candidates = {c for rel in paths for c in (rel, *self.catalog.paths_under(rel))}
        found: dict[str, VersionRow] = {}
        for rel in sorted(set(candidates) - tracked):
            if not self.engine.is_protected(rel) or not self.keep(rel):
                continue
            versions = self.catalog.versions_of(rel)
            if versions and versions[-1].change == "delete":
                found[rel] = versions[-1]
        return found

    # ---------------------------------------------------------------- verdicts

    def _drift(self, rel: str, problem: str, detail: str) -> Drift:
        valid = self.catalog.latest_valid(rel)
        return Drift(
            rel,
            problem,
            detail,
            self.engine.is_protected(rel),
            valid.snapshot if valid else None,
            valid.ts if valid else None,
        )

    def _captured_verdict(self, rel: str) -> tuple[str, str]:
        if self._ever_bad is not None and rel not in self._ever_bad:
            return "valid", ""
        versions = self.catalog.versions_of(rel)
        return (versions[-1].verdict, versions[-1].reason) if versions else ("valid", "")

    def _verdict_now(self, rel: str, kind: str, data: bytes) -> tuple[str, str]:
        return judge_content(self.project, self.catalog, self.repo, self.writers, rel, kind, data)

    def inspect_tracked(self, row: FileRow) -> Drift | None:
        rel = row.path
        st = lstat_at(self.project.root, rel)
        if st is None:
            return self._drift(rel, "missing", "deleted since the last snapshot")
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            return self._drift(rel, "missing", "replaced by a directory or special file")
        captured = self._captured_verdict(rel) if stat_matches(row, st) else None
        if captured is not None and not is_in_progress(captured[1]):
            (verdict, reason), blob = captured, row.blob
        else:
            kind, data, _ = self.reader.read(rel)
            if kind == "missing":
                return self._drift(rel, "missing", "deleted since the last snapshot")
            if kind == "other":
                return self._drift(rel, "missing", "replaced by a directory or special file")
            if kind in ("toolarge", "busy", "error"):
                return None  # too large, a database locked past the wait, or unreadable: not judged now
            if (blob := hash_blob(data)) == row.blob:
                verdict, reason = self._captured_verdict(rel)
                if is_in_progress(reason):  # captured mid-write; its writer may be done by now
                    verdict, reason = self._verdict_now(rel, kind, data)
            else:
                verdict, reason = self._verdict_now(rel, kind, data)
        if verdict != "valid":
            return self._drift(rel, verdict, reason)
        return None if (found := self.rolled_back.find(rel, blob, st)) is None else Drift(rel, *found)

    def inspect_deleted(self, rel: str, deletion: VersionRow, accepted: set[str]) -> Drift | None:
        if self.catalog.latest_valid(rel) is None:
            return None  # never had a valid version: nothing to fall back to
        kind, data, _ = self.reader.read(rel)
        if kind in ("missing", "other"):
            if rel in accepted:
                return None
            return self._drift(
                rel,
                "missing",
                f"deleted in snapshot {deletion.snapshot[:12]}; if that was intended, run 'guardian accept {rel}'",
            )
        if kind in ("toolarge", "busy", "error"):
            return None
        # Back on disk but not captured yet: judge what is there now.
        verdict, reason = self._verdict_now(rel, kind, data)
        return None if verdict == "valid" else self._drift(rel, verdict, reason)

    # ---------------------------------------------------------------- accepted deletions

    def accepted_deletions(self, deletions: dict[str, VersionRow]) -> set[str]:
        """Paths with an ``accept`` event newer than their captured deletion.

        "Newer" is the order of the log: after the deletion snapshot's own event.
        If that event is missing (a log that was cut), the times are compared,
        rounding the snapshot's whole-second time up.
        """
        if not deletions:
            return set()
        wanted = {v.snapshot for v in deletions.values()}
        logged_at: dict[str, int] = {}
        accepts: list[tuple[int, Event]] = []
        for index, event in enumerate(self.project.events.read()):
            if event.event == "snapshot" and event.snapshot in wanted:
                logged_at[event.snapshot] = index
            elif event.event == "accept" and any(p in deletions for p in event.paths):
                accepts.append((index, event))
        accepted: set[str] = set()
        for index, event in accepts:
            for rel in event.paths:
                deletion = deletions.get(rel)
                if deletion is None:
                    continue
                position = logged_at.get(deletion.snapshot)
                if position is not None:
                    newer = index > position
                else:
                    when = _event_time(event)
                    newer = when is not None and when >= deletion.ts + 1
                if newer:
                    accepted.add(rel)
        return accepted


def check(project: Project, paths: Sequence[str] | None = None) -> GuardrailReport:
    """Compare the working tree (or ``paths`` under it) with the latest valid snapshot.  Read-only.

    ``paths`` are root-relative POSIX paths; a directory covers everything under it.
    """
    selected = _normalise(paths)
    with project.reader() as (repo, catalog):
        inspector = _Inspector(project, catalog, repo, whole_tree=selected is None)
        tracked = inspector.tracked(selected)
        # A tracked path's latest change is never a deletion, so tracked ones need no history look-up.
        deletions = inspector.deleted_protected(selected, {r.path for r in tracked})
        missing = {rel: v for rel, v in deletions.items() if lstat_at(project.root, rel) is None}
        accepted = inspector.accepted_deletions(missing)
        drift = [d for d in (inspector.inspect_tracked(row) for row in tracked) if d is not None]
        drift.extend(
            d for d in (inspector.inspect_deleted(rel, v, accepted) for rel, v in deletions.items()) if d is not None
        )
    drift.sort(key=lambda d: (not d.protected, d.path))
    return GuardrailReport(drift=drift, checked=len(tracked) + len(deletions))


# --------------------------------------------------------------------------- events and repair


def _drift_event(ts: str, d: Drift, trigger: str, base: dict[str, Any]) -> Event:
    return Event(
        ts,
        "drift",
        [d.path],
        None,
        trigger,
        {
            **base,
            "problem": d.problem,
            "detail": d.detail,
            "protected": d.protected,
            "last_valid_snapshot": d.last_valid_snapshot,
        },
    )


def _resolved_event(
    ts: str,
    rel: str,
    entry: dict[str, Any],
    ended: str,
    trigger: str,
    base: dict[str, Any],
    snapshot: str | None = None,
) -> Event:
    return Event(
        ts,
        "drift-resolved",
        [rel],
        snapshot,
        trigger,
        {
            **base,
            # In this order 'guardian events' shows how it ended first.
            "ended": ended,
            "problem": entry.get("problem"),
            "first_seen": entry.get("first_seen"),
            "count": entry.get("count"),
            "detail": entry.get("detail"),
            "last_seen": entry.get("last_seen"),
        },
    )


# --------------------------------------------------------------------------- the drift already logged


def _state_path(project: Project) -> Path:
    return project.paths.store / STATE_FILE


def _load_state(project: Project) -> dict[str, dict[str, Any]]:
    """path -> the drift last logged for it.  Anything unreadable counts as nothing logged."""
    try:
        raw = json.loads(_state_path(project).read_bytes())
    except (OSError, ValueError, RecursionError):
        return {}
    drift = raw.get("drift") if isinstance(raw, dict) else None
    if not isinstance(drift, dict):
        return {}
    return {rel: entry for rel, entry in drift.items() if isinstance(entry, dict)}


def _save_state(project: Project, state: dict[str, dict[str, Any]]) -> None:
    data = {"version": 1, "drift": {rel: state[rel] for rel in sorted(state)}}
    try:
        atomic_write_file(_state_path(project), (json.dumps(data, indent=2, default=str) + "\n").encode())
    except OSError:
        pass  # a full disk: the next check logs the current drift again


@contextmanager
def _state_lock(project: Project) -> Iterator[None]:
    lock = FileLock(project.paths.store / STATE_LOCK_FILE, "the guardrail state", STATE_LOCK_TIMEOUT)
    try:
        lock.acquire()
    except (GuardianError, OSError):
        pass  # never hold a check up over bookkeeping: at worst an event is logged twice
    try:
        yield
    finally:
        lock.release()


def _same_drift(entry: dict[str, Any], d: Drift) -> bool:
    return (entry.get("problem"), entry.get("detail"), entry.get("last_valid_snapshot")) == (
        d.problem,
        d.detail,
        d.last_valid_snapshot,
    )


def _in_scope(rel: str, selected: list[str] | None) -> bool:
    return selected is None or any(rel == s or rel.startswith(s + "/") for s in selected)


def _iso_time(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def _how_it_ended(project: Project, catalog: Catalog, engine: PolicyEngine, rel: str, entry: dict[str, Any]) -> str:
    """A cheap guess at why rel stopped drifting, from its latest captured version and the disk."""
    since = _iso_time(entry.get("first_seen"))
    versions = catalog.versions_of(rel)
    latest = versions[-1] if versions else None
    # Snapshot times are whole seconds: allow one second either way.
    if latest is not None and since is not None and latest.ts + 1 >= since:
        if latest.change == "accept":
            return "accepted"
        if latest.trigger in ("restore", "rollback") and latest.change != "delete":
            return "restored"
    if lstat_at(project.root, rel) is None:
        if latest is not None and latest.change == "delete":
            return "deletion accepted" if engine.is_protected(rel) else "deletion captured in a snapshot"
        return "no longer drifting"
    return "file is back" if entry.get("problem") == "missing" else "content is valid again"


def _endings(project: Project, resolved: dict[str, dict[str, Any]]) -> dict[str, str]:
    if not resolved:
        return {}
    engine = PolicyEngine(project.policy.protect_rules)
    try:
        with project.reader() as (_repo, catalog):
            return {rel: _how_it_ended(project, catalog, engine, rel, entry) for rel, entry in resolved.items()}
    except (GuardianError, OSError, sqlite3.Error):  # only a nicety for the event: never fail over it
        return {}


def _log_drift(project: Project, report: GuardrailReport, selected: list[str] | None, trigger: str) -> None:
    """Log drift that is new or changed, and the end of drift that is gone; remember both."""
    if not report.drift and not _state_path(project).exists():
        return  # nothing drifts and nothing ever did: no state to keep
    base = {"user": current_user(), "pid": os.getpid()}
    current = {d.path: d for d in report.drift}
    with _state_lock(project):
        state = _load_state(project)
        resolved = {rel: e for rel, e in state.items() if rel not in current and _in_scope(rel, selected)}
        endings = _endings(project, resolved)
        now = now_iso()
        records: list[Event] = []
        for rel in sorted(resolved):
            ended = endings.get(rel, "no longer drifting")
            records.append(_resolved_event(now, rel, state.pop(rel), ended, trigger, base))
        for d in report.drift:
            entry = state.get(d.path) or {}
            count = entry.get("count")
            if entry and _same_drift(entry, d):
                entry["count"] = (count if isinstance(count, int) else 0) + 1
                entry["last_seen"] = now
                continue
            records.append(_drift_event(now, d, trigger, base))
            report.logged.add(d.path)
            # first_seen is the time of the drift event; a changed problem is the same
            # episode: it keeps its first_seen and count.
            first_seen = entry.get("first_seen")
            state[d.path] = {
                "problem": d.problem,
                "detail": d.detail,
                "last_valid_snapshot": d.last_valid_snapshot,
                "first_seen": first_seen if isinstance(first_seen, str) else now,
                "last_seen": now,
                "count": (count if isinstance(count, int) else 0) + 1,
            }
        if records:
            project.events.append_many(records)
        if records or report.drift:
            _save_state(project, state)


def _log_repaired(project: Project, report: GuardrailReport, trigger: str) -> None:
    """A repaired file no longer drifts: say so now rather than at the next check."""
    base = {"user": current_user(), "pid": os.getpid()}
    with _state_lock(project):
        state = _load_state(project)
        now = now_iso()
        records = [
            _resolved_event(now, rel, state.pop(rel), "repaired", trigger, base, report.post_snapshot)
            for rel in report.repaired
            if rel in state
        ]
        if records:
            project.events.append_many(records)
            _save_state(project, state)


def _policy_refusal(engine: PolicyEngine, project: Project, rel: str) -> str | None:
    """Why the policy does not let the guardrail restore rel on its own, or None when it may."""
    change: ChangeKind = "modify" if lstat_at(project.root, rel) is not None else "add"
    decision = engine.decide("restore", [PathChange(rel, change)], False).paths[0]
    if decision.permitted:
        return None
    if decision.outcome == "block":
        return f"restore of '{rel}' is blocked by policy ({decision.reason})"
    return f"restore of '{rel}' needs --force (protected: {decision.reason}); run 'guardian restore --force {rel}'"


def _record(report: GuardrailReport, result: RestoreReport, sources: dict[str, str]) -> None:
    for restored in result.files:
        report.repaired.append(restored.path)
        sources[restored.path] = restored.snapshot
    report.pre_snapshot = report.pre_snapshot or result.pre_snapshot
    report.post_snapshot = result.post_snapshot or report.post_snapshot


def _repair(project: Project, report: GuardrailReport, trigger: str) -> None:
    engine = PolicyEngine(project.policy.protect_rules)
    wanted: list[str] = []
    for d in report.drift:
        if d.last_valid_snapshot is None:
            report.not_repaired.append((d.path, f"no valid version in any snapshot; see 'guardian history {d.path}'"))
            continue
        if d.problem == "error":
            # A check broke, not the file: its content may well be good, so it is not replaced.
            report.not_repaired.append((d.path, f"{d.detail}; not restored: the check failed, not the file"))
            continue
        if is_in_progress(d.detail):
            # Restoring now would race the writer, and its finished file may well be valid.
            report.not_repaired.append((d.path, f"{d.detail}; not restored while it is being written"))
            continue
        refusal = _policy_refusal(engine, project, d.path)
        if refusal is not None:
            report.not_repaired.append((d.path, refusal))
            continue
        wanted.append(d.path)
    sources: dict[str, str] = {}
    if wanted:
        try:
            _record(report, restore(project, wanted, cwd=project.root), sources)
        except LockHeld as exc:
            report.not_repaired.extend((rel, str(exc)) for rel in wanted)
        except GuardianError as exc:
            if len(wanted) == 1:
                report.not_repaired.append((wanted[0], str(exc)))
            else:
                # One bad file must not keep the others broken: retry them one at a time.
                for rel in wanted:
                    try:
                        _record(report, restore(project, [rel], cwd=project.root), sources)
                    except GuardianError as single:
                        report.not_repaired.append((rel, str(single)))
    order = {d.path: i for i, d in enumerate(report.drift)}
    report.not_repaired.sort(key=lambda item: order.get(item[0], len(order)))
    project.events.append(
        "repair",
        report.repaired,
        report.post_snapshot,
        trigger,
        {
            "pre_snapshot": report.pre_snapshot,
            "sources": sources,
            "not_repaired": [{"path": p, "reason": r} for p, r in report.not_repaired],
        },
    )


def run_guardrail(
    project: Project, paths: Sequence[str] | None = None, repair: bool = False, trigger: str = "check"
) -> GuardrailReport:
    """Check, log the drift that is new or changed (and the drift that ended), and with ``repair`` restore.

    The report lists every drifting file, logged now or before.  The drift events
    are written before any repair starts, so they land within moments of the
    check.  A repair never forces: files whose restore the policy gates are
    listed in ``not_repaired`` with the reason.
    """
    report = check(project, paths)
    _log_drift(project, report, _normalise(paths), trigger)
    if report.drift and repair:
        _repair(project, report, trigger)
        if report.repaired:
            _log_repaired(project, report, trigger)
    return report


__all__ = ["PROBLEMS", "Drift", "GuardrailReport", "check", "run_guardrail"]
