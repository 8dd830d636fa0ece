#!/usr/bin/env python3
"""Count the committed SQLite transactions a crash plus the loss of the base file costs, with the watcher running.

Seed 004's incident, replayed as a user would meet it (GUARDIAN_HOME in a temporary
directory, nothing outside it touched): a project is initialised and the watcher started
(its default batching); a writer process opens ``state/orch.db`` in WAL mode and commits one
row every 50 ms, logging each id to a side file once COMMIT has returned; after a random
3 to 8 s the writer is killed with SIGKILL and the base file deleted ("WAL/SHM present
without a healthy base file").  Once the watcher has settled, ``guardian restore
state/orch.db`` runs, and the rows it gives back are counted against the log.

Per trial it prints the committed transactions, the rows in guardian's newest stored
version (what a restore of that version alone gives back) and the rows restored, whether
the WAL survived the restore, and what the restore said.  ``--autocheckpoint N`` lets
SQLite checkpoint (and restart the WAL) every N pages, the case where the stored version
and the surviving WAL may not fit together; 0 turns checkpoints off, as in the incident.

    .venv/bin/python scripts/sqlite_wal_campaign.py --trials 5
    .venv/bin/python scripts/sqlite_wal_campaign.py --trials 5 --autocheckpoint 20
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import closing
from pathlib import Path

WRITER = """
import sqlite3, sys, time
db, log_path, checkpoint = sys.argv[1], sys.argv[2], int(sys.argv[3])
conn = sqlite3.connect(db, isolation_level=None)
conn.execute("PRAGMA journal_mode=WAL")
conn.execute(f"PRAGMA wal_autocheckpoint={checkpoint}")
conn.execute("CREATE TABLE IF NOT EXISTS events(id INTEGER PRIMARY KEY, at REAL, payload BLOB)")
log = open(log_path, "a")
print("ready", flush=True)
i = 0
while True:
    i += 1
    conn.execute("INSERT INTO events(id, at, payload) VALUES (?, ?, randomblob(1500))", (i, time.time()))
    log.write(f"{i}\\n")
    log.flush()
    time.sleep(0.05)
"""


def rows(image: bytes) -> int | None:
    """Rows in a database image, or None when it is no sound database."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "image.db"
        path.write_bytes(image)
        try:
            with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro&immutable=1", uri=True)) as db:
                if db.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                    return None
                return int(db.execute("SELECT count(*) FROM events").fetchone()[0])
        except sqlite3.Error:
            return None


def trial(work: Path, seconds: float, autocheckpoint: int) -> dict[str, object]:
    from guardian.errors import GuardianError
    from guardian.ops.initialize import init_project
    from guardian.ops.restore import restore
    from guardian.project import Project
    from guardian.watch.watcher import Watcher, WatchOptions

    root = work / "proj"
    (root / "state").mkdir(parents=True)
    (root / "readme.txt").write_text("r\n")
    init_project(root)
    project = Project.find(root)
    watcher = Watcher(project, WatchOptions())
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    while watcher.state != "watching":
        time.sleep(0.05)
    db = root / "state" / "orch.db"
    log = work / "committed.log"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db), str(log), str(autocheckpoint)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
    time.sleep(seconds)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    writer.stdout.close()
    db.unlink()  # seed 004: the WAL and SHM are left without their base file
    time.sleep(2.0)
    watcher.request_stop()
    thread.join(30)
    committed = len(log.read_text().split())
    wal = Path(f"{db}-wal")
    wal_size = wal.stat().st_size if wal.exists() else 0
    repo = project.open_repo()
    catalog = project.open_catalog()
    try:
        valid = catalog.latest_valid("state/orch.db")
        stored = rows(repo.read_blob(valid.blob)) if valid is not None and valid.blob else None
    finally:
        catalog.close()
    try:
        report = restore(project, ["state/orch.db"], cwd=root)
        said = list(getattr(report, "notes", []))
    except GuardianError as exc:
        said = [f"restore failed: {exc}"]
    restored = rows(db.read_bytes()) if db.exists() else None
    kept = wal.exists() or any(p.name.startswith("orch.db-wal.") for p in db.parent.iterdir())
    return {
        "committed": committed,
        "stored": stored,
        "restored": restored,
        "wal_bytes": wal_size,
        "wal_kept": kept,
        "said": said,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--autocheckpoint", type=int, default=0, help="SQLite's wal_autocheckpoint (0: off)")
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    lost_stored = lost_restored = total = 0
    for n in range(1, args.trials + 1):
        with tempfile.TemporaryDirectory(prefix="guardian-wal-campaign-") as tmp:
            os.environ["GUARDIAN_HOME"] = str(Path(tmp) / "home")
            result = trial(Path(tmp), rng.uniform(3.0, 8.0), args.autocheckpoint)
        committed = int(str(result["committed"]))
        stored = result["stored"] if isinstance(result["stored"], int) else 0
        restored = result["restored"] if isinstance(result["restored"], int) else 0
        # The log is written after COMMIT returns: a kill in between leaves one commit more than logged.
        lost = max(0, committed - restored)
        total += committed
        lost_stored += max(0, committed - stored)
        lost_restored += lost
        print(
            f"trial {n}: committed {committed}, newest stored version {result['stored']}, restored {result['restored']}"
            f" (lost {lost}); WAL {result['wal_bytes']:,} bytes, kept: {result['wal_kept']}"
        )
        said = result["said"]
        assert isinstance(said, list)
        for line in said:
            print(f"    {line}")
    print(
        f"total: {total} committed; lost by the newest stored version alone {lost_stored}, "
        f"lost by restore {lost_restored}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
