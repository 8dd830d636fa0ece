"""SQLite databases in the work tree: recognise them, check them, and copy them consistently.

A live SQLite database is several files (the base file plus ``-wal``/``-shm`` or
``-journal``), and a byte copy of the base file alone can be torn or miss every
transaction committed since the last checkpoint.  Copies here go through SQLite's
backup API, which reads committed WAL content, and nothing here ever creates or
changes a file beside the user's database.  A copy waits for another connection's
lock only so long (``BUSY_WAIT``) and then says the file is deferred, because the
caller holds the store lock and has other files to capture; a file that only looks
like a database (an interrupted ``cp``, a download in progress) is reported as
damaged so the caller can keep its bytes instead.  Since a commit in WAL mode may
change only the ``-wal`` file, ``with_wal`` folds the WAL's change times into the
base file's stat, which is what capture compares to decide whether to read again.
Checks open a private copy read-only and immutable, so nothing the user wrote is
executed and no sidecar is looked for.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import struct
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from guardian.errors import OperationFailed
from guardian.util.fs import lstat_at

SQLITE_HEADER = b"SQLite format 3\x00"
SIDECARS = ("-wal", "-shm", "-journal")
# How long a copy waits for another connection's lock before the file is deferred.  The
# caller holds guardian's store lock meanwhile, so this bounds how long one locked
# database can hold up every other capture and every restore.
BUSY_WAIT = 2.0

_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_SQLITE_READONLY = 8
_SQLITE_CANTOPEN = 14


class SqliteDeferred(OperationFailed):
    """The database stayed locked by another connection, or kept changing while copied: try later."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.reason = reason


class SqliteDamaged(OperationFailed):
    """The file starts like a SQLite database but SQLite cannot read it; ``reason`` says why ("sqlite: ...")."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: not a SQLite database, or a damaged one ({reason})")
        self.reason = reason


def is_sqlite_bytes(data: bytes) -> bool:
    return data[: len(SQLITE_HEADER)] == SQLITE_HEADER


def sqlite_problem(data: bytes) -> str | None:
    """Why ``data`` is not a sound SQLite image ("sqlite: ..."), or None when quick_check passes."""
    if not data:
        return "sqlite: empty file"
    if not is_sqlite_bytes(data):
        return "sqlite: not a SQLite database (bad header)"
    with _private_dir("guardian-check-") as tmp:
        image = tmp / "image.db"
        image.write_bytes(data)
        try:
            # immutable=1: the copy is ours and nobody else writes it, so skip locking and
            # never look for (or create) -wal/-shm files beside it.
            with closing(sqlite3.connect(_ro_uri(image, immutable=True), uri=True)) as db:
                db.execute("PRAGMA trusted_schema = OFF")
                rows = db.execute("PRAGMA quick_check").fetchall()
        except sqlite3.Error as exc:
            return f"sqlite: {exc}"
    problems = [str(row[0]) for row in rows]
    if problems != ["ok"]:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        return f"sqlite: quick_check: {problems[0] if problems else 'no result'}{more}"
    return None


@contextmanager
def _private_dir(prefix: str) -> Iterator[Path]:
    import tempfile  # only to check a database: not on a git hook's capture (~3 ms)

    # mkdtemp creates the directory 0700, so other users cannot read the copies of project files.
    with tempfile.TemporaryDirectory(prefix=prefix) as name:
        yield Path(name)


# --------------------------------------------------------------------------- the WAL in stat data


def sidecar(path: Path, suffix: str) -> Path:
    """The file SQLite keeps beside ``path`` with this suffix ("-wal", "-shm", "-journal")."""
    return path.with_name(path.name + suffix)


def wal_base(rel: str) -> str | None:
    """The database a ``-wal`` path belongs to ("a/state.db" for "a/state.db-wal"), else None."""
    if not rel.endswith("-wal"):
        return None
    base = rel[: -len("-wal")]
    return base if base and not base.endswith("/") else None


def with_wal(st: os.stat_result, wal: os.stat_result | None) -> os.stat_result:
    """``st`` with the WAL's change times folded in, so a commit that reached only the WAL changes it.

    The later of each time is kept, so a write to either file moves the result forward;
    the size, inode and mode stay the base file's.  Capture stores and compares this
    folded stat for a database with a WAL beside it (``guardian snapshot`` used to say
    "nothing changed" while hundreds of transactions sat in the WAL).
    """
    if wal is None or not stat.S_ISREG(wal.st_mode) or not stat.S_ISREG(st.st_mode):
        return st
    if wal.st_mtime_ns <= st.st_mtime_ns and wal.st_ctime_ns <= st.st_ctime_ns:
        return st
    fields = {name: getattr(st, name) for name in dir(st) if name.startswith("st_")}
    mtime_ns = max(st.st_mtime_ns, wal.st_mtime_ns)
    ctime_ns = max(st.st_ctime_ns, wal.st_ctime_ns)
    fields.update(st_mtime_ns=mtime_ns, st_ctime_ns=ctime_ns, st_mtime=mtime_ns / 1e9, st_ctime=ctime_ns / 1e9)
    sequence = list(st[:10])
    sequence[8], sequence[9] = mtime_ns // 1_000_000_000, ctime_ns // 1_000_000_000
    return os.stat_result(sequence, fields)


# --------------------------------------------------------------------------- consistent SQLite copies


class _StillBusy(Exception):
    """Raised from the backup's progress callback to stop retrying a lock past the deadline."""


