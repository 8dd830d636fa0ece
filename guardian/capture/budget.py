"""The disk budget: which files a capture may store while the store is near its size limits.

The budget only measures and decides; it never runs gc itself.  Making room is a
decision for the caller (ops.snapshot, the watcher's maintenance), one layer up.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from guardian.errors import OperationFailed
from guardian.util.fs import atomic_write_file
from guardian.util.times import format_size

if TYPE_CHECKING:
    from pathlib import Path

    from guardian.project import Project


# Size cap: "near" a limit is within this fraction of store.max_size.
NEAR_LIMIT = 0.10


SMALL_FILE = 64 * 1024  # still captured when the store is over a limit


CRITICAL_FILE = 1024 * 1024  # protected files up to this size are captured whatever the limits


DISK_FULL = 4 * 1024 * 1024  # below this much free space nothing is written at all


USAGE_TTL = 60.0  # a store size measured this recently is good enough for a capture's budget

# A directory changed this recently is measured again next time, whatever its mtime says: two
# changes within one tick of the file system's clock can leave the same mtime (git's "racy" case).
SETTLED_NS = 5_000_000_000

# Object directories the next measure may count from usage.json: {name: [mtime_ns, bytes]}.
ObjectDirs = dict[str, list[int]]


def _allocated(path: str) -> int:
    try:
        st = os.lstat(path)
    except OSError:
        return 0
    blocks = getattr(st, "st_blocks", None)
    return blocks * 512 if blocks is not None else st.st_size


def store_size(store: Path) -> int:
    """Bytes the store occupies on disk (allocated blocks, as du counts)."""
    total = 0
    for dirpath, _dirs, files in os.walk(store):
        for name in files:
            total += _allocated(os.path.join(dirpath, name))
    return total


def _object_dir_size(path: str) -> tuple[int, bool]:
    """(bytes of the files directly in path, whether path holds nothing but files)."""
    total, flat = 0, True
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.is_dir():  # as os.walk reads it: a symlink to a directory is neither counted nor entered
                    flat = False
                    if not entry.is_symlink():
                        total += store_size(Path(entry.path))
                else:
                    total += _allocated(entry.path)
    except OSError:
        return 0, False  # as os.walk reads it: a directory that cannot be listed counts nothing
    return total, flat


def _write_once(name: str) -> bool:
    """Whether repo.git/objects/NAME holds only files written whole and never rewritten (not info/)."""
    return name == "pack" or (len(name) == 2 and all(c in "0123456789abcdef" for c in name))


def measured_size(store: Path, known: ObjectDirs) -> tuple[int, ObjectDirs]:
    """store_size(store), and what the next measure may take from it, counting from ``known`` what it can.

    The walk grows with the store, and most of it is objects (repo.git/objects/xx/ and pack/):
    files that are only ever added or deleted whole, never rewritten, so a directory of them
    whose mtime has not moved since it was counted still holds what it held.  Such a directory
    is counted again only once it changed; every other file is measured each time.
    """
    objects = os.path.join(store, "repo.git", "objects")
    started = time.time_ns()
    total = 0
    counted: ObjectDirs = {}
    for dirpath, dirs, files in os.walk(store):
        for name in files:
            total += _allocated(os.path.join(dirpath, name))
        if dirpath != objects:
            continue
        for name in dirs:
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode):
                continue  # os.walk neither counts nor enters it
            mtime = st.st_mtime_ns
            cached = known.get(name)
            if cached is not None and cached[0] == mtime:
                size = cached[1]
            else:
                size, flat = _object_dir_size(path)
                if not flat or mtime > started - SETTLED_NS or not _write_once(name):
                    total += size
                    continue
            total += size
            counted[name] = [mtime, size]
        dirs.clear()  # each object directory is counted above
    return total, counted


class StoreUsage(NamedTuple):
    """The store's size and the free disk space, against the policy's two limits.

    A NamedTuple, not a frozen dataclass: the same fields, equality, repr and immutability,
    without ~1 ms of generated methods on every capture's import (the git hooks' included).
    """

    size: int
    free: int
    max_size: int
    min_free: int

    @property
    def headroom(self) -> int:
        """Bytes the store may still grow before one of the two limits."""
        return min(self.max_size - self.size, self.free - self.min_free)

    @property
    def state(self) -> str:
        """ok, tight (within NEAR_LIMIT of a limit), over (past one), or full (the disk itself)."""
        if self.free < DISK_FULL:
            return "full"
        if self.headroom <= 0:
            return "over"
        if self.headroom < NEAR_LIMIT * self.max_size:
            return "tight"
        return "ok"

    def describe(self) -> str:
        if self.max_size - self.size <= self.free - self.min_free:
            return f"the store uses {format_size(self.size)} of its {format_size(self.max_size)} cap (store.max_size)"
        floor = format_size(self.min_free)
        return f"only {format_size(self.free)} is free on the store's disk (store.min_free is {floor})"

    def to_json(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "free": self.free,
            "max_size": self.max_size,
            "min_free": self.min_free,
            "state": self.state,
        }


def disk_free(path: Path) -> int:
    return shutil.disk_usage(path).free


def measure_usage(project: Project, max_age: float = 0.0) -> StoreUsage:
    """The store's size and free disk space against the policy's limits.

    Walking a store of many loose objects costs tens of milliseconds, too much for every
    hook-triggered snapshot: with max_age, a size measured that recently is reused.
    Once that is stale, the store is measured again counting its unchanged object directories
    from the last measure (:func:`measured_size`), so that walk no longer grows with the store.
    """
    settings = project.policy.store
    if max_age > 0:
        size, known = _recent_size(project, max_age)
        if size is None:
            size, counted = measured_size(project.paths.store, known)
            remember_size(project, size, counted)
    else:
        size = store_size(project.paths.store)
    return StoreUsage(size, disk_free(project.paths.store), settings.max_size, settings.min_free)


def _recent_size(project: Project, max_age: float) -> tuple[int | None, ObjectDirs]:
    """(the size measured within max_age seconds, or None; the object directories counted then)."""
    try:
        raw = json.loads((project.paths.store / "usage.json").read_text(encoding="utf-8"))
        known = raw.get("objects")
        dirs: ObjectDirs = {}
        if isinstance(known, dict):
            dirs = {
                str(name): [int(entry[0]), int(entry[1])]
                for name, entry in known.items()
                if isinstance(entry, list) and len(entry) == 2
            }
        if time.time() - float(raw["ts"]) < max_age:
            return int(raw["size"]), dirs
        return None, dirs
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return None, {}


def remember_size(project: Project, size: int, objects: ObjectDirs | None = None) -> None:
    """Keep the store's size for the next captures (usage.json), with its object directories' if counted."""
    record: dict[str, Any] = {"ts": time.time(), "size": size}
    if objects:
        record["objects"] = objects
    try:
        atomic_write_file(project.paths.store / "usage.json", json.dumps(record).encode())
    except OSError:
        pass  # a full disk: measure again next time


class CaptureBudget:
    """Which files a capture may store now: a callable (path, size) -> why it is skipped, or None.

    Raises OperationFailed when the disk is truly full: nothing is written, nothing is
    corrupted, and the next capture after space returns catches up.
    """

    def __init__(self, usage: StoreUsage, protected: Callable[[str], bool]) -> None:
        self.usage = usage
        self.protected = protected

    def limit(self, protected: bool) -> int | None:
        """Largest file captured now (None: no limit)."""
        state = self.usage.state
        if state == "ok":
            return None
        general = SMALL_FILE if state != "tight" else max(SMALL_FILE, self.usage.headroom // 16)
        return max(general, CRITICAL_FILE) if protected else general

    def __call__(self, rel: str, size: int) -> str | None:
        state = self.usage.state
        if state == "full":
            raise OperationFailed(disk_full_message(self.usage))
        if state == "ok":
            return None  # no limit: no need to ask the policy whether rel is protected (once per file)
        limit = self.limit(self.protected(rel))
        if limit is None or size <= limit:
            return None
        return (
            f"not captured: {self.usage.describe()}; files over {format_size(limit)} are skipped "
            "until 'guardian gc' or higher store limits make room"
        )


def disk_full_message(usage: StoreUsage) -> str:
    return (
        f"the store's disk is full ({format_size(usage.free)} free); nothing was captured and the store is "
        "unchanged; free some space and the next snapshot catches up"
    )


def protected_matcher(project: Project) -> Callable[[str], bool]:
    from guardian.policy import PolicyEngine

    return PolicyEngine(project.policy.protect_rules).is_protected


def capture_budget(project: Project, *, fresh: bool = False) -> CaptureBudget:
    """The budget for the next capture, from a store size measured within USAGE_TTL (or now, if fresh)."""
    usage = measure_usage(project, 0.0 if fresh else USAGE_TTL)
    return CaptureBudget(usage, protected_matcher(project))
