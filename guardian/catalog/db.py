"""A derived index of the shadow repo, so history and restore stay fast as history grows.

git is the source of truth.  The catalog (SQLite, in the store) records, per
snapshot, which paths changed with their size and verdict, plus the stat data of
the latest captured state so that a rescan never re-hashes unchanged files.  It
remembers the commit it has indexed up to; when the ref is ahead (a crash
between ref update and catalog write) it catches up from git, and when history
no longer contains that commit it rebuilds from scratch.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from guardian.errors import GuardianError, OperationFailed, PathRefused, StoreDamaged
from guardian.paths import check_relative
from guardian.util.pathcodec import decode_path, encode_path

if TYPE_CHECKING:
    from guardian.store.repo import ShadowRepo

SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS snapshots(
    seq INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, ts REAL NOT NULL, trigger TEXT NOT NULL,
    summary TEXT NOT NULL, nchanged INTEGER NOT NULL, nbad INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS versions(
    seq INTEGER NOT NULL, path TEXT NOT NULL, name TEXT NOT NULL, change TEXT NOT NULL,
    blob TEXT, mode INTEGER, size INTEGER, verdict TEXT NOT NULL, reason TEXT NOT NULL, perm INTEGER);
CREATE INDEX IF NOT EXISTS versions_path ON versions(path, seq);
CREATE INDEX IF NOT EXISTS versions_name ON versions(name);
CREATE INDEX IF NOT EXISTS versions_blob ON versions(path, blob, seq);
CREATE INDEX IF NOT EXISTS versions_seq ON versions(seq);  -- versions_in: log's rows by snapshot
CREATE TABLE IF NOT EXISTS files(
    path TEXT PRIMARY KEY, blob TEXT NOT NULL, mode INTEGER NOT NULL, size INTEGER NOT NULL,
    mtime_ns INTEGER, ctime_ns INTEGER, ino INTEGER, perm INTEGER);
"""
# versions_blob (added later; CREATE ... IF NOT EXISTS builds it when an older catalog is opened)
# finds a content's versions of one path, and a path's deletions, without reading its history.
# Columns added since the first schema: (table, column, type).  Catalogs made before get them
# by ALTER TABLE on open; the column stays last, so SELECT * keeps the row's field order.
_ADDED_COLUMNS = (("versions", "perm", "INTEGER"), ("files", "perm", "INTEGER"))

VersionKind = Literal["any", "content", "restorable", "valid", "deletion"]
# The versions each kind selects.  The unary + keeps SQLite on the (path, seq) index for a scan
# from the newest, rather than sorting every version with content by seq.
_KINDS: dict[VersionKind, str] = {
    "any": "",
    "content": " AND +v.blob IS NOT NULL",
    "restorable": " AND +v.blob IS NOT NULL AND v.mode IS NOT NULL",
    "valid": " AND +v.blob IS NOT NULL AND v.mode IS NOT NULL AND v.verdict = 'valid'",
    "deletion": " AND v.blob IS NULL",
}


# A version row (VersionRow's fields, in order): a version joined with its snapshot.
_SELECT_VERSIONS = (
    "SELECT v.seq, s.id, s.ts, s.trigger, v.path, v.change, v.blob, v.mode, v.size, v.verdict, v.reason, v.perm "
    "FROM versions v JOIN snapshots s ON s.seq = v.seq"
)

# Paths per `IN (...)` lookup: well under SQLite's oldest limit of 999 bound variables.
_LOOKUP_CHUNK = 500


# --------------------------------------------------------------------------- rows


class SnapshotRow(NamedTuple):
    """One snapshot as the catalog lists it: its order, commit id, time, trigger and counts.

    The rows are NamedTuples, not frozen dataclasses: the same fields, equality, hash, repr
    and immutability, without ~1 ms of generated methods each on every history and restore.
    """

    seq: int
    id: str
    ts: float
    trigger: str
    summary: str
    nchanged: int
    nbad: int


class VersionRow(NamedTuple):
    """One path's version in one snapshot, joined with that snapshot's id, time and trigger."""

    seq: int
    snapshot: str
    ts: float
    trigger: str
    path: str
    change: str  # add, modify, delete, accept
    blob: str | None
    mode: int | None
    size: int | None
    verdict: str
    reason: str
    perm: int | None = None  # permission bits (st_mode & 0o7777) at capture; None when not known


class FileRow(NamedTuple):
    """The latest captured state of one path, with the stat data that lets a rescan skip hashing it."""

    path: str
    blob: str
    mode: int
    size: int
    mtime_ns: int | None
    ctime_ns: int | None
    ino: int | None
    perm: int | None = None


