"""guardian log reads each shown snapshot's versions by its seq: an index lookup, never a scan of every version."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from guardian.catalog.db import Catalog


def test_versions_in_searches_an_index(tmp_path: Path) -> None:
    Catalog(tmp_path / "catalog.db").close()  # an older catalog gets the index on open, as a new one does
    db = sqlite3.connect(tmp_path / "catalog.db")
    plan = db.execute(
        "EXPLAIN QUERY PLAN SELECT v.seq FROM versions v JOIN snapshots s ON s.seq = v.seq WHERE v.seq = ?", (1,)
    ).fetchall()
    steps = " | ".join(str(row[-1]) for row in plan)
    assert "versions_seq (seq=?)" in steps and "SCAN v" not in steps, steps
