"""SQLite in WAL mode, with real writers: commits that live only in the -wal, orphaned WALs, damage and locks.

The writers are real processes: sqlite3 in WAL mode with ``wal_autocheckpoint=0``, one
transaction every 50 ms, each id logged to a side file after its COMMIT returned, and
killed with SIGKILL.  The row counts guardian captures and restores are checked against
that log: every committed transaction must come back.
"""

from __future__ import annotations

import functools
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest
from watchdog.events import FileModifiedEvent

from guardian.capture.engine import SnapshotResult
from guardian.capture.filters import PathFilter
from guardian.capture.sqlite import BUSY_WAIT, SqliteDamaged, sqlite_consistent_copy, wal_base
from guardian.config import WatchSettings
from guardian.ops.initialize import init_project
from guardian.ops.snapshot import take_snapshot
from guardian.project import Project
from guardian.watch.observer import ChangeHandler
from guardian.watch.watcher import Watcher, WatchOptions
from tests.conftest import run_cli

# One transaction every 50 ms, the id logged only once COMMIT has returned: the log is the truth.
WRITER = """
import sqlite3, sys, time
db, log_path, journal = sys.argv[1], sys.argv[2], sys.argv[3]
conn = sqlite3.connect(db, isolation_level=None)
conn.execute(f"PRAGMA journal_mode={journal}")
conn.execute("PRAGMA wal_autocheckpoint=0")
conn.execute("CREATE TABLE IF NOT EXISTS events(id INTEGER PRIMARY KEY, at REAL, payload BLOB)")
start = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
log = open(log_path, "a")
print("ready", flush=True)
i = start
while True:
    i += 1
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO events(id, at, payload) VALUES (?, ?, randomblob(1500))", (i, time.time()))
    conn.execute("COMMIT")
    log.write(f"{i} {time.time()}\\n")
    log.flush()
    time.sleep(0.05)
"""

# Holds an exclusive lock on a rollback-journal database (with a write in flight) until killed.
LOCK_HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
conn.execute("INSERT INTO t(v) VALUES ('uncommitted')")
print("locked", flush=True)
time.sleep(120)
"""


# --------------------------------------------------------------------------- helpers


def make_project(root: Path, files: dict[str, bytes] | None = None) -> Project:
    root.mkdir(parents=True, exist_ok=True)
    for rel, data in (files or {}).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    init_project(root)
    return Project.find(root)


@contextmanager
def writer(db: Path, log: Path, journal: str = "WAL") -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db), str(log), journal], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


def committed(log: Path) -> dict[int, float]:
    """id -> the time its COMMIT returned, from the writer's side file."""
    found: dict[int, float] = {}
    for line in log.read_text().splitlines():
        ident, at = line.split()
        found[int(ident)] = float(at)
    return found


def holds_every_commit(ids: set[int], done: dict[int, float]) -> bool:
    """Every logged commit is there; so may be one more, committed just before SIGKILL cut the log write."""
    return set(done) <= ids and ids - set(done) <= {max(done) + 1}


def ids_in(image: bytes) -> set[int]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "image.db"
        path.write_bytes(image)
        with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro&immutable=1", uri=True)) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            return {int(row[0]) for row in db.execute("SELECT id FROM events")}


def ids_on_disk(path: Path) -> set[int]:
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return {int(row[0]) for row in db.execute("SELECT id FROM events")}


def stored(project: Project, rel: str) -> bytes:
    repo = project.open_repo()
    head = repo.head()
    entry = repo.entry_at(head, rel) if head is not None else None
    assert entry is not None, f"{rel} is not in the newest snapshot"
    return repo.read_blob(entry.oid)


