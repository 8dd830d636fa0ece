"""Walking the project tree for capture: every capturable file, and every place the walk could not go.

A directory guardian cannot list (no permission, an I/O error, a path longer than the
system allows) is reported, never taken as empty: the files captured under it before
keep their last versions instead of being recorded as deleted.  Nor does the walk go
more than ``MAX_DEPTH`` directories down: the snapshot trees are built, compared and
restored level by level, and a few thousand levels would exhaust Python's recursion
limit there and in the watcher; real projects stay far below it.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from guardian.capture.filters import PathFilter
from guardian.capture.sqlite import wal_stats, with_wal
from guardian.store.trailers import DEFAULT_DIR_PERM
from guardian.util.fs import TEMP_PREFIX, lstat_at

# Directory levels below the root that are walked; deeper directories are skipped with a note.
MAX_DEPTH = 256

Problem = tuple[str, str]  # (root-relative path, why it was not walked or not read)


def describe_os_error(exc: OSError) -> str:
    """A short reason for an OSError on a user path: the cause, never the (maybe huge) path itself."""
    if exc.errno == errno.ENAMETOOLONG:
        return "the path is longer than the system allows (PATH_MAX)"
    return exc.strerror or type(exc).__name__


def too_deep(rel: str) -> bool:
    """Whether rel lies more than MAX_DEPTH directories below the root."""
    return rel.count("/") > MAX_DEPTH


def too_deep_reason() -> str:
    return f"more than {MAX_DEPTH} directory levels deep; not captured"


def under_any(rel: str, dirs: Iterable[str]) -> bool:
    """Whether rel is one of dirs or lies under one ("" stands for the root)."""
    return any(d == "" or rel == d or rel.startswith(d + "/") for d in dirs)


def walk_tree(
    root: Path,
    keep: PathFilter,
    start: str = "",
    temps: list[str] | None = None,
    problems: list[Problem] | None = None,
    dirs: dict[str, int] | None = None,
) -> Iterator[tuple[str, os.stat_result]]:
    """Every capturable file and symlink under root/start, without following symlinks.

    With ``temps``, guardian's own ``.guardian-tmp-*`` files met on the way (never
    captured) are collected there, so a full scan can sweep a killed writer's leftovers.
    With ``problems``, each directory that could not be listed, each entry that could
    not be looked at, and each directory too deep to enter is noted there with why.
    With ``dirs``, each directory entered gets its permission bits there (for DirectoryModes).
    """
    stack = [start]
    while stack:
        rel_dir = stack.pop()
        try:
            with os.scandir(root / rel_dir if rel_dir else root) as entries:
                listing = list(entries)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            if problems is not None:
                why = describe_os_error(exc)
                problems.append(
                    (rel_dir, f"cannot list this directory: {why}; the files under it keep their last versions")
                )
            continue
        wals = wal_stats(listing)  # a commit may change only a database's -wal: fold it into its stat
        for entry in listing:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                st = with_wal(entry.stat(follow_symlinks=False), wals.get(entry.name))
            except FileNotFoundError:
                continue
            except OSError as exc:
                if problems is not None:
                    problems.append((rel, f"cannot look at it: {describe_os_error(exc)}"))
                continue
            if stat.S_ISDIR(st.st_mode):
                if not keep(rel, is_dir=True):
                    continue
                if too_deep(rel + "/x"):
                    if problems is not None:
                        problems.append((rel, too_deep_reason()))
                    continue
                stack.append(rel)
                if dirs is not None:
                    dirs[rel] = stat.S_IMODE(st.st_mode)
            elif (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)) and keep(rel):
                yield rel, st
            elif temps is not None and entry.name.startswith(TEMP_PREFIX) and not stat.S_ISDIR(st.st_mode):
                temps.append(rel)


class DirectoryModes:
    """The permission bits of the directories above captured files, each looked up once per capture.

    They go into the snapshot as ``Guardian-DirPerm`` trailers (only where not 0755), so a
    restore that has to recreate a private directory makes it private again.  ``walked``:
    the bits walk_tree found for the directories it entered in this capture (no second look).
    """

    def __init__(self, root: Path, walked: dict[str, int] | None = None) -> None:
        self.root = root
        self._seen: dict[str, int | None] = dict(walked) if walked else {}
        self._last: tuple[str, dict[str, int]] = ("", {})  # the last parent asked about, and its answer

    def above(self, rel: str) -> dict[str, int]:
        """{directory: bits} for each directory above rel whose bits are not the default 0755."""
        parent = rel.rpartition("/")[0]
        if parent == self._last[0]:
            return dict(self._last[1])  # a capture goes through a directory's files one after another
        found = self._above(parent)
        self._last = (parent, found)
        return dict(found)

    def _above(self, parent: str) -> dict[str, int]:
        found: dict[str, int] = {}
        parts = parent.split("/") if parent else []
        for end in range(1, len(parts) + 1):
            directory = "/".join(parts[:end])
            if directory not in self._seen:
                try:
                    st = lstat_at(self.root, directory)
                except OSError:
                    st = None
                ok = st is not None and stat.S_ISDIR(st.st_mode)
                self._seen[directory] = stat.S_IMODE(st.st_mode) if st is not None and ok else None
            bits = self._seen[directory]
            if bits is not None and bits != DEFAULT_DIR_PERM:
                found[directory] = bits
        return found
