#!/usr/bin/env python3
"""Benchmark the store lifecycle: size after many edits, gc, capture stalls during gc, push.

Measures, in one run:
  1. store size after N single-file edits (one snapshot each, the watcher's capture path,
     fsync on), packed by `guardian gc`, against `git gc --aggressive --prune=now` of a copy
     of the same repository (goal: guardian <= 2x);
  2. gc time: packing that history (nothing old enough to drop), and a thinning gc of the
     same history pretended 30 days older (retention defaults);
  3. the longest capture stall while gc runs: a capture every 20 ms on another thread, as
     the watcher's maintenance thread does it (the same process, so GIL contention included);
  4. push time: the whole history to a bare repo on disk, then 1,000 new snapshots, to a
     bare repo on disk and to `git daemon` on 127.0.0.1.

Usage: .venv/bin/python scripts/bench_store.py [--edits 10000] [--push-edits 1000] [--files 100]
Prints a Markdown table and the machine it ran on.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))


def du(path: Path) -> int:
    """Logical bytes of every file under path (what a pack or a loose object holds)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def make_tree(root: Path, count: int, rnd: random.Random) -> list[str]:
    rels = []
    for i in range(count):
        rel = f"pkg{i % 7}/mod{i % 13}/file{i}.py"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        body = "".join(f"def f{i}_{j}(x):\n    return x * {rnd.randrange(1000)} + {j}\n\n" for j in range(60))
        path.write_text(body)
        rels.append(rel)
    return rels


def edit(path: Path, rnd: random.Random, n: int) -> None:
    """One realistic edit: change a line, sometimes add one."""
    lines = path.read_text().splitlines(keepends=True)
    i = rnd.randrange(len(lines))
    lines[i] = f"    return x * {rnd.randrange(10**6)} + {n}  # edit {n}\n"
    if rnd.random() < 0.3:
        lines.insert(i, f"    # note {n}\n")
    path.write_text("".join(lines))


def capture_edits(project: object, root: Path, rels: list[str], count: int, rnd: random.Random, start: int) -> float:
    """count single-file edits, one snapshot each; returns the mean capture time."""
    from guardian.capture.engine import Capture
    from guardian.project import Project

    assert isinstance(project, Project)
    repo = project.open_repo()
    catalog = project.open_catalog()
    total = 0.0
    try:
        capture = Capture(project, repo, catalog)
        for n in range(start, start + count):
            rel = rnd.choice(rels)
            edit(root / rel, rnd, n)
            t0 = time.perf_counter()
            with project.writer_lock():
                result = capture.run([rel], "watch")
            total += time.perf_counter() - t0
            assert result.snapshot is not None
    finally:
        catalog.close()
    return total / count


def git(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)


