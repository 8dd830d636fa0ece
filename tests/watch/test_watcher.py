"""The watcher engine, in process, with the real watchdog observer on temp trees.

Changes are awaited by polling the shadow store with a deadline, never by fixed
sleeps.  Fault injection goes through ``ChangeHandler.tap`` (drop or raise) and
through watchdog's own logger, never by mocking watchdog.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from watchdog.events import (
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileMovedEvent,
    FileSystemEvent,
)

from guardian.capture import engine as snapshot_module
from guardian.capture import lookahead
from guardian.capture.engine import SnapshotResult
from guardian.capture.filters import PathFilter
from guardian.events import Event
from guardian.ops.initialize import init_project
from guardian.project import Project
from guardian.query.status import watcher_state
from guardian.store.repo import hash_blob
from guardian.store.tree import MODE_LINK
from guardian.watch.observer import (
    WATCH_EVENTS,
    ChangeHandler,
    WatchdogSignals,
    count_watchable_dirs,
    inotify_limit_reached,
    inotify_watch_count,
)
from guardian.watch.watcher import Watcher, WatchOptions
from tests.conftest import run_cli

# watchdog warns from its reader thread when "mkdir -p a/b" makes it add the watch for a/b twice
# (once walking a/, once for a/b's own IN_CREATE); harmless, but an error under filterwarnings=error.
pytestmark = pytest.mark.filterwarnings(r"ignore:Callback with id .* already exists:RuntimeWarning")

FAST = WatchOptions(quiet=0.05, max_delay=0.5, heartbeat=0.5, supervise=0.2, poll_interval=0.2)

POLICY = """\
version: 1
watch:
  exclude: ["*.log", "scratch/"]
guardrail:
  interval: {interval}
  repair: false
protect:
  - paths: ["keep/"]
    reason: "test component"
"""


# --------------------------------------------------------------------------- helpers


def make_project(root: Path, files: dict[str, str] | None = None, interval: str = "300s") -> Project:
    root.mkdir(parents=True, exist_ok=True)
    (root / "guardian.yaml").write_text(POLICY.format(interval=interval))
    for rel, text in (files or {}).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    init_project(root)
    return Project.find(root)


def tree(project: Project) -> dict[str, tuple[str, int]]:
    """path -> (blob id, mode) in the newest snapshot."""
    repo = project.open_repo()
    return {path: (entry.oid, entry.mode) for path, entry in repo.iter_tree(repo.head())}


def wait_until(check: Callable[[], bool], what: str, timeout: float = 15.0) -> float:
    """Poll check until true; returns the seconds it took."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - start


def has(project: Project, rel: str, content: str | bytes | None) -> bool:
    """Is rel in the newest snapshot with exactly this content (None: absent)?"""
    entries = tree(project)
    if content is None:
        return rel not in entries
    data = content.encode() if isinstance(content, str) else content
    return rel in entries and entries[rel][0] == hash_blob(data)


def wait_captured(project: Project, rel: str, content: str | bytes | None, timeout: float = 15.0) -> float:
    state = "deleted" if content is None else f"{content!r}"[:60]
    return wait_until(lambda: has(project, rel, content), f"{rel} captured as {state}", timeout)


def all_captured(project: Project, expected: dict[str, str]) -> bool:
    entries = tree(project)
    return all(rel in entries and entries[rel][0] == hash_blob(text.encode()) for rel, text in expected.items())


def events(project: Project, kind: str) -> list[Event]:
    return [e for e in project.events.read() if e.event == kind]


@dataclass
class Running:
    project: Project
    watcher: Watcher
    thread: threading.Thread
    errors: list[BaseException] = field(default_factory=list)
    snapshots: list[SnapshotResult] = field(default_factory=list)

    def stop(self) -> None:
        self.watcher.request_stop()
        self.thread.join(30)
        assert not self.thread.is_alive(), "the watcher did not stop"
        if self.errors:
            raise self.errors[0]


@contextmanager
def running(project: Project, options: WatchOptions = FAST) -> Iterator[Running]:
    watcher = Watcher(project, options)
    run = Running(project, watcher, threading.Thread(target=lambda: None))
    watcher.on_snapshot = run.snapshots.append

    def target() -> None:
        try:
            watcher.run()
        except BaseException as exc:
            run.errors.append(exc)

    run.thread = threading.Thread(target=target, name="guardian-watcher", daemon=True)
    run.thread.start()
    try:
        wait_until(
            lambda: (watcher.state == "watching" and not watcher.catching_up) or bool(run.errors),
            "the watcher to be watching, its start rescan done",
            20,
        )
        if run.errors:
            raise run.errors[0]
        yield run
    finally:
        if run.thread.is_alive():
            run.stop()


