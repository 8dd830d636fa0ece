"""The watcher engine: filesystem events -> filtered paths -> debounced batches -> snapshots.

Data flows one way::

    watchdog observer --(ChangeHandler: filter, map moves)--> pending set
    pending set --(leading edge / quiet window / max delay)--> Capture.run(paths, "watch")

Nothing may be lost, and watchdog is known to lose things silently, so a full
rescan (``Capture.run(None)``: stat compare, unchanged files are not re-hashed)
runs at start, whenever the observer overflowed, errored or died, and every
``guardrail.interval`` seconds.  One thread (the caller of ``Watcher.run``)
owns the store: it holds the only ShadowRepo and Catalog and takes the writer
lock for each batch.  Observer threads only add paths to the pending set.

This module is the loop that ties the parts together: ``observer`` (the event
filter and the observer, with its polling fallback), ``batching`` (the pending
set and backoff), ``store_session`` (the open store) and ``heartbeat``.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from guardian.capture.engine import SnapshotResult
from guardian.capture.filters import PathFilter
from guardian.config import load_policy
from guardian.errors import GuardianError
from guardian.gates.enforce import Enforcer
from guardian.paths import POLICY_FILENAME
from guardian.policy import PolicyEngine
from guardian.project import Project
from guardian.trust.policy import accepted_path, trusted_policy
from guardian.watch.batching import Batch, PendingChanges
from guardian.watch.heartbeat import Heartbeat, WatchStats, heartbeat_record
from guardian.watch.maintenance import Maintenance
from guardian.watch.observer import ChangeHandler, Observation, WatchdogSignals
from guardian.watch.store_session import StoreSession

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from watchdog.events import FileSystemEvent
    from watchdog.observers.api import BaseObserver

log = logging.getLogger("guardian.watch.watcher")

ENV_FORCE_POLLING = "GUARDIAN_FORCE_POLLING"
ENV_POLL_INTERVAL = "GUARDIAN_POLL_INTERVAL"
ENV_QUIET = "GUARDIAN_WATCH_QUIET"
ENV_MAX_DELAY = "GUARDIAN_WATCH_MAX_DELAY"

_WATCHDOG_LOGGER = "watchdog"


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


def _file_stamp(path: Path) -> tuple[int, int, int] | None:
    """(inode, size, mtime) of a file, None when it is missing: enough to notice a rewrite."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


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
        self.keep = PathFilter(project.root, project.policy.watch, project.policy.protect_rules)
        self.engine = PolicyEngine.from_policy(project.policy)
        self._enforcer = Enforcer(project)  # undoes what the policy does not let stand, after each capture
        self._accepted_stamp = _file_stamp(accepted_path(project.paths.store))  # 'policy accept' changes it
        self._maintenance = Maintenance(project)  # gc, size cap and pushes, on their own thread
        self._changes = PendingChanges(self.options.quiet, self.options.max_delay)
        self.handler = ChangeHandler(
            project.root,
            project.paths.store,
            self.keep,
            self._changes.add,
            self._handler_failed,
            self._gitignore_changed,
            sink_complete=self._changes.add_complete,
        )
        self.observation = Observation(project.root, self.handler, self.options.poll_interval, self._event)
        self.state = "starting"
        self.catching_up = False  # the start rescan is running: offline changes not all captured yet
        # Set once the start rescan is done: the secret-scan queue and the warm server wait for it.
        self.caught_up = threading.Event()
        self.stats = WatchStats()
        self.ready = threading.Event()
        self._cond = self._changes.cond
        self._stop = False
        self._rescan_reasons: list[str] = []
        self._restart_reason: str | None = None
        self._check_coverage = False
        self._store = StoreSession(project, self.keep, self._maintenance.budget, self.caught_up)
        self._signals = WatchdogSignals(self._watchdog_signal)
        self._heartbeat = Heartbeat(project.paths.heartbeat, self.options.heartbeat)

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
        return len(self._changes)

    @property
    def observer(self) -> BaseObserver | None:
        return self.observation.observer

    @property
    def mode(self) -> str:
        return self.observation.mode

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
        self._store.open()
        watchdog_logger = logging.getLogger(_WATCHDOG_LOGGER)
        if watchdog_logger.getEffectiveLevel() > logging.WARNING:
            watchdog_logger.setLevel(logging.WARNING)  # overflows are reported only as warnings
        watchdog_logger.addHandler(self._signals)
        try:
            self._start_observer()
            self._event("watcher", [], {"action": "start", "mode": self.mode, "root": str(self.project.root)})
            log.info("watching %s (pid %d, %s)", self.project.root, os.getpid(), self.mode)
            # The observer is up: from here no change is missed, it waits in the pending set.  The
            # catch-up with what changed while no watcher ran (a full rescan: seconds on a large
            # tree) comes after, and the batches that arrived meanwhile right after it.
            self.state = "watching"
            self.catching_up = True
            self.write_heartbeat()
            self.ready.set()
            if self.on_ready is not None:
                self.on_ready(self)
            self._rescan(["start"])
            self.catching_up = False
            self.caught_up.set()
            self.write_heartbeat()
            self._loop()
            self.state = "stopping"
            self.observation.drain()
            self._flush()
        finally:
            watchdog_logger.removeHandler(self._signals)
            self.observation.stop()
            self._maintenance.close()
            self._store.close()
            self.state = "stopped"
            self._event("watcher", [], {"action": "stop", "snapshots": self.stats.snapshots})
            log.info("stopped (%d snapshot(s) taken)", self.stats.snapshots)
            self._heartbeat.write_quietly(self.heartbeat)

    # ------------------------------------------------------------------ observers

    def _start_observer(self) -> None:
        if self.options.force_polling:
            self.observation.fallback(f"{ENV_FORCE_POLLING} is set")
        else:
            self.observation.start()

    def _restart_observer(self, reason: str) -> None:
        self.stats.restarts += 1
        log.warning("restarting the observer: %s", reason)
        self.observation.stop()
        try:
            self._start_observer()
        except OSError as exc:
            self._event("error", [], {"where": "observer restart", "error": str(exc)})
            log.error("observer restart failed: %s; retrying", exc)
            with self._cond:
                self._restart_reason = reason
                self._changes.back_off()
            return
        self._event("watcher", [], {"action": "restart", "reason": reason, "mode": self.mode})
        self.request_rescan("observer restart")

    def _ensure_coverage(self) -> None:
        if self.mode != "inotify":
            return
        gap = self.observation.coverage_gap()
        if gap is None:
            return
        what, at_limit = gap
        if at_limit:
            self.observation.stop()
            self.observation.fallback(f"inotify watch limit reached: {what}")
            self.request_rescan("polling fallback")
        else:
            # Not the limit: watches were lost some other way; a fresh observer adds them all again.
            self.request_restart(f"directories without a watch: {what}")

    # ------------------------------------------------------------------ the loop

    def _loop(self) -> None:
        opts = self.options
        changes = self._changes
        interval = self.project.policy.guardrail.interval
        next_periodic = time.monotonic() + interval if interval > 0 else float("inf")
        next_supervise = time.monotonic() + opts.supervise
        while True:
            with self._cond:
                while True:
                    now = time.monotonic()
                    if self._stop:
                        return
                    restart = self._restart_reason is not None and now >= changes.retry_at
                    rescan = bool(self._rescan_reasons) and now >= changes.retry_at
                    ready = changes.ready(now)
                    enforce_due = self._enforcer.next_poll  # changes waiting for git or a rebase
                    if (
                        restart
                        or rescan
                        or ready
                        or (enforce_due is not None and now >= enforce_due)
                        or now >= self._heartbeat.next_due
                        or now >= next_supervise
                        or now >= next_periodic
                    ):
                        break
                    deadlines = [self._heartbeat.next_due, next_supervise, next_periodic]
                    due = changes.due()
                    if due is not None:
                        deadlines.append(due)
                    if enforce_due is not None:
                        deadlines.append(enforce_due)
                    if self._restart_reason is not None or self._rescan_reasons:
                        deadlines.append(changes.retry_at)
                    self._cond.wait(max(0.001, min(deadlines) - now))
                restart_reason = self._restart_reason if restart else None
                if restart:
                    self._restart_reason = None
                reasons: list[str] = []
                if rescan:
                    reasons, self._rescan_reasons = self._rescan_reasons, []
                batch = changes.take() if ready else {}
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
                changes.take_all()
                self._rescan(reasons)
            elif batch:
                self._capture_batch(batch)
            if self._enforcer.waiting:
                self._enforce_deferred()
            if now >= next_supervise:
                next_supervise = now + opts.supervise
                problem = self.observation.problem()
                if problem is not None and self._restart_reason is None:
                    self.request_restart(problem)
                if self._accepted_changed():
                    # 'guardian policy accept' with nothing changing in the tree: filters,
                    # protected-path watching and the guardrail follow it within a tick.
                    self._reload_policy()
            self._maintenance.poll()
            if self._heartbeat.due():
                self.write_heartbeat()

    def _flush(self) -> None:
        batch = self._changes.take_all()
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
                self._changes.back_off()
            return
        if "periodic" in reasons:
            self._guardrail(None)
        else:
            self._guardrail_if_damaged(result)

    def _capture_batch(self, batch: Batch, retry: bool = True) -> None:
        result = self._capture(batch, reason="batch")
        if result is None:
            if retry:
                self._changes.requeue(batch)
            return
        self._guardrail_if_damaged(result)

    def _capture(self, batch: Batch | None, reason: str) -> SnapshotResult | None:
        """Snapshot a batch of paths, or with None whatever a full rescan finds changed."""
        self.stats.batches += 1
        paths: list[str] | None = None if batch is None else list(batch)
        try:
            result = self._store.capture(paths, reason, self._progress)
        except (GuardianError, OSError, sqlite3.Error) as exc:
            self.stats.errors += 1
            what = "the rescan" if paths is None else f"{len(paths)} path(s)"
            log.error("snapshot of %s failed: %s; will retry", what, exc)
            self._event("error", (paths or [])[:100], {"where": "snapshot", "error": str(exc), "reason": reason})
            return None
        self._changes.succeeded()
        if result.unstable:
            # Written to while guardian read them: what was captured may already be stale, and the
            # write's event may have arrived before the read; look again after the quiet window.
            self._changes.add(result.unstable)
        if result.snapshot is not None:
            self.stats.snapshots += 1
            self.stats.last_snapshot = time.time()
            self.stats.last_snapshot_id = result.snapshot
            log.info("snapshot %s: %d file(s) (%s)", result.snapshot[:12], len(result.files), reason)
            if self.on_snapshot is not None:
                self.on_snapshot(result)
            if self._accepted_changed():
                # 'guardian policy accept' (or a grant) put another policy in force: judge this capture by it.
                self._reload_policy()
            self._enforce(result)
            if any(f.path == POLICY_FILENAME for f in result.files):
                self._reload_policy()
        return result

    def _progress(self, _done: int, _total: int) -> None:
        # Long captures (a 10k-file checkout) must not look like a stuck watcher.
        if self._heartbeat.due():
            self.write_heartbeat()

    def _accepted_changed(self) -> bool:
        """Whether the store's accepted policy was rewritten since the watcher last read it (one stat)."""
        return _file_stamp(accepted_path(self.project.paths.store)) != self._accepted_stamp

    def _reload_policy(self) -> None:
        """Put the policy in force in charge of everything: filters, protected-path watching, guardrail, enforcement.

        That is the trusted policy (``guardian.trust.policy``), never the file on disk as such:
        a guardian.yaml emptied or weakened on disk changes nothing until 'guardian policy
        accept' (the watcher logs that it waits), while a stricter edit is accepted on the spot
        and takes effect at once.
        """
        paths = self.project.paths
        self._accepted_stamp = _file_stamp(accepted_path(paths.store))
        try:
            trusted = trusted_policy(paths.policy_file, paths.store, load_policy)
            policy = trusted.policy if trusted is not None else load_policy(paths.policy_file)
        except (GuardianError, OSError) as exc:
            log.error("keeping the previous policy: %s", exc)
            self._event("error", [POLICY_FILENAME], {"where": "policy reload", "error": str(exc)})
            return
        pending = trusted.pending if trusted is not None else None
        if trusted is not None and trusted.accepted_now:
            self._accepted_stamp = _file_stamp(accepted_path(paths.store))  # our own write: not news
            self._event("policy", [POLICY_FILENAME], {"action": "accept", "why": trusted.accepted_now})
        if pending is not None and pending != self.project.policy_pending:
            log.warning("%s", pending)
            self._event("watcher", [POLICY_FILENAME], {"action": "policy pending", "pending": pending})
        if policy._replace(source="") == self.project.policy._replace(source=""):
            self.project.policy_pending = pending
            return
        self.project = Project(paths, policy, pending)
        self._enforcer.use(self.project)
        self._maintenance.use_project(self.project)
        self.keep = PathFilter(self.project.root, policy.watch, policy.protect_rules)
        self.handler.keep = self.keep
        self.engine = PolicyEngine.from_policy(policy)
        self._store.use(self.project, self.keep)
        self._event("watcher", [POLICY_FILENAME], {"action": "reload"})
        log.info("policy reloaded")
        self.request_rescan("policy changed")

    # ------------------------------------------------------------------ enforcement

    def _enforce(self, result: SnapshotResult) -> None:
        try:
            self._enforcer.enforce(result, self._store.catalog, self._store.repo)
        except Exception as exc:  # an enforcement failure must not stop the capture loop
            self.stats.errors += 1
            log.exception("enforcement failed")
            paths = [f.path for f in result.files][:100]
            self._event("error", paths, {"where": "enforce", "error": f"{type(exc).__name__}: {exc}"})

    def _enforce_deferred(self) -> None:
        try:
            self._enforcer.poll(self._store.catalog, self._changes, self._store.repo)
        except Exception as exc:
            self.stats.errors += 1
            log.exception("enforcement failed")
            self._event("error", [], {"where": "enforce", "error": f"{type(exc).__name__}: {exc}"})

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
        record = heartbeat_record(
            pending=self.pending, mode=self.mode, state=self.state, root=self.project.root, stats=self.stats
        )
        record["catching_up"] = self.catching_up
        return record

    def write_heartbeat(self) -> None:
        self._heartbeat.write(self.heartbeat)

    def _event(self, kind: str, paths: list[str], details: dict[str, Any]) -> None:
        try:
            self.project.events.append(kind, paths, None, "watch", details)
        except OSError as exc:
            log.error("cannot write the event log: %s", exc)
