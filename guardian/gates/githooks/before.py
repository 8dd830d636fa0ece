"""What each protected path held just before a git command: guardian's snapshots, ordered by sequence.

Snapshot times in the catalog are whole seconds (they come from commit times), and the
watcher often captures what git wrote in the very second git started, sometimes before
the hook has even started.  Taking every snapshot "older than the git process" as the
state before the command then takes git's own result for it, and the rollback passes.
So a version counts as "before the command" by order, never by whole-second time:

- the store's head when the hook started (the shim reads it from the ref file before
  any Python runs; otherwise hook-impl, on first use) bounds the versions considered by
  their sequence number;
- the newest of them was read from a file git had already written when the catalog's
  stat of that file (the last capture's) has a ctime at or after the git process's start
  (``/proc``, 10 ms): git's write is what that capture saw.  Both clocks are coarse, so
  git's own write can look up to ``START_SLACK`` older than git; within that slack the
  capture counts as git's when it read the very file on disk now (same inode, ctime and
  size: git writes a new file), never when it read an edit git then replaced;
- a deletion recorded in the second git started counts as git's when its snapshot event,
  logged with millisecond times after the commit, was written after git started.  So
  does an empty or deleted state captured just before git's result: git removes a file,
  then creates and writes the new one, and a capture can land in between.

Of what is left, guardian's latest snapshot is the best witness: it has uncommitted
work.  It loses to the version committed in HEAD before the command when it is stale.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from guardian.gates.githooks.context import START_SLACK, HookContext, short, trace
from guardian.gates.githooks.source import Source, blob_sha1

if TYPE_CHECKING:
    from guardian.catalog.db import Catalog, FileRow, VersionRow

# Snapshot events to look back through for the precise time of a deletion's snapshot.
_RECENT_SNAPSHOT_EVENTS = 200


def pre_command_sources(
    ctx: HookContext, names: Sequence[str], old: str, in_old: dict[str, tuple[int, str]]
) -> dict[str, Source | None]:
    """What each path held before the command, as far as guardian and git know.

    A path guardian saw deleted, or whose latest snapshotted version is not valid,
    has no source: the hook does not resurrect a deletion or write back a broken
    file (unless that content is what ``old`` committed).  A path guardian never
    captured falls back to ``old``.  ``in_old``: ``old``'s tree entries (mode, oid) of ``names``.
    """
    project = ctx.project()
    sha1_repo = len(old) == 40
    found: dict[str, Source | None] = {}
    with project.reader() as (_repo, catalog):
        anchor = _anchor_seq(ctx, catalog)
        for name in names:
            path = ctx.path_of(name)
            versions = versions_before(ctx, catalog, path, anchor)
            git_source = None
            if name in in_old:
                mode, oid = in_old[name]
                sha1 = oid if sha1_repo else blob_sha1(ctx.git.blob(oid))
                git_source = Source("git", oid, sha1, mode, commit=old)
            if not versions:
                found[name] = git_source
                continue
            last = versions[-1]
            if last.change == "delete" or last.blob is None or last.mode is None or last.verdict != "valid":
                # Content ``old`` committed is no broken transient state, whatever the validators say.
                committed = git_source is not None and last.change != "delete" and git_source.sha1 == last.blob
                found[name] = git_source if committed else None
                continue
            snap = Source("snapshot", last.blob, last.blob, last.mode, snapshot=last.snapshot)
            found[name] = snap
            if (
                git_source is not None
                and git_source.sha1 != snap.sha1
                and _snapshot_is_stale(ctx, old, name, snap, last.ts)
            ):
                found[name] = git_source
    return found


def versions_before(ctx: HookContext, catalog: Catalog, path: str, anchor: int | None) -> list[VersionRow]:
    """The versions of ``path`` guardian recorded before this git command wrote anything, oldest first."""
    versions = catalog.versions_of(path)
    if anchor is not None:
        versions = [v for v in versions if v.seq <= anchor]
    if versions and _captured_after_start(ctx, catalog, versions[-1]):
        trace(f"{path}: snapshot {short(versions[-1].snapshot)} captured what git wrote; not the state before it")
        versions.pop()
        # git unlinks a file, then creates and writes the new one: a capture in between saw it gone or empty.
        while versions and _between_git_writes(ctx, versions[-1]):
            trace(f"{path}: snapshot {short(versions[-1].snapshot)} caught git halfway; not the state before it")
            versions.pop()
    return versions


def _anchor_seq(ctx: HookContext, catalog: Catalog) -> int | None:
    """The sequence number of the store's head when the hook started, if the catalog knows it."""
    head = ctx.store_head()
    if head is None:
        return None
    row = catalog.snapshot(head)
    return row.seq if row is not None else None