def wait_for(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


# --------------------------------------------------------------------------- WAL-only commits are seen


def test_wal_base_names_the_database() -> None:
    assert wal_base("state.db-wal") == "state.db"
    assert wal_base("a/b/orch.sqlite-wal") == "a/b/orch.sqlite"
    assert wal_base("state.db") is None
    assert wal_base("-wal") is None
    assert wal_base("dir/-wal") is None


def test_snapshot_of_the_database_sees_commits_that_live_only_in_the_wal(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"notes.txt": b"n\n"})
    db = project.root / "state.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE events(id INTEGER PRIMARY KEY, at REAL, payload BLOB)")
    try:
        first = run_cli("snapshot", "state.db", cwd=project.root)
        assert first.exit_code == 0, first.stderr
        base_stat = os.stat(db)
        for i in range(1, 351):  # the incident's 350 transactions, every one only in the WAL
            conn.execute("INSERT INTO events(id, at, payload) VALUES (?, 0, x'00')", (i,))
        assert os.stat(db).st_mtime_ns == base_stat.st_mtime_ns  # the base file did not change at all
        named = run_cli("snapshot", "state.db", cwd=project.root)
        assert named.exit_code == 0, named.stderr
        assert "nothing changed" not in named.stdout
        assert ids_in(stored(project, "state.db")) == set(range(1, 351))
        # The full scan too (the stat it compares is the base file's, with the WAL's folded in).
        conn.execute("INSERT INTO events(id, at, payload) VALUES (351, 0, x'00')")
        scan = run_cli("snapshot", cwd=project.root)
        assert scan.exit_code == 0, scan.stderr
        assert "modify  state.db" in scan.stdout
        assert ids_in(stored(project, "state.db")) == set(range(1, 352))
        again = run_cli("snapshot", cwd=project.root)
        assert "nothing changed since the last snapshot" in again.stdout  # and no churn once it is captured
    finally:
        conn.close()
    assert not any(p.name.startswith("state.db-") and "guardian" in p.name for p in project.root.iterdir())


# --------------------------------------------------------------------------- an orphaned WAL is recovered


def _seed(db: Path, log: Path, rows: int) -> None:
    """A WAL database whose first rows were checkpointed into the base file (the WAL then holds only later ones)."""
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE events(id INTEGER PRIMARY KEY, at REAL, payload BLOB)")
        conn.executemany("INSERT INTO events VALUES (?, 0, randomblob(1500))", [(i,) for i in range(1, rows + 1)])
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    log.write_text("".join(f"{i} 0\n" for i in range(1, rows + 1)))


def _run_and_kill(project: Project, db: Path, log: Path, snapshots: int) -> dict[int, float]:
    """Run a WAL writer, snapshot it a few times as it goes, SIGKILL it; the committed ids."""
    with writer(db, log) as proc:
        for _ in range(snapshots):
            time.sleep(0.4)
            take_snapshot(project, ["state/orch.db"], "manual")
        time.sleep(0.6)  # more commits after the last capture: they live only in the WAL
        kill(proc)
    return committed(log)


@pytest.mark.parametrize("damage", ["deleted", "garbage", "malformed"])
def test_restore_recovers_every_committed_row_from_the_stored_base_plus_the_orphaned_wal(
    tmp_path: Path, damage: str
) -> None:
    project = make_project(tmp_path / "p", {"readme.txt": b"r\n"})
    (project.root / "state").mkdir()
    db = project.root / "state" / "orch.db"
    log = tmp_path / "committed.log"
    _seed(db, log, rows=300 if damage == "malformed" else 0)
    done = _run_and_kill(project, db, log, snapshots=3)
    wal = Path(f"{db}-wal")
    wal_bytes = wal.read_bytes()
    stored_ids = ids_in(stored(project, "state/orch.db"))
    assert stored_ids < set(done), "the test needs commits newer than the last capture"
    if damage == "deleted":  # seed 004: "WAL/SHM present without a healthy base file"
        db.unlink()
    elif damage == "garbage":  # a base file overwritten by something else
        db.write_bytes(os.urandom(8192))
    else:  # "database disk image is malformed": the pages only the base file held are wrecked
        with open(db, "r+b") as fh:
            fh.seek(4096)
            fh.write(os.urandom(db.stat().st_size - 4096))

    plan = run_cli("restore", "state/orch.db", "--dry-run", cwd=project.root)
    assert plan.exit_code == 0, plan.stderr
    assert f"but state/orch.db-wal ({len(wal_bytes):,} bytes) survives" in plan.stdout
    assert f"version alone: {len(stored_ids):,} rows in 1 table(s)" in plan.stdout
    replayed = re.search(r"plus state/orch\.db-wal: ([\d,]+) rows in 1 table\(s\)", plan.stdout)
    assert replayed is not None, plan.stdout
    assert int(replayed.group(1).replace(",", "")) in (len(done), len(done) + 1)
    assert "would restore the stored version plus the WAL" in plan.stdout
    assert "would move state/orch.db-wal, state/orch.db-shm aside" in plan.stdout
    assert wal.read_bytes() == wal_bytes  # a dry run changes nothing

    r = run_cli("restore", "state/orch.db", cwd=project.root)
    assert r.exit_code == 0, r.stderr
    assert "restored the stored version plus the WAL" in r.stdout
    assert holds_every_commit(ids_on_disk(db), done), f"lost {len(set(done) - ids_on_disk(db))} committed transactions"
    # The WAL was moved aside beside the database, named in the output, and stored too.
    assert not wal.exists()
    aside = [p for p in db.parent.iterdir() if p.name.startswith("orch.db-wal.guardian-")]
    assert len(aside) == 1 and aside[0].read_bytes() == wal_bytes
    assert f"moved state/orch.db-wal aside to state/{aside[0].name}" in r.stdout
    assert stored(project, f"state/{aside[0].name}") == wal_bytes
    assert holds_every_commit(ids_in(stored(project, "state/orch.db")), done)


