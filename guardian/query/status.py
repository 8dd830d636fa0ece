"""`guardian status` and `guardian projects`: what is guarded, where, and how fresh."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guardian.capture.budget import CaptureBudget, StoreUsage, disk_free, disk_full_message, measure_usage
from guardian.capture.filters import hidden_protected_notes
from guardian.capture.health import CaptureHealth, read_health
from guardian.capture.secret_record import SecretFile, pending_scans, secret_files
from guardian.lifecycle.gc import read_gc_state
from guardian.lifecycle.mirror import read_push_state
from guardian.paths import guardian_home
from guardian.project import Project, read_project_meta
from guardian.trust.grants import active_grants
from guardian.util.times import format_size


def dir_size(path: Path) -> int:
    """Bytes of every file under path, as their sizes add up (``Status.store_size``)."""
    return walk_sizes(path)[0]


def walk_sizes(top: Path) -> tuple[int, int]:
    """(apparent bytes, allocated bytes as du counts) of the files under top, in one walk.

    A store of 10k snapshots holds tens of thousands of loose objects: status used to walk
    it twice (once here, once in capture.budget.measure_usage) and join every path.  This
    visits what ``os.walk`` visits: a symlink is counted as a link, never followed.
    """
    apparent = allocated = 0
    pending = [os.fspath(top)]
    while pending:
        try:
            listing = os.scandir(pending.pop())
        except OSError:
            continue
        with listing:
            for entry in listing:
                try:
                    if entry.is_dir():
                        if not entry.is_symlink():
                            pending.append(entry.path)
                        continue
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                apparent += st.st_size
                allocated += st.st_blocks * 512
    return apparent, allocated


@dataclass
class Status:
    root: str
    store: str
    repo: str
    snapshots: int
    last_snapshot: float | None
    last_snapshot_id: str | None
    store_size: int
    files: int
    watcher: dict[str, Any] = field(default_factory=dict)
    lifecycle: dict[str, Any] = field(default_factory=dict)  # lifecycle.StoreReport: limits, last gc, last push
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # protected paths watched although .gitignore hides them
    policy_pending: str | None = None  # why guardian.yaml on disk is not the policy in force
    grants: list[dict[str, Any]] = field(default_factory=list)
    enforced: list[dict[str, Any]] = field(default_factory=list)  # the newest undone or granted changes
    secrets: list[dict[str, Any]] = field(default_factory=list)  # files whose stored versions hold a secret
    capture: dict[str, Any] = field(default_factory=dict)  # capture.health: failures in a row, what is skipped

    def to_json(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "store": self.store,
            "repo": self.repo,
            "snapshots": self.snapshots,
            "last_snapshot": self.last_snapshot,
            "last_snapshot_id": self.last_snapshot_id,
            "store_size": self.store_size,
            "files": self.files,
            "watcher": self.watcher,
            "lifecycle": self.lifecycle,
            "warnings": self.warnings,
            "notes": self.notes,
            "policy": {"in_force": "accepted" if self.policy_pending else "disk", "pending": self.policy_pending},
            "grants": self.grants,
            "enforced": self.enforced,
            "secrets": self.secrets,
            "capture": self.capture,
        }


def watcher_state(project: Project) -> dict[str, Any]:
    from guardian.util.lock import is_locked, read_holder_pid

    running = is_locked(project.paths.watcher_lock)
    state: dict[str, Any] = {
        "running": running,
        "pid": read_holder_pid(project.paths.watcher_lock) if running else None,
    }
    try:
        beat = json.loads(project.paths.heartbeat.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        beat = None
    if isinstance(beat, dict):
        state["last_heartbeat"] = beat.get("ts")
        state["heartbeat_age"] = round(time.time() - float(beat.get("ts", 0)), 1)
        state["pending"] = beat.get("pending", 0)
        state["mode"] = beat.get("mode")
    return state


def status(project: Project) -> Status:
    with project.reader() as (repo, catalog):
        last = catalog.last_snapshot()
        result = Status(
            root=str(project.root),
            store=str(project.paths.store),
            repo=str(project.paths.repo),
            snapshots=catalog.snapshot_count(),
            last_snapshot=last.ts if last else None,
            last_snapshot_id=last.id if last else repo.head(),
            store_size=0,
            files=catalog.file_count(),
        )
        result.store_size, allocated = walk_sizes(project.paths.store)
        held = secret_files(project.paths.store, lambda rel: {v.blob for v in catalog.versions_of(rel) if v.blob})
    result.watcher = watcher_state(project)
    health = read_health(project.paths.store)
    result.capture = health.summary()
    result.warnings.extend(capture_warnings(health))
    if held:
        result.secrets = [f.to_json() for f in held]
        result.warnings.append(secrets_line(held))
    result.notes = hidden_protected_notes(project.root, project.policy)
    waiting = pending_scans(project.paths.store)  # queued by init, a restore, a git hook, the watcher while it loaded
    if waiting:
        result.notes.append(
            f"{waiting} captured version(s) wait for the secret scan: the watcher scans them, or 'guardian snapshot'"
        )
    result.policy_pending = project.policy_pending
    if project.policy_pending:
        result.warnings.append(project.policy_pending)
    result.grants = [g.to_json() for g in active_grants(project.paths.store)]
    result.enforced = [
        {"ts": e.ts, "paths": e.paths, "snapshot": e.snapshot, **e.details} for e in project.events.recent(["enforce"])
    ]

    lifecycle = store_report(project, allocated)
    result.lifecycle = lifecycle.to_json()
    result.warnings.extend(lifecycle.warnings)
    if not result.watcher["running"]:
        result.warnings.append(
            "no watcher is running: changes are captured only by manual snapshots (run 'guardian start')"
        )
    elif result.watcher.get("heartbeat_age", 0) > max(30.0, 3 * 10.0):
        result.warnings.append(
            f"the watcher's last heartbeat is {result.watcher['heartbeat_age']}s old: it may be stuck"
        )
    return result


def capture_warnings(health: CaptureHealth) -> list[str]:
    """The status lines on captures that failed as a whole, and on paths that are not being captured."""
    lines: list[str] = []
    if health.failed_in_a_row and health.last_error:
        lines.append(
            f"the last {health.failed_in_a_row} capture(s) failed, the latest with: {health.last_error.get('error')}; "
            "changes are not being saved (see 'guardian events --kind error')"
        )
    if health.problems:
        items = sorted(health.problems.items())
        shown = ", ".join(f"{path} ({info.get('reason')})" for path, info in items[:5])
        more = f" and {len(items) - 5} more" if len(items) > 5 else ""
        lines.append(
            f"{len(items)} path(s) are not being captured and keep their last captured versions: {shown}{more}"
        )
    return lines


def secrets_line(held: list[SecretFile]) -> str:
    """The status line on files whose stored versions hold a secret."""
    shown = ", ".join(f"{f.path} ({', '.join(f.kinds)})" for f in held[:5])
    more = f" and {len(held) - 5} more" if len(held) > 5 else ""
    return (
        f"secrets: {len(held)} file(s) hold a secret in stored versions: {shown}{more}; "
        "they are pushed only redacted; 'guardian forget --text SECRET' or 'guardian forget PATH' purges them"
    )


@dataclass
class ProjectInfo:
    root: str
    store: str
    root_exists: bool
    snapshots: int
    last_snapshot: float | None
    moved_from: list[dict[str, Any]] = field(default_factory=list)  # [{"root", "ts"}], oldest first
    replaced: dict[str, Any] | None = None  # set when a new project took this root's path

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


def list_projects() -> list[ProjectInfo]:
    home = guardian_home()
    found: list[ProjectInfo] = []
    if not home.is_dir():
        return found
    for store in sorted(home.iterdir()):
        meta = read_project_meta(store)
        if meta is None or not (store / "repo.git").is_dir():
            continue
        root = str(meta.get("root", ""))
        snapshots, last = _count_snapshots(store)
        moves = [m for m in meta.get("moved_from") or [] if isinstance(m, dict)]
        replaced = meta.get("replaced") if isinstance(meta.get("replaced"), dict) else None
        found.append(ProjectInfo(root, str(store), Path(root).is_dir(), snapshots, last, moves, replaced))
    return found


def _count_snapshots(store: Path) -> tuple[int, float | None]:
    # Read-only: ask the catalog if it exists, never create one for a listing.
    import sqlite3

    db = store / "catalog.db"
    if not db.exists():
        return 0, None
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            count, last = conn.execute("SELECT COUNT(*), MAX(ts) FROM snapshots").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return 0, None
    return int(count), (float(last) if last is not None else None)


@dataclass
class StoreReport:
    usage: StoreUsage
    last_gc: dict[str, Any]
    last_push: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "usage": self.usage.to_json(),
            "last_gc": self.last_gc or None,
            "last_push": self.last_push or None,
            "warnings": self.warnings,
        }


def store_report(project: Project, allocated: int | None = None) -> StoreReport:
    """What `guardian status` shows about the store: size, limits, last gc, last push, warnings.

    ``allocated``: the store's size as ``capture.budget.store_size`` counts it, when the caller
    has just walked the store (``walk_sizes``); otherwise it is measured here.
    """
    if allocated is None:
        usage = measure_usage(project)
    else:
        limits = project.policy.store
        usage = StoreUsage(allocated, disk_free(project.paths.store), limits.max_size, limits.min_free)
    report = StoreReport(usage, read_gc_state(project), read_push_state(project).get("last") or {})
    state = usage.state
    if state == "full":
        report.warnings.append(disk_full_message(usage))
    elif state != "ok":
        budget = CaptureBudget(usage, lambda _rel: False)
        report.warnings.append(
            f"{usage.describe()}: files over {format_size(budget.limit(False) or 0)} are not captured "
            f"(protected files up to {format_size(budget.limit(True) or 0)} are); "
            "see 'guardian events --kind skip', run 'guardian gc' or raise the store limits"
        )
    if report.last_gc and not report.last_gc.get("ok", True):
        report.warnings.append(f"the last gc failed: {report.last_gc.get('error')}")
    if report.last_push and not report.last_push.get("ok", True):
        report.warnings.append(
            f"the last push to '{report.last_push.get('remote')}' failed: {report.last_push.get('error')}"
        )
    return report
