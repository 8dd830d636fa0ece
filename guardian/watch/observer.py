"""The observer seam: watchdog events in, root-relative paths out, and the one observer that makes them.

``ChangeHandler`` is the filter: it turns each watchdog event into the paths worth capturing
and hands them to a sink, telling apart the changes whose writer is done (a file closed after
writing, a finished temp file renamed over its target), and its ``tap`` lets tests script or
drop events.  ``Observation``
holds the one observer watching the root: the native one (inotify on Linux) when it starts
and covers the tree, otherwise a polling observer that lists only what could be captured.
The inotify helpers count the watches held against the directories that need one, because
watchdog can leave part of a large tree unwatched without saying so.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
    FileSystemMovedEvent,
)

from guardian.capture.filters import PathFilter
from guardian.capture.sqlite import wal_base
from guardian.capture.walk import too_deep

if TYPE_CHECKING:
    from watchdog.observers.api import BaseObserver

# The watcher's log file names the logger on every line; these lines have always been the watcher's.
log = logging.getLogger("guardian.watch.watcher")

# Only events that mean "content or names changed".  With watchdog's default mask,
# opens and reads generate events too; guardian reading files then feeds itself and
# a quiet 100k-file tree was measured looping on queue overflows.
WATCH_EVENTS: list[type[FileSystemEvent]] = [
    FileModifiedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
]

# inotify resources ran out: fall back to polling instead of watching nothing.
EXHAUSTED = (errno.ENOSPC, errno.EMFILE, errno.ENFILE, errno.ENOMEM)

Report = Callable[[str, list[str], dict[str, Any]], None]  # (event kind, paths, details) for the event log

# How long a file created in the tree counts as possibly a temp file: its close is then not a
# complete change of its own, and a rename of it (once closed) completes its target.
FRESH_SECONDS = 5.0


# --------------------------------------------------------------------------- events -> paths


class ChangeHandler(FileSystemEventHandler):
    """Turns watchdog events into root-relative paths worth capturing.

    A move counts as a delete of its source and a change of its destination,
    which is how ``sed -i`` and editors' atomic saves reach the target.  Any
    exception is reported to ``on_error`` instead of killing the observer thread.

    Paths go to ``sink``, except those of a *complete* change, which go to
    ``sink_complete`` (when given) and may be captured at once: a close after writing
    of a file that was not created a moment ago, or the rename of a file created and
    closed a moment ago (a temp file: ``sed -i``, an atomic save) over its target.
    A created file's own close is never complete, since it may be a temp file about to
    be renamed; a delete or a rename of an older file never is, since it may be the first
    half of a rename dance (vim renames the target away, then writes a new one).  Only
    observers that report closes (inotify) ever produce a complete change.

    ``tap`` is a test seam: called with each raw event first; returning False
    drops the event, raising simulates a handler bug.
    """

    def __init__(
        self,
        root: Path,
        store: Path,
        keep: PathFilter,
        sink: Callable[[list[str]], None],
        on_error: Callable[[BaseException, FileSystemEvent], None],
        on_gitignore: Callable[[str], None] | None = None,
        sink_complete: Callable[[list[str]], None] | None = None,
    ) -> None:
        super().__init__()
        self._root = str(root)
        self._root_prefix = self._root.rstrip("/") + "/"
        self._store = str(store)
        self._store_prefix = self._store.rstrip("/") + "/"
        self.keep = keep
        self._sink = sink
        self._on_error = on_error
        self._on_gitignore = on_gitignore
        self._sink_complete = sink_complete
        # Files created a moment ago (root-relative, creation order) -> (created at, closed since).
        self._fresh: dict[str, tuple[float, bool]] = {}
        self.tap: Callable[[FileSystemEvent], bool] | None = None

    def dispatch(self, event: FileSystemEvent) -> None:
        try:
            tap = self.tap
            if tap is not None and not tap(event):
                return
            complete = self._sink_complete is not None and self._is_complete(event)
            paths = self.paths_for(event)
            if paths:
                if complete and self._sink_complete is not None:
                    self._sink_complete(paths)
                else:
                    self._sink(paths)
        except Exception as exc:  # noqa: BLE001 - an escaping exception would silently kill the observer thread
            self._on_error(exc, event)

    def _is_complete(self, event: FileSystemEvent) -> bool:
        """Is this event a change whose writer is done with the file (see the class docstring)?"""
        if event.is_directory:
            return False
        src = self.relative(event.src_path)
        if src is None:
            return False
        now = time.monotonic()
        fresh = self._fresh
        while fresh:  # forget creations older than the window, oldest first
            oldest = next(iter(fresh))
            if now - fresh[oldest][0] < FRESH_SECONDS:
                break
            del fresh[oldest]
        if isinstance(event, FileCreatedEvent):
            fresh[src] = (now, False)
            return False
        if isinstance(event, FileClosedEvent):
            created = fresh.get(src)
            if created is None:
                return True
            fresh[src] = (created[0], True)
            return False
        if isinstance(event, FileMovedEvent):
            moved = fresh.pop(src, None)
            dest = self.relative(event.dest_path) if event.dest_path else None
            if dest is None:
                return False
            fresh.pop(dest, None)  # whatever was created there is replaced by a finished file
            return moved is not None and moved[1] and self.keep(dest)
        return False

    def relative(self, raw: bytes | str) -> str | None:
        path = os.fsdecode(raw)
        if path == self._store or path.startswith(self._store_prefix):
            return None
        if not path.startswith(self._root_prefix):
            return None
        rel = path[len(self._root_prefix) :].rstrip("/")
        return rel or None

    def paths_for(self, event: FileSystemEvent) -> list[str]:
        """The root-relative path of each side of the event that should be captured."""
        raws = [event.src_path]
        if isinstance(event, FileSystemMovedEvent) and event.dest_path:
            raws.append(event.dest_path)
        out: list[str] = []
        for raw in raws:
            if not raw:
                continue
            rel = self.relative(raw)
            if rel is None:
                continue
            leaf = rel.rsplit("/", 1)[-1]
            if leaf == ".gitignore" and not event.is_directory:
                parent = rel.rsplit("/", 1)[0] if "/" in rel else ""
                self.keep.invalidate_gitignore(parent)
                if self._on_gitignore is not None:
                    self._on_gitignore(rel)
            database = None if event.is_directory else wal_base(rel)
            if database is not None and self.keep(database):
                # A commit in WAL mode may write only the -wal (never captured itself): capture its database.
                out.append(database)
            if self.keep(rel, is_dir=event.is_directory):
                out.append(rel)
        return out


class WatchdogSignals(logging.Handler):
    """Hears what watchdog only logs: queue overflows and observer errors."""

    def __init__(self, on_signal: Callable[[str, str], None]) -> None:
        super().__init__(level=logging.WARNING)
        self._on_signal = on_signal

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad log record must not break the watcher
            message = str(record.msg)
        if "overflow" in message.lower():
            self._on_signal("overflow", message)
        elif record.levelno >= logging.ERROR:
            self._on_signal("observer-error", message)


# --------------------------------------------------------------------------- inotify coverage


def inotify_watch_count() -> int | None:
    """Inotify watches this process holds (from /proc/self/fdinfo), or None where unknown."""
    fd_dir = "/proc/self/fd"
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return None
    total = 0
    found = False
    for name in names:
        try:
            if os.readlink(f"{fd_dir}/{name}") != "anon_inode:inotify":
                continue
            with open(f"/proc/self/fdinfo/{name}", encoding="ascii", errors="replace") as handle:
                total += sum(1 for line in handle if line.startswith("inotify wd:"))
            found = True
        except OSError:
            continue
    return total if found else None


def inotify_limit_reached(path: Path) -> bool:
    """Would one more inotify watch (or instance) be refused for lack of resources?"""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = int(libc.inotify_init1(os.O_CLOEXEC))
    except (OSError, AttributeError):
        return False
    if fd < 0:
        return ctypes.get_errno() in EXHAUSTED
    try:
        wd = int(libc.inotify_add_watch(fd, os.fsencode(path), 0x100))  # IN_CREATE
        return wd < 0 and ctypes.get_errno() in EXHAUSTED
    finally:
        os.close(fd)


def count_watchable_dirs(root: Path) -> int:
    """Directories a recursive inotify watch of root needs (symlinks are not followed)."""
    count = 0
    stack = [str(root)]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as entries:
                children = [e.path for e in entries if e.is_dir(follow_symlinks=False)]
        except OSError:
            continue
        count += 1
        stack.extend(children)
    return count


# --------------------------------------------------------------------------- the observer


class Observation:
    """The one observer feeding ``handler`` for ``root``, and its mode ("inotify", "polling", ...).

    ``start`` tries the native observer and falls back to polling when inotify's resources
    run out, whether watchdog raises or only the watch count shows it.  ``report`` writes
    the fallback to the event log.
    """

    def __init__(self, root: Path, handler: ChangeHandler, poll_interval: float, report: Report) -> None:
        self.root = root
        self.handler = handler
        self.poll_interval = poll_interval
        self._report = report
        self.observer: BaseObserver | None = None
        self.mode = "none"

    def start(self) -> None:
        """Start the native observer; poll instead if inotify cannot cover the tree."""
        from watchdog.observers import Observer

        observer: BaseObserver | None = None
        try:
            observer = Observer()
            observer.schedule(self.handler, str(self.root), recursive=True, event_filter=WATCH_EVENTS)
            observer.start()
        except OSError as exc:
            if observer is not None:
                stop_quietly(observer)
            if exc.errno in EXHAUSTED:
                self.fallback(f"cannot watch with {mode_name(observer)}: {exc.strerror or exc}")
                return
            raise
        except RecursionError:
            # watchdog adds its watches with a recursive walk (os.walk): a tree a thousand levels
            # deep exhausts the recursion limit.  Polling lists no deeper than capture walks.
            if observer is not None:
                stop_quietly(observer)
            self.fallback(f"the tree is too deep for {mode_name(observer)} to watch")
            return
        self.observer = observer
        self.mode = mode_name(observer)
        if self.mode == "inotify":
            gap = self.coverage_gap()
            if gap is not None:
                what, at_limit = gap
                if at_limit:
                    self.stop()
                    self.fallback(f"inotify watch limit reached: {what}")
                else:
                    log.warning("not every directory has its watch yet (%s); checking again later", what)

    def coverage_gap(self) -> tuple[str, bool] | None:
        """(how many directories lack an inotify watch, whether the watch limit is why), or None.

        watchdog can swallow ENOSPC below the root (some releases always, 7.1.1 once the
        observer runs), so a tree larger than the limit is silently half-watched;
        counting the watches is the only way to notice.
        """
        watches = needed = 0
        for attempt in range(5):
            count = inotify_watch_count()
            if count is None:
                return None
            watches, needed = count, count_watchable_dirs(self.root)
            if watches >= needed:
                return None
            if attempt < 4:  # directories created a moment ago may still be getting their watch
                time.sleep(0.1 * (attempt + 1))
        return f"{watches} of {needed} directories watched", inotify_limit_reached(self.root)

    def fallback(self, reason: str) -> None:
        from watchdog.observers.polling import PollingObserverVFS

        observer = PollingObserverVFS(os.lstat, self.poll_listdir, polling_interval=self.poll_interval)
        observer.schedule(self.handler, str(self.root), recursive=True, event_filter=WATCH_EVENTS)
        observer.start()
        self.observer = observer
        self.mode = "polling"
        log.warning("falling back to polling every %.1fs: %s", self.poll_interval, reason)
        self._report("warning", [], {"what": "polling fallback", "reason": reason, "interval": self.poll_interval})
        self._report("watcher", [], {"action": "fallback", "mode": "polling", "reason": reason})

    def poll_listdir(self, path: str | None) -> Iterator[os.DirEntry[str]]:
        # Polling stats every file it lists: leave out what would never be captured.
        assert path is not None
        if path == str(self.root):
            base = ""
        else:
            rel_dir = self.handler.relative(path)
            if rel_dir is None or too_deep(rel_dir + "/x"):  # capture goes no deeper (nor may the recursive walk)
                return iter(())
            base = rel_dir + "/"
        with os.scandir(path) as entries:
            listing = list(entries)
        kept: list[os.DirEntry[str]] = []
        for entry in listing:
            rel = base + entry.name
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if self.handler.relative(entry.path) is None:
                continue
            # A database's -wal is polled too: its changes are the database's (see ChangeHandler).
            database = None if is_dir else wal_base(rel)
            if self.handler.keep(rel, is_dir=is_dir) or (database is not None and self.handler.keep(database)):
                kept.append(entry)
        return iter(kept)

    def stop(self) -> None:
        observer, self.observer = self.observer, None
        if observer is not None:
            stop_quietly(observer)

    def problem(self) -> str | None:
        """Why the observer cannot be trusted to report changes, or None while it is healthy."""
        observer = self.observer
        if observer is None:
            return "no observer is running"
        if not observer.is_alive():
            return "the observer thread died"
        if any(not emitter.is_alive() for emitter in list(observer.emitters)):
            return "an emitter thread died"
        reader = getattr(observer, "_inotify_fd", None)
        if isinstance(reader, threading.Thread) and not reader.is_alive():
            return "the inotify reader thread died"
        return None

    def drain(self, grace: float = 0.5) -> None:
        """At shutdown, let events the kernel already reported reach the pending set."""
        observer = self.observer
        if observer is None:
            return
        time.sleep(0.05)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and observer.event_queue.unfinished_tasks:
            time.sleep(0.01)


def mode_name(observer: BaseObserver | None) -> str:
    name = type(observer).__name__ if observer is not None else "inotify" if sys.platform.startswith("linux") else ""
    for key, mode in (("Inotify", "inotify"), ("FSEvents", "fsevents"), ("Kqueue", "kqueue"), ("Polling", "polling")):
        if key.lower() in name.lower():
            return mode
    return name.lower().removesuffix("observer") or "native"


def stop_quietly(observer: BaseObserver) -> None:
    try:
        observer.stop()
    except Exception as exc:  # noqa: BLE001 - a broken observer is being thrown away anyway
        log.debug("stopping the observer: %s", exc)
    if observer.is_alive():
        observer.join(timeout=5)
