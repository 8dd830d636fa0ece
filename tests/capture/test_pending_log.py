"""The secret-scan queue's append log (guardian.capture.pending_log), with real processes.

Appends from several processes at once all land, once each; a writer SIGKILLed in the middle
of an append loop leaves a queue that reads, with every append that returned; a queue in the
old format (``secrets-pending.json``, one JSON document) is read, adopted and drained once; and
the watcher's slices see every version exactly once while another process keeps appending.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from guardian.capture import pending_log, secret_record
from guardian.project import Project
from guardian.util.fs import atomic_write_file
from tests.capture.secret_corpus import TELEGRAM
from tests.conftest import run_cli
from tests.reliability.harness import trials
from tests.watch.test_watcher import events

REPO = str(Path(__file__).resolve().parents[2])


def _python(script: str, *args: str, **kwargs: Any) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": REPO}
    return subprocess.Popen([sys.executable, "-c", script, *args], env=env, **kwargs)


def _version(path: str, blob: str = "0" * 40, trigger: str = "hook", **extra: Any) -> dict[str, Any]:
    return {"path": path, "blob": blob, "snapshot": None, "ts": 1.5, "trigger": trigger, **extra}


def test_an_append_writes_only_its_own_lines_and_reads_back_in_order(tmp_path: Path) -> None:
    pending_log.append(tmp_path, [_version("a"), _version("b\nc")])  # a newline in a path stays in its line
    pending_log.append(tmp_path, [_version("d")])
    lines = pending_log.log_path(tmp_path).read_bytes().splitlines()
    assert len(lines) == 4 and json.loads(lines[0])["queue"] == "guardian secret scans pending"
    assert [v["path"] for v in pending_log.read(tmp_path).versions] == ["a", "b\nc", "d"]
    assert pending_log.log_path(tmp_path).stat().st_mode & 0o777 == 0o600


def test_a_torn_last_line_is_skipped_and_the_next_append_starts_a_line_of_its_own(tmp_path: Path) -> None:
    pending_log.append(tmp_path, [_version("a"), _version("b")])
    assert len(pending_log.read(tmp_path).versions) == 2  # this process remembers what it read
    whole = _line(_version("torn"))
    with open(pending_log.log_path(tmp_path), "ab") as handle:
        handle.write(whole[: len(whole) // 2])  # what a writer killed mid-write leaves
    assert [v["path"] for v in pending_log.read(tmp_path).versions] == ["a", "b"]
    pending_log.append(tmp_path, [_version("c")])
    for fresh in (False, True):  # read on from where this process stopped, and from the start
        if fresh:
            pending_log._seen = None
        assert [v["path"] for v in pending_log.read(tmp_path).versions] == ["a", "b", "c"]


def test_a_drain_copies_the_lines_it_keeps_as_they_are_and_reads_back_the_same_versions(tmp_path: Path) -> None:
    # The watcher saves its progress through a long queue by dropping the versions it scanned: the
    # rest is copied byte for byte, not encoded again (~1 s of CPU per save at 100,000 versions).
    pending_log.append(tmp_path, [_version("a"), _version("b")])
    path = pending_log.log_path(tmp_path)
    spaced = json.dumps(_version("c")).encode() + b"\n"  # not how guardian encodes: proves the copy
    torn = _line(_version("torn"))
    with open(path, "ab") as handle:
        handle.write(spaced + torn[: len(torn) // 2] + b"\n")  # a killed writer's bytes mid-file
    pending_log.append(tmp_path, [_version("d")])
    queue = pending_log.read(tmp_path)
    assert [v["path"] for v in queue.versions] == ["a", "b", "c", "d"]
    before = path.read_bytes()
    pending_log.replace_after(tmp_path, queue, 2, [_version("e")])
    after = path.read_bytes()
    header, _, rest = after.partition(b"\n")
    assert json.loads(header)["queue"] == "guardian secret scans pending"
    assert rest == before[before.index(spaced) :] + _line(_version("e"))  # c's line on, as it was
    assert path.stat().st_mode & 0o777 == 0o600
    for fresh in (False, True):  # what this process remembers, and a process reading it anew
        if fresh:
            pending_log._seen = None
        assert [v["path"] for v in pending_log.read(tmp_path).versions] == ["c", "d", "e"]
    # Drops go on from the rewritten file, with appends between them.
    pending_log.append(tmp_path, [_version("f")])
    queue = pending_log.read(tmp_path)
    pending_log.replace_after(tmp_path, queue, 2, [])
    assert path.read_bytes().partition(b"\n")[2] == _line(_version("e")) + _line(_version("f"))
    pending_log._seen = None
    assert [v["path"] for v in pending_log.read(tmp_path).versions] == ["e", "f"]
    queue = pending_log.read(tmp_path)
    pending_log.replace_after(tmp_path, queue, 2, [_version("g")])  # everything dropped: only the new one
    pending_log._seen = None
    assert [v["path"] for v in pending_log.read(tmp_path).versions] == ["g"]


def test_a_drain_writes_the_versions_when_the_file_is_not_the_one_it_read(tmp_path: Path) -> None:
    pending_log.append(tmp_path, [_version("a"), _version("b"), _version("c")])
    queue = pending_log.read(tmp_path)
    # Replaced behind this process's back (another process's drain): its lines are not copied.
    atomic_write_file(pending_log.log_path(tmp_path), b'{"queue":"guardian secret scans pending","id":"x"}\n')
    pending_log.replace_after(tmp_path, queue, 1, [_version("d")])
    pending_log._seen = None
    assert [v["path"] for v in pending_log.read(tmp_path).versions] == ["b", "c", "d"]
    # An old-format file read with the log has no lines to copy from: the versions are written.
    pending_log.legacy_path(tmp_path).write_text(json.dumps({"versions": [_version("old")]}))
    queue = pending_log.read(tmp_path)
    assert queue.identity is None and [v["path"] for v in queue.versions] == ["old", "b", "c", "d"]
    pending_log.replace_after(tmp_path, queue, 2, [])
    assert not pending_log.legacy_path(tmp_path).exists()
    pending_log._seen = None
    assert [v["path"] for v in pending_log.read(tmp_path).versions] == ["c", "d"]


def test_a_link_left_by_an_adoption_cut_short_is_read_once_and_cleared(tmp_path: Path) -> None:
    pending_log.append(tmp_path, [_version("a")])
    os.link(pending_log.log_path(tmp_path), pending_log.legacy_path(tmp_path))  # killed between link and unlink
    assert [v["path"] for v in pending_log.read(tmp_path).versions] == ["a"]
    pending_log.adopt_legacy(tmp_path)
    assert not pending_log.legacy_path(tmp_path).exists()
    assert [v["path"] for v in pending_log.read(tmp_path).versions] == ["a"]


def _line(version: dict[str, Any]) -> bytes:
    return json.dumps(version, separators=(",", ":")).encode() + b"\n"


_APPENDER = """
import sys, time
from pathlib import Path
from guardian.capture import pending_log
store, name, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
go = store.parent / "go"
while not go.exists():
    time.sleep(0.001)