def captured_change(run: Running, rel: str, change: str) -> bool:
    """Did one of the watcher's snapshots record this change of rel (in the store's chain)?

    For a change that does not stay the newest state for long (a protected delete the
    enforcer undoes at once), where polling the newest snapshot could miss it.
    """
    snapshots = [s.snapshot for s in list(run.snapshots) if any(f.path == rel and f.change == change for f in s.files)]
    if not snapshots:
        return False
    repo = run.project.open_repo()
    chain = {record.id for record in repo.walk()}
    return all(snapshot in chain for snapshot in snapshots)


@pytest.fixture(autouse=True)
def no_guardrail(monkeypatch: pytest.MonkeyPatch) -> None:
    """By default the guardrail module is absent (the watcher must tolerate that)."""
    monkeypatch.setitem(sys.modules, "guardian.gates.guardrail", None)


@pytest.fixture
def guardrail_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    module = types.ModuleType("guardian.gates.guardrail")

    def run_guardrail(
        project: Project, paths: list[str] | None = None, repair: bool = False, trigger: str = ""
    ) -> None:
        calls.append({"paths": paths, "repair": repair, "trigger": trigger})

    module.run_guardrail = run_guardrail  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "guardian.gates.guardrail", module)
    return calls


# --------------------------------------------------------------------------- capture


def test_write_modify_delete_rename_captured(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"a.txt": "a\n", "b.txt": "b\n", "sub/c.txt": "c\n"})
    root = project.root
    with running(project):
        (root / "new.txt").write_text("new\n")
        wait_captured(project, "new.txt", "new\n")
        (root / "a.txt").write_text("a changed\n")
        wait_captured(project, "a.txt", "a changed\n")
        (root / "b.txt").unlink()
        wait_captured(project, "b.txt", None)
        os.rename(root / "sub" / "c.txt", root / "sub" / "d.txt")
        wait_captured(project, "sub/d.txt", "c\n")
        assert has(project, "sub/c.txt", None)
        shutil.rmtree(root / "sub")
        wait_captured(project, "sub/d.txt", None)
    snaps = events(project, "snapshot")
    assert all(e.trigger == "watch" for e in snaps[1:])


def test_sed_in_place_is_a_change_of_the_target(tmp_path: Path) -> None:
    if shutil.which("sed") is None:
        pytest.skip("sed is not installed")
    project = make_project(tmp_path / "p", {"conf.ini": "mode = old\n"})
    with running(project):
        # sed -i writes a temp file and renames it over the target: only a move reaches us.
        subprocess.run(["sed", "-i", "s/old/new/", str(project.root / "conf.ini")], check=True, timeout=30)
        wait_captured(project, "conf.ini", "mode = new\n")
    assert not any(p.startswith("sed") for p in tree(project))


def test_editor_atomic_save_is_a_change_of_the_target(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"doc.md": "v1\n"})
    root = project.root
    with running(project):
        for version in ("v2\n", "v3\n"):
            tmp = root / ".doc.md.tmp-save"
            tmp.write_text(version)
            os.replace(tmp, root / "doc.md")
            wait_captured(project, "doc.md", version)
    assert ".doc.md.tmp-save" not in tree(project)


def test_mkdir_then_move_files_and_directories_in(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"a.txt": "a\n"})
    root = project.root
    outside = tmp_path / "outside"
    (outside / "tree" / "deep").mkdir(parents=True)
    (outside / "one.txt").write_text("one\n")
    (outside / "tree" / "t.txt").write_text("t\n")
    (outside / "tree" / "deep" / "d.txt").write_text("d\n")
    with running(project):
        (root / "newdir").mkdir()
        shutil.move(str(outside / "one.txt"), str(root / "newdir" / "one.txt"))
        wait_captured(project, "newdir/one.txt", "one\n")
        # A whole directory moved in from outside the root: its files arrive without events of their own.
        os.rename(outside / "tree", root / "newdir" / "tree")
        wait_until(
            lambda: all_captured(project, {"newdir/tree/t.txt": "t\n", "newdir/tree/deep/d.txt": "d\n"}),
            "the moved-in directory",
        )
        # And a new directory inside it is watched too.
        (root / "newdir" / "tree" / "deep" / "later.txt").write_text("later\n")
        wait_captured(project, "newdir/tree/deep/later.txt", "later\n")
        # A directory moved out of the root is a deletion of its files.
        os.rename(root / "newdir" / "tree", outside / "gone")
        wait_until(lambda: not any(p.startswith("newdir/tree/") for p in tree(project)), "the moved-out directory")


