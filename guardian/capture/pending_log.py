"""The secret-scan queue's file: ``<store>/secrets-pending.jsonl``, an append-only log of JSON lines.

A capture that does not scan (init, a restore, a git hook) appends its few versions, one JSON
object a line, in one ``write(2)`` on an ``O_APPEND`` descriptor followed by fsync (and an fsync
of the store directory when the write created the file): O(new versions), never O(queue), where
rewriting a whole JSON document cost a hook 3-6 ms at 83 KB.  Every file starts with a header line
holding a random id, so a file removed and created again (its inode reused) is never taken for
the one this process read before (:class:`Queue`'s ``identity``).

A crash mid-append (SIGKILL) can leave at most a torn *last* line: a reader stops at the last
newline, and the next append starts on a line of its own, so the torn bytes become one line
that does not parse and is skipped.  Every complete line before it is kept.

Only the drain (guardian.capture.secret_record) takes versions out: it removes the file once
everything was scanned, or replaces it atomically with what is left.  Both hold the store's
writer lock, as every append does (captures run in ``write_session`` or the watcher's store
session), so no append is ever lost to a replace; appends need no lock among themselves.

``secrets-pending.json``, the queue's file before this log (one JSON document,
``{"versions": [...]}``, rewritten whole), is still read.  It is a single line, so it is a valid
first line of the log as it stands: the first append renames it (a hard link, then an unlink,
so it never replaces a log made meanwhile) and appends after it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from guardian.util.fs import atomic_write_file, fsync_dir

PENDING_NAME = "secrets-pending.jsonl"
LEGACY_PENDING_NAME = "secrets-pending.json"  # the whole-document queue of guardian before the log
# How much of the first line names a file (with its inode): the header line is shorter than this.
IDENTITY_BYTES = 256
_HEADER_KEY = "queue"
_HEADER_VALUE = "guardian secret scans pending"

Identity = tuple[int, bytes]  # the log's inode and its first line (at most IDENTITY_BYTES)


class Queue:
    """The queued versions, oldest first, and which log file they were read from.

    ``identity`` is None when there is no log, or when the old format's file is read with it
    (the drain then replaces both with one log).  A plain class: a NamedTuple costs ~0.3 ms to
    create, and this module loads on every capture's path (a git hook's).
    """

    __slots__ = ("identity", "versions")

    def __init__(self, identity: Identity | None, versions: list[dict[str, Any]]) -> None:
        self.identity = identity
        self.versions = versions


class _Seen:
    """What this process last read of a log: its identity, how far (bytes), the versions there, and
    the byte offset each version's line starts at (None once a line held several: the old format's)."""

    __slots__ = ("end", "identity", "starts", "versions")

    def __init__(self, identity: Identity, end: int, versions: list[dict[str, Any]], starts: list[int] | None) -> None:
        self.identity = identity
        self.end = end
        self.versions = versions
        self.starts = starts


# The watcher reads a long queue a slice at a time: each read parses only what was appended since.
_seen: _Seen | None = None


def log_path(store: Path) -> Path:
    return store / PENDING_NAME


def legacy_path(store: Path) -> Path:
    return store / LEGACY_PENDING_NAME


def waiting(store: Path) -> bool:
    """Whether a queue file exists (it may hold nothing left to scan)."""
    return log_path(store).exists() or legacy_path(store).exists()


def append(store: Path, versions: list[dict[str, Any]]) -> None:
    """Queue versions at the end of the log: one write and an fsync.  Raises OSError (a full disk)."""
    if not versions:
        return
    path = log_path(store)
    payload = b"".join(_line(v) for v in versions)
    flags = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        adopt_legacy(store)
        fd = os.open(path, flags | os.O_CREAT, 0o600)
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            payload = _header() + payload
        elif os.pread(fd, 1, size - 1) != b"\n":
            payload = b"\n" + payload  # a writer killed mid-line: its torn bytes stay a line of their own
        view = memoryview(payload)
        while view:  # one write(2) unless the disk fills up halfway
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    if size == 0:
        fsync_dir(store)  # the file's name is as durable as its content


def adopt_legacy(store: Path) -> None:
    """Give a queue file in the old format the log's name, unless a log exists already.

    A hard link then an unlink: a rename would replace a log another writer made meanwhile.
    A crash in between leaves both names on one file, which is read once and cleared here later.
    With a log of its own already, the old file is read as well, until the drain replaces both.
    """
    legacy = legacy_path(store)
    try:
        os.link(legacy, log_path(store))
    except FileNotFoundError:
        return
    except FileExistsError:
        if not _same_file(legacy, log_path(store)):
            return
    except OSError:
        return  # no hard links here: both files are read, and the drain's replace folds them
    _unlink_legacy(store)


def read(store: Path) -> Queue:
    """Every queued version, oldest first (the old format's file first).  Needs no lock."""
    log = _read_log(log_path(store))
    legacy = legacy_path(store)
    try:
        data = legacy.read_bytes()
    except OSError:
        return log
    if _same_file(legacy, log_path(store)):
        return log  # adopt_legacy was stopped between its link and its unlink
    return Queue(None, [*_parse(data[: data.rfind(b"\n") + 1] or data)[0], *log.versions])


def replace(store: Path, versions: list[dict[str, Any]]) -> Queue:
    """Make the queue exactly these versions, atomically (the caller holds the writer lock).  Raises OSError."""
    lines = [_line(v) for v in versions]
    return _write_queue(store, b"", [], lines, list(versions))


def replace_after(store: Path, queue: Queue, drop: int, extra: list[dict[str, Any]]) -> Queue:
    """Make the queue ``queue``'s versions after its first ``drop``, then ``extra``, atomically.  Raises OSError.

    ``queue`` is what :func:`read` returned to this process, and the caller has held the writer
    lock since, so the file is still that one.  The kept versions' lines are copied from it as
    they are: encoding them again cost 0.74 s of CPU for a 100,000-version queue (a first
    snapshot's), every time the watcher saved its progress through it.  Anything else (the old
    format's file, a queue this process did not just read) is written from the versions, as
    :func:`replace` does.
    """
    kept = _kept_lines(store, queue, drop)
    if kept is None:
        return replace(store, [*queue.versions[drop:], *extra])
    data, starts = kept
    # Lines between versions (a torn append's bytes) come along; every reader skips them, as before.
    return _write_queue(store, data, starts, [_line(v) for v in extra], [*queue.versions[drop:], *extra])


def _kept_lines(store: Path, queue: Queue, drop: int) -> tuple[bytes, list[int]] | None:
    """The log's bytes from ``queue``'s version ``drop`` on, and where each kept version starts in them.

    None unless this process read ``queue`` from the log as it still is (same identity, not cut).
    """
    seen = _seen
    if (
        seen is None
        or seen.starts is None
        or queue.identity is None
        or seen.identity != queue.identity
        or len(seen.versions) != len(queue.versions)
        or not 0 <= drop <= len(queue.versions)
    ):
        return None
    try:
        fd = os.open(log_path(store), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        st = os.fstat(fd)
        head = os.pread(fd, IDENTITY_BYTES, 0)
        if (st.st_ino, head[: head.find(b"\n") + 1] or head) != seen.identity or st.st_size < seen.end:
            return None  # replaced or cut since this process read it
        begin = seen.starts[drop] if drop < len(seen.starts) else seen.end
        data = _pread_all(fd, seen.end - begin, begin)
    finally:
        os.close(fd)
    if len(data) != seen.end - begin:
        return None
    return data, [at - begin for at in seen.starts[drop:]]


def _write_queue(
    store: Path, kept: bytes, kept_starts: list[int], lines: list[bytes], versions: list[dict[str, Any]]
) -> Queue:
    """Write header + kept (complete lines, versions starting at kept_starts) + lines as the new queue file."""
    global _seen
    path = log_path(store)
    header = _header()
    content = b"".join([header, kept, *lines])
    atomic_write_file(path, content)
    _unlink_legacy(store)  # its versions are in the new log, or were scanned
    starts = [len(header) + at for at in kept_starts]
    at = len(header) + len(kept)
    for line in lines:
        starts.append(at)
        at += len(line)
    identity = (os.stat(path).st_ino, header[:IDENTITY_BYTES])
    _seen = _Seen(identity, len(content), versions, starts)
    return Queue(identity, list(versions))


def remove(store: Path) -> None:
    """Everything queued was scanned: no queue file remains (the caller holds the writer lock)."""
    global _seen
    log_path(store).unlink(missing_ok=True)
    _unlink_legacy(store)
    _seen = None


def _unlink_legacy(store: Path) -> None:
    try:
        legacy_path(store).unlink()
    except FileNotFoundError:
        return
    fsync_dir(store)  # not back after a crash, to be scanned twice


def _read_log(path: Path) -> Queue:
    global _seen
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return Queue(None, [])
    try:
        st = os.fstat(fd)
        size = st.st_size
        head = os.pread(fd, IDENTITY_BYTES, 0)
        identity = (st.st_ino, head[: head.find(b"\n") + 1] or head)
        seen = _seen
        starts: list[int] | None
        if seen is not None and seen.identity == identity and seen.end <= size:
            # The same file, appended to since: what was read of it before, copied to be extended.
            start, versions = seen.end, list(seen.versions)
            starts = None if seen.starts is None else list(seen.starts)
        else:
            start, versions, starts = 0, [], []
        data = _pread_all(fd, size - start, start)
    finally:
        os.close(fd)
    complete = data.rfind(b"\n") + 1  # past it: an append in progress, or the torn end of a killed one
    found, found_starts = _parse(data[:complete], start)
    versions.extend(found)
    if starts is not None and found_starts is not None:
        starts.extend(found_starts)
    else:
        starts = None
    _seen = _Seen(identity, start + complete, versions, starts)
    return Queue(identity, list(versions))


def _pread_all(fd: int, size: int, offset: int) -> bytes:
    chunks: list[bytes] = []
    while size > 0:
        chunk = os.pread(fd, size, offset)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _parse(data: bytes, base: int = 0) -> tuple[list[dict[str, Any]], list[int] | None]:
    """The versions in data's complete lines (headers, torn lines and garbage are skipped), and the
    offset (base + its place in data) each one's line starts at; None when a line held several
    (the old format's whole queue)."""
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()  # data ends with its last line's newline
    kept: list[bytes] = []
    offsets: list[int] = []
    at = base
    for line in lines:
        if line:
            kept.append(line)
            offsets.append(at)
        at += len(line) + 1
    if not kept:
        return [], []
    try:
        # One parse for the usual file, whose every line is whole (a count that differs: a torn line).
        items: list[Any] = json.loads(b"[" + b",".join(kept) + b"]")
    except ValueError:
        items = []
    if not isinstance(items, list) or len(items) != len(kept):
        items = []
        for line in kept:
            try:
                items.append(json.loads(line))
            except ValueError:
                items.append(None)  # a torn line: the end of an append a crash cut short
    versions: list[dict[str, Any]] = []
    starts: list[int] | None = []
    for item, offset in zip(items, offsets, strict=True):
        if not isinstance(item, dict):
            continue
        batch = item.get("versions")  # the old format's whole queue, as the log's first line
        if isinstance(batch, list):
            starts = None
            versions.extend(v for v in batch if isinstance(v, dict) and "path" in v and "blob" in v)
        elif "path" in item and "blob" in item:
            versions.append(item)
            if starts is not None:
                starts.append(offset)
    return versions, starts


# ensure_ascii: a path's newline or odd character is escaped, so a line is one version.  One encoder
# for every line: json.dumps with these options builds a new one per call, a third of a line's cost.
_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"))


def _line(version: dict[str, Any]) -> bytes:
    return _ENCODER.encode(version).encode() + b"\n"


def _header() -> bytes:
    return _line({_HEADER_KEY: _HEADER_VALUE, "id": os.urandom(8).hex()})


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