@contextmanager
def git_daemon(base: Path) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [
            "git",
            "daemon",
            "--reuseaddr",
            "--enable=receive-pack",
            f"--base-path={base}",
            "--export-all",
            "--listen=127.0.0.1",
            f"--port={port}",
            str(base),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("git daemon did not start") from None
                time.sleep(0.05)
        yield f"git://127.0.0.1:{port}/daemon.git"
    finally:
        proc.terminate()
        proc.wait(10)


def gc_with_captures(project: object, root: Path, now: float | None) -> tuple[object, list[float]]:
    """Run gc on a thread while this thread captures every 20 ms; returns (result, capture times)."""
    from guardian.lifecycle import gc as lifecycle
    from guardian.ops.snapshot import take_snapshot
    from guardian.project import Project

    assert isinstance(project, Project)
    done = threading.Event()
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["result"] = lifecycle.gc(project, now=now, lock_timeout=30.0)
        except BaseException as exc:
            outcome["error"] = exc
        finally:
            done.set()

    live = root / "live.txt"
    stalls: list[float] = []
    worker = threading.Thread(target=run)
    worker.start()
    n = 0
    while not done.is_set():
        live.write_text(f"live edit {n}\n")
        t0 = time.perf_counter()
        take_snapshot(project, ["live.txt"], "watch")
        stalls.append(time.perf_counter() - t0)
        n += 1
        time.sleep(0.02)
    worker.join()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["result"], stalls


def machine() -> list[str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.1f} GB RAM"
    except (OSError, ValueError, IndexError):
        pass
    import pygit2

    fs = subprocess.run(["df", "-T", tempfile.gettempdir()], capture_output=True, text=True).stdout.splitlines()
    fstype = fs[-1].split()[1] if len(fs) > 1 else "?"
    return [
        f"machine: {cpu}, {os.cpu_count()} CPU(s){mem}; {platform.system()} {platform.release()}; temp dir on {fstype}",
        f"versions: Python {platform.python_version()}, pygit2 {pygit2.__version__}, libgit2 {pygit2.LIBGIT2_VERSION}, "
        f"{git('--version').stdout.strip()}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--edits", type=int, default=10_000)
    parser.add_argument("--push-edits", type=int, default=1_000)
    parser.add_argument("--files", type=int, default=100)
    args = parser.parse_args()
    rnd = random.Random(20261122)
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        base = Path(tmp)
        os.environ["GUARDIAN_HOME"] = str(base / "home")
        from guardian.lifecycle import gc as lifecycle
        from guardian.lifecycle import mirror
        from guardian.ops.initialize import init_project
        from guardian.project import Project

        root = base / "proj"
        root.mkdir()
        rels = make_tree(root, args.files, rnd)
        init_project(root)
        project = Project.find(root)
        mean = capture_edits(project, root, rels, args.edits, rnd, 0)
        repo_dir = project.paths.repo
        loose = du(repo_dir / "objects")
        rows.append((f"{args.edits:,} single-file edits captured", f"{mean * 1000:.1f} ms per snapshot (mean)"))
        rows.append(("store objects before gc (loose)", f"{loose / 2**20:.1f} MiB"))

        # The same history, packed by git gc --aggressive.
        reference = base / "reference.git"
        shutil.copytree(repo_dir, reference)
        t0 = time.perf_counter()
        git("--git-dir", str(reference), "gc", "--aggressive", "--prune=now", "--quiet")
        aggressive_time = time.perf_counter() - t0
        aggressive = du(reference / "objects")

        result, stalls = gc_with_captures(project, root, None)
        assert isinstance(result, lifecycle.GcResult)
        ours = du(repo_dir / "objects")
        steps = ", ".join(f"{k} {v:.2f}" for k, v in result.phases.items())
        rows.append(("`guardian gc` (pack only, nothing old enough to drop)", f"{result.duration:.2f} s ({steps})"))
        rows.append(("`git gc --aggressive --prune=now` of a copy", f"{aggressive_time:.2f} s"))
        rows.append(("store objects after `guardian gc`", f"{ours / 2**20:.2f} MiB"))
        rows.append(("same history after `git gc --aggressive`", f"{aggressive / 2**20:.2f} MiB"))
        rows.append(("guardian / git --aggressive", f"{ours / aggressive:.2f}x (goal <= 2x)"))
        rows.append(
            (
                "longest capture stall during that gc",
                f"{max(stalls) * 1000:.0f} ms over {len(stalls)} captures (median "
                f"{sorted(stalls)[len(stalls) // 2] * 1000:.0f} ms); gc held the lock at most "
                f"{result.longest_lock * 1000:.0f} ms",
            )
        )
        rows.append(("whole store directory after gc", f"{du(project.paths.store) / 2**20:.2f} MiB"))

        # Push: the whole history, then 1,000 new snapshots, to disk and over git://.
        served = base / "served"
        served.mkdir()
        git("init", "--bare", "--quiet", str(served / "disk.git"))
        git("init", "--bare", "--quiet", str(served / "daemon.git"))
        with git_daemon(served) as daemon_url:
            mirror.add_remote(project, "disk", str(served / "disk.git"))
            mirror.add_remote(project, "daemon", daemon_url)
            first = mirror.push(project, "disk")
            first_daemon = mirror.push(project, "daemon")
            rows.append(
                (
                    f"first push of {result.kept + result.replayed:,} snapshots",
                    f"{first.duration:.2f} s to disk, {first_daemon.duration:.2f} s over git://",
                )
            )
            capture_edits(project, root, rels, args.push_edits, rnd, args.edits)
            again = mirror.push(project, "disk")
            again_daemon = mirror.push(project, "daemon")
            rows.append(
                (
                    f"push of {args.push_edits:,} new snapshots",
                    f"{again.duration:.2f} s to disk, {again_daemon.duration:.2f} s over git://",
                )
            )

        # A thinning gc: the same history as if it were 30 days old (retention defaults).
        result2, stalls2 = gc_with_captures(project, root, time.time() + 30 * 86400)
        assert isinstance(result2, lifecycle.GcResult)
        rows.append(
            (
                "thinning gc of that history seen 30 days later",
                f"{result2.duration:.2f} s ({', '.join(f'{k} {v:.2f}' for k, v in result2.phases.items())}): "
                f"kept {result2.kept} of {result2.snapshots} snapshots, "
                f"store {result2.size_before / 2**20:.2f} -> {result2.size_after / 2**20:.2f} MiB on disk "
                f"(objects {du(repo_dir / 'objects') / 2**20:.2f} MiB); "
                f"longest capture stall {max(stalls2) * 1000:.0f} ms",
            )
        )
        fsck = subprocess.run(["git", "--git-dir", str(repo_dir), "fsck", "--strict"], capture_output=True, text=True)
        rows.append(("`git fsck --strict` after both gcs", "clean" if fsck.returncode == 0 else fsck.stderr.strip()))

    print(
        f"command: .venv/bin/python scripts/bench_store.py --edits {args.edits} --push-edits {args.push_edits} "
        f"--files {args.files}"
    )
    for line in machine():
        print(line)
    print()
    print("| measure | result |")
    print("|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