def test_symlinks_are_recorded_not_followed(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"a.txt": "a\n"})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "secret.txt").write_text("not ours\n")
    with running(project):
        os.symlink(str(elsewhere), project.root / "link")
        wait_until(lambda: tree(project).get("link", ("", 0))[1] == MODE_LINK, "the symlink")
        (elsewhere / "secret.txt").write_text("changed, still not ours\n")
        (project.root / "sentinel.txt").write_text("s\n")
        wait_captured(project, "sentinel.txt", "s\n")
    assert tree(project)["link"][0] == hash_blob(os.fsencode(str(elsewhere)))
    assert not any(p.startswith("link/") for p in tree(project))


def test_excluded_and_store_paths_are_ignored(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"a.txt": "a\n"})
    root = project.root
    with running(project):
        (root / "debug.log").write_text("noise\n")
        (root / "scratch").mkdir()
        (root / "scratch" / "x.txt").write_text("noise\n")
        (root / "node_modules" / "m").mkdir(parents=True)
        (root / "node_modules" / "m" / "i.js").write_text("noise\n")
        (root / "sentinel.txt").write_text("s\n")
        wait_captured(project, "sentinel.txt", "s\n")
    captured = tree(project)
    assert not {"debug.log", "scratch/x.txt", "node_modules/m/i.js"} & captured.keys()


def test_rapid_writes_are_coalesced_into_few_snapshots(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"hot.txt": "0\n"})
    with running(project) as run:
        for i in range(50):
            (project.root / "hot.txt").write_text(f"{i}\n")
        wait_captured(project, "hot.txt", "49\n")
    assert 1 <= len(run.snapshots) <= 3, [s.snapshot for s in run.snapshots]


def test_constant_churn_is_captured_within_the_max_delay(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"hot.txt": "0\n"})
    options = WatchOptions(quiet=0.1, max_delay=0.5, heartbeat=5, supervise=1)
    with running(project, options) as run:
        start = time.monotonic()
        first_seen: float | None = None
        i = 0
        # A write every 30 ms never leaves a 100 ms quiet window; only the max delay lets batches through.
        while time.monotonic() - start < 2.0:
            i += 1
            (project.root / "hot.txt").write_text(f"{i}\n")
            if first_seen is None and run.snapshots:
                first_seen = time.monotonic() - start
            time.sleep(0.03)
        during = len(run.snapshots)
        wait_captured(project, "hot.txt", f"{i}\n")
    assert first_seen is not None and first_seen < 1.5, first_seen
    assert during >= 2


def test_reconciliation_at_start_captures_offline_changes_without_rehashing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {f"f{i:03}.txt": f"{i}\n" for i in range(200)}
    project = make_project(tmp_path / "p", files)
    root = project.root
    (root / "f001.txt").write_text("changed offline\n")
    (root / "f002.txt").unlink()
    (root / "added.txt").write_text("added offline\n")
    hashed: list[int] = []
    real_hash = hash_blob

    def counting(data: bytes) -> str:
        hashed.append(len(data))
        return real_hash(data)

    monkeypatch.setattr(lookahead, "hash_blob", counting)  # where a capture reads and hashes content
    with running(project) as run:
        pass
    assert has(project, "f001.txt", "changed offline\n")
    assert has(project, "f002.txt", None)
    assert has(project, "added.txt", "added offline\n")
    assert len(hashed) == 2  # only the modified and the added file were read and hashed
    assert sorted(f.path for f in run.snapshots[0].files) == ["added.txt", "f001.txt", "f002.txt"]


def test_watching_comes_before_the_start_rescan_and_nothing_written_meanwhile_is_lost(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {f"f{i:03}.txt": f"{i}\n" for i in range(200)})
    root = project.root
    (root / "f001.txt").write_text("changed offline\n")
    beats: list[dict[str, Any]] = []

    def on_ready(_watcher: Watcher) -> None:
        # Said once the observer is up, before the catch-up: what is written now is an event.
        beats.append(json.loads(project.paths.heartbeat.read_text()))
        (root / "during.txt").write_text("during the catch-up\n")
        (root / "f002.txt").write_text("edited during the catch-up\n")

    watcher = Watcher(project, FAST, on_ready=on_ready)
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    try:
        wait_until(
            lambda: all_captured(
                project,
                {
                    "f001.txt": "changed offline\n",
                    "during.txt": "during the catch-up\n",
                    "f002.txt": "edited during the catch-up\n",
                },
            ),
            "the offline change and the changes made during the catch-up",
        )
        wait_until(lambda: not watcher.catching_up, "the catch-up to end")
    finally:
        watcher.request_stop()
        thread.join(30)
    assert [(b["state"], b["catching_up"]) for b in beats] == [("watching", True)]
    assert watcher.heartbeat()["catching_up"] is False


