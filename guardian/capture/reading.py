"""Reading one user file for capture: bounded by ``watch.max_file_size``, and failing for that file alone.

``FileReader`` reads a path without following symlinks (a SQLite database through the
backup API) and says whether the stat taken with it may be trusted by the next scan.
A file is read in chunks and never past the limit, whatever its size said when it was
looked at: a log that keeps growing, or a sparse file extended to gigabytes while it is
read, costs at most the limit in memory, and is skipped as too large.  A file that
cannot be read (no permission, an I/O error, a name too long for the system) raises
``Unreadable`` with a short reason, so the capture reports that file as an ``error``
and goes on with the others.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager

from guardian.capture.sqlite import DatabaseReads, is_sqlite_bytes
from guardian.capture.walk import describe_os_error
from guardian.errors import OperationFailed, PathRefused
from guardian.paths import check_relative
from guardian.project import Project
from guardian.util.fs import open_parent

CHUNK = 1 << 20
# A file smaller than this is read whole before its head is looked at (a database is then read again,
# through SQLite); a larger one has its first bytes read alone first, so a large database is read once.
WHOLE_FIRST = 1 << 16
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


class Unreadable(OperationFailed):
    """One file could not be read or copied; ``reason`` says why, in a few words."""

    def __init__(self, rel: str, reason: str) -> None:
        super().__init__(f"{rel}: {reason}")
        self.reason = reason


def read_capped(fd: int, limit: int, expected: int = 0) -> bytes | None:
    """The rest of fd's content, or None once it is found to hold more than ``limit`` bytes.

    At most limit + 1 bytes are ever read, so memory stays bounded even while another
    process keeps appending to the file.  ``expected`` (the size a stat gave) sizes the
    first read, so a file that did not change is read in one piece and never copied.
    """
    chunks: list[bytes] = []
    total = 0
    want = min(expected + 1, limit + 1) if expected > 0 else CHUNK
    while total <= limit:
        chunk = os.read(fd, min(want, limit + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        want = CHUNK
    return None


def grew_reason(size_seen: int, limit: int) -> str:
    """Why a file that was small enough when looked at was not captured after all."""
    return (
        f"grew past watch.max_file_size ({limit}) while it was read "
        f"({size_seen} bytes when looked at); read again when it changes"
    )


# When a read's stat may be cached ("racy git"): a later in-place write of the same size goes
# unnoticed by stat_matches only if it leaves mtime and ctime as they were, i.e. if it lands in
# the same timestamp tick as the last change before the read.  ctime is the kernel's own clock
# (no tool can set it back), taken from the coarse clock, which ticks every 1-10 ms (HZ 1000 to
# 100) and lags real time by up to one tick.  So a stat whose ctime is within _RACY_NS of the time
# right after it was taken is not trusted; on a filesystem with whole-second timestamps (ctime
# with no sub-second part: FAT has 2 s, ext3 and HFS+ 1 s) the window is _RACY_COARSE_NS.  An
# untrusted stat costs one re-read (and re-hash) on the next rescan, nothing more.
_RACY_NS = 20_000_000
_RACY_COARSE_NS = 2_000_000_000


def _same_stat(before: os.stat_result, after: os.stat_result) -> bool:
    """Whether nothing wrote to the file between the two fstats, as far as its size and times tell."""
    return (before.st_size, before.st_mtime_ns, before.st_ctime_ns) == (
        after.st_size,
        after.st_mtime_ns,
        after.st_ctime_ns,
    )


def _stat_distrust(before: os.stat_result, after: os.stat_result, now_ns: int) -> str | None:
    """None if `after` describes the data read between the two fstats; else "changed" or "racy"."""
    if not _same_stat(before, after):
        return "changed"
    window = _RACY_COARSE_NS if after.st_ctime_ns % 1_000_000_000 == 0 else _RACY_NS
    if after.st_ctime_ns > now_ns - window:
        return "racy"
    return None


class FileReader:
    """Reads one path's current content safely, folding SQLite through the backup API."""

    def __init__(self, project: Project) -> None:
        self.root = project.root
        self.max_size = project.policy.watch.max_file_size
        self.databases = DatabaseReads(project.root)
        self._keeping = False
        self._parent: tuple[str, int] | None = None  # while keeping: the last parent directory and its fd

    @contextmanager
    def keeping_parents(self) -> Iterator[None]:
        """Inside, reads of files in the same directory, one after another, reuse one descriptor of it.

        A capture reads a directory's files in a row: reaching each one's directory anew, a
        component at a time from the root, cost more system calls than reading the file.  The
        directory is still reached without following symlinks; a file read later through it is
        read as it would be had the directory been replaced just after the first one's read.
        """
        self._keeping = True
        try:
            yield
        finally:
            self._keeping = False
            self._drop_parent()

    def _drop_parent(self) -> None:
        if self._parent is not None:
            os.close(self._parent[1])
            self._parent = None

    def _kept_parent(self, rel: str) -> tuple[int, str]:
        """While keeping: (the kept descriptor of rel's directory, opened now if it is another one, leaf)."""
        directory, _sep, leaf = rel.rpartition("/")
        if self._parent is None or self._parent[0] != directory:
            self._drop_parent()
            with open_parent(self.root, rel) as (dir_fd, leaf):
                self._parent = (directory, os.dup(dir_fd))
        else:
            check_relative(rel)  # the refusals open_parent makes: the leaf is new
        return self._parent[1], leaf

    def read(self, rel: str) -> tuple[str, bytes, os.stat_result | None]:
        """('missing'|'other'|'toolarge'|'busy'|'error'|'file'|'symlink', data, stat).

        'busy': a locked database; 'error': a file that cannot be read (read_checked raises Unreadable).
        """
        try:
            kind, data, st, _distrust = self.read_checked(rel)
        except Unreadable:
            return "error", b"", None  # not judged: the capture reports it
        return kind, data, st

    def read_checked(
        self, rel: str, seen: os.stat_result | None = None
    ) -> tuple[str, bytes, os.stat_result | None, str | None]:
        """As read, plus whether the stat may be cached: None, or why not ("changed", "racy").

        A file is fstat'ed before and after its content is read: a stat taken only after the
        read could describe content guardian never saw, and a rescan trusting it would skip the
        file until it changed again.  ``seen``: the walk's stat of rel; when it was a regular
        file within the limit, the file is opened (never following a symlink, never waiting on
        a FIFO) without a stat of its path first, and anything else found open goes the long way.
        """
        try:
            if self._keeping:  # a plain call, not a context manager: this runs once per captured file
                dir_fd, leaf = self._kept_parent(rel)
                return self._read_at(rel, dir_fd, leaf, seen)
            with open_parent(self.root, rel) as (dir_fd, leaf):
                return self._read_at(rel, dir_fd, leaf, seen)
        except (FileNotFoundError, NotADirectoryError, PathRefused):
            # PathRefused: a parent became a symlink, so the path has left the tree.
            return "missing", b"", None, None
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # the leaf became a symlink between stat and open
                return "missing", b"", None, None
            raise Unreadable(rel, f"cannot read: {describe_os_error(exc)}") from None
        except Unreadable:
            raise
        except OperationFailed as exc:  # a database that could not be copied
            raise Unreadable(rel, f"cannot copy: {exc}") from None

    def _read_at(
        self, rel: str, dir_fd: int, leaf: str, seen: os.stat_result | None
    ) -> tuple[str, bytes, os.stat_result | None, str | None]:
        """read_checked's answer for leaf in the open directory dir_fd (its errors are read_checked's to map)."""
        if seen is not None and stat.S_ISREG(seen.st_mode) and seen.st_size <= self.max_size:
            found = self._read_seen_file(rel, leaf, dir_fd)
            if found is not None:
                return found
        st = os.stat(leaf, dir_fd=dir_fd, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            return "symlink", os.fsencode(os.readlink(leaf, dir_fd=dir_fd)), st, None
        if not stat.S_ISREG(st.st_mode):
            return "other", b"", st, None
        if st.st_size > self.max_size:
            return "toolarge", b"", st, None
        fd = os.open(leaf, _OPEN_FLAGS, dir_fd=dir_fd)
        try:
            return self._read_open(rel, fd, os.fstat(fd))
        finally:
            os.close(fd)

    def _read_seen_file(
        self, rel: str, leaf: str, dir_fd: int
    ) -> tuple[str, bytes, os.stat_result | None, str | None] | None:
        """read_checked's content for a leaf the walk saw as a regular file; None: look again the long way.

        O_NONBLOCK keeps a FIFO swapped in since the walk from blocking the open (it changes
        nothing for a regular file); a symlink (ELOOP), or anything but a regular file once
        open, is left to the long way, which classifies it as before.  A file over the limit
        once open grew after it was looked at: skipped as growing, as a read that passes the
        limit is.
        """
        try:
            fd = os.open(leaf, _OPEN_FLAGS | os.O_NONBLOCK | os.O_NOCTTY, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return None
            raise
        try:
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode):
                return None
            if before.st_size > self.max_size:  # within the limit when the walk looked: it grew since
                return "toolarge", b"", before, "changed"
            return self._read_open(rel, fd, before)
        finally:
            os.close(fd)

    def _read_open(
        self, rel: str, fd: int, before: os.stat_result
    ) -> tuple[str, bytes, os.stat_result | None, str | None]:
        """The content of an open regular file (a database through SQLite), with its stat after the read.

        A small file is read in one call, and when the stat after it still shows exactly the
        bytes read, unchanged, it is not read again to find its end (the stat is what a next
        read's empty answer would have been checked against anyway).
        """
        first = b""
        if 0 < before.st_size < WHOLE_FIRST:
            first = os.read(fd, min(before.st_size, self.max_size) + 1)
            head = first[:16]
        else:
            head = os.pread(fd, 16, 0)
        database = self.databases.read(rel, before) if is_sqlite_bytes(head) else None
        if database is not None:
            kind, data, folded = database
            return kind, data, folded, _stat_distrust(folded, folded, time.time_ns())
        # Not a database, or one SQLite cannot open (its bytes, as they are).
        after = os.fstat(fd) if first else None
        if after is not None and len(first) == after.st_size and _same_stat(before, after):
            return "file", first, after, _stat_distrust(before, after, time.time_ns())
        if len(first) > self.max_size:
            return "toolarge", b"", os.fstat(fd), "changed"
        rest = read_capped(fd, self.max_size - len(first), 0 if first else before.st_size)
        after = os.fstat(fd)
        if rest is None:  # it grew past the limit while being read
            return "toolarge", b"", after, "changed"
        data = first + rest if first else rest
        return "file", data, after, _stat_distrust(before, after, time.time_ns())
