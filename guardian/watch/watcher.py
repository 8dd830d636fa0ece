"""The watcher engine: filesystem events -> filtered paths -> debounced batches -> snapshots.

Data flows one way::

    watchdog observer --(ChangeHandler: filter, map moves)--> pending set
    pending set --(quiet window / max delay)--> Capture.run(paths, "watch")

Nothing may be lost, and watchdog is known to lose things silently, so a full
rescan (``Capture.run(None)``: stat compare, unchanged files are not re-hashed)
runs at start, whenever the observer overflowed, errored or died, and every
``guardrail.interval`` seconds.  One thread (the caller of ``Watcher.run``)
owns the store: it holds the only ShadowRepo and Catalog and takes the writer
lock for each batch.  Observer threads only add paths to the pending set.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
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

from guardian.capture.engine import Capture, SnapshotResult
from guardian.capture.filters import PathFilter
from guardian.config import load_policy
from guardian.errors import GuardianError
from guardian.paths import POLICY_FILENAME
from guardian.policy import PolicyEngine
from guardian.project import Project
from guardian.util.fs import atomic_write_file
from guardian.watch.maintenance import Maintenance

if TYPE_CHECKING:
    from watchdog.observers.api import BaseObserver

    from guardian.catalog.db import Catalog
    from guardian.store.repo import ShadowRepo

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

ENV_FORCE_POLLING = "GUARDIAN_FORCE_POLLING"
ENV_POLL_INTERVAL = "GUARDIAN_POLL_INTERVAL"
ENV_QUIET = "GUARDIAN_WATCH_QUIET"
ENV_MAX_DELAY = "GUARDIAN_WATCH_MAX_DELAY"

# inotify resources ran out: fall back to polling instead of watching nothing.
_EXHAUSTED = (errno.ENOSPC, errno.EMFILE, errno.ENFILE, errno.ENOMEM)
_WATCHDOG_LOGGER = "watchdog"
_MAX_RETRY_DELAY = 30.0


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        log.warning("ignoring %s=%r: not a number", name, raw)
        return default
    return value if value >= 0 else default


@dataclass(frozen=True)
class WatchOptions:
    quiet: float = 0.1  # a batch is taken once no event came for this long...
    max_delay: float = 1.0  # ...or once the oldest pending change is this old
    heartbeat: float = 5.0
    supervise: float = 1.0  # how often the observer threads are checked for life
    poll_interval: float = 2.0  # polling fallback: seconds between directory scans
    force_polling: bool = False

    @classmethod
    def from_env(cls) -> WatchOptions:
        base = cls()
        return replace(
            base,
            quiet=_env_float(ENV_QUIET, base.quiet),
            max_delay=_env_float(ENV_MAX_DELAY, base.max_delay),
            poll_interval=max(0.05, _env_float(ENV_POLL_INTERVAL, base.poll_interval)),
            force_polling=os.environ.get(ENV_FORCE_POLLING, "").strip() not in ("", "0", "false", "no"),
        )


# --------------------------------------------------------------------------- events -> paths


class ChangeHandler(FileSystemEventHandler):
    """Turns watchdog events into root-relative paths worth capturing.

    A move counts as a delete of its source and a change of its destination,
    which is how ``sed -i`` and editors' atomic saves reach the target.  Any
    exception is reported to ``on_error`` instead of killing the observer thread.

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
        self.tap: Callable[[FileSystemEvent], bool] | None = None

    def dispatch(self, event: FileSystemEvent) -> None:
        try:
            tap = self.tap
            if tap is not None and not tap(event):
                return
            paths = self.paths_for(event)
            if paths:
                self._sink(paths)
        except Exception as exc:  # noqa: BLE001 - an escaping exception would silently kill the observer thread
            self._on_error(exc, event)

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
        return ctypes.get_errno() in _EXHAUSTED
    try:
        wd = int(libc.inotify_add_watch(fd, os.fsencode(path), 0x100))  # IN_CREATE
        return wd < 0 and ctypes.get_errno() in _EXHAUSTED
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


# --------------------------------------------------------------------------- capture

Batch = dict[str, None]  # pending root-relative paths, in arrival order


def _empty_result() -> SnapshotResult:
    return SnapshotResult(None, None, time.time(), "watch")


# --------------------------------------------------------------------------- the watcher