for i in range(count):
    pending_log.append(store, [{"path": f"{name}/{i}/{k}", "blob": "0" * 40, "pad": "x" * 300} for k in range(3)])
"""


def test_appends_from_several_processes_land_whole_and_once(tmp_path: Path) -> None:
    """No lock at all here (the captures hold the store's): one write(2) per append keeps lines whole."""
    store = tmp_path / "store"
    store.mkdir()
    writers = [_python(_APPENDER, str(store), f"w{n}", "60") for n in range(4)]
    (tmp_path / "go").touch()  # all start appending at once, onto a file none of them made yet
    for proc in writers:
        assert proc.wait(timeout=60) == 0
    paths = [v["path"] for v in pending_log.read(store).versions]
    assert len(paths) == len(set(paths)) == 4 * 60 * 3
    for n in range(4):  # each writer's versions in its own order
        mine = [p for p in paths if p.startswith(f"w{n}/")]
        assert mine == [f"w{n}/{i}/{k}" for i in range(60) for k in range(3)]


_KILLED_APPENDER = """
import os, sys
from pathlib import Path
from guardian.capture import pending_log
store, size = Path(sys.argv[1]), int(sys.argv[2])
batch = 0
while True:
    pending_log.append(store, [{"path": f"{batch}/{k}", "blob": "0" * 40, "pad": "x" * 200} for k in range(size)])
    os.write(1, f"{batch}\\n".encode())  # only once the append returned
    batch += 1
"""


def test_a_writer_killed_mid_append_loop_leaves_a_readable_queue_with_every_completed_append(tmp_path: Path) -> None:
    """Even trials: SIGKILL at a random moment.  Odd trials: a file size limit (RLIMIT_FSIZE) makes the
    kernel cut one append short, as a crash inside its write(2) would, and the writer dies there.
    """
    size = 300  # ~80 KB a write
    rng = random.Random(7)
    runs, torn = trials(20, 200), 0
    for trial in range(runs):
        store = tmp_path / f"s{trial}"
        store.mkdir()
        limit = rng.randint(1_000, 300_000) if trial % 2 else None
        proc = _python(
            _KILLED_APPENDER,
            str(store),
            str(size),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            preexec_fn=_fsize(limit),
        )
        assert proc.stdout is not None
        reported: list[bytes] = []
        if limit is None:
            for _ in range(rng.randint(1, 4)):
                reported.append(proc.stdout.readline())
                assert reported[-1], "the appender died on its own"
            time.sleep(rng.random() * 0.004)
            proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) != 0
        completed = {int(line) for line in [*reported, *proc.stdout.read().split()]}
        proc.stdout.close()
        torn += not pending_log.log_path(store).read_bytes().endswith(b"\n")
        pending_log._seen = None  # read as a new process would
        _check_batches(pending_log.read(store).versions, completed, size)
        pending_log.append(store, [_version("after")])  # the queue takes appends again
        versions = pending_log.read(store).versions
        assert versions[-1]["path"] == "after"
        _check_batches(versions[:-1], completed, size)
    assert torn >= runs // 2 - 1  # the size limit does cut appends short (one may end on a line's end)
    print(f"{torn} of {runs} dead writers left a torn last line")