def test_burst_of_5000_files_is_fully_captured(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"seed.txt": "seed\n"})
    expected: dict[str, str] = {}
    with running(project, WatchOptions()):
        for d in range(50):
            folder = project.root / f"burst{d:02}"
            folder.mkdir()
            for i in range(100):
                text = f"file {d}/{i}\n"
                (folder / f"f{i:03}.txt").write_text(text)
                expected[f"burst{d:02}/f{i:03}.txt"] = text
        # Rewrite a slice, so final states (not first states) are what must be captured.
        for d in range(0, 50, 7):
            for i in range(0, 100, 3):
                text = f"rewritten {d}/{i}\n"
                (project.root / f"burst{d:02}" / f"f{i:03}.txt").write_text(text)
                expected[f"burst{d:02}/f{i:03}.txt"] = text
        wait_until(lambda: all_captured(project, expected), "all 5,000 burst files", 60)
    assert len(expected) == 5000


# --------------------------------------------------------------------------- nothing lost


def test_events_dropped_at_the_seam_are_recovered_by_the_overflow_rescan(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"a.txt": "a\n"})
    with running(project) as run:
        run.watcher.handler.tap = lambda event: False  # the observer loses everything from here on
        for i in range(20):
            (project.root / f"lost{i}.txt").write_text(f"{i}\n")
        (project.root / "a.txt").unlink()
        time.sleep(0.3)  # give lost events time to (not) arrive: nothing may be captured yet
        assert not has(project, "lost0.txt", "0\n")
        # The one signal watchdog gives for a kernel queue overflow is this log record.
        overflow = "Inotify queue overflowed; filesystem events were lost"
        logging.getLogger("watchdog.observers.inotify_c").warning(overflow)
        lost = {f"lost{i}.txt": f"{i}\n" for i in range(20)}
        wait_until(
            lambda: all_captured(project, lost) and has(project, "a.txt", None),
            "the rescan after the overflow",
            10,
        )
    warnings = events(project, "warning")
    assert any(w.details.get("what") == "inotify queue overflow" for w in warnings)


def test_real_kernel_queue_overflow_is_detected_and_recovered(tmp_path: Path) -> None:
    try:
        max_queued = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    except (OSError, ValueError):
        pytest.skip("inotify queue size unknown")
    # Each new file costs at least IN_CREATE + IN_CLOSE_WRITE: overflow the queue by a margin.
    count = max_queued // 2 + 1500
    if count > 20000:
        pytest.skip(f"max_queued_events={max_queued} is too large to overflow quickly")
    project = make_project(tmp_path / "p", {"a.txt": "a\n"})
    (project.root / "many").mkdir()
    with running(project, WatchOptions()) as run:
        reader = getattr(run.watcher.observer, "_inotify_fd", None)
        if reader is None:
            pytest.skip("not the inotify observer")
        # Holding the reader's lock stalls it (a stand-in for a busy process), so the kernel queue overflows.
        with reader._lock:
            for i in range(count):
                (project.root / "many" / f"f{i:05}.txt").write_text(f"{i}\n")
        expected = {f"many/f{i:05}.txt": f"{i}\n" for i in range(count)}
        wait_until(lambda: all_captured(project, expected), f"all {count} files after the overflow", 60)
    assert any(w.details.get("what") == "inotify queue overflow" for w in events(project, "warning"))


def test_handler_exception_restarts_observer_and_change_is_captured(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"a.txt": "a\n"})
    with running(project) as run:
        old_observer = run.watcher.observer

        def explode(event: FileSystemEvent) -> bool:
            run.watcher.handler.tap = None
            raise RuntimeError("injected handler bug")

        run.watcher.handler.tap = explode
        written = time.monotonic()
        (project.root / "boom.txt").write_text("boom\n")
        wait_captured(project, "boom.txt", "boom\n", timeout=10)
        took = time.monotonic() - written
        assert run.watcher.observer is not old_observer
        assert run.watcher.observer is not None and run.watcher.observer.is_alive()
    assert took < 2.0, took
    errors = [e for e in events(project, "error") if e.details.get("where") == "event handler"]
    assert errors and "injected handler bug" in errors[0].details["error"]
    restarts = [e for e in events(project, "watcher") if e.details.get("action") == "restart"]
    assert restarts and "injected handler bug" in restarts[0].details["reason"]


