"""The append-only JSONL event log: what happened, to which paths, when and why.

Appends are one write(2) of one whole line on an O_APPEND descriptor followed by
fsync, so concurrent writers never interleave inside a line.  A crash can at
worst leave a torn *last* line, which the reader skips.  (A temp-file-and-rename
would have to rewrite the whole log on every event; appending is the durable
pattern for logs.)

The log rotates at ``ROTATE_BYTES``: ``events.jsonl`` becomes ``events.1.jsonl`` (the
older ones move up to ``events.{KEEP_ROTATED}.jsonl``; the oldest beyond that is dropped).
``tail`` and ``recent`` read from the end, so ``guardian events -n N`` costs the same at any
size; ``read_all`` (and ``read``) cover the rotated files too, oldest first, for readers
that need the whole history (gc's references, the guardrail's accepted deletions).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

EVENT_KINDS = (
    "init",
    "snapshot",
    "verdict",
    "secret",
    "restore",
    "rollback",
    "accept",
    "skip",
    "error",
    "drift",
    "drift-resolved",
    "repair",
    "forget",
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
    "move",
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
    import getpass  # only when an event is written: readers of the log never need it

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


class Event(NamedTuple):
    """One line of the log.

    A NamedTuple, not a frozen dataclass: the same fields, equality, repr and immutability (and
    no hash: it holds a list and a dict), without importing dataclasses (and inspect, ~10 ms) on
    every restore and git hook that writes an event.  Readers use its fields by name only.
    """

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
    def __init__(self, path: Path, rotate_bytes: int | None = None) -> None:
        self.path = path
        self.rotate_bytes = rotate_bytes if rotate_bytes is not None else ROTATE_BYTES

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
        fd = self._open_for_append()
        try:
            if os.fstat(fd).st_size >= self.rotate_bytes:
                os.close(fd)
                fd = -1
                self._rotate()
                fd = self._open_for_append()
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
            if fd >= 0:
                os.close(fd)

    def _open_for_append(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def rotated(self, index: int) -> Path:
        """events.jsonl -> events.1.jsonl, events.2.jsonl, ... (1 is the newest)."""
        return self.path.with_name(f"{self.path.stem}.{index}{self.path.suffix}")

    def rotated_files(self) -> list[Path]:
        """The rotated files that exist, oldest first."""
        return [p for p in (self.rotated(i) for i in range(KEEP_ROTATED, 0, -1)) if p.exists()]

    def _rotate(self) -> None:
        """Move the full log aside, once, however many writers find it full at the same moment.

        Under a lock, and only if the file at self.path is still over the limit: a writer that
        lost the race finds a fresh file there and appends to it.  A writer that opened the old
        file just before the rename appends to events.1.jsonl, which is read all the same.
        """
        import fcntl  # here: every hook appends events, and rotation is rare

        lock_fd = os.open(f"{self.path}.lock", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            try:
                if os.stat(self.path).st_size < self.rotate_bytes:
                    return
            except FileNotFoundError:
                return
            try:
                os.unlink(self.rotated(KEEP_ROTATED))
            except FileNotFoundError:
                pass
            for index in range(KEEP_ROTATED - 1, 0, -1):
                try:
                    os.rename(self.rotated(index), self.rotated(index + 1))
                except FileNotFoundError:
                    pass
            os.rename(self.path, self.rotated(1))
        finally:
            os.close(lock_fd)  # releases the flock

    def read_all(self) -> Iterator[Event]:
        """Every parseable record, rotated files included, oldest first; torn or garbage lines are skipped."""
        for path in [*self.rotated_files(), self.path]:
            try:
                handle = open(path, "rb")  # noqa: SIM115 - closed below; a rotation may remove it first
            except FileNotFoundError:
                continue
            with handle:
                for line in handle:
                    event = _parse_line(line)
                    if event is not None:
                        yield event

    def read(self) -> Iterator[Event]:
        """The same as read_all: every record, rotated files included, oldest first."""
        return self.read_all()

    def _newest_first_lines(self, budget: int | None = None) -> Iterator[bytes]:
        """Raw lines, newest first, across the log and its rotated files; stop after budget bytes."""
        remaining = budget
        for path in [self.path, *reversed(self.rotated_files())]:
            for line, size in _reverse_lines(path, remaining):
                yield line
                if remaining is not None:
                    remaining -= size
            if remaining is not None and remaining <= 0:
                return

    def recent(self, kinds: Sequence[str], limit: int = 5, window: int = 1 << 20) -> list[Event]:
        """The newest ``limit`` events of ``kinds``, oldest first, from the last ``window`` bytes only.

        ``status`` asks this on every call: reading a log of 100 MB from the start would cost seconds.
        """
        found: list[Event] = []
        for line in self._newest_first_lines(window):
            if not any(f'"event":"{kind}"'.encode() in line for kind in kinds):
                continue
            event = _parse_line(line)
            if event is not None and event.event in kinds:
                found.append(event)
                if len(found) >= limit:
                    break
        return list(reversed(found))

    def tail(self, n: int | None = None, kinds: Sequence[str] = (), path: str | None = None) -> list[Event]:
        """The newest n events (all with None) that match kinds and path, oldest first, read from the end.

        With no filter this reads only the last n lines, whatever the size of the log; a filter
        reads back until n match (a kind that is rare reads further).
        """
        prefix = path.rstrip("/") + "/" if path is not None else None
        wanted = [f'"{k}"'.encode() for k in kinds]
        selected: list[Event] = []
        for line in self._newest_first_lines():
            # A cheap byte test first: most lines are not of the kinds asked for.  ("force" also
            # matches a "force": true detail, whose key is the same quoted word.)
            if wanted and not any(w in line for w in wanted):
                continue
            event = _parse_line(line)
            if event is None:
                continue
            if kinds and not (
                event.event in kinds or event.trigger in kinds or ("force" in kinds and event.details.get("force"))
            ):
                continue
            if path is not None and not any(p == path or p.startswith(prefix or "") for p in event.paths):
                continue
            selected.append(event)
            if n and len(selected) >= n:
                break
        return list(reversed(selected))

    def torn_lines(self) -> int:
        count = 0
        try:
            with open(self.path, "rb") as handle:
                for line in handle:
                    if not line.strip():
                        # A blank line is no loss: two writers can each start a fresh line when one
                        # finds the other's record still arriving at the end of the file.
                        continue
                    try:
                        json.loads(line)
                    except (ValueError, UnicodeDecodeError):
                        count += 1
        except FileNotFoundError:
            return 0
        return count


ROTATE_BYTES = 64 * 1024 * 1024  # about 130,000 events of ~500 bytes
KEEP_ROTATED = 3  # events.1.jsonl .. events.3.jsonl; the oldest beyond these is dropped
_BLOCK = 64 * 1024


def _reverse_lines(path: Path, budget: int | None = None) -> Iterator[tuple[bytes, int]]:
    """(line, bytes it took) for each line of path, last first, read in blocks from the end."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - a generator: closed in the finally below
    except FileNotFoundError:
        return
    try:
        position = handle.seek(0, os.SEEK_END)
        carry = b""
        read = 0
        while position > 0:
            step = min(_BLOCK, position)
            position -= step
            handle.seek(position)
            block = handle.read(step) + carry
            read += step
            lines = block.split(b"\n")
            carry = lines[0]  # may be the tail of a line that starts in an earlier block
            for line in reversed(lines[1:]):
                if line:
                    yield line, len(line) + 1
            if budget is not None and read >= budget:
                return  # what is left in carry is probably cut: skip it
        if carry:
            yield carry, len(carry)
    finally:
        handle.close()


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