def _fsize(limit: int | None) -> Callable[[], None] | None:
    if limit is None:
        return None

    def limit_file_size() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return limit_file_size


def _check_batches(versions: list[dict[str, Any]], completed: set[int], size: int) -> None:
    """Every completed batch whole and in order; at most the batch in flight after them, maybe cut short."""
    paths = [v["path"] for v in versions]
    assert len(paths) == len(set(paths)), "a version was read twice"
    by_batch: dict[int, list[int]] = {}
    for path in paths:
        batch, k = path.split("/")
        by_batch.setdefault(int(batch), []).append(int(k))
    last = max(completed, default=-1)
    for batch in completed:
        assert by_batch.get(batch) == list(range(size)), f"completed batch {batch} is not whole"
    extra = set(by_batch) - completed
    assert extra <= {last + 1}, f"batches never started: {extra}"
    for batch in extra:
        assert by_batch[batch] == list(range(len(by_batch[batch])))  # the batch in flight: a prefix


def _init(root: Path, plain: int = 3) -> Project:
    root.mkdir()
    for i in range(plain):
        (root / f"f{i}.py").write_text(f"VALUE_{i} = {i}\n")
    (root / "bot.py").write_text(f'TOKEN = "{TELEGRAM}"\n')
    r = run_cli("init", "--no-hooks", cwd=root)
    assert r.exit_code == 0, r.stderr
    return Project.find(root)


def _as_old_format(store: Path) -> list[dict[str, Any]]:
    """Turn the queue into what guardian wrote before the log: one document, replaced whole."""
    versions = pending_log.read(store).versions
    pending_log.log_path(store).unlink()
    payload = json.dumps({"versions": versions}, separators=(",", ":")) + "\n"
    atomic_write_file(pending_log.legacy_path(store), payload.encode())
    return versions


