"""``guardian log``: snapshots newest first, each with the paths it changed, its note and its verdicts.

The catalog answers everything but the note, which lives only in the commit message
(``Guardian-Note``): the repo is opened for the shown snapshots alone.  One snapshot more
than asked for is read, to tell whether older ones were left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guardian.catalog.db import VersionRow
from guardian.project import Project
from guardian.query.history import LogEntry, WindowSummary
from guardian.query.history import log as history_log
from guardian.store.trailers import parse_message

DEFAULT_LOG_LIMIT = 20

_CHANGE_LETTER = {"add": "A", "modify": "M", "delete": "D", "accept": "accepted", "settle": "settled"}


@dataclass
class LogLine:
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
    entries, window = history_log(
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