def test_dead_observer_thread_is_detected_and_restarted(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"a.txt": "a\n"})
    with running(project) as run:
        observer = run.watcher.observer
        assert observer is not None
        observer.stop()  # behind the watcher's back, as an uncaught exception would
        observer.join(5)
        (project.root / "meanwhile.txt").write_text("m\n")
        wait_captured(project, "meanwhile.txt", "m\n", timeout=10)
        wait_until(lambda: run.watcher.observer is not observer, "a new observer")
        (project.root / "after.txt").write_text("after\n")
        wait_captured(project, "after.txt", "after\n")
    reasons = [e.details.get("reason") for e in events(project, "watcher") if e.details.get("action") == "restart"]
    assert "the observer thread died" in reasons or "no observer is running" in reasons


def test_dead_emitter_thread_is_detected_and_restarted(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"a.txt": "a\n"})
    with running(project) as run:
        observer = run.watcher.observer
        assert observer is not None
        emitter = next(iter(observer.emitters))
        emitter.stop()
        emitter.join(5)
        wait_until(lambda: run.watcher.observer is not observer, "a new observer")
        (project.root / "after.txt").write_text("after\n")
        wait_captured(project, "after.txt", "after\n")
    reasons = [e.details.get("reason") for e in events(project, "watcher") if e.details.get("action") == "restart"]
    assert "an emitter thread died" in reasons


def test_directory_that_lost_its_watch_is_noticed_and_the_observer_rebuilt(tmp_path: Path) -> None:
    import ctypes

    project = make_project(tmp_path / "p", {"sub/a.txt": "a\n"}, interval="1s")
    with running(project) as run:
        reader = getattr(run.watcher.observer, "_inotify_fd", None)
        if reader is None:
            pytest.skip("not the inotify observer")
        libc = ctypes.CDLL(None, use_errno=True)
        in_mask_add = 0x20000000  # with an empty mask: just tell us the existing watch descriptor
        wd = libc.inotify_add_watch(reader._inotify_fd, os.fsencode(str(project.root / "sub")), in_mask_add)
        assert wd > 0
        # Drop the kernel watch behind watchdog's back: events in sub/ stop arriving.
        assert libc.inotify_rm_watch(reader._inotify_fd, wd) == 0
        wait_until(
            lambda: any(
                "directories without a watch" in str(e.details.get("reason"))
                for e in events(project, "watcher")
                if e.details.get("action") == "restart"
            ),
            "the periodic coverage check to rebuild the observer",
        )
        (project.root / "sub" / "a.txt").write_text("watched again\n")
        wait_captured(project, "sub/a.txt", "watched again\n")
    assert not any(e.details.get("what") == "polling fallback" for e in events(project, "warning"))


def test_periodic_rescan_recovers_lost_events_and_runs_the_guardrail(
    tmp_path: Path, guardrail_calls: list[dict[str, Any]]
) -> None:
    project = make_project(tmp_path / "p", {"a.txt": "a\n"}, interval="1s")
    with running(project) as run:
        run.watcher.handler.tap = lambda event: False
        (project.root / "quiet.txt").write_text("q\n")
        wait_captured(project, "quiet.txt", "q\n", timeout=10)
        wait_until(lambda: any(c["paths"] is None for c in guardrail_calls), "the periodic guardrail")
    assert {"paths": None, "repair": False, "trigger": "watch"} in guardrail_calls


def test_guardrail_runs_when_a_protected_file_is_deleted_or_broken(
    tmp_path: Path, guardrail_calls: list[dict[str, Any]]
) -> None:
    project = make_project(tmp_path / "p", {"keep/proc.py": "print('ok')\n", "keep/conf.json": "{}\n", "a.txt": "a\n"})
    with running(project):
        (project.root / "a.txt").write_text("unprotected change\n")
        wait_captured(project, "a.txt", "unprotected change\n")
        assert guardrail_calls == []
        (project.root / "keep" / "proc.py").unlink()
        wait_until(lambda: bool(guardrail_calls), "the guardrail after a protected delete")
        assert guardrail_calls[0] == {"paths": ["keep/proc.py"], "repair": False, "trigger": "watch"}
        (project.root / "keep" / "conf.json").write_text("{not json\n")
        wait_until(lambda: len(guardrail_calls) >= 2, "the guardrail after a protected file turned invalid")
        assert guardrail_calls[1]["paths"] == ["keep/conf.json"]