def test_a_queue_in_the_old_format_is_read_adopted_and_drained_once(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    proj = _init(root)
    store = proj.paths.store
    first = proj.open_repo().head() or ""
    old = _as_old_format(store)
    assert secret_record.pending_scans(store) == len(old) >= 4
    assert "wait for the secret scan" in run_cli("status", cwd=root).stdout

    (root / "bot.py").write_text(f'TOKEN = "{TELEGRAM}"  # again\n')
    r = run_cli("restore", "bot.py", "--at", first, cwd=root)  # a capture that only queues: it appends
    assert r.exit_code == 0, r.stderr
    assert not pending_log.legacy_path(store).exists() and pending_log.log_path(store).exists()
    queued = pending_log.read(store).versions
    assert queued[: len(old)] == old and [v["trigger"] for v in queued[len(old) :]] == ["pre-restore", "restore"]

    assert run_cli("snapshot", cwd=root).exit_code == 0  # scans the whole queue at once
    found = [(e.paths[0], e.trigger) for e in events(proj, "secret")]
    assert found == [("bot.py", "init"), ("bot.py", "pre-restore"), ("bot.py", "restore")]
    assert not pending_log.waiting(store) and secret_record.pending_scans(store) == 0


def test_an_old_queue_next_to_a_log_is_read_with_it_and_drained_once(tmp_path: Path) -> None:
    """Both files (an older guardian queued after a newer one): the watcher's slices take both, once each."""
    proj = _init(tmp_path / "proj")
    store = proj.paths.store
    old = _as_old_format(store)
    secret_blob = next(v["blob"] for v in old if v["path"] == "bot.py")
    aside = tmp_path / "old-queue"
    pending_log.legacy_path(store).rename(aside)
    pending_log.append(store, [_version("later.py", secret_blob, trigger="restore")])
    aside.rename(pending_log.legacy_path(store))  # the older guardian's queue, written after the log
    assert pending_log.log_path(store).exists() and pending_log.legacy_path(store).exists()
    assert secret_record.pending_scans(store) == len(old) + 1
    from guardian.capture import secrets

    secrets._Detector.instance()  # as in a watcher whose warm-up thread is done
    repo = proj.open_repo()
    found: list[tuple[str, str | None]] = []
    for left in range(len(old), -1, -1):
        with proj.writer_lock():
            found += [(e.paths[0], e.trigger) for e in secret_record.scan_queued(proj, repo, budget=0.0)]
        assert secret_record.pending_scans(store) == left
    assert found == [("bot.py", "init"), ("later.py", "restore")]
    assert not pending_log.waiting(store)


_LOCKED_APPENDER = """
import sys, time
from pathlib import Path
from guardian.capture.secret_record import queue_versions
from guardian.project import Project
project = Project.find(Path(sys.argv[1]))
secret, clean, count = sys.argv[2], sys.argv[3], int(sys.argv[4])
for i in range(count):
    blob = secret if i % 5 == 0 else clean
    version = {"path": f"c/{i}.py", "blob": blob, "snapshot": None, "ts": time.time(), "trigger": "hook"}
    with project.writer_lock():  # as every capture that queues: inside its write session
        queue_versions(project.paths.store, [version])
    time.sleep(0.002)
"""


def test_the_watchers_slices_see_every_version_once_while_another_process_appends(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "proj"
    proj = _init(root)
    store = proj.paths.store
    initial = pending_log.read(store).versions
    secret = next(v["blob"] for v in initial if v["path"] == "bot.py")
    clean = next(v["blob"] for v in initial if v["path"] == "f0.py")
    from guardian.capture import secrets

    secrets._Detector.instance()
    repo = proj.open_repo()
    count = 200
    caplog.set_level(logging.DEBUG, logger="guardian.capture.secret_record")
    writer = _python(_LOCKED_APPENDER, str(root), secret, clean, str(count))
    found: list[str] = []
    deadline = time.monotonic() + 90
    while writer.poll() is None or secret_record.pending_scans(store):
        assert time.monotonic() < deadline, "the queue was not drained"
        with proj.writer_lock():
            budget = random.choice([0.0, 0.0, 0.01])  # one version a slice, or a few
            found += [e.paths[0] for e in secret_record.scan_queued(proj, repo, budget=budget)]
    assert writer.returncode == 0
    appended_secrets = [f"c/{i}.py" for i in range(0, count, 5)]
    assert Counter(found) == Counter(["bot.py", *appended_secrets])  # each secret reported once
    scanned = sum(int(m.group(1)) for r in caplog.records if (m := re.match(r"scanned (\d+) version", r.getMessage())))
    assert scanned == len(initial) + count  # and every version scanned once: none skipped, none again
    assert not pending_log.waiting(store)
