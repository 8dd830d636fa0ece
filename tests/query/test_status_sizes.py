"""guardian.query.status.walk_sizes: one walk gives what os.walk + lstat and capture.budget.store_size gave."""

from __future__ import annotations

import os
from pathlib import Path

from guardian.capture.budget import store_size
from guardian.ops.initialize import init_project
from guardian.project import Project
from guardian.query.status import status, walk_sizes


def _apparent(top: Path) -> int:
    """Status's old store size: os.walk, then lstat of every file name."""
    total = 0
    for dirpath, _dirs, files in os.walk(top):
        for name in files:
            total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def test_one_walk_counts_what_the_two_walks_counted(tmp_path: Path) -> None:
    top = tmp_path / "store"
    (top / "a" / "b").mkdir(parents=True)
    (top / "one").write_bytes(b"x" * 5000)
    (top / "a" / "b" / "two").write_bytes(b"y" * 70000)
    (top / "a" / "empty").touch()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "big").write_bytes(b"z" * 100000)
    (top / "link-to-dir").symlink_to(outside)  # not followed, not counted (os.walk lists it as a directory)
    (top / "link-to-file").symlink_to(outside / "big")  # counted as the link itself
    (top / "dangling").symlink_to(tmp_path / "nowhere")
    assert walk_sizes(top) == (_apparent(top), store_size(top))
    assert walk_sizes(tmp_path / "missing") == (0, 0)


def test_status_reports_both_sizes_from_its_one_walk(project: Path) -> None:
    (project / "f.txt").write_text("hello\n")
    init_project(project)
    report = status(Project.find(project))
    # Measured while the catalog is open (its -wal file counts), so compared by kind, not by value.
    assert report.store_size > 0
    assert report.lifecycle["usage"]["size"] > 0
    assert report.lifecycle["usage"]["size"] % 512 == 0  # allocated blocks, as du counts them
