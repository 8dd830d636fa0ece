#!/usr/bin/env python3
"""Benchmark the core store against the git CLI doing the same job, in the same run.

Measures:
  1. an incremental snapshot of 1 changed file, in process, fsync on, at 1k and 100k files;
     baseline: `git add -A && git commit` in the same tree;
  2. `guardian restore NAME` and `guardian history PATH` wall clock (process start included)
     with 10,000 snapshots in the store; baseline: `git log -1 -- PATH` + `git show` on the
     same shadow repo.

Usage: .venv/bin/python scripts/bench_snapshot.py [--quick] [--files 1000,100000] [--snapshots 10000]
Prints a Markdown table; medians, and ratios from the same run.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))


def make_tree(root: Path, count: int) -> list[str]:
    """count small Python files, 10 per directory, 3 levels deep (like a real source tree)."""
    rels = []
    for i in range(count):
        rel = f"pkg{i // 1000:03d}/mod{(i // 100) % 10}/sub{(i // 10) % 10}/file{i}.py"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"VALUE_{i} = {i}\n\ndef f{i}(x):\n    return x + {i}\n")
        rels.append(rel)
    return rels


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def bench_incremental(count: int, rounds: int, git_rounds: int) -> dict[str, float]:
    from guardian.capture.engine import Capture
    from guardian.ops.initialize import init_project
    from guardian.project import Project

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        root = Path(tmp) / "tree"
        root.mkdir()
        os.environ["GUARDIAN_HOME"] = str(Path(tmp) / "home")
        rels = make_tree(root, count)
        t0 = time.perf_counter()
        init_project(root)
        init_time = time.perf_counter() - t0
        project = Project.find(root)
        repo = project.open_repo()
        catalog = project.open_catalog()
        target = root / rels[len(rels) // 2]
        times = []
        # Measure the steady state: let the kernel write back the freshly created tree
        # first, or the first syncfs calls pay for the whole tree's writeback.
        os.sync()
        with project.writer_lock():
            capture = Capture(project, repo, catalog)
            for i in range(10):
                target.write_text(f"WARMUP = {i}\n")
                capture.run([rels[len(rels) // 2]], "manual")
            for i in range(rounds):
                target.write_text(f"VALUE = {i}\n\ndef g(x):\n    return x * {i}\n")
                rel = rels[len(rels) // 2]
                start = time.perf_counter()
                result = capture.run([rel], "manual")
                times.append(time.perf_counter() - start)
                assert result.snapshot is not None
        catalog.close()
        # Baseline: the git CLI committing the same one-file change in the same tree.
        env = {
            **os.environ,
            "GIT_AUTHOR_NAME": "b",
            "GIT_AUTHOR_EMAIL": "b@x",
            "GIT_COMMITTER_NAME": "b",
            "GIT_COMMITTER_EMAIL": "b@x",
        }
        subprocess.run(["git", "init", "-q"], cwd=root, check=True)
        subprocess.run(["git", "add", "-A"], cwd=root, check=True, env=env)
        subprocess.run(["git", "commit", "-qm", "base"], cwd=root, check=True, env=env)
        os.sync()
        git_times = []
        for i in range(git_rounds):
            target.write_text(f"VALUE = {i}\n# git round\n")
            git_times.append(run(["sh", "-c", "git add -A && git commit -qm change"], root, env))
        return {
            "files": count,
            "init_s": init_time,
            "guardian_ms": statistics.median(times) * 1000,
            "guardian_p90_ms": sorted(times)[int(len(times) * 0.9)] * 1000,
            "git_ms": statistics.median(git_times) * 1000,
        }


def bench_queries(
    files: int,
    snapshots: int,
    rounds: int,
    warm: Callable[[Path, dict[str, str]], AbstractContextManager[object]] | None = None,
) -> dict[str, float]:
    from guardian.capture.engine import Capture
    from guardian.ops.initialize import init_project
    from guardian.project import Project

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        root = Path(tmp) / "tree"
        root.mkdir()
        home = Path(tmp) / "home"
        os.environ["GUARDIAN_HOME"] = str(home)
        rels = make_tree(root, files)
        init_project(root)
        project = Project.find(root)
        repo = project.open_repo()
        catalog = project.open_catalog()
        worker = root / "src" / "agentdb" / "worker_pool.py"
        worker.parent.mkdir(parents=True)
        worker.write_text("def work():\n    return 1\n" * 800)
        t0 = time.perf_counter()
        with project.writer_lock():
            capture = Capture(project, repo, catalog)
            capture.run(["src/agentdb/worker_pool.py"], "manual")
            for i in range(snapshots - 2):
                rel = rels[i % len(rels)]
                (root / rel).write_text(f"VALUE = {i}\n")
                capture.run([rel], "watch")
        build_time = time.perf_counter() - t0
        catalog.close()
        worker.write_text("#!/usr/bin/env python3\n")
        env = {**os.environ}
        py = sys.executable
        restore_times, history_times, git_times = [], [], []
        for _ in range(rounds):
            worker.write_text("#!/usr/bin/env python3\n")
            restore_times.append(run([py, "-m", "guardian", "restore", "worker_pool.py"], root, env))
            history_times.append(run([py, "-m", "guardian", "history", "src/agentdb/worker_pool.py"], root, env))
            git_dir = str(project.paths.repo)
            git_times.append(
                run(
                    [
                        "sh",
                        "-c",
                        f"c=$(git --git-dir {git_dir} log -1 --format=%H -- src/agentdb/worker_pool.py) && "
                        f"git --git-dir {git_dir} show $c:src/agentdb/worker_pool.py > /dev/null",
                    ],
                    root,
                    env,
                )
            )
        if warm is not None:
            # The same commands with a watcher running: its warm server answers them.
            with warm(root, env):
                warm_env = {**env, "BENCH_WARM": "1"}
                # As the hooks call it (python -m), and as people type it (the guardian script).
                script = Path(sys.executable).parent / "guardian"
                starts = [[py, "-m", "guardian"], *([[str(script)]] if script.is_file() else [])]
                for _ in range(rounds):
                    for start in starts:
                        worker.write_text("#!/usr/bin/env python3\n")
                        run([*start, "restore", "worker_pool.py"], root, warm_env)
                        run([*start, "history", "src/agentdb/worker_pool.py"], root, warm_env)
        count = sum(1 for _ in project.open_repo().walk())
        return {
            "snapshots": count,
            "build_s": build_time,
            "restore_ms": statistics.median(restore_times) * 1000,
            "history_ms": statistics.median(history_times) * 1000,
            "git_log_show_ms": statistics.median(git_times) * 1000,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a fast check")
    parser.add_argument("--files", default=None, help="comma-separated tree sizes (default 1000,100000)")
    parser.add_argument("--snapshots", type=int, default=None, help="snapshots for the query benchmark")
    args = parser.parse_args()
    sizes = [int(x) for x in (args.files or ("1000,10000" if args.quick else "1000,100000")).split(",")]
    snapshots = args.snapshots or (1000 if args.quick else 10000)
    # Measure guardian as installed: with its bytecode compiled, as pip and scripts/setup leave it.
    # (Where PYTHONDONTWRITEBYTECODE is set, an uncompiled checkout pays ~60 ms per process.)
    import compileall

    compileall.compile_dir(str(REPO_ROOT / "guardian"), quiet=1)
    import pygit2

    print(
        f"machine: {platform.platform()}, {os.cpu_count()} cores; python {platform.python_version()}, "
        f"pygit2 {pygit2.__version__} (libgit2 {pygit2.LIBGIT2_VERSION}); "
        f"{subprocess.run(['git', '--version'], capture_output=True, text=True).stdout.strip()}"
    )
    print("\n| files | guardian 1-file snapshot (median) | p90 | git add -A && git commit (median) | ratio |")
    print("|---:|---:|---:|---:|---:|")
    results = []
    for size in sizes:
        r = bench_incremental(size, rounds=200 if size <= 10000 else 100, git_rounds=10 if size > 10000 else 20)
        results.append(r)
        print(
            f"| {size:,} | {r['guardian_ms']:.2f} ms | {r['guardian_p90_ms']:.2f} ms | {r['git_ms']:.1f} ms | "
            f"{r['git_ms'] / r['guardian_ms']:.0f}x faster |",
            flush=True,
        )
    if len(results) >= 2:
        print(f"\nlargest/smallest tree snapshot time: {results[-1]['guardian_ms'] / results[0]['guardian_ms']:.2f}x")
    for r in results:
        print(f"initial snapshot of {r['files']:,} files (guardian init): {r['init_s']:.1f} s")
    q = bench_queries(files=1000, snapshots=snapshots, rounds=7)
    print(f"\nwith {q['snapshots']:,} snapshots in the store (built in {q['build_s']:.0f} s):")
    print("\n| command (process start included) | median | baseline git log -1 + git show | ratio |")
    print("|---|---:|---:|---:|")
    print(
        f"| guardian restore worker_pool.py | {q['restore_ms']:.0f} ms | {q['git_log_show_ms']:.0f} ms | "
        f"{q['restore_ms'] / q['git_log_show_ms']:.2f}x |"
    )
    print(
        f"| guardian history src/agentdb/worker_pool.py | {q['history_ms']:.0f} ms | {q['git_log_show_ms']:.0f} ms | "
        f"{q['history_ms'] / q['git_log_show_ms']:.2f}x |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
