"""The guardrail: find watched files that drifted from their latest valid snapshot, and put them back.

A file has *drifted* when

- it is tracked in the latest snapshot and is now missing on disk, or its
  current content is invalid or suspect (the verdict captured for that content,
  or, for content changed since the last capture, a verdict worked out now); or
- it is protected, had a valid version once, and its deletion was captured in
  a snapshot without anyone accepting it since (``guardian accept PATH`` writes
  an ``accept`` event; one newer than the deletion ends the drift).  A deleted
  file that is not protected stops drifting once the deletion is captured,
  because a deliberate deletion looks exactly the same.

:func:`check` only reads.  :func:`run_guardrail` is what ``guardian check`` and
the watcher call: it logs one ``drift`` event per file and, with ``repair``,
restores the latest valid versions through :func:`guardian.restore.restore`, so
a pre-restore snapshot is taken first and the policy's ``restore`` actions
hold (a file whose restore needs ``--force`` is reported, never forced).
"""

from __future__ import annotations

import datetime as dt
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from guardian.catalog import Catalog, FileRow, VersionRow
from guardian.errors import GuardianError, LockHeld
from guardian.events import Event, current_user, now_iso
from guardian.filters import PathFilter
from guardian.fsutil import lstat_at
from guardian.policy import ChangeKind, PathChange, PolicyEngine
from guardian.project import Project
from guardian.restore import RestoreReport, restore
from guardian.snapshot import FileReader, judge_content, stat_matches
from guardian.store import hash_blob

PROBLEMS = ("missing", "invalid", "suspect")


@dataclass(frozen=True)
class Drift:
    """One file that no longer matches its latest valid snapshot."""

    path: str
    problem: str  # "missing" | "invalid" | "suspect"
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
            "drift": [d.to_json() for d in self.drift],
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

    def __init__(self, project: Project, catalog: Catalog, *, whole_tree: bool) -> None:
        self.project = project
        self.catalog = catalog
        self.engine = PolicyEngine(project.policy.protect_rules)
        self.keep = PathFilter(project.root, project.policy.watch)
        self.reader = FileReader(project)
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
        return [r for r in rows if self.keep(r.path)]

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
        return judge_content(self.project, self.catalog, rel, kind, data)

    def inspect_tracked(self, row: FileRow) -> Drift | None:
        rel = row.path
        st = lstat_at(self.project.root, rel)
        if st is None:
            return self._drift(rel, "missing", "deleted since the last snapshot")
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            return self._drift(rel, "missing", "replaced by a directory or special file")
        if stat_matches(row, st):
            verdict, reason = self._captured_verdict(rel)
        else:
            kind, data, _ = self.reader.read(rel)
            if kind == "missing":
                return self._drift(rel, "missing", "deleted since the last snapshot")
            if kind == "other":
                return self._drift(rel, "missing", "replaced by a directory or special file")
            if kind == "toolarge":
                return None  # over watch.max_file_size: neither captured nor judged
            if hash_blob(data) == row.blob:
                verdict, reason = self._captured_verdict(rel)
            else:
                verdict, reason = self._verdict_now(rel, kind, data)
        return None if verdict == "valid" else self._drift(rel, verdict, reason)

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
        if kind == "toolarge":
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
    with project.reader() as (_repo, catalog):
        inspector = _Inspector(project, catalog, whole_tree=selected is None)
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


def _log_drift(project: Project, drift: Sequence[Drift], trigger: str) -> None:
    base = {"user": current_user(), "pid": os.getpid()}
    project.events.append_many(
        Event(
            now_iso(),
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
        for d in drift
    )


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
    """Check, log one ``drift`` event per drifting file, and with ``repair`` restore them.

    The drift events are written before any repair starts, so they land within
    moments of the check.  A repair never forces: files whose restore the policy
    gates are listed in ``not_repaired`` with the reason.
    """
    report = check(project, paths)
    if report.drift:
        _log_drift(project, report.drift, trigger)
        if repair:
            _repair(project, report, trigger)
    return report


__all__ = ["PROBLEMS", "Drift", "GuardrailReport", "check", "run_guardrail"]
