"""Running gc: thin the history, pack what is left, prune the rest; and when the watcher runs it.

What survives is guardian.lifecycle.retention's plan; the new chain is written by
guardian.lifecycle.rewrite.  This module runs the steps and keeps the store usable meanwhile.
When the clock is behind the newest snapshot the plan keeps everything, and the result, the
log and the gc event say why (``thinning_refused``); packing and pruning still run.

A gc holds the writer lock only for short steps, so captures go on while it runs: the new
chain, the new pack and a new catalog are built outside the lock; under it, snapshots taken
meanwhile are replayed onto the new chain, the ref is swapped, old packs go and the catalog is
swapped in (SQLite's backup API, so open connections see it); unreachable loose objects are
then deleted in small locked chunks that first re-check what newer snapshots reach.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guardian.capture.budget import CaptureBudget, capture_budget, measure_usage, store_size
from guardian.capture.budget import remember_size as _remember_size
from guardian.errors import GuardianError, LockHeld, OperationFailed
from guardian.lifecycle.retention import RetentionPlan, event_references, plan_retention, read_history
from guardian.lifecycle.rewrite import catalog_for, commits_since, replay, rewrite_chain, swap_catalog
from guardian.project import Project
from guardian.util.fs import atomic_write_file
from guardian.util.lock import FileLock

if TYPE_CHECKING:
    from guardian.catalog.db import Catalog
    from guardian.store.repo import ShadowRepo

log = logging.getLogger("guardian.lifecycle.gc")


# The watcher gcs by itself after this many snapshots, or this long after the last gc.
GC_EVERY_SNAPSHOTS = 5000
GC_EVERY_SECONDS = 24 * 3600.0
# ...or once the store holds this many packs (git's gc.autoPackLimit): every large snapshot
# writes a pack of its own, and each extra pack is one more index to search on a lookup.
GC_MAX_PACKS = 50
# Size pressure never gcs more often than this: a gc that could not make room will not either.
GC_MIN_INTERVAL = 600.0
# `guardian gc` does not queue behind a writer: it says who holds the store.
GC_LOCK_TIMEOUT = 2.0
# Pruning holds the writer lock for at most PRUNE_HOLD at a time (unlink speed varies 10x between
# file systems), then lets go for longer than a waiting writer's longest poll (lock.FileLock: 0.1s).
PRUNE_HOLD = 0.1
PRUNE_PAUSE = 0.15


def _clock() -> float:
    """Wall-clock time for the retention windows (one seam for tests)."""
    return time.time()


def maintenance_lock(project: Project, timeout: float) -> FileLock:
    """Serialises gc and push (a push reads the packs a gc deletes); captures never take it."""
    return FileLock(
        project.paths.store / "maintenance.lock", f"maintenance (gc or push) of {project.paths.store}", timeout
    )


# --------------------------------------------------------------------------- gc


@dataclass
class GcResult:
    dry_run: bool
    snapshots: int
    kept: int
    dropped: int
    kept_by_reason: dict[str, int]
    plan: RetentionPlan | None = None
    head_before: str | None = None
    head_after: str | None = None
    replayed: int = 0
    packed_objects: int = 0
    pruned_objects: int = 0
    removed_packs: int = 0
    size_before: int = 0
    size_after: int = 0
    duration: float = 0.0
    longest_lock: float = 0.0
    reason: str = "manual"
    phases: dict[str, float] = field(default_factory=dict)  # seconds per step, for tuning and benchmarks
    thinning_refused: str | None = None  # why nothing was thinned (the clock is behind the newest snapshot)

    def to_json(self, verbose: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "dry_run": self.dry_run,
            "reason": self.reason,
            "snapshots": self.snapshots,
            "kept": self.kept,
            "dropped": self.dropped,
            "kept_by_reason": self.kept_by_reason,
            "head_before": self.head_before,
            "head_after": self.head_after,
            "replayed": self.replayed,
            "packed_objects": self.packed_objects,
            "pruned_objects": self.pruned_objects,
            "removed_packs": self.removed_packs,
            "size_before": self.size_before,
            "size_after": self.size_after,
            "duration": round(self.duration, 3),
            "longest_lock": round(self.longest_lock, 3),
            "phases": {k: round(v, 3) for k, v in self.phases.items()},
            "thinning_refused": self.thinning_refused,
        }
        if verbose and self.plan is not None:
            data["decisions"] = [
                {"snapshot": s.id, "time": s.time, "keep": self.plan.keep.get(s.id, [])} for s in self.plan.snapshots
            ]
        return data


class _Cancelled(Exception):
    pass


class GcCancelled(OperationFailed):
    """The watcher stopped while its gc ran; nothing was changed."""


def gc(
    project: Project,
    *,
    dry_run: bool = False,
    now: float | None = None,
    progress: Callable[[int, int], None] | None = None,
    lock_timeout: float = GC_LOCK_TIMEOUT,
    cancel: threading.Event | None = None,
    reason: str = "manual",
) -> GcResult:
    """Thin the history by the retention policy, pack what is left and prune the rest."""
    started = time.monotonic()
    repo = project.open_repo()
    with maintenance_lock(project, lock_timeout):
        hold = time.monotonic()
        with project.writer_lock(lock_timeout):
            project.sweep_store(repo, "gc")
            head0 = repo.head()
        longest = time.monotonic() - hold
        size_before = store_size(project.paths.store)
        read_started = time.monotonic()
        snapshots = read_history(repo, head0, progress and (lambda d, t: progress(d, 3 * t)))
        mentioned, restore_refs = event_references(project.events)
        plan = plan_retention(snapshots, project.policy.retention, _clock() if now is None else now, restore_refs)
        result = GcResult(
            dry_run=dry_run,
            snapshots=len(snapshots),
            kept=len(plan.keep),
            dropped=len(plan.dropped),
            kept_by_reason=plan.kept_by_reason(),
            plan=plan,
            head_before=head0,
            head_after=head0,
            size_before=size_before,
            size_after=size_before,
            reason=reason,
            phases={"read": time.monotonic() - read_started},
            thinning_refused=plan.refused,
        )
        if plan.refused is not None:
            log.warning("gc keeps every snapshot: %s", plan.refused)
        if dry_run or head0 is None:
            result.duration = time.monotonic() - started
            return result
        try:
            _run_gc(project, repo, plan, mentioned, result, progress, cancel, longest)
        except _Cancelled:
            log.info("gc cancelled")
            raise GcCancelled("gc was cancelled before it finished; the store is unchanged") from None
        except (GuardianError, OSError, sqlite3.Error) as exc:
            _write_state(project, {"ts": time.time(), "ok": False, "error": str(exc), "reason": reason})
            project.events.append("gc", [], head0, reason, {"ok": False, "error": str(exc)})
            raise
    result.duration = time.monotonic() - started
    result.size_after = store_size(project.paths.store)
    _remember_size(project, result.size_after)
    state = {
        "ts": time.time(),
        "ok": True,
        "reason": reason,
        "snapshots_after": _snapshot_count(project),  # what the next "every N snapshots" counts from
        **{k: v for k, v in result.to_json().items() if k not in ("dry_run", "kept_by_reason", "reason")},
    }
    _write_state(project, state)
    details = result.to_json()
    details.pop("head_after", None)
    project.events.append("gc", [], result.head_after, reason, details)
    return result


def _run_gc(
    project: Project,
    repo: ShadowRepo,
    plan: RetentionPlan,
    mentioned: set[str],
    result: GcResult,
    progress: Callable[[int, int], None] | None,
    cancel: threading.Event | None,
    longest: float,
) -> None:
    def check_cancel() -> None:
        if cancel is not None and cancel.is_set():
            raise _Cancelled

    head0 = result.head_before
    assert head0 is not None
    total = 3 * max(1, len(plan.snapshots))
    base = len(plan.snapshots)
    work = project.paths.store / f"gc-tmp-{os.getpid()}-{threading.get_ident()}"
    _remove_stale_work_dirs(project.paths.store)
    work.mkdir(mode=0o700)
    staged: Catalog | None = None
    clock = time.monotonic()

    def phase(name: str) -> None:
        nonlocal clock
        now = time.monotonic()
        result.phases[name] = now - clock
        clock = now

    try:
        chain = rewrite_chain(repo, plan, mentioned, progress and (lambda n: progress(base + n, total)))
        new_head = chain[-1]
        phase("rewrite")
        check_cancel()
        loose, packs = repo.object_files()
        if new_head == head0 and not loose and len(packs) <= 1:
            result.longest_lock = longest
            return  # nothing dropped and already packed: nothing to do
        if new_head != head0:
            # Indexed now, outside the lock: a rebuild under it would stall captures for seconds.
            staged = catalog_for(repo, new_head, work / "catalog.db")
            phase("catalog")
        check_cancel()
        objects = list(repo.reachable_objects(reversed(chain)))
        packed = {oid for oid, _ in objects}
        result.packed_objects = repo.write_pack(objects, _fresh_dir(work / "pack"))
        if progress is not None:
            progress(total, total)
        repo.sync_objects()
        new_pack = repo.install_pack(work / "pack")
        phase("pack")
        old_packs = [p for p in packs if p != new_pack]
        # Loose copies of packed objects are redundant whoever runs: no lock needed.
        repo.remove_loose(oid for oid in loose if oid in packed)
        phase("unlink packed")
        check_cancel()
        hold = time.monotonic()
        with project.writer_lock():
            keep, tip = _swap(project, repo, result, staged, new_head, packed, old_packs, mentioned, work)
        longest = max(longest, time.monotonic() - hold)
        phase("swap")
        longest = max(longest, _prune(project, repo, keep, tip, result, cancel))
        phase("prune")
        result.longest_lock = longest
    finally:
        if staged is not None:
            staged.close()
        shutil.rmtree(work, ignore_errors=True)


def _swap(
    project: Project,
    repo: ShadowRepo,
    result: GcResult,
    staged: Catalog | None,
    new_head: str,
    packed: set[str],
    old_packs: Sequence[Path],
    mentioned: set[str],
    work: Path,
) -> tuple[set[str], str]:
    """Under the writer lock: replay what was captured meanwhile, move the ref, drop old packs.

    staged is the catalog of the new chain, None when nothing was rewritten.
    """
    head0 = result.head_before
    assert head0 is not None
    head1 = repo.head()
    newer: list[str] = []
    if head1 != head0:
        if head1 is None or not repo.is_ancestor(head0, head1):
            raise OperationFailed(
                "the snapshot history was reset while gc ran (a 'verify --repair'?); nothing was dropped: "
                "run 'guardian gc' again"
            )
        newer = commits_since(repo, head0, head1)
    if staged is not None and newer:
        newer = replay(repo, new_head, newer, mentioned)
        result.replayed = len(newer)
    tip = newer[-1] if newer else new_head
    extra = list(repo.reachable_objects(reversed(newer), packed))
    keep = packed | {oid for oid, _ in extra}
    loose_now, _packs = repo.object_files()
    loose_set = set(loose_now)
    homeless = [(oid, path) for oid, path in extra if oid not in loose_set]
    if homeless:
        # Snapshots taken during gc may reuse objects that only an old pack holds.
        repo.write_pack(homeless, _fresh_dir(work / "pack-extra"))
        repo.install_pack(work / "pack-extra")
    if tip != head1:
        repo.sync_objects()
        repo.update_ref(tip, head1)
    result.head_after = tip
    result.removed_packs = sum(1 for pack in old_packs if repo.remove_pack(pack))
    if staged is not None:
        swap_catalog(project, staged, repo, tip)
    return keep, tip


def _prune(
    project: Project,
    repo: ShadowRepo,
    keep: set[str],
    tip: str | None,
    result: GcResult,
    cancel: threading.Event | None,
) -> float:
    """Delete unreachable loose objects, PRUNE_HOLD seconds per writer-lock hold; returns the longest hold.

    Between holds a capture may have reused one of them (has_object was true), so each
    hold first adds what snapshots newer than the last look reach.
    """
    loose, _packs = repo.object_files()
    garbage = [oid for oid in loose if oid not in keep]
    longest = 0.0
    seen_head = tip
    position = 0
    while position < len(garbage):
        if cancel is not None and cancel.is_set():
            break
        if position:
            time.sleep(PRUNE_PAUSE)
        hold = time.monotonic()
        with project.writer_lock():
            head = repo.head()
            if head != seen_head:
                if head is None or seen_head is None or not repo.is_ancestor(seen_head, head):
                    break  # history was reset under us: leave the rest for the next gc
                newer = []
                for record in repo.walk(head):
                    if record.id == seen_head:
                        break
                    newer.append(record.id)
                keep.update(oid for oid, _ in repo.reachable_objects(newer, keep))
                seen_head = head
            while position < len(garbage) and time.monotonic() - hold < PRUNE_HOLD:
                batch = [oid for oid in garbage[position : position + 50] if oid not in keep]
                result.pruned_objects += repo.remove_loose(batch)
                position += 50
        longest = max(longest, time.monotonic() - hold)
    return longest


def _fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(mode=0o700)
    return path


def _remove_stale_work_dirs(store: Path) -> None:
    # A gc killed mid-way leaves its work dir; holding the maintenance lock, no gc is using one.
    for stale in store.glob("gc-tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)


# --------------------------------------------------------------------------- state, scheduling


def _state_path(project: Project) -> Path:
    return project.paths.store / "gc.json"


def read_gc_state(project: Project) -> dict[str, Any]:
    try:
        raw = json.loads(_state_path(project).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


def _write_state(project: Project, state: dict[str, Any]) -> None:
    previous = read_gc_state(project)
    if not state.get("ok", True):
        # Keep the last good gc's figures: a failure does not undo it.
        state = {**previous, **state}
    try:
        atomic_write_file(_state_path(project), (json.dumps(state, indent=2, default=str) + "\n").encode())
    except OSError as exc:
        log.warning("cannot record gc state: %s", exc)


def _snapshot_count(project: Project) -> int:
    catalog = project.open_catalog()
    try:
        return catalog.snapshot_count()
    finally:
        catalog.close()


def gc_due(project: Project, now: float | None = None) -> str | None:
    """Why the watcher should gc now ("snapshots", "time", "packs", "size"), or None."""
    now = time.time() if now is None else now
    state = read_gc_state(project)
    count = _snapshot_count(project)
    if "ts" not in state:
        # First look at this store: start the clock rather than gc the moment a watcher starts.
        _write_state(project, {"ts": now, "ok": True, "reason": "start", "snapshots_after": count})
        return None
    last = float(state.get("ts", 0.0))
    since = count - int(state.get("snapshots_after", 0))
    if since >= GC_EVERY_SNAPSHOTS:
        return "snapshots"
    if since > 0 and now - last >= GC_EVERY_SECONDS:
        return "time"
    if _pack_count(project) >= GC_MAX_PACKS:
        return "packs"
    if now - last >= GC_MIN_INTERVAL and measure_usage(project).state != "ok":
        return "size"
    return None


def _pack_count(project: Project) -> int:
    try:
        return sum(1 for name in os.listdir(project.paths.repo / "objects" / "pack") if name.endswith(".pack"))
    except OSError:
        return 0


def maybe_gc(project: Project, *, now: float | None = None, cancel: threading.Event | None = None) -> GcResult | None:
    """gc if it is due (every GC_EVERY_SNAPSHOTS snapshots, GC_EVERY_SECONDS, or near a size limit).

    Returns None when nothing was due or another process holds the store (it is tried again later).
    """
    reason = gc_due(project, now)
    if reason is None:
        return None
    try:
        return gc(project, now=now, lock_timeout=0.0, cancel=cancel, reason=reason)
    except (LockHeld, GcCancelled):
        return None  # busy, or the watcher is stopping: tried again on a later round


# --------------------------------------------------------------------------- the watcher's helper


def capture_budget_with_room(project: Project) -> CaptureBudget:
    """The next capture's budget; near a limit, gc first (at most every GC_MIN_INTERVAL) and measure again.

    The budget itself never runs gc: whether to spend a gc on room is this layer's call.
    """
    budget = capture_budget(project)
    if budget.usage.state in ("tight", "over"):
        last = float(read_gc_state(project).get("ts", 0.0))
        if time.time() - last >= GC_MIN_INTERVAL:
            try:
                gc(project, reason="size")
            except GuardianError as exc:
                log.warning("gc near the size cap failed: %s", exc)
            budget = capture_budget(project, fresh=True)
    return budget