def _ro_uri(path: Path, *, immutable: bool = False) -> str:
    # as_uri() percent-encodes '?', '#' and '%', which would otherwise be read as URI syntax.
    uri = f"{path.absolute().as_uri()}?mode=ro"
    return f"{uri}&immutable=1" if immutable else uri


def _fingerprint(path: Path) -> tuple[tuple[int, int, int] | None, ...]:
    marks: list[tuple[int, int, int] | None] = []
    for candidate in (path, *(sidecar(path, s) for s in SIDECARS)):
        try:
            st = candidate.stat()
        except FileNotFoundError:
            marks.append(None)
        else:
            marks.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(marks)


def sqlite_consistent_copy(path: Path, *, busy_wait: float = BUSY_WAIT) -> bytes:
    """A consistent image of the SQLite database at ``path``, committed WAL content included.

    Uses SQLite's backup API, so a concurrent writer cannot tear the copy.  guardian avoids
    creating files beside the user's database: a read-only connection to a WAL database
    creates -wal and -shm when they are missing, so when they are (no connection is live)
    the files are copied into a private directory and the backup is taken from there.

    Raises SqliteDeferred when another connection's lock outlasts ``busy_wait`` seconds (or
    the files kept changing), and SqliteDamaged when the file only looks like a database.
    """
    deadline = time.monotonic() + busy_wait
    wal = sidecar(path, "-wal")
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        size = None
    except OSError as exc:
        raise OperationFailed(f"{path}: cannot read the database: {exc.strerror or exc}") from None
    if (size is None or size == 0) and wal.exists():
        # Opening would create an empty database and SQLite would then discard the WAL as stale.
        raise OperationFailed(
            f"{path}: the WAL has no base file ({wal.name} exists but {path.name} is "
            f"{'missing' if size is None else 'empty'}); not opening it, as SQLite would discard the WAL"
        )
    if size is None:
        raise OperationFailed(f"{path}: no such database file")
    if size == 0:
        return b""  # SQLite treats an empty file as an empty database; copy it as it is.
    try:
        with open(path, "rb") as fh:
            header = fh.read(100)
            size = os.fstat(fh.fileno()).st_size
    except OSError as exc:
        raise OperationFailed(f"{path}: cannot read the database: {exc.strerror or exc}") from None
    if not is_sqlite_bytes(header):
        raise SqliteDamaged(path, "sqlite: the file does not start with the SQLite header")
    if not any(sidecar(path, s).exists() for s in SIDECARS):
        # With no journal and no WAL, every commit leaves the file whole: a shortfall is an
        # interrupted copy or a download still in progress, whose bytes are kept as they are.
        short = _truncation(header, size)
        if short is not None:
            raise SqliteDamaged(path, short)

    wal_mode = len(header) > 19 and 2 in (header[18], header[19])
    if wal_mode and not (wal.exists() and sidecar(path, "-shm").exists()):
        image = _copy_from_private_files(path)
        if image is not None:
            return image
    try:
        return _backup(_ro_uri(path), path, deadline, busy_wait)
    except sqlite3.Error as exc:
        code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
        if code not in (_SQLITE_READONLY, _SQLITE_CANTOPEN):
            raise _sqlite_failure(path, exc) from None
    # A read-only connection cannot roll back a hot journal or rebuild a WAL index;
    # doing that on a private copy leaves the user's files untouched.
    image = _copy_from_private_files(path)
    if image is None:
        raise SqliteDeferred(path, "deferred: the database kept changing while being copied; to be copied again later")
    return image


def _truncation(header: bytes, size: int) -> str | None:
    """Why a database file of ``size`` bytes with this 100-byte header is cut short, or None."""
    if len(header) < 100:
        return f"sqlite: truncated: {size} bytes, shorter than the 100-byte header"
    (raw_page_size,) = struct.unpack(">H", header[16:18])
    page_size = 65536 if raw_page_size == 1 else raw_page_size
    if page_size < 512 or page_size & (page_size - 1):
        return f"sqlite: bad page size {raw_page_size} in the header"
    (pages,) = struct.unpack(">I", header[28:32])
    # The header's page count is only meant to be trusted when this pair of counters agree.
    if pages and header[24:28] == header[92:96] and pages * page_size > size:
        return f"sqlite: truncated: the header says {pages} pages of {page_size} bytes, the file has {size} bytes"
    if size % page_size:
        return f"sqlite: truncated: {size} bytes is not a whole number of {page_size}-byte pages"
    return None


