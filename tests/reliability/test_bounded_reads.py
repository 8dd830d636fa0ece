"""Reads stop at watch.max_file_size, so memory stays flat whatever a file does while it is read (issue 13).

A real writer process grows the file the moment guardian opens it (it waits on an
inotify IN_OPEN watch), by appending data or by extending the file sparsely to 2 GB:
the size guardian saw when it looked was under the limit, the size it would read is
not.  guardian runs as a child of a small wrapper that reports the child's peak RSS
(``resource.getrusage(RUSAGE_CHILDREN)``), and the store is checked for any blob over
the limit.  The race (does the writer grow the file before guardian's read is done?)
is run a few times; the invariants must hold every time, and the growth must have been
caught at least once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from guardian.project import ProjectPaths
from tests.reliability.harness import init_project, record, store_git, trials

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the writer waits on inotify")

LIMIT = 32 * 1024 * 1024
START = 30 * 1024 * 1024  # under the limit, and long enough to read that the writer wins the race
RSS_BOUND_KB = 400 * 1024  # the interpreter, pygit2, one file at the limit and its copies; far under the growth

WRITER = r"""
import ctypes, os, sys, time
path, how, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
libc = ctypes.CDLL(None, use_errno=True)
ino = libc.inotify_init1(0)
if ino < 0 or libc.inotify_add_watch(ino, path.encode(), 0x20) < 0:  # IN_OPEN
    sys.exit("inotify: %d" % ctypes.get_errno())
print("ready", flush=True)
os.read(ino, 4096)  # guardian opened the file: it has already looked at its size
fd = os.open(path, os.O_WRONLY | os.O_APPEND)
size = os.fstat(fd).st_size
if how == "sparse":
    while size < total:
        size += 256 * 1024 * 1024
        os.ftruncate(fd, size)
else:
    chunk = b"y" * (4 * 1024 * 1024)
    while size < total:
        size += os.write(fd, chunk)
os.close(fd)
"""

RSS = r"""
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def _largest_blob(paths: ProjectPaths) -> int:
    out = store_git(paths, "cat-file", "--batch-all-objects", "--batch-check=%(objecttype) %(objectsize)")
    sizes = [int(line.split()[1]) for line in out.decode().splitlines() if line.startswith("blob ")]
    return max(sizes, default=0)


def _snapshot_with_peak_rss(root: Path) -> tuple[int, int]:
    argv = [sys.executable, "-c", RSS, sys.executable, "-m", "guardian", "snapshot"]
    out = subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=300, check=True).stdout.split()
    return int(out[0]), int(out[1])


@pytest.mark.timeout(900)
@pytest.mark.parametrize(("how", "total"), [("append", 600 * 1024 * 1024), ("sparse", 2 * 1024**3)])
def test_a_file_growing_while_it_is_read_is_skipped_with_flat_memory(tmp_path: Path, how: str, total: int) -> None:
    root = tmp_path / "p"
    paths = init_project(root, {"a.txt": b"a\n"}, policy=f"version: 1\nwatch:\n  max_file_size: {LIMIT}\n")
    caught = 0
    worst_kb = 0
    runs = trials(3, 10)
    for n in range(runs):
        big = root / f"grows-{n}.log"
        big.write_bytes(b"x" * START)
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(big), how, str(total)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
            code, peak_kb = _snapshot_with_peak_rss(root)
            assert writer.wait(timeout=120) == 0
        finally:
            writer.kill()
            writer.wait()
            if writer.stdout is not None:
                writer.stdout.close()
        worst_kb = max(worst_kb, peak_kb)
        assert code == 0
        assert peak_kb < RSS_BOUND_KB, f"peak RSS {peak_kb} KB reading a file capped at {LIMIT} bytes"
        assert _largest_blob(paths) <= LIMIT, "a blob over watch.max_file_size was stored"
        skips = subprocess.run(
            [sys.executable, "-m", "guardian", "events", "--kind", "skip"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        caught += f"grows-{n}.log" in skips and "while it was read" in skips
        big.unlink()
    record("21", growing_reads=runs, growing_reads_caught=caught, growing_read_rss_kb_max=worst_kb)
    assert caught >= 1, "the writer never grew the file during guardian's read: the race was not exercised"


def test_a_sparse_2gb_file_is_skipped_without_reading_it(tmp_path: Path) -> None:
    root = tmp_path / "p"
    init_project(root, {"a.txt": b"a\n"}, policy="version: 1\n")
    with open(root / "sparse.img", "wb") as handle:
        handle.truncate(2 * 1024**3)
    code, peak_kb = _snapshot_with_peak_rss(root)
    assert code == 0
    assert peak_kb < RSS_BOUND_KB
    record("21", sparse_reads=1, sparse_read_rss_kb_max=peak_kb)
    os.unlink(root / "sparse.img")
