"""Snapshot ids for shell completion, read straight from the catalog: no pygit2, no lock, no write.

A shell calls this on every Tab, so it opens the catalog read-only and asks for a few
rows; a missing or unreadable catalog completes nothing rather than failing.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from guardian.errors import GuardianError
from guardian.paths import find_project_root, store_dir_for

COMPLETION_LIMIT = 50


def snapshot_ids(start: Path, prefix: str, limit: int = COMPLETION_LIMIT) -> list[tuple[str, str]]:
    """(12-digit id, 'time trigger summary') of the newest snapshots whose id starts with prefix."""
    from guardian.util.times import format_time

    text = prefix.strip().lower()
    if any(c not in "0123456789abcdef" for c in text):
        return []
    try:
        root = find_project_root(start)
        db = store_dir_for(root.resolve()) / "catalog.db"
    except (GuardianError, OSError):
        return []
    if not db.is_file():
        return []
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            rows = conn.execute(
                "SELECT id, ts, trigger, summary FROM snapshots WHERE id >= ? AND id < ? ORDER BY seq DESC LIMIT ?",
                (text, text + "g", limit),
            ).fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return []
    return [(str(sid)[:12], f"{format_time(float(ts))} {trigger} {summary}") for sid, ts, trigger, summary in rows]
