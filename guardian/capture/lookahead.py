"""What a capture looks at, in order: each path's catalog row and current content, read and hashed.

A path whose stat matches its catalog row is not read, nor is one the disk budget skips.
A large capture reads a batch ahead and hands the pure parse checks of its new content to
worker processes (``capture.parsepool``), so they run on another core while the capture
stores and judges the batch before; a small one reads each path just before it is stored,
as it always did.  Either way the capture sees the same paths, in the same order, with the
same content, and judges them the same.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator, Sequence

from guardian.capture.parsepool import Parsed, ParseJob, ParsePool
from guardian.capture.reading import FileReader, Unreadable
from guardian.capture.sqlite import is_sqlite_bytes
from guardian.capture.validate import MAX_PARSE_BYTES, PURE_CHECKS, checks_for
from guardian.catalog.db import Catalog, FileRow
from guardian.config import CheckSpec, ValidateRule
from guardian.store.repo import hash_blob
from guardian.store.tree import MODE_EXEC, MODE_FILE, MODE_LINK
from guardian.util.records import Record

# A capture with parse workers reads ahead this many files (or bytes), a batch at a time.
PARSE_BATCH_FILES = 250
PARSE_BATCH_BYTES = 16 << 20

Budget = Callable[[str, int], str | None]  # (path, size) -> why it is skipped, or None


def git_mode(st_mode: int) -> int:
    if stat.S_ISLNK(st_mode):
        return MODE_LINK
    return MODE_EXEC if st_mode & 0o100 else MODE_FILE


def stat_key(st: os.stat_result) -> tuple[int, int, int, int, int]:
    """What a catalog row keeps of a stat, in Catalog.stat_keys' order: (mtime_ns, ctime_ns, ino, size, git mode)."""
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_size, git_mode(st.st_mode))


def stat_matches(row: FileRow | None, st: os.stat_result) -> bool:
    return row is not None and (row.mtime_ns, row.ctime_ns, row.ino, row.size, row.mode) == stat_key(st)


class Look(Record):
    """One path a capture looks at: its catalog row, and what is there now, read and hashed.

    A Record (guardian.util.records), not a dataclass, and mutable: ``checks`` is filled in later.
    """

    __slots__ = ("checks", "data", "distrust", "kind", "oid", "rel", "row", "st", "why")
    __match_args__ = ("rel", "row", "kind", "data", "st", "distrust", "why", "oid", "checks")

    def __init__(
        self,
        rel: str,
        row: FileRow | None,
        kind: str,
        data: bytes = b"",
        st: os.stat_result | None = None,
        distrust: str | None = None,
        why: str = "",
        oid: str = "",
        checks: tuple[CheckSpec, ...] | None = None,
    ) -> None:
        self.rel = rel
        self.row = row
        self.kind = kind  # FileReader's kinds, or "same" (stat as in the catalog), "budget", "unreadable" (see why)
        self.data = data
        self.st = st
        self.distrust = distrust  # see FileReader.read_checked
        self.why = why
        self.oid = oid  # data's blob id, for a file or symlink
        self.checks = checks  # checks_for(rel), for content sent to the parse workers


class LookAhead:
    """Reads the paths of one capture for it, a batch ahead when it has parse workers."""

    def __init__(
        self,
        reader: FileReader,
        catalog: Catalog,
        rules: Sequence[ValidateRule],
        budget: Budget | None,
        present: dict[str, os.stat_result],
        rows: dict[str, FileRow | None] | None,
        accept: set[str],
    ) -> None:
        self.reader = reader
        self.catalog = catalog
        self.rules = rules
        self.budget = budget
        self.present = present
        self.rows = rows  # None: look each row up
        self.accept = accept

    def look(self, rel: str) -> Look:
        """What is at rel now: read and hashed, unless its stat matches the catalog or the budget skips it."""
        row = self.rows[rel] if self.rows is not None else self.catalog.file(rel)
        if rel not in self.accept and stat_matches(row, self.present[rel]):
            return Look(rel, row, "same")
        if self.budget is not None and rel not in self.accept:
            why = self.budget(rel, self.present[rel].st_size)
            if why is not None:
                return Look(rel, row, "budget", why=why)
        try:
            kind, data, st, distrust = self.reader.read_checked(rel, self.present[rel])
        except Unreadable as exc:
            return Look(rel, row, "unreadable", why=exc.reason)
        oid = hash_blob(data) if kind in ("file", "symlink") else ""
        return Look(rel, row, kind, data, st, distrust, oid=oid)

    def looks(self, order: list[str], pool: ParsePool | None) -> Iterator[tuple[Look, Parsed | None]]:
        """Each path's Look in order, with what the parse workers found in it (None: judge it all here).

        Without workers each path is read just before the capture stores it.  With them, a batch
        is read and sent to the workers while the capture stores and judges the batch before,
        so at most two batches' content is held at once.
        """
        if pool is None:
            for rel in order:
                yield self.look(rel), None
            return
        waiting: list[tuple[Look, int]] = []  # a batch, each look with its index into the findings (-1: none)
        wait: Callable[[], list[Parsed | None]] = list
        at = 0
        while at < len(order) or waiting:
            batch: list[tuple[Look, int]] = []
            jobs: list[ParseJob] = []
            held = 0
            while at < len(order) and len(batch) < PARSE_BATCH_FILES and held < PARSE_BATCH_BYTES:
                look = self.look(order[at])
                at += 1
                held += len(look.data)
                batch.append((look, self._job(look, jobs)))
            next_wait = pool.submit(jobs)
            findings = wait()
            for look, index in waiting:
                yield look, findings[index] if index >= 0 else None
            waiting, wait = batch, next_wait

    def _job(self, look: Look, jobs: list[ParseJob]) -> int:
        """Add look's pure parse checks to jobs if it is new content they apply to; its index, or -1."""
        new = look.row is None or look.row.blob != look.oid
        if look.kind != "file" or not new or len(look.data) > MAX_PARSE_BYTES or is_sqlite_bytes(look.data):
            return -1  # unchanged content is rarely judged, a database never by a worker: the capture does it
        look.checks = checks_for(look.rel, self.rules)
        names = tuple(dict.fromkeys(spec.name for spec in look.checks if spec.name in PURE_CHECKS))
        if not names:
            return -1
        jobs.append((look.rel, look.data, names))
        return len(jobs) - 1
