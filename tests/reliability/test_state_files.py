"""Cases 7 and 8: application state files caught mid-write.

7. A writer opens a JSON state file with O_TRUNC (Python's ``open(path, "w")``,
   the non-atomic write of the incident), writes part of the new document and
   is SIGKILLed.  The torn version is captured and marked invalid, and
   ``guardian restore`` brings back the last valid JSON byte for byte.
8. A SQLite database in WAL mode (and, for contrast, in rollback-journal mode)
   is written by another process, in transactions of exactly ROWS rows, while
   guardian snapshots it again and again.  Every captured copy passes
   ``PRAGMA quick_check`` and holds whole transactions only; a WAL whose base
   file is missing or empty is never opened, so SQLite never creates or
   truncates anything beside it.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from guardian.errors import GuardianError
from guardian.ops.snapshot import take_snapshot
from guardian.project import Project
from tests.conftest import run_cli
from tests.reliability.harness import (
    head,
    init_project,
    read_blob,
    record,
    tree_files,
    trials,
)

# --------------------------------------------------------------------------- 7: torn JSON

_TORN_WRITER = """
import os, signal, sys
path, data, cut = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
handle = open(path, "wb")          # O_TRUNC: the old content is gone from here on
handle.write(data[:cut])
handle.flush()
os.kill(os.getpid(), signal.SIGKILL)
"""


def _document(version: int) -> bytes:
    state = {"version": version, "queue": [{"id": i, "state": "pending", "note": "x" * 40} for i in range(60)]}
    return (json.dumps(state, indent=2) + "\n").encode()


def test_writer_killed_after_o_trunc_leaves_a_restorable_last_valid_json(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    rel = "g/followup/state/queue.json"
    paths = init_project(root, {rel: _document(0)})
    state = root / rel
    problems: list[str] = []
    marked = restored = 0
    n = trials(4, 40)
    for trial in range(1, n + 1):
        good = _document(trial)
        state.write_bytes(good)
        assert run_cli("snapshot", cwd=root).exit_code == 0
        new = _document(trial + 1000)
        cut = [0, 1, len(new) // 2, len(new) - 2][trial % 4]
        proc = subprocess.run(
            [sys.executable, "-c", _TORN_WRITER, str(state), new.decode(), str(cut)], timeout=30, check=False
        )
        assert proc.returncode == -signal.SIGKILL
        assert state.read_bytes() == new[:cut]
        r = run_cli("snapshot", "--json", cwd=root)
        assert r.exit_code == 0, r.stderr
        files = {f["path"]: f for f in json.loads(r.stdout)["files"]}
        verdict = files.get(rel, {}).get("verdict")
        if verdict != "invalid":
            problems.append(f"trial {trial} (cut at {cut} of {len(new)}): the torn file was judged {verdict!r}")
        else:
            marked += 1
        r = run_cli("restore", rel, cwd=root)
        if r.exit_code != 0 or state.read_bytes() != good:
            problems.append(f"trial {trial}: restore did not bring back the last valid JSON: {r.stderr.strip()}")
        else:
            restored += 1
            json.loads(state.read_bytes())
    history = json.loads(run_cli("history", "--json", rel, cwd=root).stdout)
    assert "invalid" in json.dumps(history["timeline"])
    assert head(paths) is not None
    record("7", torn_writes=n, torn_marked_invalid=marked, restores=n, restores_identical=restored)
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- 8: SQLite under concurrent writes

ROWS = 37  # rows per writer transaction: a captured copy holding a partial transaction is torn

_SQLITE_WRITER = """
import os, sqlite3, sys, time
path, mode, stop, ROWS = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
conn = sqlite3.connect(path, timeout=30, isolation_level=None)
conn.execute(f"PRAGMA journal_mode={mode}")
conn.execute("PRAGMA synchronous=NORMAL")
conn.execute("CREATE TABLE IF NOT EXISTS jobs(id INTEGER PRIMARY KEY, txn INTEGER, payload BLOB)")
txn = 0
print("ready", flush=True)
while not os.path.exists(stop):
    txn += 1
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO jobs(txn, payload) VALUES(?, ?)", [(txn, os.urandom(200)) for _ in range(ROWS)])
    conn.execute("DELETE FROM jobs WHERE txn <= ?", (txn - 40,))  # whole old transactions: the size stays flat
    conn.execute("COMMIT")
    time.sleep(0.001)
    if txn % 25 == 0 and "wal" in sys.argv[2].lower():
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
conn.close()
"""


def _check_copy(data: bytes) -> tuple[str, int]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "copy.db"
        path.write_bytes(data)
        conn = sqlite3.connect(path)
        try:
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            count = conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] if check == "ok" else -1
        finally:
            conn.close()
    return str(check), int(count)


@pytest.mark.parametrize("journal", ["wal", "delete"])
def test_sqlite_captured_under_concurrent_writes_is_always_consistent(
    tmp_path: Path, journal: str, procs: list[subprocess.Popen[bytes]]
) -> None:
    root = tmp_path / "proj"
    paths = init_project(root, {"readme.txt": b"r\n"})
    db = root / "state" / "jobs.db"
    db.parent.mkdir()
    stop = tmp_path / "stop"
    writer = subprocess.Popen(
        [sys.executable, "-c", _SQLITE_WRITER, str(db), journal, str(stop), str(ROWS)], stdout=subprocess.PIPE
    )
    procs.append(writer)
    assert writer.stdout is not None and writer.stdout.readline().strip() == b"ready"
    project = Project.find(root)
    blobs: list[str] = []
    errors: list[str] = []
    n = trials(10, 120)
    try:
        for _ in range(n):
            try:
                result = take_snapshot(project, ["state/jobs.db"], "manual")
            except GuardianError as exc:  # a clean, reported failure is allowed; a torn copy is not
                errors.append(str(exc))
                continue
            for f in result.files:
                if f.path == "state/jobs.db" and f.blob:
                    blobs.append(f.blob)
            time.sleep(0.01)
    finally:
        stop.touch()
        writer.wait(30)
    assert writer.returncode == 0
    bad: list[str] = []
    counts: list[int] = []
    for oid in blobs:
        check, count = _check_copy(read_blob(paths, oid))
        if check != "ok":
            bad.append(f"{oid[:12]}: quick_check says {check}")
        counts.append(count)
    sidecars = [p.name for p in db.parent.iterdir()]
    record("8", sqlite_copies=len(blobs), sqlite_copies_bad=len(bad), sqlite_capture_errors=len(errors))
    assert len(blobs) >= max(2, n // 3), f"too few copies captured ({len(blobs)} of {n}); errors: {errors[:3]}"
    assert not bad, bad
    assert all(c % ROWS == 0 for c in counts), f"a copy holds part of a transaction: row counts {counts}"
    assert "jobs.db" in sidecars
    # The final state is captured whole, too.
    assert run_cli("snapshot", cwd=root).exit_code == 0
    final = tree_files(paths)[b"state/jobs.db"][1]
    assert _check_copy(read_blob(paths, final))[0] == "ok"


@pytest.mark.parametrize("base", ["missing", "empty"])
def test_a_wal_without_its_base_file_is_never_opened(tmp_path: Path, base: str) -> None:
    root = tmp_path / "proj"
    paths = init_project(root, {"readme.txt": b"r\n"})
    # A real WAL, written by SQLite, whose base file then disappears (or is truncated to nothing).
    source = tmp_path / "orig.db"
    conn = sqlite3.connect(source)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE t(x)")
    conn.executemany("INSERT INTO t VALUES(?)", [(i,) for i in range(500)])
    conn.commit()
    wal_bytes = Path(f"{source}-wal").read_bytes()
    shm_bytes = Path(f"{source}-shm").read_bytes()
    conn.close()
    db = root / "data" / "app.db"
    db.parent.mkdir()
    Path(f"{db}-wal").write_bytes(wal_bytes)
    Path(f"{db}-shm").write_bytes(shm_bytes)
    if base == "empty":
        db.write_bytes(b"")
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in db.parent.iterdir()}
    outcomes = []
    for args in (["snapshot"], ["snapshot", "data/app.db"], ["snapshot", "data"], ["check"]):
        r = run_cli(*args, cwd=root)
        outcomes.append((args, r.exit_code, r.stderr.strip()))
        assert r.exit_code in (0, 1), (args, r.stderr)
        assert "internal error" not in r.stderr
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in db.parent.iterdir()}
    record("8", wal_without_base_opened=int(before != after))
    assert after == before, f"files beside the WAL changed: {before} -> {after}; {outcomes}"
    assert (base == "missing") == (not db.exists())
    assert os.path.getsize(f"{db}-wal") == len(wal_bytes)
    assert b"data/app.db-wal" not in tree_files(paths)