class NewVersion(NamedTuple):
    """A version about to be recorded for the snapshot being indexed."""

    path: str
    change: str
    blob: str | None
    mode: int | None
    size: int | None
    verdict: str
    reason: str
    perm: int | None = None


class Catalog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # The catalog is derived data that catches up from git after a crash, so it
        # does not need a sync per transaction; WAL keeps it uncorrupted either way.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._add_columns()
        os.chmod(path, 0o600)

    def _add_columns(self) -> None:
        """Give a catalog made by an older guardian the columns added since (NULL: not known)."""
        for table, column, kind in _ADDED_COLUMNS:
            have = {str(row[1]) for row in self._db.execute(f"PRAGMA table_info({table})")}
            if column in have:
                continue
            try:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            except sqlite3.OperationalError:
                # Another process opening the same catalog may have added it first.
                have = {str(row[1]) for row in self._db.execute(f"PRAGMA table_info({table})")}
                if column not in have:
                    raise

    def close(self) -> None:
        self._db.close()

    # ------------------------------------------------------------------ meta

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", (key, value))

    @property
    def indexed_head(self) -> str | None:
        return self._meta("head")

    # ------------------------------------------------------------------ writes

    def _error(self, exc: sqlite3.Error) -> GuardianError:
        """A SQLite failure as the one-line error the user sees (the catalog is derived from git)."""
        text = str(exc)
        if "malformed" in text or "not a database" in text:
            return StoreDamaged(f"the catalog {self.path} is damaged: {text}")
        return OperationFailed(
            f"cannot update the catalog {self.path}: {text}; the snapshots are safe in git and the catalog "
            "catches up on the next run (check free space, or run 'guardian verify --repair' if this persists)"
        )

    def _begin(self) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._error(exc) from None

    def _abort(self, exc: BaseException) -> None:
        """Undo a failed write transaction; a SQLite error becomes a GuardianError (the caller re-raises others)."""
        # After SQLITE_FULL or SQLITE_IOERR, SQLite has usually rolled back already: a second
        # ROLLBACK would fail and hide the real error.
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the original error is the one to report
        if isinstance(exc, sqlite3.Error):
            raise self._error(exc) from None

    def record_snapshot(
        self,
        snapshot_id: str,
        ts: float,
        trigger: str,
        summary: str,
        versions: Sequence[NewVersion],
        stat_updates: Sequence[FileRow] = (),
        removed_files: Sequence[str] = (),
    ) -> None:
        nbad = sum(1 for v in versions if v.verdict != "valid")
        db = self._db
        self._begin()
        try:
            cur = db.execute(
                "INSERT INTO snapshots(id, ts, trigger, summary, nchanged, nbad) VALUES(?,?,?,?,?,?)",
                (snapshot_id, ts, trigger, summary, len(versions), nbad),
            )
            seq = cur.lastrowid
            db.executemany(
                "INSERT INTO versions(seq, path, name, change, blob, mode, size, verdict, reason, perm) "
                "VALUES(?,?,?,?,?,?,?,?,?,?)",
                [
                    (seq, key, key.rsplit("/", 1)[-1], v.change, v.blob, v.mode, v.size, v.verdict, v.reason, v.perm)
                    for v in versions
                    for key in (encode_path(v.path),)
                ],
            )
            self._apply_files(stat_updates, removed_files)
            self._set_meta("head", snapshot_id)
            db.execute("COMMIT")
        except BaseException as exc:
            self._abort(exc)
            raise

    def update_stats(self, stat_updates: Sequence[FileRow], removed_files: Sequence[str] = ()) -> None:
        if not stat_updates and not removed_files:
            return
        self._begin()
        try:
            self._apply_files(stat_updates, removed_files)
            self._db.execute("COMMIT")
        except BaseException as exc:
            self._abort(exc)
            raise

    def _apply_files(self, stat_updates: Sequence[FileRow], removed_files: Sequence[str]) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO files(path, blob, mode, size, mtime_ns, ctime_ns, ino, perm) "
            "VALUES(?,?,?,?,?,?,?,?)",
            [
                (encode_path(f.path), f.blob, f.mode, f.size, f.mtime_ns, f.ctime_ns, f.ino, f.perm)
                for f in stat_updates
            ],
        )
        self._db.executemany("DELETE FROM files WHERE path=?", [(encode_path(p),) for p in removed_files])

    # ------------------------------------------------------------------ sync with git

    def sync(self, repo: ShadowRepo) -> list[str]:
        """Bring the catalog up to the repo's head.  Returns the ids it had to index."""
        head = repo.head()
        indexed = self.indexed_head
        if head == indexed:
            return []
        missing: list[str] = []
        found_base = indexed is None
        for record in repo.walk(head):
            if record.id == indexed:
                found_base = True
                break
            missing.append(record.id)
        if not found_base:
            self.reset()
        for commit_id in reversed(missing):
            self._index_commit(repo, commit_id)
        if head is None:
            self.reset()
        return list(reversed(missing))

    def reset(self) -> None:
        try:
            self._db.executescript(
                "BEGIN; DELETE FROM snapshots; DELETE FROM versions; DELETE FROM files; DELETE FROM meta; COMMIT;"
            )
        except sqlite3.Error as exc:
            self._abort(exc)  # rolls back and raises the GuardianError
            raise

    def _index_commit(self, repo: ShadowRepo, commit_id: str) -> None:
        from guardian.store.trailers import parse_message  # here: history and restore read rows, never messages

        record = repo.commit_record(commit_id)
        info = parse_message(record.message)
        versions: list[NewVersion] = []
        stats: list[FileRow] = []
        removed: list[str] = []
        changed: set[str] = set()
        for change in repo.changes(commit_id):
            if not is_safe_path(change.path):
                # A crafted or corrupt tree entry ('..', '.git', a NUL): never offered to history or
                # restore.  Only a stat row is kept, so the next full scan finds it gone and drops it.
                if change.new is None:
                    removed.append(change.path)
                else:
                    stats.append(FileRow(change.path, change.new.oid, change.new.mode, 0, None, None, None))
                continue
            changed.add(change.path)
            verdict, reason = info.verdicts.get(change.path, ("valid", ""))
            if change.path in info.accepted:
                reason = "accepted by user"
            if change.new is None:
                versions.append(NewVersion(change.path, "delete", None, None, None, "valid", ""))
                removed.append(change.path)
            else:
                size = repo.blob_size(change.new.oid)
                versions.append(
                    NewVersion(
                        change.path,
                        "add" if change.old is None else "modify",
                        change.new.oid,
                        change.new.mode,
                        size,
                        verdict,
                        reason,
                        # Only non-default bits are in the message; the rest stay unknown (None).
                        info.perms.get(change.path),
                    )
                )
                # No stat data from git: the next rescan re-hashes these once.
                perm = info.perms.get(change.path)
                stats.append(FileRow(change.path, change.new.oid, change.new.mode, size, None, None, None, perm))
        for path in sorted(info.accepted - changed):
            if not is_safe_path(path):
                continue
            entry = repo.entry_at(commit_id, path)
            if entry is not None:
                size = repo.blob_size(entry.oid)
                versions.append(
                    NewVersion(
                        path, "accept", entry.oid, entry.mode, size, "valid", "accepted by user", info.perms.get(path)
                    )
                )
        # A verdict for a path the commit did not change: content judged again once its writer closed it.
        for path, (verdict, reason) in sorted(info.verdicts.items()):
            if path in changed or path in info.accepted or not is_safe_path(path):
                continue
            entry = repo.entry_at(commit_id, path)
            if entry is not None:
                size = repo.blob_size(entry.oid)
                perm = info.perms.get(path)
                versions.append(NewVersion(path, "settle", entry.oid, entry.mode, size, verdict, reason, perm))
        summary = record.message.splitlines()[0] if record.message else ""
        self.record_snapshot(commit_id, record.time, info.trigger, summary, versions, stats, removed)

    # ------------------------------------------------------------------ queries

    def snapshot_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM snapshots").fetchone()[0])

    def last_snapshot(self) -> SnapshotRow | None:
        row = self._db.execute("SELECT * FROM snapshots ORDER BY seq DESC LIMIT 1").fetchone()
        return SnapshotRow(*row) if row else None

    def snapshot(self, snapshot_id: str) -> SnapshotRow | None:
        row = self._db.execute("SELECT * FROM snapshots WHERE id=?", (snapshot_id,)).fetchone()
        return SnapshotRow(*row) if row else None

    def snapshots_by_prefix(self, prefix: str) -> list[SnapshotRow]:
        rows = self._db.execute(
            "SELECT * FROM snapshots WHERE id >= ? AND id < ? ORDER BY seq DESC", (prefix, prefix + "g")
        ).fetchall()
        return [SnapshotRow(*r) for r in rows]

    def snapshots(
        self,
        limit: int | None = None,
        since: float | None = None,
        until: float | None = None,
        path: str | None = None,
    ) -> list[SnapshotRow]:
        where: list[str] = []
        args: list[object] = []
        if since is not None:
            where.append("ts >= ?")
            args.append(since)
        if until is not None:
            where.append("ts <= ?")
            args.append(until)
        if path is not None:
            low, high = _prefix_range(path)
            where.append("seq IN (SELECT seq FROM versions WHERE path=? OR (path >= ? AND path < ?))")
            args.extend([encode_path(path), low, high])
        sql = "SELECT * FROM snapshots"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [SnapshotRow(*r) for r in self._db.execute(sql, args).fetchall()]

    def versions_in(self, seq: int) -> list[VersionRow]:
        return self._versions("v.seq = ?", (seq,))

    def versions_of(self, path: str) -> list[VersionRow]:
        """Every recorded version of path, oldest first."""
        return self._versions("v.path = ?", (encode_path(path),))

    def versions_between(self, since: float | None, until: float | None) -> list[VersionRow]:
        return self._versions("s.ts >= ? AND s.ts <= ?", (since or 0.0, until or 1e18))

    # One version of a path at a time, each an index lookup: the cost does not grow with its history.

    def newest_versions(self, path: str, count: int, upto: str | None = None) -> list[VersionRow]:
        """The newest ``count`` versions of path, newest first, up to snapshot ``upto`` (its id) if given."""
        where, args = "v.path = ?", [encode_path(path)]
        if upto is not None:
            where += " AND v.seq <= (SELECT seq FROM snapshots WHERE id = ?)"
            args.append(upto)
        return self._versions(where, args, f"v.seq DESC LIMIT {int(count)}")

    def newest_version(self, path: str, before: int | None = None, kind: VersionKind = "any") -> VersionRow | None:
        """The newest version of path of a kind (see ``_KINDS``), before snapshot sequence ``before`` if given."""
        where = "v.path = ?" + _KINDS[kind]
        args: list[object] = [encode_path(path)]
        if before is not None:
            where += " AND v.seq < ?"
            args.append(before)
        rows = self._versions(where, args, order="v.seq DESC LIMIT 1")
        return rows[0] if rows else None

    def first_version_between(self, path: str, after: int | None, before: int) -> VersionRow | None:
        """The oldest version of path with a sequence number in (after, before); after None: from the first."""
        rows = self._versions(
            "v.path = ? AND v.seq > ? AND v.seq < ?", (encode_path(path), after or 0, before), "v.seq LIMIT 1"
        )
        return rows[0] if rows else None

    def any_trigger_but(self, path: str, trigger: str, after: int | None, before: int) -> bool:
        """Whether a snapshot with another trigger recorded path between sequence numbers (after, before)."""
        where = "v.path = ? AND v.seq > ? AND v.seq < ? AND s.trigger != ?"
        return bool(self._versions(where, (encode_path(path), after or 0, before, trigger), "v.seq LIMIT 1"))

    def first_versions_with(self, path: str, blobs: Collection[str], upto: int) -> dict[str, VersionRow]:
        """Per content (blob id), the version of path where it first appeared, up to snapshot sequence ``upto``.

        First by whole-second time, then by sequence: the order ``guardian.query.rollbacks`` dates
        contents in.  One query; it reads only these contents' versions of the path (index
        ``versions_blob``).  A content path never had is left out.
        """
        key, wanted = encode_path(path), sorted(set(blobs))
        if not wanted:
            return {}
        one = (
            f"SELECT * FROM ({_SELECT_VERSIONS} WHERE v.path = ? AND v.blob = ? AND v.seq <= ? "
            "ORDER BY CAST(s.ts AS INTEGER), v.seq LIMIT 1)"
        )
        args = [arg for blob in wanted for arg in (key, blob, upto)]
        rows = self._db.execute(" UNION ALL ".join([one] * len(wanted)), args).fetchall()
        return {version.blob: version for version in map(_version_row, rows) if version.blob is not None}

    def _versions(self, where: str, args: Sequence[object], order: str = "v.seq, v.path") -> list[VersionRow]:
        rows = self._db.execute(f"{_SELECT_VERSIONS} WHERE {where} ORDER BY {order}", tuple(args)).fetchall()
        return [_version_row(r) for r in rows]

    def latest_valid(self, path: str, before: float | None = None) -> VersionRow | None:
        sql = f"{_SELECT_VERSIONS} WHERE v.path = ? AND v.verdict = 'valid' AND v.blob IS NOT NULL"
        args: list[object] = [encode_path(path)]
        if before is not None:
            sql += " AND s.ts < ?"
            args.append(before)
        row = self._db.execute(sql + " ORDER BY v.seq DESC LIMIT 1", args).fetchone()
        return _version_row(row) if row else None

    def perm_at(self, path: str, seq: int, blob: str) -> int | None:
        """The permission bits recorded for path as of snapshot seq, if its version there is blob."""
        row = self._db.execute(
            "SELECT blob, perm FROM versions WHERE path=? AND seq<=? AND blob IS NOT NULL ORDER BY seq DESC LIMIT 1",
            (encode_path(path), seq),
        ).fetchone()
        if row is None or row[0] != blob or row[1] is None:
            return None
        return int(row[1])

    def last_valid_size(self, path: str) -> int | None:
        row = self._db.execute(
            "SELECT size FROM versions WHERE path=? AND verdict='valid' AND blob IS NOT NULL ORDER BY seq DESC LIMIT 1",
            (encode_path(path),),
        ).fetchone()
        return None if row is None else int(row[0])

    def paths_named(self, name: str) -> list[str]:
        rows = self._db.execute(
            "SELECT DISTINCT path FROM versions WHERE name=? ORDER BY path", (encode_path(name),)
        ).fetchall()
        return [path for r in rows if is_safe_path(path := decode_path(str(r[0])))]

    def deleted_paths(self) -> list[str]:
        """Every path with a captured deletion (the guardrail checks protected ones among them)."""
        rows = self._db.execute("SELECT DISTINCT path FROM versions WHERE change='delete'").fetchall()
        return [decode_path(str(r[0])) for r in rows]

    def known_path(self, path: str) -> bool:
        query = "SELECT 1 FROM versions WHERE path=? LIMIT 1"
        return self._db.execute(query, (encode_path(path),)).fetchone() is not None

    def paths_under(self, prefix: str) -> list[str]:
        rows = self._db.execute(
            "SELECT DISTINCT path FROM versions WHERE path >= ? AND path < ? ORDER BY path", _prefix_range(prefix)
        ).fetchall()
        return [decode_path(str(r[0])) for r in rows]

    def file(self, path: str) -> FileRow | None:
        row = self._db.execute("SELECT * FROM files WHERE path=?", (encode_path(path),)).fetchone()
        return _file_row(row) if row else None

    def files(self) -> Iterator[FileRow]:
        for row in self._db.execute("SELECT * FROM files ORDER BY path"):
            yield _file_row(row)

    def paths(self) -> Iterator[str]:
        for (raw,) in self._db.execute("SELECT path FROM files"):
            yield decode_path(raw)

    def files_named(self, paths: Sequence[str]) -> dict[str, FileRow]:
        """The rows of these paths (those that have one)."""
        return {row.path: row for row in map(_file_row, self._rows_named("*", paths))}

    def stat_keys(self, paths: Sequence[str]) -> dict[str, tuple[Any, ...]]:
        """path -> (mtime_ns, ctime_ns, ino, size, mode) for those of ``paths`` that have a row.

        A full scan asks this of every file; building a FileRow each was half its cost at 100k.
        """
        rows = self._rows_named("path, mtime_ns, ctime_ns, ino, size, mode", paths)
        return {decode_path(row[0]): row[1:] for row in rows}

    def _rows_named(self, columns: str, paths: Sequence[str]) -> Iterator[Any]:
        """These columns of the rows of ``paths`` (those that have one), looked up a few hundred at a time."""
        for start in range(0, len(paths), _LOOKUP_CHUNK):
            keys = [encode_path(p) for p in paths[start : start + _LOOKUP_CHUNK]]
            marks = ",".join("?" * len(keys))
            yield from self._db.execute(f"SELECT {columns} FROM files WHERE path IN ({marks})", keys)

    def files_under(self, prefix: str) -> list[FileRow]:
        rows = self._db.execute(
            "SELECT * FROM files WHERE path >= ? AND path < ? ORDER BY path", _prefix_range(prefix)
        ).fetchall()
        return [_file_row(r) for r in rows]

    def file_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM files").fetchone()[0])


def _version_row(row: Any) -> VersionRow:
    values = list(row)
    values[4] = decode_path(values[4])
    return VersionRow(*values)


def _file_row(row: Any) -> FileRow:
    values = list(row)
    values[0] = decode_path(values[0])
    return FileRow(*values)


def is_safe_path(path: str) -> bool:
    """Whether a path from a shadow tree passes paths.check_relative (no '..', '.git', NUL, ...)."""
    try:
        check_relative(path)
    except PathRefused:
        return False
    return True


def _prefix_range(prefix: str) -> tuple[str, str]:
    """Bounds of every path under prefix/, as an index-friendly range ('/' + 1 is '0')."""
    base = encode_path(prefix.rstrip("/"))
    return base + "/", base + "0"
