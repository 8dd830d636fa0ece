"""The append-only JSONL event log: what happened, to which paths, when and why.

Appends are one write(2) of one whole line on an O_APPEND descriptor followed by
fsync, so concurrent writers never interleave inside a line.  A crash can at
worst leave a torn *last* line, which the reader skips.  (A temp-file-and-rename
would have to rewrite the whole log on every event; appending is the durable
pattern for logs.)
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EVENT_KINDS = (
    "init",
    "snapshot",
    "verdict",
    "restore",
    "rollback",
    "accept",
    "skip",
    "error",
    "drift",
    "drift-resolved",
    "repair",
    "gate",
    "force",
    "block",
    "hook",
    "agent",
    "watcher",
    "warning",
    "verify",
    "gc",
    "push",
    "policy",
    "grant",
    "enforce",
)


KNOWN_TRIGGERS = (
    "init",
    "manual",
    "watch",
    "pre-restore",
    "restore",
    "pre-rollback",
    "rollback",
    "hook",
    "agent",
    "accept",
    "check",
    "policy",
    "grant",
    "enforce",
)


def check_kinds(kinds: Sequence[str]) -> list[str]:
    """Refuse a misspelt --kind instead of silently matching nothing."""
    import difflib

    from guardian.errors import UsageError

    known = sorted(set(EVENT_KINDS) | set(KNOWN_TRIGGERS))
    for kind in kinds:
        if kind not in known:
            close = difflib.get_close_matches(kind, known, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known kinds: {', '.join(known)}"
            raise UsageError(f"--kind: unknown kind '{kind}'; {hint}")
    return list(kinds)


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


@dataclass(frozen=True)
class Event:
    ts: str
    event: str
    paths: list[str]
    snapshot: str | None
    trigger: str | None
    details: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "ts": self.ts,
            "event": self.event,
            "paths": self.paths,
            "snapshot": self.snapshot,
            "trigger": self.trigger,
            "details": self.details,
        }


class EventLog:
    def __init__(self, path: Path) -> None:
        self.path = path

    def append(
        self,
        event: str,
        paths: Sequence[str] = (),
        snapshot: str | None = None,
        trigger: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> Event:
        record = Event(
            now_iso(),
            event,
            list(paths),
            snapshot,
            trigger,
            {"user": current_user(), "pid": os.getpid(), **(details or {})},
        )
        self.append_many([record])
        return record

    def append_many(self, records: Iterable[Event], durable: bool = True) -> None:
        payload = b"".join(
            json.dumps(r.to_json(), ensure_ascii=True, separators=(",", ":")).encode() + b"\n" for r in records
        )
        if not payload:
            return
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            # If a previous writer died mid-line, start on a fresh line so our record stays parseable.
            size = os.fstat(fd).st_size
            if size:
                with open(self.path, "rb") as reader:
                    reader.seek(size - 1)
                    if reader.read(1) != b"\n":
                        payload = b"\n" + payload
            os.write(fd, payload)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> Iterator[Event]:
        """Every parseable record, oldest first; torn or garbage lines are skipped."""
        if not self.path.exists():
            return
        with open(self.path, "rb") as handle:
            for line in handle:
                event = _parse_line(line)
                if event is not None:
                    yield event

    def recent(self, kinds: Sequence[str], limit: int = 5, window: int = 1 << 20) -> list[Event]:
        """The newest ``limit`` events of ``kinds``, oldest first, from the last ``window`` bytes only.

        ``status`` asks this on every call: reading a log of 100 MB from the start would cost seconds.
        """
        try:
            with open(self.path, "rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                handle.seek(max(0, size - window))
                chunk = handle.read()
        except FileNotFoundError:
            return []
        if size > window:
            chunk = chunk.split(b"\n", 1)[-1]  # the first line is probably cut
        found: list[Event] = []
        for line in reversed(chunk.splitlines()):
            if not any(f'"event":"{kind}"'.encode() in line for kind in kinds):
                continue
            event = _parse_line(line)
            if event is not None and event.event in kinds:
                found.append(event)
                if len(found) >= limit:
                    break
        return list(reversed(found))

    def tail(self, n: int | None = None, kinds: Sequence[str] = (), path: str | None = None) -> list[Event]:
        selected = [
            e
            for e in self.read()
            if (not kinds or e.event in kinds or e.trigger in kinds or (("force" in kinds) and e.details.get("force")))
            and (path is None or any(p == path or p.startswith(path.rstrip("/") + "/") for p in e.paths))
        ]
        return selected[-n:] if n else selected

    def torn_lines(self) -> int:
        count = 0
        try:
            with open(self.path, "rb") as handle:
                for line in handle:
                    try:
                        json.loads(line)
                    except (ValueError, UnicodeDecodeError):
                        count += 1
        except FileNotFoundError:
            return 0
        return count


MAX_EVENT_PATHS = 1000  # keeps one event line bounded when a diff touches a whole tree


def _parse_line(line: bytes) -> Event | None:
    """One log line as an Event; None for a torn or garbage line, or one of the wrong shape."""
    try:
        raw = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(raw, dict) or "event" not in raw:
        return None
    ts, event = raw.get("ts") or "", raw.get("event")
    paths, details = raw.get("paths") or [], raw.get("details") or {}
    snapshot, trigger = raw.get("snapshot"), raw.get("trigger")
    # A line of the wrong shape (hand-edited, or another tool's) is skipped like a torn one.
    if (
        not isinstance(ts, str)
        or not isinstance(event, str)
        or not isinstance(paths, list)
        or not isinstance(details, dict)
        or not isinstance(snapshot, str | None)
        or not isinstance(trigger, str | None)
    ):
        return None
    return Event(ts=ts, event=event, paths=[str(p) for p in paths], snapshot=snapshot, trigger=trigger, details=details)
