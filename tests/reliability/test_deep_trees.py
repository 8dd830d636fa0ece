"""Deep trees and paths over PATH_MAX never stop capture nor kill the watcher (issue 13).

A chain of 1,200 directories exhausted Python's recursion limit in the snapshot tree
builder (``snapshot`` and ``init`` exited 70) and in watchdog's recursive walk (the
watcher exited).  Capture now walks no deeper than ``capture.walk.MAX_DEPTH`` levels and
notes the directory it stopped at; the watcher falls back to polling, which lists no
deeper either.  A path longer than PATH_MAX is a note on that path, with a short reason.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from guardian.capture.walk import MAX_DEPTH
from guardian.project import ProjectPaths
from tests.reliability.harness import guardian_argv, guardian_env, read_blob, record, tree_files

DEPTH = 1200


def rmtree_deep(path: Path) -> None:
    """shutil.rmtree without its recursion (one frame per level: it fails on these trees)."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    stack: list[tuple[int, str]] = [(os.open(path, flags), "")]
    while stack:
        fd, _name = stack[-1]
        below = None
        with os.scandir(fd) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    below = entry.name
                    break
                os.unlink(entry.name, dir_fd=fd)
        if below is not None:
            stack.append((os.open(below, flags, dir_fd=fd), below))
            continue
        stack.pop()
        os.close(fd)
        if stack:
            os.rmdir(_name, dir_fd=stack[-1][0])
        else:
            os.rmdir(path)


@pytest.fixture(autouse=True)
def _remove_deep_trees(tmp_path: Path) -> Iterator[None]:
    # pytest removes old temp dirs with shutil.rmtree, which would hit the recursion limit.
    yield
    for child in list(tmp_path.iterdir()):
        if child.is_dir() and not child.is_symlink():
            rmtree_deep(child)


def make_chain(base: Path, depth: int, name: str = "d", leaf: bytes | None = b"bottom\n") -> str:
    """depth nested directories under base (made through directory fds, so no path grows long); their path."""
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for level in range(depth):
            os.mkdir(name, dir_fd=fd)
            below = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = below
            if level == 199:
                out = os.open("f200.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
                os.write(out, b"at 200\n")
                os.close(out)
        if leaf is not None:
            out = os.open("leaf.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
            os.write(out, leaf)
            os.close(out)
    finally:
        os.close(fd)
    return "/".join([name] * depth)


def run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        guardian_argv(*args), cwd=root, env=guardian_env(), capture_output=True, text=True, timeout=300, check=False
    )


def test_a_directory_chain_1200_deep_is_captured_down_to_the_limit(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "guardian.yaml").write_text("version: 1\n")
    (root / "top.txt").write_text("top\n")
    make_chain(root, DEPTH)
    init = run(root, "init", "--json")
    assert init.returncode == 0, init.stderr[-2000:]
    paths = ProjectPaths.for_root(root.resolve())
    files = tree_files(paths)
    deep_file = "/".join(["d"] * 200) + "/f200.txt"
    assert read_blob(paths, files[deep_file.encode()][1]) == b"at 200\n"
    assert b"top.txt" in files
    stopped_at = "/".join(["d"] * (MAX_DEPTH + 1))  # files under MAX_DEPTH directories are still captured
    skipped = json.loads(init.stdout)["snapshot"]["skipped"]
    assert skipped == [{"path": stopped_at, "reason": f"more than {MAX_DEPTH} directory levels deep; not captured"}]

    (root / "top.txt").write_text("top 2\n")
    snap = run(root, "snapshot")
    assert snap.returncode == 0, snap.stderr[-2000:]
    status = json.loads(run(root, "status", "--json").stdout)
    assert status["capture"]["problems"][0]["path"] == stopped_at
    record("23", deep_tree_trials=1, deep_tree_exit_70=0)


def test_paths_over_path_max_are_a_note_on_that_path_not_a_failed_snapshot(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "guardian.yaml").write_text("version: 1\n")
    (root / "top.txt").write_text("top\n")
    name = "n" * 250
    make_chain(root, 20, name=name, leaf=b"far\n")  # about 5,000 bytes of path
    init = run(root, "init", "--json")
    assert init.returncode == 0, init.stderr[-2000:]
    assert len(init.stderr) < 2000
    skipped = json.loads(init.stdout)["snapshot"]["skipped"]
    assert len(skipped) == 1
    assert skipped[0]["reason"] == "cannot look at it: the path is longer than the system allows (PATH_MAX)"
    assert len(str(root / skipped[0]["path"])) > 4000
    assert b"top.txt" in tree_files(ProjectPaths.for_root(root.resolve()))
    record("23", path_max_trials=1, path_max_failed_snapshots=0)


def _wait_captured(paths: ProjectPaths, rel: str, content: bytes, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        entry = tree_files(paths).get(rel.encode())
        if entry is not None and read_blob(paths, entry[1]) == content:
            return True
        time.sleep(0.2)
    return False


@pytest.mark.timeout(300)
def test_the_watcher_survives_a_deep_tree_at_start_and_one_moved_in_later(
    tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    make_chain(outside, DEPTH)
    for deep_at_start in (True, False):
        root = tmp_path / f"p-{deep_at_start}"
        root.mkdir()
        (root / "guardian.yaml").write_text("version: 1\n")
        (root / "top.txt").write_text("top\n")
        if deep_at_start:
            make_chain(root, DEPTH)
        assert run(root, "init").returncode == 0
        paths = ProjectPaths.for_root(root.resolve())
        log = open(tmp_path / f"watch-{deep_at_start}.log", "wb")  # noqa: SIM115 - closed below
        watcher = subprocess.Popen(
            guardian_argv("watch"), cwd=root, env=guardian_env(GUARDIAN_POLL_INTERVAL="0.2"), stderr=log
        )
        procs.append(watcher)
        try:
            time.sleep(3)
            if not deep_at_start:
                (outside / "d").rename(root / "moved")  # inotify's walk of the moved-in tree recurses
                time.sleep(3)
            (root / "top.txt").write_text("after\n")
            captured = _wait_captured(paths, "top.txt", b"after\n", 60)
            alive = watcher.poll() is None
        finally:
            watcher.send_signal(signal.SIGTERM)
            watcher.wait(timeout=60)
            log.close()
        text = (tmp_path / f"watch-{deep_at_start}.log").read_text(errors="replace")
        record("23", deep_tree_watchers=1, deep_tree_watchers_died=int(not alive))
        assert alive, f"the watcher died: {text[-3000:]}"
        assert captured, f"the watcher stopped capturing: {text[-3000:]}"
        assert "the tree is too deep for" in text
        if not deep_at_start:  # the rescan after the fallback found what was moved in
            assert _wait_captured(paths, "moved/" + "/".join(["d"] * 199) + "/f200.txt", b"at 200\n", 5)
