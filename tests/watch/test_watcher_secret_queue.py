"""Short commands queue their secret scan; the watcher (a slice at a time) or ``guardian snapshot`` drains it.

``guardian init`` and ``guardian restore`` never load detect-secrets: their versions wait in
``secrets-pending.jsonl``.  No secret may be lost on the way: a real watcher process reports
what init queued, oldest first, and a manual snapshot scans the whole queue at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from guardian.capture import pending_log, secret_record
from guardian.capture.secret_record import read_index
from guardian.project import Project
from tests.capture.secret_corpus import TELEGRAM
from tests.conftest import run_cli
from tests.watch.test_daemon import finish, procs, spawn_watch, wait_watching  # noqa: F401 - procs is a fixture
from tests.watch.test_watcher import events, wait_until

QUEUED = "queued for the watcher (or 'guardian snapshot')"


def _tree_with_a_secret(root: Path, plain: int) -> None:
    """plain harmless files, then (last in path order, so last in the queue) one holding a token."""
    for i in range(plain):
        (root / "src" / f"m{i // 50}").mkdir(parents=True, exist_ok=True)
        (root / "src" / f"m{i // 50}" / f"f{i}.py").write_text(f"VALUE_{i} = {i}\n")
    (root / "zz").mkdir()
    (root / "zz" / "bot.py").write_text(f'TOKEN = "{TELEGRAM}"\n')


def _init(root: Path) -> Project:
    r = run_cli("init", "--no-hooks", cwd=root)
    assert r.exit_code == 0, r.stderr
    assert [line for line in r.stdout.splitlines() if QUEUED in line] == [
        f"secret scan of {secret_record.pending_scans(Project.find(root).paths.store)} file(s) {QUEUED}"
    ]
    assert r.stderr == ""  # a clean init has nothing to warn about
    return Project.find(root)


def test_init_queues_the_scan_and_a_real_watcher_reports_the_secret(
    tmp_path: Path,
    procs: list[subprocess.Popen[str]],  # noqa: F811 - the fixture
) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    _tree_with_a_secret(root, 400)
    proj = _init(root)
    head = proj.open_repo().head()
    assert secret_record.pending_scans(proj.paths.store) >= 401
    assert not events(proj, "secret")
    status = run_cli("status", cwd=root)
    assert "wait for the secret scan: the watcher scans them, or 'guardian snapshot'" in status.stdout

    proc = spawn_watch(proj)
    procs.append(proc)
    wait_watching(proj, proc)
    wait_until(lambda: bool(events(proj, "secret")), "the watcher to report the queued secret", 60)
    [found] = events(proj, "secret")
    assert found.paths == ["zz/bot.py"] and found.snapshot == head and found.trigger == "init"
    assert found.details["kinds"] == ["Telegram Bot Token"]
    assert secret_record.pending_scans(proj.paths.store) == 0
    code, err = finish(proc)
    assert code == 0, err
    data = json.loads(run_cli("status", "--json", cwd=root).stdout)
    assert data["secrets"] == [{"path": "zz/bot.py", "kinds": ["Telegram Bot Token"], "versions": 1}]


def test_a_manual_snapshot_scans_everything_init_queued(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    _tree_with_a_secret(root, 30)
    proj = _init(root)
    head = proj.open_repo().head()
    r = run_cli("snapshot", cwd=root)  # nothing changed since init: the queue is scanned all the same
    assert r.exit_code == 0, r.stderr
    [found] = events(proj, "secret")
    assert found.paths == ["zz/bot.py"] and found.snapshot == head and found.trigger == "init"
    assert secret_record.pending_scans(proj.paths.store) == 0
    assert "zz/bot.py" in read_index(proj.paths.store)
    assert "wait for the secret scan" not in run_cli("status", cwd=root).stdout


def test_the_watchers_slices_take_the_queue_oldest_first_and_lose_nothing(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    _tree_with_a_secret(root, 3)
    proj = _init(root)
    (root / "zz" / "bot.py").write_text(f'TOKEN = "{TELEGRAM}"  # again\n')
    r = run_cli("restore", "zz/bot.py", "--at", proj.open_repo().head() or "", cwd=root)
    assert r.exit_code == 0, r.stderr
    queue = pending_log.read(proj.paths.store).versions
    waiting = len(queue)
    # init's versions, then the restore's captures (the edited file, then what it brought back): none scanned yet.
    assert [v["trigger"] for v in queue][-2:] == ["pre-restore", "restore"] and not events(proj, "secret")
    from guardian.capture import secrets

    secrets._Detector.instance()  # as in a watcher whose warm-up thread is done
    repo = proj.open_repo()
    found: list[tuple[str, str | None]] = []
    for left in range(waiting - 1, -1, -1):
        # A zero budget still scans one version per slice: the oldest.
        found.extend((e.paths[0], e.trigger) for e in secret_record.scan_queued(proj, repo, budget=0.0))
        assert secret_record.pending_scans(proj.paths.store) == left
    assert found == [("zz/bot.py", "init"), ("zz/bot.py", "pre-restore"), ("zz/bot.py", "restore")]
    assert secret_record.scan_queued(proj, repo) == []


def test_clean_slices_leave_the_queue_file_alone_and_a_crash_loses_nothing(tmp_path: Path) -> None:
    """Rewriting a long queue after every 50 ms slice cost more than scanning it: clean slices are remembered."""
    root = tmp_path / "proj"
    root.mkdir()
    _tree_with_a_secret(root, 6)
    proj = _init(root)
    pending = proj.paths.store / secret_record.PENDING_NAME
    waiting = secret_record.pending_scans(proj.paths.store)
    from guardian.capture import secrets

    secrets._Detector.instance()
    repo = proj.open_repo()
    secret_record._Drained.rewritten = time.monotonic()  # a rewrite just happened
    before = pending.stat()
    assert secret_record.scan_queued(proj, repo, budget=0.0) == []  # one clean version per slice
    assert secret_record.scan_queued(proj, repo, budget=0.0) == []
    after = pending.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # the file was not rewritten
    assert secret_record.pending_scans(proj.paths.store) == waiting - 2  # but this process knows

    secret_record._Drained.forget()  # a crash: what was only remembered is scanned again
    assert secret_record.pending_scans(proj.paths.store) == waiting
    found = secret_record.scan_queued(proj, repo)  # no budget left out: the rest in one go
    while secret_record.pending_scans(proj.paths.store):
        found += secret_record.scan_queued(proj, repo)
    assert [(e.paths[0], e.trigger) for e in found] == [("zz/bot.py", "init")]
    assert not pending.exists()


def test_init_and_restore_never_import_detect_secrets(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    _tree_with_a_secret(root, 3)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}

    def imports(*args: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "guardian", *args],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stderr

    assert "detect_secrets" not in imports("init", "--no-hooks")
    proj = Project.find(root)
    first = proj.open_repo().head() or ""
    (root / "src" / "m0" / "f0.py").write_text("VALUE_0 = 'changed'\n")
    assert "detect_secrets" not in imports("restore", "src/m0/f0.py", "--at", first)
    assert (root / "src" / "m0" / "f0.py").read_text() == "VALUE_0 = 0\n"
    assert "detect_secrets" in imports("snapshot")  # the explicit snapshot scans, and drains the queue
    assert secret_record.pending_scans(proj.paths.store) == 0


def test_versions_leave_the_queue_only_once_their_secrets_are_recorded(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    _tree_with_a_secret(root, 3)
    proj = _init(root)
    waiting = secret_record.pending_scans(proj.paths.store)
    record = secret_record.index_path(proj.paths.store)
    record.mkdir()  # the record cannot be replaced: a real write failure
    assert run_cli("snapshot", cwd=root).exit_code == 0
    assert secret_record.pending_scans(proj.paths.store) == waiting  # scanned, kept: nothing lost
    record.rmdir()
    assert run_cli("snapshot", cwd=root).exit_code == 0
    assert secret_record.pending_scans(proj.paths.store) == 0
    assert list(read_index(proj.paths.store)) == ["zz/bot.py"]


def test_a_capture_asking_for_the_scanner_while_it_loads_does_not_wait_for_the_load() -> None:
    # Each watcher capture calls warm_up() until detect-secrets is loaded, holding the writer lock:
    # a call made while the warm-up thread imports must return at once, the library still loading.
    # A fresh process, since a test process has loaded the library long ago.
    script = (
        "import sys, time\n"
        "from guardian.capture.secrets import detector_ready, warm_up\n"
        "warm_up()\n"
        "while 'detect_secrets' not in sys.modules:  # the warm-up thread is importing it now\n"
        "    time.sleep(0.001)\n"
        "warm_up()  # what a watcher capture does meanwhile\n"
        "print('loaded' if detector_ready() else 'still loading')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "still loading", "the second warm_up() waited for the whole load"


def test_the_queue_waits_for_the_watchers_start_rescan(tmp_path: Path) -> None:
    """What changed while no watcher ran is caught up first: the queue's scan (a library load of
    ~0.3 s, then slices that take half the interpreter) starts only once the watcher allows it."""
    from guardian.capture.filters import PathFilter
    from guardian.watch.store_session import QUEUE_IDLE_PAUSE, StoreSession

    root = tmp_path / "proj"
    root.mkdir()
    _tree_with_a_secret(root, 3)
    proj = _init(root)
    queue = pending_log.log_path(proj.paths.store)
    before = (queue.stat().st_ino, queue.read_bytes())
    caught_up = threading.Event()
    session = StoreSession(
        proj, PathFilter(proj.root, proj.policy.watch, proj.policy.protect_rules), lambda _r, _s: None, caught_up
    )
    session.open()
    try:
        time.sleep(QUEUE_IDLE_PAUSE * 2.5)  # the scanner's first look, and more, have passed
        assert (queue.stat().st_ino, queue.read_bytes()) == before and not events(proj, "secret")
        caught_up.set()  # what the watcher does once its start rescan is done
        wait_until(lambda: not pending_log.waiting(proj.paths.store), "the queue to be drained", 60)
    finally:
        session.close()
    [found] = events(proj, "secret")
    assert found.paths == ["zz/bot.py"] and found.trigger == "init"