def _copy_from_private_files(path: Path) -> bytes | None:
    """Backup taken from a private copy of the database and its journals; None if they changed meanwhile."""
    before = _fingerprint(path)
    with _private_dir("guardian-sqlite-") as tmp:
        work = tmp / "db.sqlite"
        try:
            shutil.copyfile(path, work)
            for suffix in ("-wal", "-journal"):
                if before[SIDECARS.index(suffix) + 1] is not None:
                    shutil.copyfile(sidecar(path, suffix), sidecar(work, suffix))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise OperationFailed(f"{path}: cannot read the database: {exc.strerror or exc}") from None
        if _fingerprint(path) != before:
            return None
        try:
            # Read-write, so SQLite can replay the WAL or roll back a hot journal in the copy;
            # nobody else can lock a private copy, so the wait is only a formality.
            return _backup(f"{work.as_uri()}?mode=rw", path, time.monotonic() + BUSY_WAIT, BUSY_WAIT)
        except sqlite3.Error as exc:
            raise _sqlite_failure(path, exc) from None


def _backup(source_uri: str, path: Path, deadline: float, busy_wait: float) -> bytes:
    """The whole database at source_uri through the backup API, waiting for locks until ``deadline``.

    Connection.backup() retries SQLITE_BUSY forever on its own; its progress callback,
    called after every step, is the one place to give up, and the connection's busy
    timeout keeps each step's own wait short of the deadline.
    """

    def give_up_when_late(status: int, _remaining: int, _total: int) -> None:
        if status in (_SQLITE_BUSY, _SQLITE_LOCKED) and time.monotonic() >= deadline:
            raise _StillBusy

    step_wait = min(0.25, max(0.0, deadline - time.monotonic()))
    with _private_dir("guardian-sqlite-") as tmp:
        dest_path = tmp / "copy.sqlite"
        try:
            with (
                closing(sqlite3.connect(source_uri, uri=True, timeout=step_wait)) as source,
                closing(sqlite3.connect(dest_path)) as dest,
            ):
                # pages=-1 copies every page in one step, under one read transaction: a writer
                # committing between steps would otherwise restart the copy, maybe forever.
                source.backup(dest, pages=-1, progress=give_up_when_late, sleep=0.05)
        except _StillBusy:
            raise SqliteDeferred(
                path, f"deferred: locked by another connection for {busy_wait:g}s; to be copied again later"
            ) from None
        return dest_path.read_bytes()


def _sqlite_failure(path: Path, exc: sqlite3.Error) -> OperationFailed:
    text = str(exc)
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    if code in (_SQLITE_BUSY, _SQLITE_LOCKED):
        return SqliteDeferred(path, f"deferred: locked by another connection ({text}); to be copied again later")
    if "not a database" in text or "malformed" in text:
        return SqliteDamaged(path, f"sqlite: {text}")
    return OperationFailed(f"{path}: cannot copy the SQLite database: {text}")


# --------------------------------------------------------------------------- reading databases during capture

# After a database was deferred for a lock, the copies tried within this long do not wait for
# the lock: the watcher retries it at every batch meanwhile, and must not hold the store lock
# BUSY_WAIT seconds each time.
DEFER_BACKOFF = 10.0


def wal_stats(listing: list[os.DirEntry[str]]) -> dict[str, os.stat_result]:
    """The stat of each ``NAME-wal`` in one directory listing, by NAME (scandir has them cached)."""
    found: dict[str, os.stat_result] = {}
    for entry in listing:
        if entry.name.endswith("-wal") and len(entry.name) > 4:
            try:
                found[entry.name[:-4]] = entry.stat(follow_symlinks=False)
            except OSError:
                continue
    return found


class DatabaseReads:
    """Reads databases for one capture engine, and keeps what its caller must report per path.

    ``damaged``: why a file that starts like a database was read as plain bytes instead.
    ``deferrals``: why a locked database was not read, noted only when guardian waited for
    it, so a database locked for minutes is reported once per wait, not at every retry.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.damaged: dict[str, str] = {}
        self.deferrals: dict[str, str] = {}
        self._waited_at: dict[str, float] = {}  # path -> when guardian last waited for its lock in vain

    def read(self, rel: str, before: os.stat_result) -> tuple[str, bytes, os.stat_result] | None:
        """('file', image, stat) or ('busy', b'', stat); None means: read its bytes as they are.

        The stat is the one taken before the copy (``before``) with the WAL's folded in: a
        commit landing during the copy makes the next look differ, so it is read again.
        """
        folded = with_wal(before, lstat_at(self.root, rel + "-wal"))
        waited_at = self._waited_at.get(rel)
        wait = BUSY_WAIT if waited_at is None or time.monotonic() - waited_at >= DEFER_BACKOFF else 0.0
        try:
            data = sqlite_consistent_copy(self.root / rel, busy_wait=wait)
        except SqliteDeferred as exc:
            if wait > 0:
                self._waited_at[rel] = time.monotonic()
                self.deferrals[rel] = exc.reason
            return "busy", b"", folded
        except SqliteDamaged as exc:
            self.damaged[rel] = exc.reason
            return None
        self._waited_at.pop(rel, None)
        return "file", data, folded
