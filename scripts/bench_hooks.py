"""How much guardian's git hooks add to everyday git commands that touch nothing protected.

Runs each git command N times in a throwaway repository (a guardian project with
a protect rule) under four hook setups and prints the median wall time:

- none:        no hooks at all
- no-op shell: each hook is `#!/bin/sh` that reads its stdin and exits 0 (the floor any hook pays)
- guardian:    the installed shims: their fast path decides in the shell when it can, else they run
               `python -m guardian hook-impl`
- direct:      the same shims calling `python -m guardian.gates.githooks.hook`, i.e. hook-impl without
               importing the click CLI (what a dispatcher in guardian/__main__.py would give)

The branch switch and the commit touch nothing protected, so the shims' fast path answers them
without Python; the file checkouts and the reset keep HEAD, which only hook-impl can judge.

Usage: python scripts/bench_hooks.py [-n 15]
Everything lives in a temp directory; GUARDIAN_HOME points into it.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HOOKS = ("pre-rebase", "reference-transaction", "post-checkout", "post-merge", "post-rewrite")
POLICY = """version: 1
protect:
  - paths: ["agents/wo_executor/"]
    rollback: force
    delete: block
    restore: allow
    reason: "WO pipeline"
"""
NOOP = "#!/bin/sh\ncat >/dev/null\nexit 0\n"


def run(args: list[str], cwd: Path, env: dict[str, str]) -> None:
    subprocess.run(args, cwd=cwd, env=env, check=True, capture_output=True)


def git(repo: Path, env: dict[str, str], *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, env=env, check=False, capture_output=True)


def setup(base: Path, env: dict[str, str]) -> Path:
    repo = base / "repo"
    repo.mkdir()
    run(["git", "init", "-q", "-b", "main"], repo, env)
    (repo / "guardian.yaml").write_text(POLICY)
    (repo / "agents" / "wo_executor").mkdir(parents=True)
    (repo / "agents" / "wo_executor" / "processor.py").write_text("x = 1\n")
    for i in range(200):
        (repo / f"file{i:03}.txt").write_text(f"content {i}\n")
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-q", "-m", "init"], repo, env)
    run([sys.executable, "-m", "guardian", "init", "--no-hooks"], repo, env)  # set_hooks() decides
    return repo


def set_hooks(repo: Path, env: dict[str, str], mode: str) -> None:
    hooks = repo / ".git" / "hooks"
    for name in HOOKS:
        (hooks / name).unlink(missing_ok=True)
    if mode == "none":
        return
    if mode == "noop":
        for name in HOOKS:
            (hooks / name).write_text(NOOP)
            (hooks / name).chmod(0o755)
        return
    run([sys.executable, "-m", "guardian", "hooks", "install"], repo, env)
    if mode == "direct":
        for name in HOOKS:
            path = hooks / name
            path.write_text(path.read_text().replace("-m guardian hook-impl", "-m guardian.gates.githooks.hook"))


def cpu_seconds() -> float:
    # Children's CPU includes their own reaped children: git and the hooks it ran.
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(action: Callable[[], None], prepare: Callable[[], None], n: int) -> tuple[float, float]:
    """(median wall ms, median CPU ms) of ``action``; CPU time barely moves when the machine is busy."""
    wall, cpu = [], []
    for _ in range(n):
        prepare()
        cpu_start, start = cpu_seconds(), time.perf_counter()
        action()
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((cpu_seconds() - cpu_start) * 1000)
    return statistics.median(wall), statistics.median(cpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=15, help="repetitions per measurement (median is reported)")
    parser.add_argument(
        "--no-bytecode", action="store_true", help="keep PYTHONDONTWRITEBYTECODE (every hook recompiles guardian)"
    )
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="guardian-bench-hooks-") as tmp:
        base = Path(tmp)
        env = {
            **os.environ,
            "GUARDIAN_HOME": str(base / "home"),
            "HOME": str(base),
            "GIT_CONFIG_GLOBAL": str(base / "gitconfig"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "bench",
            "GIT_AUTHOR_EMAIL": "bench@example.com",
            "GIT_COMMITTER_NAME": "bench",
            "GIT_COMMITTER_EMAIL": "bench@example.com",
        }
        env.pop("GUARDIAN_FORCE", None)
        if not opts.no_bytecode:
            # Installed packages run from cached bytecode; a sandbox with PYTHONDONTWRITEBYTECODE=1
            # would recompile every module on every hook.  Cache it in the temp dir instead.
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(base / "pycache")
        load = f"{os.getloadavg()[0]:.2f}"
        repo = setup(base, env)
        other = repo / "file000.txt"

        def dirty() -> None:
            other.write_text(f"changed {time.time()}\n")

        def nothing() -> None:
            pass

        # A side branch that differs from main in 100 unprotected files; each run switches to the other one.
        git(repo, env, "checkout", "-q", "-b", "side")
        for i in range(100, 200):
            (repo / f"file{i:03}.txt").write_text(f"side {i}\n")
        git(repo, env, "commit", "-q", "-am", "side")
        git(repo, env, "checkout", "-q", "main")
        branches = ["side", "main"]

        def switch() -> None:
            branches.reverse()
            git(repo, env, "checkout", "-q", branches[0])

        ops: list[tuple[str, Callable[[], None], Callable[[], None]]] = [
            ("git checkout BRANCH (100 unprotected files differ)", switch, nothing),
            ("git commit --allow-empty", lambda: git(repo, env, "commit", "-q", "--allow-empty", "-m", "x"), nothing),
            ("git checkout -- file000.txt", lambda: git(repo, env, "checkout", "-q", "--", "file000.txt"), dirty),
            ("git restore file000.txt", lambda: git(repo, env, "restore", "file000.txt"), dirty),
            ("git reset --hard (HEAD stays)", lambda: git(repo, env, "reset", "-q", "--hard"), dirty),
        ]
        modes = ("none", "noop", "guardian", "direct")
        results: dict[str, dict[str, tuple[float, float]]] = {}
        for mode in modes:
            set_hooks(repo, env, mode)
            for label, action, prepare in ops:
                action()  # warm the page cache, git's own state and the bytecode cache
                results.setdefault(label, {})[mode] = measure(action, prepare, opts.n)
        cache = "without bytecode cache" if opts.no_bytecode else "bytecode cached"
        print(f"median of {opts.n} runs (python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {cache})")
        print(f"load average before/after: {load} / {os.getloadavg()[0]:.2f}\n")
        for index, title in ((0, "wall time, ms"), (1, "CPU time of git and its hooks, ms")):
            print(f"{title}:\n")
            print("| command | no hooks | no-op shell hooks | guardian | guardian - no-op | direct | direct - no-op |")
            print("|---|---:|---:|---:|---:|---:|---:|")
            for label, row in results.items():
                v = {mode: row[mode][index] for mode in modes}
                print(
                    f"| `{label}` | {v['none']:.0f} | {v['noop']:.0f} | {v['guardian']:.0f} | "
                    f"{v['guardian'] - v['noop']:.0f} | {v['direct']:.0f} | {v['direct'] - v['noop']:.0f} |"
                )
            print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
