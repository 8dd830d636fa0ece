"""Measure SQLite images, and replay an orphaned WAL over a stored one.

When a database's base file is lost or damaged but its ``-wal`` survives, the WAL
still holds every transaction committed since the last checkpoint, and SQLite would
throw it away the moment anything opened the database without its base.  guardian's
stored version of the database is a whole image taken through the backup API, so
the surviving WAL is replayed over a private copy of that image: SQLite checks every
frame's checksum and keeps only whole committed transactions.  ``integrity_check``
then says whether the result is sound, and row counts per table say which of the two
holds more committed data.  Nothing here opens or changes the user's files: the WAL
and the base file are copied first.

The replay is only as good as the match between the stored image and the WAL: a WAL
restarted by a checkpoint after the last capture refers to pages guardian never saw.
``integrity_check`` catches most such mismatches, and the caller keeps the WAL aside
whatever it decides.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from guardian.capture.sqlite import BUSY_WAIT, is_sqlite_bytes, sidecar
from guardian.errors import OperationFailed

# integrity_check lists at most this many problems; the first one is what the user is told.
_MAX_PROBLEMS = 10


@dataclass(frozen=True)
class Measure:
    """What one database image holds: its integrity_check result ("ok" or the first problem) and rows per table."""

    integrity: str
    rows: dict[str, int]
    pages: int

    @property
    def sound(self) -> bool:
        return self.integrity == "ok"

    @property
    def total(self) -> int:
        return sum(self.rows.values())

    def describe(self) -> str:
        if not self.sound:
            return f"fails integrity_check ({self.integrity})"
        return f"{self.total:,} rows in {len(self.rows)} table(s), {self.pages:,} pages"


@contextmanager
def _private_dir() -> Iterator[Path]:
    # mkdtemp creates the directory 0700: the copies of the user's database stay private.
    with tempfile.TemporaryDirectory(prefix="guardian-sqlite-") as name:
        yield Path(name)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def measure(image: bytes) -> Measure:
    """integrity_check, rows per table and page count of a database image (opened read-only, immutable)."""
    if not is_sqlite_bytes(image):
        return Measure("not a SQLite database", {}, 0)
    with _private_dir() as tmp:
        path = tmp / "image.db"
        path.write_bytes(image)
        try:
            uri = f"{path.as_uri()}?mode=ro&immutable=1"
            with closing(sqlite3.connect(uri, uri=True)) as db:
                db.execute("PRAGMA trusted_schema = OFF")  # views and triggers run none of the user's SQL
                problems = [str(row[0]) for row in db.execute(f"PRAGMA integrity_check({_MAX_PROBLEMS})")]
                pages = int(db.execute("PRAGMA page_count").fetchone()[0])
                names = [
                    str(row[0])
                    for row in db.execute(
                        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
                    )
                ]
                rows: dict[str, int] = {}
                for name in names:
                    try:
                        rows[name] = int(db.execute(f"SELECT count(*) FROM {_quoted(name)}").fetchone()[0])
                    except sqlite3.Error:
                        continue  # a virtual table of a module guardian does not load
        except sqlite3.Error as exc:
            return Measure(str(exc), {}, 0)
    return Measure(problems[0] if problems else "no result", rows, pages)


def replay_wal(image: bytes, wal: Path) -> bytes:
    """``image`` with the committed transactions of the WAL at ``wal`` applied, as one file.

    The WAL is copied next to a private copy of the image and SQLite opens that read-write,
    which replays every whole, checksummed transaction; a backup of the result folds them in.
    """
    if not is_sqlite_bytes(image) or len(image) < 100:
        raise OperationFailed("the stored version is not a SQLite database, so no WAL can be replayed over it")
    with _private_dir() as tmp:
        work = tmp / "db.sqlite"
        header = bytearray(image[:100])
        # SQLite reads a WAL only for a database whose header says WAL mode.
        header[18:20] = b"\x02\x02"
        work.write_bytes(bytes(header) + image[100:])
        try:
            shutil.copyfile(wal, sidecar(work, "-wal"))
        except OSError as exc:
            raise OperationFailed(f"cannot read {wal}: {exc.strerror or exc}") from None
        dest = tmp / "replayed.sqlite"
        try:
            with (
                closing(sqlite3.connect(work, timeout=BUSY_WAIT)) as source,
                closing(sqlite3.connect(dest)) as target,
            ):
                source.backup(target)
        except sqlite3.Error as exc:
            raise OperationFailed(f"SQLite could not replay {wal.name} over the stored version: {exc}") from None
        replayed = bytearray(dest.read_bytes())
    # Give the result the journal mode the stored version had; the user's program sets its own.
    replayed[18:20] = image[18:20]
    return bytes(replayed)


def health_on_disk(path: Path) -> str | None:
    """Why the database at ``path`` (with its WAL) cannot be used as it is, or None when it is sound.

    Checked on private copies, so nothing beside the user's database is created or replayed.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "the base file is missing"
    except OSError as exc:
        return f"the base file cannot be read ({exc.strerror or exc})"
    if size == 0:
        return "the base file is empty"
    with _private_dir() as tmp:
        work = tmp / "db.sqlite"
        try:
            shutil.copyfile(path, work)
            wal = sidecar(path, "-wal")
            if wal.exists():
                shutil.copyfile(wal, sidecar(work, "-wal"))
        except OSError as exc:
            return f"the base file cannot be read ({exc.strerror or exc})"
        if not is_sqlite_bytes(work.read_bytes()[:16]):
            return "the base file is not a SQLite database"
        try:
            with closing(sqlite3.connect(work)) as db:
                db.execute("PRAGMA trusted_schema = OFF")
                problems = [str(row[0]) for row in db.execute("PRAGMA quick_check(1)")]
        except sqlite3.Error as exc:
            return f"the base file is damaged ({exc})"
    if problems != ["ok"]:
        return f"the base file is damaged (quick_check: {problems[0] if problems else 'no result'})"
    return None