def _captured_after_start(ctx: HookContext, catalog: Catalog, version: VersionRow) -> bool:
    """Did the capture that recorded ``version`` read what this git command wrote?"""
    if version.change == "delete":
        return _logged_after_start(ctx, version)
    row = catalog.file(version.path)
    if row is None or row.blob != version.blob or row.ctime_ns is None:
        return False
    ctime = row.ctime_ns / 1e9
    if ctime >= ctx.started:
        return True
    # A person's edit a moment before git started must stay "before": within the slack, only
    # a capture of the file on disk now is git's (git replaced an edited file with a new inode).
    return ctime >= ctx.started - START_SLACK and _is_file_on_disk(ctx, row)


def _is_file_on_disk(ctx: HookContext, row: FileRow) -> bool:
    """Is the file the catalog's stat describes (the last capture's) the one at its path now?"""
    try:
        st = os.lstat(ctx.root / row.path)
    except OSError:
        return False
    return (st.st_ino, st.st_ctime_ns, st.st_size) == (row.ino, row.ctime_ns, row.size)


def _between_git_writes(ctx: HookContext, version: VersionRow) -> bool:
    """Is ``version`` git's file caught between its removal and its new content, captured after git started?"""
    return (version.change == "delete" or version.size == 0) and _logged_after_start(ctx, version)


def _logged_after_start(ctx: HookContext, version: VersionRow) -> bool:
    """Was ``version``'s snapshot taken after git started?  Its event has the milliseconds its time lacks."""
    if version.ts < int(ctx.started):
        return False
    logged = _snapshot_logged_at(ctx, version.snapshot)
    return logged is None or logged >= ctx.started


def _snapshot_logged_at(ctx: HookContext, snapshot: str) -> float | None:
    import datetime as dt  # only for a deletion recorded in the very second git started

    for event in reversed(ctx.project().events.recent(["snapshot"], limit=_RECENT_SNAPSHOT_EVENTS)):
        if event.snapshot == snapshot:
            try:
                return dt.datetime.fromisoformat(event.ts).timestamp()
            except ValueError:
                return None
    return None


def _snapshot_is_stale(ctx: HookContext, head: str, name: str, snap: Source, taken: float) -> bool:
    """Is a snapshotted version older than what ``head`` has committed for the file?

    It is when the watcher was not running and the file was committed since: the
    snapshot's content is an older committed version of the file, or the last
    commit touching it is strictly newer (whole seconds).
    """
    raw = os.fsdecode(ctx.git.run("log", "--raw", "--no-abbrev", "--format=%x01%ct", head, "--", name))
    newest_commit: int | None = None
    committed_blobs: set[str] = set()
    for line in raw.splitlines():
        if line.startswith("\x01"):
            if newest_commit is None:
                newest_commit = int(line[1:])
        elif line.startswith(":"):
            committed_blobs.add(line.split()[3])
    if snap.sha1 in committed_blobs:
        return True  # the snapshot holds a version that was committed before the one in head
    return newest_commit is not None and newest_commit > int(taken)
