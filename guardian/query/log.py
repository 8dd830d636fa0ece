"""``guardian log``: snapshots newest first, each with the paths it changed, its note and its verdicts.

The catalog answers everything but the note, which lives only in the commit message
(``Guardian-Note``): the repo is opened for the shown snapshots alone.  One snapshot more
than asked for is read, to tell whether older ones were left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guardian.catalog.db import SnapshotRow, VersionRow
from guardian.project import Project
from guardian.query.lookup import resolve_path
from guardian.store.trailers import parse_message

DEFAULT_LOG_LIMIT = 20

_CHANGE_LETTER = {"add": "A", "modify": "M", "delete": "D", "accept": "accepted", "settle": "settled"}


@dataclass
class LogEntry:
    """One snapshot of the log and its versions that are not valid."""

    snapshot: SnapshotRow
    bad: list[VersionRow]

    def to_json(self) -> dict[str, Any]:
        s = self.snapshot
        return {
            "snapshot": s.id,
            "time": s.ts,
            "trigger": s.trigger,
            "summary": s.summary,
            "files": s.nchanged,
            "not_valid": [{"path": v.path, "verdict": v.verdict, "reason": v.reason} for v in self.bad],
        }


@dataclass
class WindowSummary:
    """What a --since/--until window changed, deleted and left not valid."""

    changed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    became_bad: list[tuple[str, str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "changed": self.changed,
            "deleted": self.deleted,
            "not_valid": [{"path": p, "verdict": v, "reason": r} for p, v, r in self.became_bad],
        }


def log_entries(
    project: Project,
    typed_path: str | None = None,
    *,
    cwd: Path | None = None,
    limit: int | None = None,
    since: float | None = None,
    until: float | None = None,
) -> tuple[list[LogEntry], WindowSummary | None]:
    """The snapshots newest first with their not-valid versions, and the summary of a --since/--until window."""
    with project.reader() as (_repo, catalog):
        rel = resolve_path(project.root, catalog, typed_path, cwd) if typed_path else None
        rows = catalog.snapshots(limit=limit, since=since, until=until, path=rel)
        entries = [LogEntry(row, [v for v in catalog.versions_in(row.seq) if v.verdict != "valid"]) for row in rows]
        window = None
        if since is not None or until is not None:
            window = WindowSummary()
            changed: dict[str, VersionRow] = {}
            for v in catalog.versions_between(since, until):
                if rel is None or v.path == rel or v.path.startswith(rel + "/"):
                    changed[v.path] = v
            for path, v in sorted(changed.items()):
                if v.change == "delete":
                    window.deleted.append(path)
                else:
                    window.changed.append(path)
                    if v.verdict != "valid":
                        window.became_bad.append((path, v.verdict, v.reason))
        return entries, window


@dataclass
class LogLine:
    """A log entry with every path its snapshot changed and its note."""

    entry: LogEntry
    changed: list[VersionRow]
    note: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            **self.entry.to_json(),
            "note": self.note,
            "paths": [{"path": v.path, "change": v.change, "verdict": v.verdict} for v in self.changed],
        }

    def paths_text(self, shown: int = 3) -> str:
        """'M src/a.py, A b.txt [invalid], D c.txt +7 more': the first few paths, then how many more."""
        parts = []
        # The files that are not valid first: they are the ones a reader is looking for.
        ordered = sorted(self.changed, key=lambda v: v.verdict == "valid")
        for v in ordered[:shown]:
            mark = "" if v.verdict == "valid" else f" [{v.verdict}]"
            parts.append(f"{_CHANGE_LETTER.get(v.change, v.change)} {v.path}{mark}")
        more = len(self.changed) - shown
        return ", ".join(parts) + (f" +{more} more" if more > 0 else "")


@dataclass
class LogResult:
    """The log as printed: its lines, the window summary, and whether older snapshots were left out."""

    lines: list[LogLine]
    window: WindowSummary | None
    more: bool  # older snapshots matched but were left out by the limit

    def to_json(self) -> dict[str, Any]:
        return {
            "snapshots": [line.to_json() for line in self.lines],
            "window": self.window.to_json() if self.window else None,
            "more": self.more,
        }


def read_log(
    project: Project,
    typed_path: str | None = None,
    *,
    cwd: Path | None = None,
    limit: int | None = DEFAULT_LOG_LIMIT,
    since: float | None = None,
    until: float | None = None,
) -> LogResult:
    """The snapshots (at most ``limit``; None: all), their changed paths and notes, and the window summary."""
    entries, window = log_entries(
        project, typed_path, cwd=cwd, limit=limit + 1 if limit else None, since=since, until=until
    )
    more = limit is not None and len(entries) > limit
    entries = entries[:limit] if limit else entries
    lines: list[LogLine] = []
    with project.reader() as (repo, catalog):
        for entry in entries:
            note = parse_message(repo.commit_record(entry.snapshot.id).message).note
            lines.append(LogLine(entry, catalog.versions_in(entry.snapshot.seq), note))
    return LogResult(lines, window, more)
