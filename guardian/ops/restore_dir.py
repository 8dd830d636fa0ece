"""``guardian restore DIR``: every file under a directory, from one snapshot, in one restore.

Which files: those under DIR in the chosen snapshot.  ``--at SNAP`` names it, ``--before
TIME`` takes the last one taken before TIME, and with neither it is the newest snapshot in
which DIR held any file: the head, unless DIR is gone as a whole (a removed worktree).
Files deleted since that snapshot come back; files deleted before it do not (they were
gone already), and files added since are left alone (``guardian rollback DIR --to SNAP``
removes those).  Each file gets the version a restore of it by name would pick (the
``pick`` that ops.restore passes in), so restoring a directory and restoring its files
one by one agree, and ops.restore.apply_restore asks the policy once over all of them.

A worktree's ``.git`` pointer file is restored only when guardian.util.gitfile accepts
what it points at, and :func:`reattach_hints` then says how to re-attach the worktree
(``git worktree repair``), for restore and rollback alike.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol, TypeVar

from guardian.catalog.db import Catalog, VersionRow, is_safe_path
from guardian.errors import OperationFailed
from guardian.paths import is_git_pointer_path
from guardian.query.lookup import last_snapshot_before, resolve_snapshot
from guardian.store.repo import ShadowRepo
from guardian.store.tree import Entry
from guardian.util.fs import lstat_at, read_state
from guardian.util.gitfile import (
    MAX_POINTER_SIZE,
    parse_pointer,
    pointer_refusal,
    pointer_target,
    worktree_entry_exists,
    worktree_main,
)
from guardian.util.times import format_time

_SHOWN = 5  # paths named in a note before "and N more"


class Target(Protocol):
    """What a restore target offers here (ops.restore.RestoreTarget)."""

    @property
    def path(self) -> str: ...

    @property
    def entry(self) -> Entry: ...


T = TypeVar("T", bound=Target)


def is_directory(root: Path, catalog: Catalog, rel: str) -> bool:
    """Whether restoring rel means the files under it: snapshots hold some, and rel is no file of its own."""
    if not catalog.paths_under(rel):
        return False
    if not catalog.known_path(rel):
        return True
    found = lstat_at(root, rel)  # a file that became a directory: the directory is what is there now
    return found is not None and stat.S_ISDIR(found.st_mode)


def directory_targets(
    root: Path,
    repo: ShadowRepo,
    catalog: Catalog,
    rel: str,
    at: str | None,
    before: float | None,
    pick: Callable[[str, str], T],
    notes: list[str],
) -> list[T]:
    """The restore targets for every file under rel in the chosen snapshot; what is left out goes to notes."""
    bound, label = _snapshot_bound(catalog, rel, at, before)
    present: list[str] = []
    gone_by_then: list[str] = []
    for path in catalog.paths_under(rel):
        if not is_safe_path(path):
            continue  # a crafted tree entry: never offered (catalog.db's rule)
        last = _last_version(catalog.versions_of(path), bound)
        if last is None:
            continue
        (gone_by_then if last.change == "delete" else present).append(path)
    if not present:
        raise OperationFailed(
            f"'{rel}/' held no files in {label}; see 'guardian log {rel}', then pick a snapshot with --at SNAPSHOT"
        )
    targets: list[T] = []
    no_valid: list[str] = []
    for path in present:
        try:
            target = pick(path, path)
        except OperationFailed:
            no_valid.append(path)  # pick's own message names one file; the note names them all
            continue
        refusal = _pointer_refusal(root, repo, target) if is_git_pointer_path(path) else None
        if refusal is not None:
            notes.append(f"not restoring {path}: {refusal}")
            continue
        targets.append(target)
    chosen = set(present)
    added = [row.path for row in catalog.files_under(rel) if row.path not in chosen]
    if no_valid:
        notes.append(f"not restoring {_listing(no_valid)}: no valid version; see 'guardian history PATH'")
    if gone_by_then:
        notes.append(
            f"{len(gone_by_then)} file(s) under {rel}/ were deleted before {label} and are not restored "
            f"({_listing(gone_by_then)}); pick an earlier snapshot with --at or --before to bring them back"
        )
    if added:
        notes.append(
            f"{len(added)} file(s) under {rel}/ are not in {label} and are left as they are ({_listing(added)}); "
            f"'guardian rollback {rel} --to SNAPSHOT' would remove them"
        )
    return targets


def _snapshot_bound(catalog: Catalog, rel: str, at: str | None, before: float | None) -> tuple[int, str]:
    """(the newest snapshot seq whose versions count, how to name that snapshot in a message)."""
    if at is not None:
        snap = resolve_snapshot(catalog, at)
        return snap.seq, f"snapshot {snap.id[:12]}"
    if before is not None:
        last = last_snapshot_before(catalog, before)
        if last is None:
            raise OperationFailed(
                f"--before: no snapshot was taken before {format_time(before)}; list them with 'guardian log'"
            )
        return last.seq, f"snapshot {last.id[:12]} ({format_time(last.ts)})"
    # The newest snapshot in which rel held a file: the head if any file under it still stands,
    # else the one before the newest deletion there (when the last of its files went).
    newest_deletion = 0
    for path in catalog.paths_under(rel):
        versions = catalog.versions_of(path)
        if versions and versions[-1].change != "delete":
            head = catalog.last_snapshot()
            assert head is not None  # a version exists, so a snapshot does
            return head.seq, "the latest snapshot"
        if versions:
            newest_deletion = max(newest_deletion, versions[-1].seq)
    return newest_deletion - 1, "the last snapshot that held them"


def _last_version(versions: list[VersionRow], bound: int) -> VersionRow | None:
    found: VersionRow | None = None
    for version in versions:  # oldest first
        if version.seq > bound:
            break
        found = version
    return found


def _pointer_refusal(root: Path, repo: ShadowRepo, target: Target) -> str | None:
    """Why a worktree pointer in a snapshot may not be written now (fs.write_user_file refuses it too)."""
    if target.entry.is_link:
        return "a .git symlink could lead git anywhere; only a pointer file is restored"
    return pointer_refusal(root, target.path, repo.read_blob(target.entry.oid))


def _listing(paths: list[str]) -> str:
    more = f" and {len(paths) - _SHOWN} more" if len(paths) > _SHOWN else ""
    return ", ".join(paths[:_SHOWN]) + more


# --------------------------------------------------------------------------- re-attaching worktrees


def reattach_hints(root: Path, written: Iterable[str]) -> list[str]:
    """How to re-attach each linked worktree that a restore or rollback just wrote files into.

    A worktree whose ``.git`` pointer came back is re-attached by ``git worktree repair
    <path>`` in the main work tree (it also fixes git's side if the project moved).  One
    whose files came back without a pointer (snapshots taken before guardian kept it) is
    recreated by ``git worktree repair`` alone, if git still lists the worktree.
    """
    written = list(written)
    lines: list[str] = []
    pointed: set[str] = set()
    for rel in written:
        if not is_git_pointer_path(rel):
            continue
        directory = rel.rsplit("/", 1)[0]
        state = read_state(root, rel, max_size=MAX_POINTER_SIZE)
        gitdir = parse_pointer(state.data) if state.kind == "file" else None
        if gitdir is None:
            continue
        pointed.add(directory)
        target = pointer_target(root, rel, gitdir)
        main = worktree_main(target)
        if main is None:
            continue  # a submodule's checkout: its pointer is all git needs
        where = root / directory
        if worktree_entry_exists(target):
            lines.append(
                f"worktree {directory}: its .git pointer is back; re-attach it with "
                f"'git worktree repair {where}', run in the main work tree {main}"
            )
        else:
            lines.append(
                f"worktree {directory}: its .git pointer is back, but git's entry for it ({target}) is gone "
                f"(pruned?); move its files aside, run 'git worktree add {where} BRANCH' in {main}, and copy them back"
            )
    for directory in _listed_worktrees(root):
        if directory in pointed or not any(rel.startswith(directory + "/") for rel in written):
            continue
        if lstat_at(root, f"{directory}/.git") is None:
            lines.append(
                f"worktree {directory}: its files are back without its .git pointer (not in that snapshot); "
                f"recreate it with 'git worktree repair', run in the main work tree {root}"
            )
    return lines


def _listed_worktrees(root: Path) -> list[str]:
    """The root-relative directories that the project's own repository lists as its linked worktrees.

    Read from git's entries (``.git/worktrees/*/gitdir``, one line each), read-only; a
    worktree outside the project is left out.
    """
    entries = root / ".git" / "worktrees"
    try:
        names = sorted(os.listdir(entries))
    except OSError:
        return []
    real_root = os.path.realpath(root)
    found: list[str] = []
    for name in names:
        try:
            with open(entries / name / "gitdir", "rb") as handle:
                line = handle.read(MAX_POINTER_SIZE).strip()
        except OSError:
            continue
        worktree = os.path.dirname(os.path.normpath(os.fsdecode(line)))
        if worktree.startswith(real_root + os.sep):
            found.append(os.path.relpath(worktree, real_root).replace(os.sep, "/"))
    return found
