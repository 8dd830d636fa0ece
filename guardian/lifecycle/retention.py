"""Retention: which snapshots a gc keeps, read from the history and the event log.

Retention (policy ``retention: {keep_all, hourly, daily, keep_last}``) keeps a snapshot when any
rule holds:

* it is the head;
* it is younger than ``keep_all``;
* it is the newest snapshot of its clock hour (UTC), among those younger than ``hourly``;
* it is the newest snapshot of its day (UTC), among those younger than ``daily``;
* it is one of the last ``keep_last`` snapshots of the chain, whatever their times say;
* it is the last one holding a file before a deletion of that file (so the latest version of
  every file ever seen survives, deleted files included);
* it captured the latest valid version of some file (what ``guardian restore NAME`` picks) and
  no other kept snapshot holds that version (checked last, so usually another rule covers it);
* it is a restore or rollback snapshot (before or after), a source of one (``Guardian-Source``),
  or a snapshot that a restore, rollback or repair event names.

Ages are measured from each snapshot's effective time (guardian.lifecycle.clock), so a snapshot
stamped while the clock was behind is not aged early.  When now is earlier than the head's time,
the clock is behind (or was ahead when the head was taken): no age can be trusted, and nothing
is thinned until the clock is past the head again.

Reading the facts touches the store and the event log; the plan itself is a pure function.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from guardian.config import RetentionSettings
from guardian.events import EventLog
from guardian.lifecycle.clock import effective_times
from guardian.store.trailers import original_ids, parse_message
from guardian.util.times import format_time

if TYPE_CHECKING:
    from guardian.store.repo import ShadowRepo


RESTORE_TRIGGERS = frozenset({"pre-restore", "restore", "pre-rollback", "rollback"})
RESTORE_EVENTS = frozenset({"restore", "rollback", "repair"})
_HEX40 = re.compile(r"(?<![0-9a-f])[0-9a-f]{40}(?![0-9a-f])")

KEEP_REASONS = {
    "head": "the head",
    "keep_all": "younger than retention.keep_all",
    "hourly": "newest of its hour (retention.hourly)",
    "daily": "newest of its day (retention.daily)",
    "keep_last": "one of the newest snapshots (retention.keep_last)",
    "clock": "the clock is behind the newest snapshot: nothing is thinned",
    "before-delete": "last version before a deletion",
    "latest-valid": "latest valid version of a file",
    "restore": "restore/rollback point or source",
}


# --------------------------------------------------------------------------- reading history


@dataclass(frozen=True)
class SnapshotFacts:
    """What retention needs to know about one snapshot."""

    id: str
    time: float
    trigger: str
    message: str
    changed: dict[str, str | None]  # path -> new blob id, None for a deletion
    invalid: dict[str, tuple[str, str]]  # path -> (verdict, reason) for changes that are not valid
    accepted: frozenset[str]
    sources: tuple[str, ...]
    originals: tuple[str, ...]
    perms: dict[str, int] = field(default_factory=dict)  # path -> its Guardian-Perm bits


def facts_of(repo: ShadowRepo, commit_id: str) -> SnapshotFacts:
    record = repo.commit_record(commit_id)
    info = parse_message(record.message)
    changed = {c.path: (c.new.oid if c.new is not None else None) for c in repo.changes(commit_id)}
    return SnapshotFacts(
        id=record.id,
        time=record.time,
        trigger=info.trigger,
        message=record.message,
        changed=changed,
        invalid={p: v for p, v in info.verdicts.items() if p in changed and v[0] != "valid"},
        accepted=info.accepted,
        sources=tuple(_HEX40.findall(info.source or "")),
        originals=original_ids(record.message),
        perms=info.perms,
    )


def read_history(
    repo: ShadowRepo, head: str | None, progress: Callable[[int, int], None] | None = None
) -> list[SnapshotFacts]:
    """Every snapshot from the root to head, oldest first."""
    ids = [r.id for r in repo.walk(head)] if head else []
    ids.reverse()
    facts: list[SnapshotFacts] = []
    for n, commit_id in enumerate(ids, 1):
        facts.append(facts_of(repo, commit_id))
        if progress is not None and n % 200 == 0:
            progress(n, len(ids))
    return facts


def _ids_in(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield from _HEX40.findall(value)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _ids_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from _ids_in(item)


def event_references(events: EventLog) -> tuple[set[str], set[str]]:
    """(every snapshot id any event mentions, the ids restore/rollback/repair events name)."""
    mentioned: set[str] = set()
    restore_refs: set[str] = set()
    for event in events.read():
        ids = set(_ids_in(event.details))
        if event.snapshot:
            ids.add(event.snapshot)
        mentioned |= ids
        if event.event in RESTORE_EVENTS:
            restore_refs |= ids
    return mentioned, restore_refs


# --------------------------------------------------------------------------- the retention plan (pure)


@dataclass
class RetentionPlan:
    snapshots: list[SnapshotFacts]  # oldest first
    keep: dict[str, list[str]]  # kept id -> reasons (keys of KEEP_REASONS)
    refused: str | None = None  # why nothing was thinned, when the clock cannot be trusted

    @property
    def dropped(self) -> list[str]:
        return [s.id for s in self.snapshots if s.id not in self.keep]

    def kept_by_reason(self) -> dict[str, int]:
        """How many snapshots each rule keeps (a snapshot counts once, for its first reason)."""
        counts = dict.fromkeys(KEEP_REASONS, 0)
        for reasons in self.keep.values():
            counts[reasons[0]] += 1
        return {k: n for k, n in counts.items() if n}


def plan_retention(
    snapshots: Sequence[SnapshotFacts],
    retention: RetentionSettings,
    now: float,
    referenced: Iterable[str] = (),
) -> RetentionPlan:
    """Which snapshots survive: the rules in this module's docstring, applied in that order."""
    keep: dict[str, list[str]] = {}

    def mark(index: int, reason: str) -> None:
        reasons = keep.setdefault(snapshots[index].id, [])
        if reason not in reasons:
            reasons.append(reason)

    if not snapshots:
        return RetentionPlan([], keep)
    mark(len(snapshots) - 1, "head")
    head_time = snapshots[-1].time
    if now < head_time:
        for i in range(len(snapshots) - 1):
            mark(i, "clock")
        refused = (
            f"the clock ({format_time(now)}) is earlier than the newest snapshot ({format_time(head_time)}); "
            "nothing is thinned until the clock is right"
        )
        return RetentionPlan(list(snapshots), keep, refused)
    times = effective_times([snap.time for snap in snapshots], now)
    newest_of_hour: dict[int, int] = {}
    newest_of_day: dict[int, int] = {}
    for i, when in enumerate(times):
        age = now - when
        if age < retention.keep_all:
            mark(i, "keep_all")
        elif age < retention.hourly:
            _newest(newest_of_hour, int(when // 3600), i, times)
        elif age < retention.daily:
            _newest(newest_of_day, int(when // 86400), i, times)
    for i in sorted(newest_of_hour.values()):
        mark(i, "hourly")
    for i in sorted(newest_of_day.values()):
        mark(i, "daily")
    for i in range(max(0, len(snapshots) - retention.keep_last), len(snapshots) - 1):
        mark(i, "keep_last")
    latest_valid: dict[str, int] = {}
    changes: dict[str, list[int]] = {}
    for i, snap in enumerate(snapshots):
        for path, blob in snap.changed.items():
            changes.setdefault(path, []).append(i)
            if blob is None:
                if i > 0:
                    mark(i - 1, "before-delete")
            elif path not in snap.invalid:
                latest_valid[path] = i
        for path in snap.accepted:
            latest_valid[path] = i
    alias: dict[str, int] = {}
    for i, snap in enumerate(snapshots):
        alias[snap.id] = i
        for old in snap.originals:
            alias.setdefault(old, i)
    wanted = set(referenced)
    for i, snap in enumerate(snapshots):
        if snap.trigger in RESTORE_TRIGGERS:
            mark(i, "restore")
        wanted.update(snap.sources)
    for ref in sorted(wanted):
        if ref in alias:
            mark(alias[ref], "restore")
    # A file's latest valid version lives from the snapshot that made it until the file's next
    # change; any snapshot kept in that span holds it (and its verdict, carried if need be).
    index = {snap.id: i for i, snap in enumerate(snapshots)}
    kept = sorted(index[k] for k in keep)
    for path, start in sorted(latest_valid.items(), key=lambda item: item[1]):
        changed_at = changes.get(path, [])
        after = bisect.bisect_right(changed_at, start)
        end = changed_at[after] if after < len(changed_at) else len(snapshots)
        at = bisect.bisect_left(kept, start)
        if at == len(kept) or kept[at] >= end:
            mark(start, "latest-valid")
            bisect.insort(kept, start)
    return RetentionPlan(list(snapshots), keep)


def _newest(buckets: dict[int, int], bucket: int, i: int, times: Sequence[float]) -> None:
    best = buckets.get(bucket)
    # Newest by effective time, then by chain order (snapshots in the same second).
    if best is None or times[i] >= times[best]:
        buckets[bucket] = i