def test_restore_at_an_older_snapshot_sets_the_wal_aside_without_replaying_it(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"readme.txt": b"r\n"})
    (project.root / "state").mkdir()
    db = project.root / "state" / "orch.db"
    _run_and_kill(project, db, tmp_path / "committed.log", snapshots=2)
    repo = project.open_repo()
    head = repo.head()
    assert head is not None
    image = stored(project, "state/orch.db")
    wal_bytes = Path(f"{db}-wal").read_bytes()
    db.unlink()
    r = run_cli("restore", "--at", head, "state/orch.db", cwd=project.root)
    assert r.exit_code == 0, r.stderr
    assert "plus the WAL" not in r.stdout
    assert db.read_bytes() == image
    aside = [p for p in db.parent.iterdir() if p.name.startswith("orch.db-wal.guardian-")]
    assert len(aside) == 1 and aside[0].read_bytes() == wal_bytes
    assert f"moved state/orch.db-wal aside to state/{aside[0].name}" in r.stdout


# --------------------------------------------------------------------------- damaged files never stop capture


def test_damaged_sqlite_looking_files_are_captured_as_bytes_and_the_rest_goes_on(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"readme.txt": b"r\n"})
    root = project.root
    good = tmp_path / "good.db"
    with closing(sqlite3.connect(good)) as conn:
        conn.execute("CREATE TABLE t(v TEXT)")
        conn.executemany("INSERT INTO t VALUES (?)", [("x" * 500,) for _ in range(400)])
        conn.commit()
    whole = good.read_bytes()
    damaged = {
        "downloads/partial.db": whole[: len(whole) // 2],  # an interrupted cp
        "downloads/blob.bin": b"SQLite format 3\x00" + os.urandom(20_000),  # garbage after the header
        "cache/odd.sqlite": whole[:5000],  # cut inside a page
    }
    for rel, data in damaged.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    for i in range(5):
        (root / f"src/mod{i}.py").parent.mkdir(exist_ok=True)
        (root / f"src/mod{i}.py").write_text(f"x = {i}\n")
    (root / "state.json").write_text('{"ok": true}\n')
    with pytest.raises(SqliteDamaged):
        sqlite_consistent_copy(root / "downloads" / "partial.db")

    r = run_cli("snapshot", cwd=root)
    assert r.exit_code == 0, r.stderr
    tree = dict(project.open_repo().iter_tree(project.open_repo().head()))
    for i in range(5):
        assert f"src/mod{i}.py" in tree
    assert "state.json" in tree
    catalog = project.open_catalog()
    try:
        for rel, data in damaged.items():
            assert stored(project, rel) == data, f"{rel}: not captured as its bytes"
            version = catalog.versions_of(rel)[-1]
            assert version.verdict == "invalid", (rel, version.reason)
            assert version.reason.startswith("sqlite: "), (rel, version.reason)
            assert f"INVALID: {version.reason}"[:60] in r.stdout
    finally:
        catalog.close()
    assert "truncated" in r.stdout


# --------------------------------------------------------------------------- a held lock is waited for, boundedly


def _rollback_db(path: Path) -> None:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE t(v TEXT)")
        conn.executemany("INSERT INTO t VALUES (?)", [(f"row{i}",) for i in range(50)])
        conn.commit()


def test_an_exclusive_lock_defers_the_database_in_bounded_time_and_the_rest_is_captured(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"readme.txt": b"r\n"})
    root = project.root
    db = root / "jobs.db"
    _rollback_db(db)
    (root / "other.txt").write_text("v1\n")
    assert run_cli("snapshot", cwd=root).exit_code == 0
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("INSERT INTO t VALUES ('committed before the lock')")
        conn.commit()
    (root / "other.txt").write_text("v2\n")
    (root / "new.py").write_text("y = 2\n")
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        r = run_cli("snapshot", cwd=root)
        took = time.monotonic() - started
        assert r.exit_code == 0, r.stderr
        assert took < BUSY_WAIT + 3, f"the snapshot took {took:.1f}s with the database locked"
        assert f"skipped jobs.db: deferred: locked by another connection for {BUSY_WAIT:g}s" in r.stdout
        assert stored(project, "other.txt") == b"v2\n"
        assert stored(project, "new.py") == b"y = 2\n"
        skips = [e for e in project.events.read() if e.event == "skip" and e.paths == ["jobs.db"]]
        assert skips and "locked by another connection" in str(skips[-1].details["reason"])
        # With nothing else to capture, the deferral is still logged and still bounded.
        started = time.monotonic()
        alone = run_cli("snapshot", "jobs.db", cwd=root)
        assert alone.exit_code == 0 and time.monotonic() - started < BUSY_WAIT + 3
        assert "deferred" in alone.stdout
        assert len([e for e in project.events.read() if e.event == "skip" and e.paths == ["jobs.db"]]) > len(skips)
    finally:
        holder.send_signal(signal.SIGKILL)  # its transaction dies with it: a hot journal stays behind
        holder.wait(10)
        if holder.stdout is not None:
            holder.stdout.close()
    r = run_cli("snapshot", cwd=root)
    assert r.exit_code == 0, r.stderr
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "copy.db"
        copy.write_bytes(stored(project, "jobs.db"))
        with closing(sqlite3.connect(copy)) as conn:
            values = [str(row[0]) for row in conn.execute("SELECT v FROM t")]
    assert "committed before the lock" in values and "uncommitted" not in values


