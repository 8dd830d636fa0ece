"""Leftovers of a killed writer: git lock files and half-written temp objects.

Both are cleared only under guardian's writer lock, which every writer of the
store holds; ``Project.sweep_store`` is the one caller that logs what was cleared.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from guardian.util.fs import TEMP_PREFIX
from guardian.util.lock import lock_file_holders

if TYPE_CHECKING:
    from guardian.store.repo import ShadowRepo


# Known lock files of a git dir; a dead writer's leftovers block every later commit.
_GIT_LOCK_NAMES = ("refs/heads/snapshots.lock", "packed-refs.lock", "config.lock", "HEAD.lock", "index.lock")


def clear_stale_git_locks(repo: ShadowRepo, paths: Iterable[Path] | None = None) -> list[Path]:
    """Remove git lock files whose writer is gone.  Call only while holding guardian's writer lock.

    A lock some live process still has open is respected.  Where /proc is missing
    (macOS), or some process's open files cannot be read (another user's), a lock
    is taken as stale only once it is more than a minute old.
    """
    candidates = list(paths) if paths is not None else [repo.git_dir / name for name in _GIT_LOCK_NAMES]
    cleared: list[Path] = []
    has_proc = Path("/proc/self/fd").is_dir()
    for lock in candidates:
        try:
            age = time.time() - lock.stat().st_mtime
        except FileNotFoundError:
            continue
        holders = lock_file_holders(lock) if has_proc else None
        if holders or (holders is None and age < 60):
            continue
        lock.unlink(missing_ok=True)
        cleared.append(lock)
    return cleared


def clear_temp_objects(repo: ShadowRepo, deep: bool = True) -> list[Path]:
    """libgit2's and guardian's half-written temp files left by a killed writer.

    Both write their temp files at the top of objects/; deep also looks in the 256
    fan-out directories, which costs a directory listing each.  Call only while holding
    guardian's writer lock: every writer of these holds it too.
    """
    cleared: list[Path] = []
    objects = repo.git_dir / "objects"
    for sub in [objects, *objects.glob("??")] if deep else [objects]:
        try:
            for item in sub.iterdir():
                if not item.name.startswith(("tmp_object_git2_", "pack_git2_", TEMP_PREFIX)):
                    continue
                if item.is_dir() and not item.is_symlink():
                    shutil.rmtree(item, ignore_errors=True)  # a staged pack's work directory
                else:
                    item.unlink(missing_ok=True)
                cleared.append(item)
        except FileNotFoundError:
            continue
    return cleared
