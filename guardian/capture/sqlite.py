"""SQLite databases in the work tree: recognise them, check them, and copy them consistently.

A live SQLite database is several files (the base file plus ``-wal``/``-shm`` or
``-journal``), and a byte copy of the base file alone can be torn or miss every
transaction committed since the last checkpoint.  Copies here go through SQLite's
backup API, which reads committed WAL content, and nothing here ever creates or
changes a file beside the user's database.  Checks open a private copy read-only and
immutable, so nothing the user wrote is executed and no sidecar is looked for.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from guardian.errors import OperationFailed

SQLITE_HEADER = b"SQLite format 3\x00"

_SQLITE_READONLY = 8
_SQLITE_CANTOPEN = 14
_SIDECARS = ("-wal", "-shm", "-journal")


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
    # mkdtemp creates the directory 0700, so other users cannot read the copies of project files.
    with tempfile.TemporaryDirectory(prefix=prefix) as name:
        yield Path(name)


# --------------------------------------------------------------------------- consistent SQLite copies


def _ro_uri(path: Path, *, immutable: bool = False) -> str:
    # as_uri() percent-encodes '?', '#' and '%', which would otherwise be read as URI syntax.
    uri = f"{path.absolute().as_uri()}?mode=ro"
    return f"{uri}&immutable=1" if immutable else uri


def _sidecar(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _fingerprint(path: Path) -> tuple[tuple[int, int, int] | None, ...]:
    marks: list[tuple[int, int, int] | None] = []
    for candidate in (path, *(_sidecar(path, s) for s in _SIDECARS)):
        try:
            st = candidate.stat()
        except FileNotFoundError:
            marks.append(None)
        else:
            marks.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(marks)


def sqlite_consistent_copy(path: Path) -> bytes:
    """A consistent image of the SQLite database at ``path``, committed WAL content included.

    Uses SQLite's backup API, so a concurrent writer cannot tear the copy.  guardian avoids
    creating files beside the user's database: a read-only connection to a WAL database
    creates -wal and -shm when they are missing, so when they are (no connection is live)
    the files are copied into a private directory and the backup is taken from there.
    """
    wal = _sidecar(path, "-wal")
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
    except OSError as exc:
        raise OperationFailed(f"{path}: cannot read the database: {exc.strerror or exc}") from None
    if not is_sqlite_bytes(header):
        raise OperationFailed(f"{path}: not a SQLite database (the file does not start with the SQLite header)")

    wal_mode = len(header) > 19 and 2 in (header[18], header[19])
    if wal_mode and not (wal.exists() and _sidecar(path, "-shm").exists()):
        image = _copy_from_private_files(path)
        if image is not None:
            return image
    try:
        return _backup(_ro_uri(path), path)
    except sqlite3.Error as exc:
        code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
        if code not in (_SQLITE_READONLY, _SQLITE_CANTOPEN):
            raise _sqlite_failure(path, exc) from None
    # A read-only connection cannot roll back a hot journal or rebuild a WAL index;
    # doing that on a private copy leaves the user's files untouched.
    image = _copy_from_private_files(path)
    if image is None:
        raise OperationFailed(f"{path}: the database kept changing while being copied; try again")
    return image


def _copy_from_private_files(path: Path) -> bytes | None:
    """Backup taken from a private copy of the database and its journals; None if they changed meanwhile."""
    before = _fingerprint(path)
    with _private_dir("guardian-sqlite-") as tmp:
        work = tmp / "db.sqlite"
        try:
            shutil.copyfile(path, work)
            for suffix in ("-wal", "-journal"):
                if before[_SIDECARS.index(suffix) + 1] is not None:
                    shutil.copyfile(_sidecar(path, suffix), _sidecar(work, suffix))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise OperationFailed(f"{path}: cannot read the database: {exc.strerror or exc}") from None
        if _fingerprint(path) != before:
            return None
        try:
            # Read-write, so SQLite can replay the WAL or roll back a hot journal in the copy.
            return _backup(f"{work.as_uri()}?mode=rw", path)
        except sqlite3.Error as exc:
            raise _sqlite_failure(path, exc) from None


def _backup(source_uri: str, path: Path) -> bytes:
    with _private_dir("guardian-sqlite-") as tmp:
        dest_path = tmp / "copy.sqlite"
        with (
            closing(sqlite3.connect(source_uri, uri=True, timeout=10.0)) as source,
            closing(sqlite3.connect(dest_path)) as dest,
        ):
            source.backup(dest)
        return dest_path.read_bytes()


def _sqlite_failure(path: Path, exc: sqlite3.Error) -> OperationFailed:
    text = str(exc)
    if "not a database" in text or "malformed" in text:
        return OperationFailed(f"{path}: not a SQLite database, or a damaged one ({text})")
    return OperationFailed(f"{path}: cannot copy the SQLite database: {text}")
