#!/usr/bin/env python3
"""Benchmark guardian's glob matcher (guardian.util.globs) against pathspec, which it replaced.

Two measurements, one run:

1. pathological patterns: the time of one match at growing path lengths, for each
   shape that makes a backtracking regex blow up.  pathspec's row stops once a single
   match takes longer than ``--budget`` seconds;
2. the common case: 100k realistic paths matched against the default policy's
   patterns (the built-in excludes, the secret names, the guardian.yaml rule) and
   the agent-pipeline preset's, with both matchers; the answers are compared too.

Figures go in docs/reliability.md.  Nothing is written anywhere.

    python scripts/bench_globs.py            # a few minutes
    python scripts/bench_globs.py --quick    # 10k paths, a smaller budget
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pathspec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from guardian.capture.filters import DEFAULT_EXCLUDES, SECRET_PATTERNS, PathFilter
from guardian.config import WatchSettings
from guardian.util.globs import GlobSpec

SHAPES: dict[str, tuple[str, Callable[[int], str]]] = {
    "many stars in one name": ("*a*a*a*a*a*a*b", lambda n: "a" * n),
    "three stars in one name": ("*a*a*b", lambda n: "a" * n),
    "two stars in one name": ("*a*b", lambda n: "a" * n),
    "** inside a name": ("a**a**a**b", lambda n: "a" * n),
    "classes between stars": ("*[ab]*[ab]*[ab]*[ab]*c", lambda n: "ab" * (n // 2)),
    "? and stars": ("?*?*?*?*?*x", lambda n: "a" * n),
    "** segments": ("**/a/**/a/**/a/**/b", lambda n: "/".join(["a"] * (n // 2))),
    "** segments with stars": ("**/*a*/**/*a*/**/b", lambda n: "/".join(["aa"] * (n // 3))),
}
SIZES = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096)

PATTERN_SETS: dict[str, tuple[str, ...]] = {
    "built-in excludes": DEFAULT_EXCLUDES,
    "secret names": SECRET_PATTERNS,
    "default protect (guardian.yaml)": ("guardian.yaml",),
    "agent-pipeline protect + exclude": (
        "agents/apply_patch_processor/",
        "agents/json_wo_processor/",
        "agents/wo_executor/",
        "tools/followup_tracker_update.zsh",
        "g/followup/state/",
        "g/logs/",
        "*.log",
    ),
}
DIRS = ["src", "lib", "tests", "agents", "wo_executor", "g", "docs", "pkg", "utils", "core", "api", "models"]
DIRS += ["node_modules", "build", "__pycache__", "data", "followup", "state", "logs", "tools"]
EXTENSIONS = ["py", "py", "py", "js", "ts", "md", "json", "txt", "yaml", "pyc", "log", "so", "toml", "sh", "zsh"]


def one_match_seconds(match: Callable[[str], object], path: str) -> float:
    start = time.perf_counter()
    match(path)
    return time.perf_counter() - start


def pathological(budget: float) -> None:
    print(f"1. one match, by path length (pathspec stops past {budget:g} s)")
    for name, (pattern, make) in SHAPES.items():
        for label, match in (
            ("pathspec", pathspec.GitIgnoreSpec.from_lines([pattern]).match_file),
            ("globs", GlobSpec.from_lines([pattern]).match),
        ):
            cells = []
            for size in SIZES:
                path = make(size)
                seconds = min(one_match_seconds(match, path) for _ in range(3 if label == "globs" else 1))
                cells.append(f"{len(path)}: {seconds * 1000:.3g} ms")
                if seconds > budget:
                    cells.append("(stopped)")
                    break
            print(f"   {name:24s} {pattern:22s} {label:8s} " + ", ".join(cells), flush=True)


def realistic_paths(count: int) -> list[str]:
    rng = random.Random(13)
    paths = []
    for _ in range(count):
        dirs = [rng.choice(DIRS) for _ in range(rng.randint(0, 6))]
        stem = "".join(rng.choice("abcdefghijklmnop_") for _ in range(rng.randint(3, 14)))
        paths.append("/".join([*dirs, f"{stem}.{rng.choice(EXTENSIONS)}"]))
    return paths


def common_case(count: int) -> None:
    paths = realistic_paths(count)
    print(f"\n2. {count:,} realistic paths (depth 1-7), microseconds per path")
    print(f"   {'patterns':34s} {'pathspec':>9s} {'globs':>9s}  matched")
    for name, lines in PATTERN_SETS.items():
        old, new = pathspec.GitIgnoreSpec.from_lines(lines), GlobSpec.from_lines(lines)
        start = time.perf_counter()
        old_answers = [old.match_file(p) for p in paths]
        old_seconds = time.perf_counter() - start
        start = time.perf_counter()
        new_answers = [new.match(p) for p in paths]
        new_seconds = time.perf_counter() - start
        assert old_answers == new_answers, f"{name}: the matchers disagree"
        per = 1e6 / count
        print(f"   {name:34s} {old_seconds * per:9.2f} {new_seconds * per:9.2f}  {sum(new_answers):,}")
    keep = PathFilter(Path("/nonexistent-bench-root"), WatchSettings(gitignore=False))
    start = time.perf_counter()
    kept = sum(1 for p in paths if keep(p))
    seconds = time.perf_counter() - start
    print(f"   PathFilter (default watch settings, globs): {seconds * 1e6 / count:.2f} us/path, kept {kept:,}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10k paths and a 0.2 s budget")
    parser.add_argument("--budget", type=float, default=None, help="seconds one pathspec match may take")
    args = parser.parse_args()
    budget = args.budget if args.budget is not None else (0.2 if args.quick else 1.0)
    print(f"python {sys.version.split()[0]}, pathspec {pathspec.__version__}")
    pathological(budget)
    common_case(10_000 if args.quick else 100_000)
    return 0


if __name__ == "__main__":
    sys.exit(main())