def test_guardrail_failure_is_logged_and_capture_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("guardian.gates.guardrail")

    def run_guardrail(
        project: Project, paths: list[str] | None = None, repair: bool = False, trigger: str = ""
    ) -> None:
        raise RuntimeError("guardrail exploded")

    module.run_guardrail = run_guardrail  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "guardian.gates.guardrail", module)
    project = make_project(tmp_path / "p", {"keep/x.txt": "x\n"})
    with running(project):
        (project.root / "keep" / "x.txt").unlink()
        wait_until(
            lambda: any(e.details.get("where") == "guardrail" for e in events(project, "error")), "the error event"
        )
        (project.root / "later.txt").write_text("later\n")
        wait_captured(project, "later.txt", "later\n")
    error = next(e for e in events(project, "error") if e.details.get("where") == "guardrail")
    assert "guardrail exploded" in error.details["error"]
    assert error.paths == ["keep/x.txt"]


def test_missing_guardrail_module_is_tolerated(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"keep/x.txt": "x\n"})
    with running(project) as run:
        (project.root / "keep" / "x.txt").unlink()
        # keep/'s rule (delete: force) has the enforcer put the file back right after the delete's
        # capture, so the newest snapshot shows the delete for a few milliseconds only: a poll of
        # the newest snapshot on a loaded machine can miss it.  Look in what the watcher captured.
        wait_until(lambda: captured_change(run, "keep/x.txt", "delete"), "the delete of keep/x.txt captured")
        # The guardrail was skipped, not fatal: the loop goes on capturing.
        (project.root / "later.txt").write_text("later\n")
        wait_captured(project, "later.txt", "later\n")
    assert events(project, "error") == []


def test_forced_polling_fallback_captures_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUARDIAN_FORCE_POLLING", "1")
    monkeypatch.setenv("GUARDIAN_POLL_INTERVAL", "0.1")
    monkeypatch.setenv("GUARDIAN_WATCH_QUIET", "0.05")
    options = WatchOptions.from_env()
    assert options.force_polling and options.poll_interval == 0.1 and options.quiet == 0.05
    project = make_project(tmp_path / "p", {"a.txt": "a\n", "b.txt": "b\n"})
    root = project.root
    with running(project, options) as run:
        assert run.watcher.mode == "polling"
        (root / "new.txt").write_text("new\n")
        wait_captured(project, "new.txt", "new\n")
        (root / "a.txt").write_text("a, but longer now\n")
        wait_captured(project, "a.txt", "a, but longer now\n")
        os.rename(root / "b.txt", root / "c.txt")
        wait_until(lambda: has(project, "b.txt", None) and has(project, "c.txt", "b\n"), "the rename")
        (root / "d").mkdir()
        (root / "d" / "e.txt").write_text("e\n")
        wait_captured(project, "d/e.txt", "e\n")
    assert json.loads(project.paths.heartbeat.read_text())["mode"] == "polling"
    warning = next(e for e in events(project, "warning") if e.details.get("what") == "polling fallback")
    assert "GUARDIAN_FORCE_POLLING" in warning.details["reason"]
    assert any(e.details.get("action") == "fallback" for e in events(project, "watcher"))


def test_polling_lists_only_what_could_be_captured(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"a.txt": "a\n", "x.log": "l\n", "node_modules/m.js": "m\n"})
    watcher = Watcher(project, FAST)
    names = sorted(e.name for e in watcher.observation.poll_listdir(str(project.root)))
    assert names == ["a.txt", "guardian.yaml"]


# --------------------------------------------------------------------------- store health


def test_stale_git_lock_from_a_killed_writer_is_cleared_at_start(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"a.txt": "a\n"})
    stale = project.paths.repo / "refs" / "heads" / "snapshots.lock"
    stale.write_text("0" * 40 + "\n")
    with running(project):
        assert not stale.exists()
        (project.root / "a.txt").write_text("after the crash\n")
        wait_captured(project, "a.txt", "after the crash\n")
    assert events(project, "repair")


def test_stale_ref_lock_appearing_while_running_is_cleared_and_the_batch_retried(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"a.txt": "a\n"})
    with running(project):
        (project.paths.repo / "refs" / "heads" / "snapshots.lock").write_text("junk\n")
        (project.root / "a.txt").write_text("still captured\n")
        wait_captured(project, "a.txt", "still captured\n")
    assert any(
        any(p.endswith("snapshots.lock") for p in e.details.get("cleared_locks", [])) for e in events(project, "repair")
    )


