"""Batches and the leading edge: the pending set alone, then a real watcher on real saves.

The leading-edge tests never measure time.  They give the watcher a quiet window far longer
than the test (30 s), so a change that is in the store before the watcher stops can only
have come through the leading edge, and what waits in the window is captured by the flush
at stop.  What they assert is which snapshots exist and what each holds: one change of the
target per save, never the temp file, never the target missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from watchdog.events import (
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
)

from guardian.capture.engine import SnapshotResult
from guardian.capture.filters import PathFilter
from guardian.config import WatchSettings
from guardian.watch.batching import PendingChanges
from guardian.watch.observer import ChangeHandler
from guardian.watch.watcher import WatchOptions
from tests.reliability.harness import LONG as LONG_MODE
from tests.watch.test_watcher import (  # noqa: F401 - no_guardrail is an autouse fixture
    FAST,
    Running,
    all_captured,
    has,
    make_project,
    no_guardrail,
    running,
    tree,
    wait_captured,
    wait_until,
)

pytestmark = pytest.mark.filterwarnings(r"ignore:Callback with id .* already exists:RuntimeWarning")

# A window no test waits out: only the leading edge captures before the watcher stops.
LONG = WatchOptions(quiet=30.0, max_delay=60.0, heartbeat=0.5, supervise=0.2, poll_interval=0.2)


# --------------------------------------------------------------------------- the pending set


def test_first_complete_change_after_quiet_is_taken_at_once_alone() -> None:
    changes = PendingChanges(quiet=30.0, max_delay=60.0)
    changes.add([".conf.tmp"])  # a temp file appears: it waits
    changes.add_complete([".conf.tmp", "conf.ini"])  # renamed over its target: complete
    changes.add(["other.txt"])
    assert len(changes) == 3 and "conf.ini" in changes and ".conf.tmp" in changes
    assert changes.ready(time.monotonic())
    assert list(changes.take()) == [".conf.tmp", "conf.ini"]
    # What followed waits out the window: the leading edge fires once per quiet spell.
    changes.add_complete(["later.txt"])
    assert not changes.ready(time.monotonic())
    assert list(changes.take()) == ["other.txt", "later.txt"]


def test_no_leading_edge_until_the_tree_was_quiet_for_a_whole_window() -> None:
    changes = PendingChanges(quiet=30.0, max_delay=60.0)
    changes.add_complete(["a.txt"])
    assert list(changes.take()) == ["a.txt"]
    # Nothing waits now, but the last event is not a window old: not quiet, so these wait.
    changes.add_complete(["b.txt"])
    changes.add_complete(["c.txt"])
    assert not changes.ready(time.monotonic())
    assert list(changes.take()) == ["b.txt", "c.txt"]


def test_a_rescan_or_the_last_flush_takes_the_leading_change_and_the_rest() -> None:
    changes = PendingChanges(quiet=30.0, max_delay=60.0)
    changes.add(["gone.txt"])
    changes.add_complete(["a.txt"])
    assert list(changes.take_all()) == ["a.txt", "gone.txt"]
    assert len(changes) == 0 and changes.due() is None


def test_a_failed_leading_batch_is_requeued_behind_the_backoff() -> None:
    changes = PendingChanges(quiet=30.0, max_delay=60.0)
    changes.add_complete(["a.txt"])
    changes.requeue(changes.take())
    assert "a.txt" in changes and changes.due() is not None
    assert not changes.ready(changes.retry_at - 0.5)


def test_handler_tells_complete_changes_from_the_rest(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    waiting: list[list[str]] = []
    complete: list[list[str]] = []
    handler = ChangeHandler(
        root,
        tmp_path / "store",
        PathFilter(root, WatchSettings()),
        waiting.append,
        lambda exc, event: None,
        sink_complete=complete.append,
    )
    r = str(root)
    script: list[tuple[FileSystemEvent, bool]] = [
        (FileModifiedEvent(f"{r}/a.txt"), False),  # an in-place write: truncated...
        (FileClosedEvent(f"{r}/a.txt"), True),  # ...and closed: done
        (FileCreatedEvent(f"{r}/sedAbC123"), False),  # sed -i's temp file
        (FileClosedEvent(f"{r}/sedAbC123"), False),  # a new file's close: may be a temp
        (FileMovedEvent(f"{r}/sedAbC123", f"{r}/conf.ini"), True),  # the closed temp over its target
        (FileCreatedEvent(f"{r}/half.tmp"), False),
        (FileMovedEvent(f"{r}/half.tmp", f"{r}/other.ini"), False),  # renamed before it was closed
        (FileMovedEvent(f"{r}/notes.txt", f"{r}/notes.bak"), False),  # an older file renamed away
        (FileCreatedEvent(f"{r}/notes.txt"), False),
        (FileClosedEvent(f"{r}/notes.txt"), False),  # the new target of a rename dance
        (FileDeletedEvent(f"{r}/notes.bak"), False),
        (DirMovedEvent(f"{r}/d1", f"{r}/d2"), False),
    ]
    for event, is_complete in script:
        waiting.clear()
        complete.clear()
        handler.dispatch(event)
        assert (bool(complete), bool(waiting)) == (is_complete, not is_complete), event
    waiting.clear()
    handler.dispatch(FileMovedEvent(f"{r}/sedAbC123", f"{r}/conf.ini"))  # forgotten once moved
    assert complete == [] and waiting == [["sedAbC123", "conf.ini"]]


# --------------------------------------------------------------------------- a real watcher


def snapshots_with(run: Running, rel: str) -> list[SnapshotResult]:
    return [s for s in run.snapshots if any(f.path == rel for f in s.files)]


def settle(run: Running, sentinel: str) -> None:
    """Write a sentinel and wait until it is pending or captured: every earlier event has then arrived.

    watchdog delivers events in order, so a later event reaching the pending set means the
    earlier ones did (as pending paths or as a leading batch).
    """
    path = run.project.root / sentinel
    path.write_text("sentinel\n")
    wait_until(lambda: sentinel in run.watcher._changes or bool(snapshots_with(run, sentinel)), f"{sentinel} to arrive")


def assert_one_change_of(run: Running, target: str, content: str, temps: tuple[str, ...]) -> None:
    """Exactly one snapshot changed target (to content); no snapshot held a temp file or lacked target."""
    changed = snapshots_with(run, target)
    assert len(changed) == 1, [[(f.path, f.change) for f in s.files] for s in run.snapshots]
    assert all(f.change != "delete" for s in changed for f in s.files if f.path == target)
    assert has(run.project, target, content)
    for snap in run.snapshots:
        for f in snap.files:
            assert not any(f.path.startswith(t) for t in temps), (f.path, f.change)


def test_first_in_place_write_after_quiet_is_captured_without_the_window(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"a.txt": "a\n", "b.txt": "b\n"})
    with running(project, LONG) as run:
        (project.root / "a.txt").write_text("a, first\n")
        # Only the leading edge captures within a 30 s window.
        wait_captured(project, "a.txt", "a, first\n", timeout=20)
        (project.root / "b.txt").write_text("b, right after\n")
        settle(run, "zz-sentinel.txt")
        assert "b.txt" in run.watcher._changes  # what follows waits in the window
        assert has(project, "b.txt", "b\n")
        run.stop()  # the flush at stop takes what waits
    assert [sorted(f.path for f in s.files) for s in run.snapshots] == [
        ["a.txt"],
        ["b.txt", "zz-sentinel.txt"],
    ]


def test_sed_in_place_after_quiet_is_one_change_captured_at_once(tmp_path: Path) -> None:
    if shutil.which("sed") is None:
        pytest.skip("sed is not installed")
    project = make_project(tmp_path / "p", {"conf.ini": "mode = old\n"})
    with running(project, LONG) as run:
        # sed -i writes ./sedXXXXXX, closes it, and renames it over the target.
        subprocess.run(["sed", "-i", "s/old/new/", str(project.root / "conf.ini")], check=True, timeout=30)
        wait_captured(project, "conf.ini", "mode = new\n", timeout=20)
        settle(run, "zz-sentinel.txt")
        run.stop()
    assert_one_change_of(run, "conf.ini", "mode = new\n", ("sed",))
    assert snapshots_with(run, "conf.ini") == run.snapshots[:1]


def test_temp_then_rename_save_after_quiet_is_one_change_captured_at_once(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"doc.md": "v1\n"})
    with running(project, LONG) as run:
        tmp = project.root / ".doc.md.tmp-save"
        tmp.write_text("v2\n")
        os.replace(tmp, project.root / "doc.md")
        wait_captured(project, "doc.md", "v2\n", timeout=20)
        settle(run, "zz-sentinel.txt")
        run.stop()
    assert_one_change_of(run, "doc.md", "v2\n", (".doc.md.tmp",))


def vim_like_save(target: Path, content: str) -> None:
    """vim with backupcopy=no: the target is renamed to target~, a new target written, the backup removed."""
    backup = target.with_name(target.name + "~")
    os.rename(target, backup)
    with open(target, "w") as handle:  # a new file: created, written, closed
        handle.write(content)
    backup.unlink()


def test_vim_backup_rename_is_one_change_and_never_a_missing_target(tmp_path: Path) -> None:
    # Under a short window a stall between the two halves lets the window cut the dance, as
    # it always could; the leading edge must never be what cuts it.
    project = make_project(tmp_path / "p", {"notes.txt": "draft 1\n", "other.txt": "o\n"})
    with running(project, LONG) as run:
        vim_like_save(project.root / "notes.txt", "draft 2\n")
        settle(run, "zz-sentinel.txt")
        run.stop()
    assert_one_change_of(run, "notes.txt", "draft 2\n", ("notes.txt~",))


def test_a_complete_change_elsewhere_does_not_cut_a_rename_dance_in_half(tmp_path: Path) -> None:
    # The dance's first half (target renamed away) is pending when another file is closed:
    # that close is taken at once, alone; the target's absence is not.
    project = make_project(tmp_path / "p", {"notes.txt": "draft 1\n", "other.txt": "o\n"})
    target = project.root / "notes.txt"
    with running(project, LONG) as run:
        os.rename(target, target.with_name("notes.txt~"))
        (project.root / "other.txt").write_text("o2\n")
        target.write_text("draft 2\n")
        target.with_name("notes.txt~").unlink()
        settle(run, "zz-sentinel.txt")
        run.stop()
    assert_one_change_of(run, "notes.txt", "draft 2\n", ("notes.txt~",))
    assert has(project, "other.txt", "o2\n")


def test_sed_and_atomic_saves_in_a_row_keep_one_change_each(tmp_path: Path) -> None:
    if shutil.which("sed") is None:
        pytest.skip("sed is not installed")
    project = make_project(tmp_path / "p", {"conf.ini": "n = 0\n"})
    with running(project, FAST) as run:
        for i in range(1, 6):
            subprocess.run(["sed", "-i", f"s/n = {i - 1}/n = {i}/", str(project.root / "conf.ini")], check=True)
            wait_captured(project, "conf.ini", f"n = {i}\n")
        run.stop()
    assert not any(p.startswith("sed") for s in run.snapshots for p in (f.path for f in s.files))
    assert all(f.change != "delete" for s in run.snapshots for f in s.files if f.path == "conf.ini")
    assert len(snapshots_with(run, "conf.ini")) == 5


# 10,000 files in long mode (GUARDIAN_LONG=1: about 90 s on two shared, loaded cores); CI takes
# 3,000, still many batches and a leading edge followed by a burst that coalesces behind it.
BURST_FILES = 10000 if LONG_MODE else 3000


@pytest.mark.timeout(400)
def test_burst_of_files_created_then_rewritten_is_fully_captured(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"seed.txt": "seed\n"})
    rels = [f"d{i // 100:03}/f{i % 100:03}.txt" for i in range(BURST_FILES)]
    with running(project, WatchOptions()) as run:
        created = {rel: f"created {rel}\n" for rel in rels}
        for rel, text in created.items():  # new files: no leading edge, the window batches them
            path = project.root / rel
            path.parent.mkdir(exist_ok=True)
            path.write_text(text)
        wait_until(lambda: all_captured(project, created), f"all {BURST_FILES} new files", 180)
        before = len(run.snapshots)
        rewritten = {rel: f"rewritten {rel}\n" for rel in rels}
        for rel, text in rewritten.items():  # in place, after quiet: the first close is a leading edge
            (project.root / rel).write_text(text)
        wait_until(lambda: all_captured(project, rewritten), f"all {BURST_FILES} rewrites", 180)
    assert len(run.snapshots) > before
    assert sum(len(s.files) for s in run.snapshots[before:]) >= BURST_FILES
