"""Turning what a user typed into a snapshotted path, a snapshot id, or the snapshot before a time."""

from __future__ import annotations

import time
from pathlib import Path

from guardian.catalog.db import Catalog, SnapshotRow, VersionRow
from guardian.errors import AmbiguousPath, OperationFailed, UsageError
from guardian.lifecycle.clock import count_before
from guardian.paths import check_relative, to_relative
from guardian.util.fs import lstat_at


def resolve_path(root: Path, catalog: Catalog, typed: str, cwd: Path | None = None) -> str:
    """A root-relative path for typed: an exact path, or a bare name found anywhere in history.

    Bare names are resolved against every path ever snapshotted, deleted ones
    included, because the file a user wants back is often the one that is gone.
    """
    rel = to_relative(root, typed, cwd)
    if catalog.known_path(rel) or lstat_at(root, rel) is not None or catalog.paths_under(rel):
        return rel
    if "/" not in typed.strip("/"):
        name = typed.strip("/")
        check_relative(name)
        candidates = catalog.paths_named(name)
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            raise AmbiguousPath(name, candidates)
    return rel


def require_known(catalog: Catalog, rel: str, typed: str) -> None:
    if not catalog.known_path(rel):
        raise OperationFailed(
            f"'{typed}' never existed in any snapshot; check the name with 'guardian log' or 'guardian history'"
        )


def resolve_snapshot(catalog: Catalog, typed: str, option: str = "--at") -> SnapshotRow:
    text = typed.strip().lower()
    if not text or any(c not in "0123456789abcdef" for c in text):
        raise UsageError(
            f"{option}: '{typed}' is not a snapshot id; use an id from 'guardian log' (at least 4 hex digits)"
        )
    if len(text) < 4:
        raise UsageError(f"{option}: '{typed}' is too short; give at least 4 hex digits of a snapshot id")
    matches = catalog.snapshots_by_prefix(text)
    if not matches:
        # gc rewrites the chain: an id from before a gc is found through its Guardian-Original trailer.
        from guardian.lifecycle.rewrite import rewritten_to

        found = (catalog.snapshot(cid) for cid in rewritten_to(catalog.path.parent, text))
        matches = [row for row in found if row is not None]
    if not matches:
        raise UsageError(f"{option}: no snapshot '{typed}' in this store; list them with 'guardian log'")
    if len(matches) > 1:
        raise UsageError(f"{option}: '{typed}' matches {len(matches)} snapshots; give more digits")
    return matches[0]


def last_snapshot_before(catalog: Catalog, before: float, now: float | None = None) -> SnapshotRow | None:
    """The newest snapshot taken before ``before``, or None.

    Times are read against the snapshots' order (guardian.lifecycle.clock): a snapshot stamped
    while the clock was wrong is never picked over one the chain shows was taken earlier.
    """
    rows = catalog.snapshots()  # newest first
    rows.reverse()
    count = count_before([row.ts for row in rows], before, time.time() if now is None else now)
    return rows[count - 1] if count else None


def latest_valid_before(catalog: Catalog, path: str, before: float, now: float | None = None) -> VersionRow | None:
    """path's latest valid version in the snapshots taken before ``before`` (as last_snapshot_before reads it)."""
    last = last_snapshot_before(catalog, before, now)
    if last is None:
        return None
    found: VersionRow | None = None
    for version in catalog.versions_of(path):  # oldest first
        if version.seq > last.seq:
            break
        if version.verdict == "valid" and version.blob is not None:
            found = version
    return found