def test_failed_snapshots_are_logged_and_retried_with_backoff(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = make_project(tmp_path / "p", {"a.txt": "a\n"})
    (project.root / "offline.txt").write_text("made while no watcher ran\n")
    calls: list[float] = []
    real_run = snapshot_module.Capture.run

    def flaky(self: Any, paths: Any, trigger: str, **kwargs: Any) -> SnapshotResult:
        calls.append(time.monotonic())
        if len(calls) <= 2:
            raise OSError(28, "No space left on device")
        return real_run(self, paths, trigger, **kwargs)

    monkeypatch.setattr(snapshot_module.Capture, "run", flaky)
    with running(project):
        (project.root / "a.txt").write_text("after the disk filled up\n")
        wait_captured(project, "offline.txt", "made while no watcher ran\n", timeout=20)
        wait_captured(project, "a.txt", "after the disk filled up\n", timeout=20)
    failures = [e for e in events(project, "error") if e.details.get("where") == "snapshot"]
    assert len(failures) == 2 and "No space left on device" in failures[0].details["error"]
    assert failures[0].details["reason"] == "rescan: start"
    # Backing off: 1 s, then 2 s between attempts, not a busy retry loop.
    assert calls[1] - calls[0] >= 0.9 and calls[2] - calls[1] >= 1.9


def test_snapshots_by_others_are_picked_up(tmp_path: Path) -> None:
    from guardian.ops.snapshot import take_snapshot

    project = make_project(tmp_path / "p", {"a.txt": "a\n"})
    with running(project):
        (project.root / "a.txt").write_text("one\n")
        wait_captured(project, "a.txt", "one\n")
        (project.root / "b.txt").write_text("manual\n")
        take_snapshot(project, ["b.txt"], "manual")  # another writer moves the ref under the watcher
        (project.root / "a.txt").write_text("two\n")
        wait_captured(project, "a.txt", "two\n")
    assert has(project, "b.txt", "manual\n")
    assert events(project, "error") == []


def test_heartbeat_matches_what_status_reads(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"a.txt": "a\n"})
    with running(project) as run:
        (project.root / "a.txt").write_text("b\n")
        wait_captured(project, "a.txt", "b\n")
        wait_until(
            lambda: json.loads(project.paths.heartbeat.read_text()).get("last_snapshot") is not None, "a heartbeat"
        )
        beat = json.loads(project.paths.heartbeat.read_text())
        state = watcher_state(project)
    assert {"ts", "pid", "pending", "mode", "last_snapshot"} <= beat.keys()
    assert beat["pid"] == os.getpid()
    assert beat["mode"] == "inotify" == state["mode"]
    assert state["pending"] == 0 and state["heartbeat_age"] < 5
    assert run.watcher.stats.snapshots >= 1
    assert json.loads(project.paths.heartbeat.read_text())["state"] == "stopped"


def test_policy_change_is_reloaded(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {"a.txt": "a\n", "old.tmp": "tracked until excluded\n"})
    policy = project.root / "guardian.yaml"
    assert "old.tmp" in tree(project)
    with running(project):
        policy.write_text(policy.read_text().replace('"scratch/"]', '"scratch/", "*.tmp"]'))
        # A changed watch setting gives up protection: it waits for 'guardian policy accept'.
        wait_until(lambda: any(e.details.get("action") == "policy pending" for e in events(project, "watcher")), "note")
        assert "old.tmp" in tree(project)
        assert run_cli("policy", "accept", cwd=project.root).exit_code == 0
        (project.root / "a.txt").write_text("a, after the accept\n")  # the next capture notices it
        wait_until(lambda: any(e.details.get("action") == "reload" for e in events(project, "watcher")), "reload")
        # The rescan after the reload drops what the new policy no longer captures, as a full scan would.
        wait_until(lambda: "old.tmp" not in tree(project), "old.tmp to leave the snapshot")
        (project.root / "x.tmp").write_text("now excluded\n")
        (project.root / "sentinel.txt").write_text("s\n")
        wait_captured(project, "sentinel.txt", "s\n")
        assert "x.tmp" not in tree(project)
        policy.write_text("version: [oops\n")
        wait_until(lambda: any(e.details.get("where") == "policy reload" for e in events(project, "error")), "error")
        (project.root / "still.txt").write_text("still watching\n")
        wait_captured(project, "still.txt", "still watching\n")


def test_gitignore_change_triggers_a_rescan(tmp_path: Path) -> None:
    project = make_project(tmp_path / "p", {".gitignore": "hidden.txt\n", "hidden.txt": "h\n"})
    assert "hidden.txt" not in tree(project)
    with running(project):
        (project.root / ".gitignore").write_text("# nothing ignored now\n")
        wait_captured(project, "hidden.txt", "h\n")


# --------------------------------------------------------------------------- units