def test_the_watcher_keeps_capturing_while_a_database_stays_locked(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"readme.txt": b"r\n"})
    root = project.root
    first = project.open_repo().head()
    assert first is not None
    db = root / "jobs.db"
    _rollback_db(db)
    watcher = Watcher(project, WatchOptions())
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(db)], stdout=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: watcher.state == "watching", "the watcher")
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        os.utime(db)  # a change to the locked database: the watcher must try it
        # An attribute change alone may reach the watcher as no event at all (inotify's IN_ATTRIB
        # is not a write); a rescan finds the new mtime either way.
        watcher.request_rescan("test: the database changed")
        for name in ("note0.txt", "note1.txt", "note2.txt"):
            (root / name).write_text(f"{name}\n")
            wait_for(functools.partial(_has, project, name), f"{name} captured")
        # Meanwhile a restore gets the store lock (it is never held for long).
        (root / "readme.txt").write_text("edited\n")
        started = time.monotonic()
        r = run_cli("restore", "--at", first, "readme.txt", cwd=root)
        assert r.exit_code == 0, r.stderr
        assert time.monotonic() - started < 10
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        if holder.stdout is not None:
            holder.stdout.close()
        watcher.request_stop()
        thread.join(30)
    assert (root / "readme.txt").read_text() == "r\n"
    skips = [e for e in project.events.read() if e.event == "skip" and e.paths == ["jobs.db"]]
    assert skips, "the deferral was not reported"
    assert len(skips) <= 3, f"a deferral is reported once per wait, not at every retry: {len(skips)}"


def _has(project: Project, rel: str) -> bool:
    repo = project.open_repo()
    head = repo.head()
    return head is not None and repo.entry_at(head, rel) is not None


