"""The snapshot ref: reading it, moving it by compare-and-swap, and forcing it back.

Snapshots are commits on one ref, ``refs/heads/snapshots``.  It moves by compare-and-swap
on the expected parent, using git's own ``<ref>.lock`` protocol so that stock git and
guardian never interleave a ref update.  The ref update is a snapshot's commit point.
"""

from __future__ import annotations

import os
from pathlib import Path

from guardian.errors import OperationFailed, StoreDamaged
from guardian.store import gitcore
from guardian.store.durability import durability_mode, sync_store
from guardian.util.fs import fsync_dir

SNAPSHOT_REF = "refs/heads/snapshots"


def read_head(repo: gitcore.Repository) -> str | None:
    """The commit the snapshot ref names, or None before the first snapshot."""
    try:
        ref = gitcore.find_reference(repo, SNAPSHOT_REF)
    except (gitcore.GitError, ValueError) as exc:
        raise StoreDamaged(f"the snapshot ref {SNAPSHOT_REF} is unreadable: {exc}") from None
    if ref is None:
        return None
    target = ref.target
    return str(target)


def ref_path(git_dir: Path) -> Path:
    return git_dir / SNAPSHOT_REF


def ref_file_problem(git_dir: Path) -> str | None:
    """What is wrong with the ref's file, read directly (libgit2 may not say), or None."""
    path = ref_path(git_dir)
    if path.exists():
        text = path.read_bytes().strip()
        if len(text) != 40 or any(c not in b"0123456789abcdef" for c in text):
            return f"the snapshot ref {path} is corrupt (holds {text[:60]!r})"
    return None


def update_ref(repo: gitcore.Repository, git_dir: Path, new: str, expected: str | None) -> None:
    """Move the snapshot ref from expected to new, or fail if someone else moved it.

    Uses git's lock-file protocol (create <ref>.lock exclusively, verify, write,
    sync, rename, fsync the directory), which makes the update a compare-and-swap
    that stock git respects too.
    """
    path = ref_path(git_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except FileExistsError:
        raise OperationFailed(
            f"the snapshot ref is locked by another writer ({lock}); if no git or guardian process is "
            "running on this store, run 'guardian verify --repair'"
        ) from None
    try:
        try:
            current = read_head(repo)
            if current != expected:
                raise OperationFailed(
                    f"the snapshot ref moved under us (expected {expected}, found {current}); retry the operation"
                )
            os.write(fd, f"{new}\n".encode())
            if durability_mode() == "batch":
                # One syncfs makes every object written so far *and* the new ref value
                # durable before the rename publishes it.
                sync_store(git_dir)
            else:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(lock, path)
    except BaseException:
        lock.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def reset_ref(git_dir: Path, commit_id: str) -> None:
    """Force the ref to a known-good commit (used only by verify --repair)."""
    path = ref_path(git_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".lock")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, f"{commit_id}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
    fsync_dir(path.parent)