def _handler(tmp_path: Path, store: Path | None = None) -> tuple[ChangeHandler, list[list[str]]]:
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    seen: list[list[str]] = []
    errors: list[BaseException] = []
    from guardian.config import WatchSettings

    handler = ChangeHandler(
        root,
        store or tmp_path / "store",
        PathFilter(root, WatchSettings(exclude=("*.log",))),
        seen.append,
        lambda exc, event: errors.append(exc),
    )
    return handler, seen


def test_handler_maps_moves_to_delete_plus_change_and_filters(tmp_path: Path) -> None:
    handler, seen = _handler(tmp_path)
    root = str(tmp_path / "root")
    handler.dispatch(FileMovedEvent(f"{root}/.conf.tmp123", f"{root}/conf.ini"))
    handler.dispatch(FileClosedEvent(f"{root}/a/b.txt"))
    handler.dispatch(FileCreatedEvent(f"{root}/debug.log"))
    handler.dispatch(FileCreatedEvent(f"{root}/.git/index"))
    handler.dispatch(FileCreatedEvent(f"{tmp_path}/elsewhere.txt"))
    handler.dispatch(DirMovedEvent(f"{root}/old", f"{root}/new"))
    handler.dispatch(DirDeletedEvent(f"{root}/node_modules"))
    handler.dispatch(FileCreatedEvent(os.fsencode(f"{root}/bytes.txt")))
    assert seen == [[".conf.tmp123", "conf.ini"], ["a/b.txt"], ["old", "new"], ["bytes.txt"]]


def test_handler_ignores_a_store_inside_the_root(tmp_path: Path) -> None:
    store = tmp_path / "root" / ".store"
    handler, seen = _handler(tmp_path, store)
    handler.dispatch(FileCreatedEvent(f"{store}/events.jsonl"))
    handler.dispatch(FileCreatedEvent(f"{store}"))
    handler.dispatch(FileCreatedEvent(f"{tmp_path}/root/.storefront.txt"))
    assert seen == [[".storefront.txt"]]


def test_handler_errors_go_to_on_error_not_the_observer_thread(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    from guardian.config import WatchSettings

    failures: list[str] = []
    handler = ChangeHandler(
        root,
        tmp_path / "s",
        PathFilter(root, WatchSettings()),
        lambda paths: None,
        lambda exc, event: failures.append(f"{exc}"),
    )

    def bad_tap(event: FileSystemEvent) -> bool:
        raise ValueError("bad")

    handler.tap = bad_tap
    handler.dispatch(FileCreatedEvent(f"{root}/x"))
    assert failures == ["bad"]


def test_watchdog_signals_classify_records() -> None:
    heard: list[tuple[str, str]] = []
    signals = WatchdogSignals(lambda kind, message: heard.append((kind, message)))
    logger = logging.getLogger("guardian.test.signals")
    logger.propagate = False
    logger.addHandler(signals)
    try:
        logger.warning("Inotify queue overflowed; filesystem events were lost")
        logger.error("Unable to rebuild recursive inotify watches below %r", "/x")
        logger.warning("something else")
        logger.info("chatter")
    finally:
        logger.removeHandler(signals)
    assert [k for k, _ in heard] == ["overflow", "observer-error"]


def test_watch_event_filter_excludes_opens_and_reads() -> None:
    names = {cls.__name__ for cls in WATCH_EVENTS}
    assert "FileOpenedEvent" not in names and "FileClosedNoWriteEvent" not in names
    assert "DirModifiedEvent" not in names and "FileAttribEvent" not in names
    assert {"FileMovedEvent", "FileClosedEvent", "DirCreatedEvent", "DirMovedEvent"} <= names


def test_watch_counting_helpers(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "c").mkdir()
    os.symlink(tmp_path / "a", tmp_path / "link")  # not followed, not counted
    assert count_watchable_dirs(tmp_path) == 4
    if Path("/proc/self/fdinfo").is_dir():
        count = inotify_watch_count()
        assert count is None or count >= 0


def test_inotify_limit_probe_is_false_with_room_to_spare(tmp_path: Path) -> None:
    if not Path("/proc/sys/fs/inotify").is_dir():
        pytest.skip("not Linux")
    assert inotify_limit_reached(tmp_path) is False


def test_options_from_env_ignore_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUARDIAN_WATCH_QUIET", "soon")
    monkeypatch.setenv("GUARDIAN_WATCH_MAX_DELAY", "-1")
    monkeypatch.setenv("GUARDIAN_FORCE_POLLING", "0")
    options = WatchOptions.from_env()
    assert options.quiet == 0.1 and options.max_delay == 1.0 and not options.force_polling