# --------------------------------------------------------------------------- through the watcher, within a second


def test_the_watcher_captures_each_wal_only_commit_within_about_a_second(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"readme.txt": b"r\n"})
    (project.root / "state").mkdir()
    db = project.root / "state" / "orch.db"
    log = tmp_path / "committed.log"
    captures: list[tuple[float, str]] = []  # (when, blob) of each capture of the database

    def seen(result: SnapshotResult) -> None:
        now = time.time()
        captures.extend((now, f.blob) for f in result.files if f.path == "state/orch.db" and f.blob)

    watcher = Watcher(project, WatchOptions(), on_snapshot=seen)
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: watcher.state == "watching", "the watcher")
        with writer(db, log) as proc:
            time.sleep(4.0)
            kill(proc)
        done = committed(log)
        last = max(done)
        repo = project.open_repo()
        wait_for(lambda: any(last in ids_in(repo.read_blob(blob)) for _t, blob in captures[-3:]), "the last commit")
    finally:
        watcher.request_stop()
        thread.join(30)
    # For each committed transaction: how long until a capture held it.
    holding: list[tuple[float, set[int]]] = [(at, ids_in(repo.read_blob(blob))) for at, blob in captures]
    delays = []
    for ident, at in done.items():
        first = min(t for t, ids in holding if ident in ids)
        delays.append(first - at)
    delays.sort()
    median, worst = delays[len(delays) // 2], delays[-1]
    print(f"WAL-only commits captured: {len(done)}; delay median {median:.2f}s, max {worst:.2f}s")
    assert holds_every_commit(ids_on_disk(db), done)  # the WAL is intact: nothing guardian did touched it
    # The watcher batches for at most max_delay (1 s); the copy itself takes milliseconds.
    assert worst < 1.0 + 0.8, f"a WAL-only commit waited {worst:.2f}s to be captured"
    assert not Path(f"{db}-wal.guardian").exists()


def test_a_wal_event_means_its_database(tmp_path: Path) -> None:
    root = tmp_path / "p"
    (root / "state").mkdir(parents=True)
    seen: list[list[str]] = []
    handler = ChangeHandler(root, tmp_path / "store", PathFilter(root, WatchSettings()), seen.append, _no_error)
    handler.dispatch(FileModifiedEvent(str(root / "state" / "orch.db-wal")))
    handler.dispatch(FileModifiedEvent(str(root / "state" / "orch.db-shm")))  # the index alone: nothing to capture
    assert seen == [["state/orch.db"]]


def _no_error(exc: BaseException, _event: object) -> None:
    raise AssertionError(f"the handler failed: {exc!r}")


def test_the_polling_watcher_sees_wal_only_commits_too(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"readme.txt": b"r\n"})
    db = project.root / "state.db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE events(id INTEGER PRIMARY KEY, at REAL, payload BLOB)")
    watcher = Watcher(project, WatchOptions(force_polling=True, poll_interval=0.2))
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: watcher.state == "watching", "the watcher")
        base = os.stat(db).st_mtime_ns
        for i in range(1, 21):
            conn.execute("INSERT INTO events(id, at, payload) VALUES (?, 0, x'00')", (i,))
        assert os.stat(db).st_mtime_ns == base
        wait_for(lambda: _has(project, "state.db") and len(ids_in(stored(project, "state.db"))) == 20, "20 rows")
    finally:
        watcher.request_stop()
        thread.join(30)
        conn.close()


def test_a_locked_database_is_not_restored_over(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"readme.txt": b"r\n"})
    root = project.root
    db = root / "jobs.db"
    _rollback_db(db)
    assert run_cli("snapshot", cwd=root).exit_code == 0
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("DELETE FROM t")
        conn.commit()
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        before = db.read_bytes()
        started = time.monotonic()
        r = run_cli("restore", "jobs.db", cwd=root)
        assert time.monotonic() - started < BUSY_WAIT + 3
        assert r.exit_code == 1
        assert "cannot restore 'jobs.db': another program holds a lock on the database" in r.stderr
        assert db.read_bytes() == before  # its current content was never saved, so it is not overwritten
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        if holder.stdout is not None:
            holder.stdout.close()
