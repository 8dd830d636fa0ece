"""Restoring a SQLite database: its sidecars are moved aside, never deleted, and an orphaned WAL is replayed.

A restored database must not meet the ``-wal``/``-shm``/``-journal`` files of the one it
replaces (SQLite would replay them over it), but those files may hold the only copy of
recent commits: after a crash that took the base file, the WAL held all 1,487 committed
rows where the stored version alone lacked up to 173 of them.  So they are renamed
beside the database (``state.db-wal.guardian-<time>``), named in the report, and then
captured into the store.  And when the base file is gone or damaged while a WAL survives,
the restore plans a recovery: the stored version plus that WAL, used when it passes
``integrity_check`` and holds at least as much committed data as the stored version alone.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from guardian.capture.sqlite import SIDECARS, is_sqlite_bytes
from guardian.errors import OperationFailed
from guardian.util.fs import lstat_at, open_parent

if TYPE_CHECKING:
    from guardian.capture.sqlite_recovery import Measure

SET_ASIDE_MARK = ".guardian-"


def sidecars_present(root: Path, rel: str) -> list[str]:
    """The -wal, -shm and -journal files beside the database at rel, as root-relative paths."""
    return [rel + suffix for suffix in SIDECARS if lstat_at(root, rel + suffix) is not None]


def set_aside_name(root: Path, rel: str, stamp: str) -> str:
    """A free name beside rel for it to be moved to: ``rel.guardian-<stamp>`` (then -2, -3...)."""
    candidate = f"{rel}{SET_ASIDE_MARK}{stamp}"
    counter = 1
    while lstat_at(root, candidate) is not None:
        counter += 1
        candidate = f"{rel}{SET_ASIDE_MARK}{stamp}-{counter}"
    return candidate


def set_aside_sidecars(root: Path, rel: str) -> list[tuple[str, str]]:
    """Rename the database's sidecars beside it; returns each (old, new) root-relative path.

    A rename in the same directory is atomic and copies nothing, so a 4 MB WAL costs no
    more than an empty one.  If one rename fails, those done are put back first.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    moved: list[tuple[str, str]] = []
    try:
        for old in sidecars_present(root, rel):
            new = set_aside_name(root, old, stamp)
            with open_parent(root, old) as (dir_fd, leaf):
                os.rename(leaf, new.rsplit("/", 1)[-1], src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            moved.append((old, new))
    except OSError:
        put_back(root, moved)
        raise
    return moved


def put_back(root: Path, moved: list[tuple[str, str]]) -> None:
    """Undo set_aside_sidecars (the restore failed before the database was replaced)."""
    for old, new in reversed(moved):
        try:
            with open_parent(root, new) as (dir_fd, leaf):
                os.rename(leaf, old.rsplit("/", 1)[-1], src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except OSError:
            continue  # it stays under its set-aside name, which the report already gave


class WalRecovery(NamedTuple):
    """The plan for one database whose base file is gone or damaged while its WAL survives.

    A NamedTuple, not a frozen dataclass: the same fields, equality, repr and immutability,
    without importing dataclasses (and with it inspect, ~10 ms) on every restore.
    """

    path: str
    wal: str
    wal_size: int
    why: str  # what is wrong with the database on disk
    stored: Measure
    replayed: Measure | None
    data: bytes | None  # the stored version plus the WAL, when that is what gets restored
    problem: str | None = None  # why the WAL could not be replayed at all

    def describe(self, snapshot: str, dry_run: bool) -> list[str]:
        """The lines telling the user what was found and which version holds more committed data."""
        lines = [f"{self.path}: {self.why}, but {self.wal} ({self.wal_size:,} bytes) survives"]
        stored = f"snapshot {snapshot[:12]}'s version alone: {self.stored.describe()}"
        if self.replayed is None:
            lines.append(f"  the WAL could not be replayed ({self.problem}); {stored}")
        else:
            lines.append(f"  {stored}")
            lines.append(f"  that version plus {self.wal}: {self.replayed.describe()}")
        verb = "would restore" if dry_run else "restored"
        if self.data is not None:
            gained = self.replayed.total - self.stored.total if self.replayed is not None else 0
            more = f"{gained:,} more rows" if gained > 0 else "the same rows, newer pages"
            lines.append(f"  {verb} the stored version plus the WAL ({more}: it holds more committed data)")
        else:
            lines.append(f"  {verb} the stored version alone ({self.rejected()}); the WAL is kept aside")
        return lines

    def rejected(self) -> str:
        if self.replayed is None:
            return "the WAL could not be replayed"
        if not self.replayed.sound:
            return "the version with the WAL fails integrity_check"
        if self.replayed.total < self.stored.total:
            return "the version with the WAL has fewer rows: the WAL may not follow the stored version"
        return "the WAL adds nothing to it"


def plan_wal_recovery(root: Path, rel: str, stored_image: bytes) -> WalRecovery | None:
    """A recovery plan when rel's base file is gone or damaged and its WAL survives; else None."""
    wal_rel = rel + "-wal"
    wal_st = lstat_at(root, wal_rel)
    if wal_st is None or wal_st.st_size == 0 or not is_sqlite_bytes(stored_image):
        return None
    # Here, not at the top: a restore of anything but a database with a WAL beside it never needs tempfile.
    from guardian.capture.sqlite_recovery import health_on_disk, measure, replay_wal

    why = health_on_disk(root / rel)
    if why is None:
        return None  # the database on disk is sound: its WAL is its own, and is only set aside
    stored = measure(stored_image)
    try:
        candidate = replay_wal(stored_image, root / wal_rel)
    except OperationFailed as exc:
        return WalRecovery(rel, wal_rel, wal_st.st_size, why, stored, None, None, str(exc))
    replayed = measure(candidate)
    better = (
        replayed.sound
        and replayed.total >= stored.total
        and (replayed.rows != stored.rows or replayed.pages != stored.pages or candidate != stored_image)
    )
    return WalRecovery(rel, wal_rel, wal_st.st_size, why, stored, replayed, candidate if better else None)


def plan_sqlite_restore(
    root: Path,
    targets: Sequence[tuple[str, str, str]],
    read_blob: Callable[[str], bytes],
    *,
    recover: bool,
    dry_run: bool,
) -> tuple[dict[str, bytes], list[str]]:
    """For a restore of these (path, blob id, snapshot) targets: (content replacing a blob, by path; notes).

    Only databases with sidecars beside them are looked at.  ``recover`` is False when the
    user picked an older version (--at, --before): a WAL replayed over it would mix two
    points in time, so the WAL is only set aside.
    """
    replacements: dict[str, bytes] = {}
    notes: list[str] = []
    for rel, oid, snapshot in targets:
        present = sidecars_present(root, rel)
        if not present:
            continue
        image = read_blob(oid)
        if not is_sqlite_bytes(image):
            continue
        plan = plan_wal_recovery(root, rel, image) if recover else None
        if plan is not None:
            notes.extend(plan.describe(snapshot, dry_run))
            if plan.data is not None:
                replacements[rel] = plan.data
        if dry_run:
            names = ", ".join(present)
            notes.append(f"would move {names} aside (renamed beside it as NAME{SET_ASIDE_MARK}<time>), not delete them")
    return replacements, notes