@dataclass
class WatchStats:
    started: float = 0.0
    batches: int = 0
    snapshots: int = 0
    rescans: int = 0
    restarts: int = 0
    errors: int = 0
    last_snapshot: float | None = None
    last_snapshot_id: str | None = None


class Watcher:
    """Watch one project's root and snapshot every change; ``run`` blocks until ``request_stop``."""

    def __init__(
        self,
        project: Project,
        options: WatchOptions | None = None,
        *,
        on_ready: Callable[[Watcher], None] | None = None,
        on_snapshot: Callable[[SnapshotResult], None] | None = None,
    ) -> None:
        self.project = project
        self.options = options or WatchOptions.from_env()
        self.on_ready = on_ready
        self.on_snapshot = on_snapshot
        self.keep = PathFilter(project.root, project.policy.watch)
        self.engine = PolicyEngine.from_policy(project.policy)
        self._maintenance = Maintenance(project)  # gc, size cap and pushes, on their own thread
        self.handler = ChangeHandler(
            project.root,
            project.paths.store,
            self.keep,
            self._add_pending,
            self._handler_failed,
            self._gitignore_changed,
        )
        self.mode = "none"
        self.state = "starting"
        self.stats = WatchStats()
        self.ready = threading.Event()
        self._cond = threading.Condition(threading.RLock())
        self._pending: Batch = {}
        self._first = 0.0
        self._last = 0.0
        self._retry_at = 0.0
        self._retry_delay = 1.0
        self._stop = False
        self._rescan_reasons: list[str] = []
        self._restart_reason: str | None = None
        self._check_coverage = False
        self._observer: BaseObserver | None = None
        self._repo: ShadowRepo | None = None
        self._catalog: Catalog | None = None
        self._capturer: Capture | None = None
        self._signals = WatchdogSignals(self._watchdog_signal)
        self._next_heartbeat = 0.0

    # ------------------------------------------------------------------ thread-safe requests

    def request_stop(self) -> None:
        """Flush what is pending, then make ``run`` return.  Safe from signal handlers and threads."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()

    def request_rescan(self, reason: str) -> None:
        with self._cond:
            if reason not in self._rescan_reasons:
                self._rescan_reasons.append(reason)
            self._cond.notify_all()

    def request_restart(self, reason: str) -> None:
        with self._cond:
            if self._restart_reason is None:
                self._restart_reason = reason
            self._cond.notify_all()

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._pending)

    @property
    def observer(self) -> BaseObserver | None:
        return self._observer

    def _add_pending(self, paths: list[str]) -> None:
        with self._cond:
            now = time.monotonic()
            if not self._pending:
                self._first = now
                # The loop sleeps until the oldest deadline; only the first change needs to wake it.
                self._cond.notify_all()
            self._last = now
            for path in paths:
                self._pending[path] = None

    def _handler_failed(self, exc: BaseException, event: FileSystemEvent) -> None:
        # The event is lost: report it, and rebuild the observer and rescan to make up for it.
        self.stats.errors += 1
        log.error("event handler failed on %r: %s: %s", event, type(exc).__name__, exc)
        self._event(
            "error",
            [],
            {"where": "event handler", "error": f"{type(exc).__name__}: {exc}", "event": type(event).__name__},
        )
        self.request_restart(f"event handler failed: {type(exc).__name__}: {exc}")

    def _gitignore_changed(self, rel: str) -> None:
        self.request_rescan(f"{rel} changed")

    def _watchdog_signal(self, kind: str, message: str) -> None:
        if kind == "overflow":
            log.warning("watchdog: %s; rescanning", message)
            self._event("warning", [], {"what": "inotify queue overflow", "message": message})
            self.request_rescan("queue overflow")
        else:
            log.error("watchdog: %s; rescanning", message)
            self._event("error", [], {"where": "observer", "error": message})
            with self._cond:
                self._check_coverage = True
            self.request_rescan("observer error")

    # ------------------------------------------------------------------ lifecycle

    def run(self) -> None:
        """Open the store, start observing, reconcile, then capture batches until stopped."""
        self.stats.started = time.time()
        self._open_store()
        watchdog_logger = logging.getLogger(_WATCHDOG_LOGGER)
        if watchdog_logger.getEffectiveLevel() > logging.WARNING:
            watchdog_logger.setLevel(logging.WARNING)  # overflows are reported only as warnings
        watchdog_logger.addHandler(self._signals)
        try:
            self._start_observer()
            self._event("watcher", [], {"action": "start", "mode": self.mode, "root": str(self.project.root)})
            log.info("watching %s (pid %d, %s)", self.project.root, os.getpid(), self.mode)
            self.state = "scanning"
            self.write_heartbeat()
            self.ready.set()
            if self.on_ready is not None:
                self.on_ready(self)
            self._rescan(["start"])
            self.state = "watching"
            self.write_heartbeat()
            self._loop()
            self.state = "stopping"
            self._drain_observer()
            self._flush()
        finally:
            watchdog_logger.removeHandler(self._signals)
            self._stop_observer()
            self._maintenance.close()
            self._close_store()
            self.state = "stopped"
            self._event("watcher", [], {"action": "stop", "snapshots": self.stats.snapshots})
            log.info("stopped (%d snapshot(s) taken)", self.stats.snapshots)
            self._write_heartbeat_quietly()

    def _open_store(self) -> None:
        from guardian.catalog.sync import sync_catalog

        repo = self.project.open_repo()
        catalog = self.project.open_catalog()
        try:
            with self.project.writer_lock():
                # A writer killed by SIGKILL leaves git lock files and temp objects behind;
                # holding guardian's writer lock, nobody else can be using them.
                cleared = self.project.sweep_store(repo, "watch", deep=True)
                if cleared:
                    log.info("cleared %d stale lock/temp file(s)", len(cleared))
                sync_catalog(self.project.events, repo, catalog)
        except BaseException:
            catalog.close()
            raise
        self._repo = repo
        self._catalog = catalog
        self._capturer = self._new_capture()

    def _new_capture(self) -> Capture:
        assert self._repo is not None and self._catalog is not None
        capture = Capture(self.project, self._repo, self._catalog)
        capture.keep = self.keep  # one filter, so a .gitignore invalidation reaches both
        capture.budget = self._maintenance.budget
        return capture

    def _close_store(self) -> None:
        if self._catalog is not None:
            self._catalog.close()
        self._catalog = None
        self._capturer = None
        self._repo = None

    # ------------------------------------------------------------------ observers

    def _start_observer(self) -> None:
        if self.options.force_polling:
            self._fallback(f"{ENV_FORCE_POLLING} is set")
            return
        from watchdog.observers import Observer

        observer: BaseObserver | None = None
        try:
            observer = Observer()
            observer.schedule(self.handler, str(self.project.root), recursive=True, event_filter=WATCH_EVENTS)
            observer.start()
        except OSError as exc:
            if observer is not None:
                _stop_quietly(observer)
            if exc.errno in _EXHAUSTED:
                self._fallback(f"cannot watch with {_mode_name(observer)}: {exc.strerror or exc}")
                return
            raise
        self._observer = observer
        self.mode = _mode_name(observer)
        if self.mode == "inotify":
            gap = self._coverage_gap()
            if gap is not None:
                what, at_limit = gap
                if at_limit:
                    self._stop_observer()
                    self._fallback(f"inotify watch limit reached: {what}")
                else:
                    log.warning("not every directory has its watch yet (%s); checking again later", what)

    def _coverage_gap(self) -> tuple[str, bool] | None:
        """(how many directories lack an inotify watch, whether the watch limit is why), or None.

        watchdog swallows ENOSPC below the root, so a tree larger than the limit is
        silently half-watched; counting the watches is the only way to notice.
        """
        watches = needed = 0
        for attempt in range(5):
            count = inotify_watch_count()
            if count is None:
                return None
            watches, needed = count, count_watchable_dirs(self.project.root)
            if watches >= needed:
                return None
            if attempt < 4:  # directories created a moment ago may still be getting their watch
                time.sleep(0.1 * (attempt + 1))
        return f"{watches} of {needed} directories watched", inotify_limit_reached(self.project.root)

    def _fallback(self, reason: str) -> None:
        from watchdog.observers.polling import PollingObserverVFS

        observer = PollingObserverVFS(os.lstat, self._poll_listdir, polling_interval=self.options.poll_interval)
        observer.schedule(self.handler, str(self.project.root), recursive=True, event_filter=WATCH_EVENTS)
        observer.start()
        self._observer = observer
        self.mode = "polling"
        log.warning("falling back to polling every %.1fs: %s", self.options.poll_interval, reason)
        self._event(
            "warning", [], {"what": "polling fallback", "reason": reason, "interval": self.options.poll_interval}
        )
        self._event("watcher", [], {"action": "fallback", "mode": "polling", "reason": reason})

    def _poll_listdir(self, path: str | None) -> Iterator[os.DirEntry[str]]:
        # Polling stats every file it lists: leave out what would never be captured.
        assert path is not None
        with os.scandir(path) as entries:
            listing = list(entries)
        if path == str(self.project.root):
            base = ""
        else:
            rel_dir = self.handler.relative(path)
            if rel_dir is None:
                return iter(())
            base = rel_dir + "/"
        kept: list[os.DirEntry[str]] = []
        for entry in listing:
            rel = base + entry.name
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if self.handler.relative(entry.path) is not None and self.keep(rel, is_dir=is_dir):
                kept.append(entry)
        return iter(kept)

    def _stop_observer(self) -> None:
        observer, self._observer = self._observer, None
        if observer is not None:
            _stop_quietly(observer)

    def _observer_problem(self) -> str | None:
        observer = self._observer
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

    def _restart_observer(self, reason: str) -> None:
        self.stats.restarts += 1
        log.warning("restarting the observer: %s", reason)
        self._stop_observer()
        try:
            self._start_observer()
        except OSError as exc:
            self._event("error", [], {"where": "observer restart", "error": str(exc)})
            log.error("observer restart failed: %s; retrying", exc)
            with self._cond:
                self._restart_reason = reason
                self._retry_at = time.monotonic() + self._bump_retry()
            return
        self._event("watcher", [], {"action": "restart", "reason": reason, "mode": self.mode})
        self.request_rescan("observer restart")

    def _drain_observer(self, grace: float = 0.5) -> None:
        """At shutdown, let events the kernel already reported reach the pending set."""
        observer = self._observer
        if observer is None:
            return
        time.sleep(0.05)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and observer.event_queue.unfinished_tasks:
            time.sleep(0.01)

    # ------------------------------------------------------------------ the loop

    def _loop(self) -> None:
        opts = self.options
        interval = self.project.policy.guardrail.interval
        next_periodic = time.monotonic() + interval if interval > 0 else float("inf")
        next_supervise = time.monotonic() + opts.supervise
        while True:
            with self._cond:
                while True:
                    now = time.monotonic()
                    if self._stop:
                        return
                    restart = self._restart_reason is not None and now >= self._retry_at
                    rescan = bool(self._rescan_reasons) and now >= self._retry_at
                    ready = bool(self._pending) and now >= self._retry_at and (
                        now - self._last >= opts.quiet or now - self._first >= opts.max_delay
                    )
                    if (
                        restart
                        or rescan
                        or ready
                        or now >= self._next_heartbeat
                        or now >= next_supervise
                        or now >= next_periodic
                    ):
                        break
                    deadlines = [self._next_heartbeat, next_supervise, next_periodic]
                    if self._pending:
                        due = min(self._last + opts.quiet, self._first + opts.max_delay)
                        deadlines.append(max(self._retry_at, due))
                    if self._restart_reason is not None or self._rescan_reasons:
                        deadlines.append(self._retry_at)
                    self._cond.wait(max(0.001, min(deadlines) - now))
                restart_reason = self._restart_reason if restart else None
                if restart:
                    self._restart_reason = None
                reasons: list[str] = []
                if rescan:
                    reasons, self._rescan_reasons = self._rescan_reasons, []
                batch = self._take_pending() if ready else {}
                check_coverage, self._check_coverage = self._check_coverage, False
            now = time.monotonic()
            if restart_reason is not None:
                self._restart_observer(restart_reason)
            periodic = now >= next_periodic
            if periodic:
                next_periodic = now + interval
                reasons.append("periodic")
            if check_coverage or periodic:
                self._ensure_coverage()
            if reasons:
                # A full rescan also covers whatever was pending.
                self._take_pending_locked()
                self._rescan(reasons)
            elif batch:
                self._capture_batch(batch)
            if now >= next_supervise:
                next_supervise = now + opts.supervise
                problem = self._observer_problem()
                if problem is not None and self._restart_reason is None:
                    self.request_restart(problem)
            self._maintenance.poll()
            if time.monotonic() >= self._next_heartbeat:
                self.write_heartbeat()

    def _take_pending(self) -> Batch:
        batch, self._pending = self._pending, {}
        return batch

    def _take_pending_locked(self) -> Batch:
        with self._cond:
            return self._take_pending()

    def _requeue(self, batch: Batch) -> None:
        with self._cond:
            now = time.monotonic()
            if not self._pending:
                self._first = now
            self._last = now
            for path in batch:
                self._pending[path] = None
            self._retry_at = now + self._bump_retry()

    def _bump_retry(self) -> float:
        delay = self._retry_delay
        self._retry_delay = min(self._retry_delay * 2, _MAX_RETRY_DELAY)
        return delay

    def _ensure_coverage(self) -> None:
        if self.mode != "inotify":
            return
        gap = self._coverage_gap()
        if gap is None:
            return
        what, at_limit = gap
        if at_limit:
            self._stop_observer()
            self._fallback(f"inotify watch limit reached: {what}")
            self.request_rescan("polling fallback")
        else:
            # Not the limit: watches were lost some other way; a fresh observer adds them all again.
            self.request_restart(f"directories without a watch: {what}")

    def _flush(self) -> None:
        batch = self._take_pending_locked()
        if batch:
            log.info("flushing %d pending path(s) before exit", len(batch))
            self._capture_batch(batch, retry=False)

    def _rescan(self, reasons: list[str]) -> None:
        self.stats.rescans += 1
        log.info("rescan (%s)", ", ".join(reasons))
        result = self._capture(None, reason="rescan: " + ", ".join(reasons))
        if result is None:
            # Failed: try the whole scan again later.
            with self._cond:
                self._rescan_reasons.extend(r for r in reasons if r != "periodic")
                if "periodic" in reasons and "retry" not in self._rescan_reasons:
                    self._rescan_reasons.append("retry")
                self._retry_at = time.monotonic() + self._bump_retry()
            return
        if "periodic" in reasons:
            self._guardrail(None)
        else:
            self._guardrail_if_damaged(result)

    def _capture_batch(self, batch: Batch, retry: bool = True) -> None:
        result = self._capture(batch, reason="batch")
        if result is None:
            if retry:
                self._requeue(batch)
            return
        self._guardrail_if_damaged(result)

    def _capture(self, batch: Batch | None, reason: str) -> SnapshotResult | None:
        """Snapshot a batch of paths, or with None whatever a full rescan finds changed."""
        from guardian.catalog.sync import sync_catalog
        assert self._repo is not None and self._catalog is not None and self._capturer is not None
        self.stats.batches += 1
        paths: list[str] | None = None if batch is None else list(batch)
        try:
            with self.project.writer_lock():
                if self._catalog.indexed_head != self._repo.head():
                    # Someone else (a manual snapshot, a restore) committed since our last batch.
                    sync_catalog(self.project.events, self._repo, self._catalog)
                if paths == []:
                    return _empty_result()
                try:
                    result = self._capturer.run(paths, "watch", progress=self._progress, details={"reason": reason})
                except GuardianError:
                    # A dead git writer's ref lock blocks every commit; clear it (we hold the lock) and retry once.
                    if not self.project.sweep_store(self._repo, "watch"):
                        raise
                    result = self._capturer.run(paths, "watch", progress=self._progress, details={"reason": reason})
        except (GuardianError, OSError, sqlite3.Error) as exc:
            self.stats.errors += 1
            what = "the rescan" if paths is None else f"{len(paths)} path(s)"
            log.error("snapshot of %s failed: %s; will retry", what, exc)
            self._event("error", (paths or [])[:100], {"where": "snapshot", "error": str(exc), "reason": reason})
            return None
        self._retry_delay = 1.0
        if result.unstable:
            # Written to while guardian read them: what was captured may already be stale, and the
            # write's event may have arrived before the read; look again after the quiet window.
            self._add_pending(result.unstable)
        if result.snapshot is not None:
            self.stats.snapshots += 1
            self.stats.last_snapshot = time.time()
            self.stats.last_snapshot_id = result.snapshot
            log.info("snapshot %s: %d file(s) (%s)", result.snapshot[:12], len(result.files), reason)
            if self.on_snapshot is not None:
                self.on_snapshot(result)
            if any(f.path == POLICY_FILENAME for f in result.files):
                self._reload_policy()
        return result

    def _progress(self, _done: int, _total: int) -> None:
        # Long captures (a 10k-file checkout) must not look like a stuck watcher.
        if time.monotonic() >= self._next_heartbeat:
            self.write_heartbeat()

    def _reload_policy(self) -> None:
        try:
            policy = load_policy(self.project.paths.policy_file)
        except (GuardianError, OSError) as exc:
            log.error("keeping the previous policy: %s", exc)
            self._event("error", [POLICY_FILENAME], {"where": "policy reload", "error": str(exc)})
            return
        if policy == self.project.policy:
            return
        self.project = Project(self.project.paths, policy)
        self._maintenance.use_project(self.project)
        self.keep = PathFilter(self.project.root, policy.watch)
        self.handler.keep = self.keep
        self.engine = PolicyEngine.from_policy(policy)
        self._capturer = self._new_capture()
        self._event("watcher", [POLICY_FILENAME], {"action": "reload"})
        log.info("policy reloaded")
        self.request_rescan("policy changed")

    # ------------------------------------------------------------------ guardrail

    def _guardrail_if_damaged(self, result: SnapshotResult) -> None:
        damaged = [
            f.path
            for f in result.files
            if (f.change == "delete" or f.verdict != "valid") and self.engine.is_protected(f.path)
        ]
        if damaged:
            self._guardrail(damaged)

    def _guardrail(self, paths: list[str] | None) -> None:
        try:
            from guardian.gates.guardrail import run_guardrail  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            log.debug("guardrail not available; skipped")
            return
        try:
            run_guardrail(self.project, paths=paths, repair=self.project.policy.guardrail.repair, trigger="watch")
        except Exception as exc:  # a guardrail failure must not stop the capture loop
            self.stats.errors += 1
            log.exception("guardrail failed")
            self._event("error", (paths or [])[:100], {"where": "guardrail", "error": f"{type(exc).__name__}: {exc}"})

    # ------------------------------------------------------------------ health

    def heartbeat(self) -> dict[str, Any]:
        return {
            "ts": time.time(),
            "pid": os.getpid(),
            "pending": self.pending,
            "mode": self.mode,
            "state": self.state,
            "root": str(self.project.root),
            "started": self.stats.started,
            "last_snapshot": self.stats.last_snapshot,
            "last_snapshot_id": self.stats.last_snapshot_id,
            "snapshots": self.stats.snapshots,
            "rescans": self.stats.rescans,
            "restarts": self.stats.restarts,
            "errors": self.stats.errors,
        }

    def write_heartbeat(self) -> None:
        import json

        self._next_heartbeat = time.monotonic() + self.options.heartbeat
        data = json.dumps(self.heartbeat(), indent=2) + "\n"
        try:
            atomic_write_file(self.project.paths.heartbeat, data.encode(), 0o600)
        except OSError as exc:
            log.error("cannot write the heartbeat %s: %s", self.project.paths.heartbeat, exc)

    def _write_heartbeat_quietly(self) -> None:
        try:
            self.write_heartbeat()
        except Exception:  # noqa: BLE001 - shutting down; nothing left to report to
            pass

    def _event(self, kind: str, paths: list[str], details: dict[str, Any]) -> None:
        try:
            self.project.events.append(kind, paths, None, "watch", details)
        except OSError as exc:
            log.error("cannot write the event log: %s", exc)


def _mode_name(observer: BaseObserver | None) -> str:
    name = type(observer).__name__ if observer is not None else "inotify" if sys.platform.startswith("linux") else ""
    for key, mode in (("Inotify", "inotify"), ("FSEvents", "fsevents"), ("Kqueue", "kqueue"), ("Polling", "polling")):
        if key.lower() in name.lower():
            return mode
    return name.lower().removesuffix("observer") or "native"


def _stop_quietly(observer: BaseObserver) -> None:
    try:
        observer.stop()
    except Exception as exc:  # noqa: BLE001 - a broken observer is being thrown away anyway
        log.debug("stopping the observer: %s", exc)
    if observer.is_alive():
        observer.join(timeout=5)
