"""The hooks' vocabulary for content: where a version to put back lives, what a loss is, and how to read a file.

A :class:`Source` is a blob in guardian's store or in the user's git repository, named
by the sha1 the shadow store would give it (so a sha256 repository compares too).  A
:class:`Loss` is a protected path whose content from before a git command is gone.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import NamedTuple

from guardian.gates.githooks.context import short


class Source(NamedTuple):
    """Content to put back: a blob in guardian's store, or in the git repository."""

    where: str  # "snapshot" or "git"
    oid: str  # in the shadow store (sha1) or in git
    sha1: str  # the blob's sha1 as the shadow store hashes it, for comparisons
    mode: int
    snapshot: str | None = None  # the snapshot id, when where == "snapshot"
    commit: str | None = None  # the commit, when where == "git"

    def describe(self) -> str:
        if self.where == "snapshot":
            return f"snapshot {short(self.snapshot)}"
        return f"commit {short(self.commit)}"


class Loss(NamedTuple):
    path: str  # project-relative
    git_path: str  # work-tree-relative
    present: bool  # the file is there (with other content) rather than deleted
    source: Source


def blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def current_content(path: Path) -> bytes | None:
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISLNK(st.st_mode):
        return os.fsencode(os.readlink(path))
    if not stat.S_ISREG(st.st_mode):
        return None
    return path.read_bytes()
