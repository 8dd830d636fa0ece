"""Does a path's content move back?  When each of its contents first appeared, in git and in guardian.

A git command that replaces protected content is a rollback only when the new content
is *older* than what it replaced: a reset that undoes a revert brings the fix forward
again, a rebase onto a main that fixed the file brings the fix in.  "Older" is about
first appearances: the first commit (in the history of the commits the command moved
between) whose tree has that blob at that path, and the first snapshot in guardian's
catalog that recorded it.  Content neither has seen is new.

Commit and snapshot times are whole seconds, and tests (and quick people) make several
in one second, so the order is (time, where, position): within one second a commit
comes before a snapshot (guardian captures what is on disk, which a commit of the same
second already held or did not yet), commits keep their topological order, and
snapshots their sequence.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from guardian.gates.githooks.source import blob_sha1

if TYPE_CHECKING:
    from guardian.catalog.db import Catalog
    from guardian.gates.githooks.gitcli import Git

_GIT, _SNAPSHOT = 0, 1


@dataclass(frozen=True, order=True)
class Appearance:
    time: int
    where: int  # _GIT before _SNAPSHOT within a second
    position: int  # topological index of the commit, or the snapshot's sequence number


class ContentHistory:
    """First appearances of each content (by sha1) of one path."""

    def __init__(self) -> None:
        self.first: dict[str, Appearance] = {}

    def add(self, sha1: str, seen: Appearance) -> None:
        known = self.first.get(sha1)
        if known is None or seen < known:
            self.first[sha1] = seen

    def older(self, new: str, old: str) -> bool:
        """Did content ``new`` first appear before content ``old``?  New content is never older."""
        seen_new = self.first.get(new)
        if seen_new is None:
            return False
        seen_old = self.first.get(old)
        return seen_old is None or seen_new < seen_old

    def to_text(self) -> str:
        return ", ".join(f"{sha[:8]}@{a.time}/{a.where}/{a.position}" for sha, a in sorted(self.first.items()))


def git_history(git: Git, name: str, commits: Sequence[str], into: ContentHistory) -> None:
    """Add the blobs ``name`` had in the history of ``commits`` (parents before children)."""
    wanted = [c for c in dict.fromkeys(commits) if c]
    if not wanted:
        return
    args = ["log", "--topo-order", "--reverse", "--format=%x01%ct", "--raw", "--no-abbrev", "--no-renames"]
    raw = git.run(*args, *wanted, "--", name, check=False)
    sha256 = False
    converted: dict[str, str] = {}
    time, index = 0, 0
    for line in os.fsdecode(raw).splitlines():
        if line.startswith("\x01"):
            time, index = int(line[1:] or 0), index + 1
            continue
        if not line.startswith(":"):
            continue
        meta = line.split("\t", 1)[0].split()
        if len(meta) < 5:
            continue
        old_oid, new_oid = meta[2], meta[3]
        sha256 = sha256 or len(new_oid) == 64
        for position, oid in ((index * 2 - 1, old_oid), (index * 2, new_oid)):
            if not oid.strip("0"):
                continue  # added or deleted here
            sha1 = oid
            if sha256:
                sha1 = converted.get(oid) or converted.setdefault(oid, blob_sha1(git.blob(oid)))
            into.add(sha1, Appearance(time, _GIT, position))


def catalog_history(catalog: Catalog, path: str, into: ContentHistory) -> None:
    for version in catalog.versions_of(path):
        if version.blob is not None:
            into.add(version.blob, Appearance(int(version.ts), _SNAPSHOT, version.seq))
