#!/usr/bin/env python3
"""Run the reliability campaign (tests/reliability) and print its figures as Markdown.

    .venv/bin/python scripts/reliability.py            # long mode (GUARDIAN_LONG=1), the published figures
    .venv/bin/python scripts/reliability.py --short    # the CI trial counts
    .venv/bin/python scripts/reliability.py -- -k faults   # extra arguments go to pytest

Each test appends JSON counter lines to the file named by
GUARDIAN_RELIABILITY_REPORT (tests/reliability/harness.py: record); this script
sums them (``*_max`` counters keep the largest value), reads pytest's JUnit XML
for passes and failures, and prints the tables that docs/reliability.md quotes,
with the library versions, kernel and filesystem they were measured on.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


WATCHER_SHARD = "tests/reliability/test_watcher_campaign.py"


def shards(jobs: int) -> list[list[str]]:
    """The test files per pytest process: the watcher campaign (the longest) runs beside the rest."""
    if jobs < 2:
        return [["tests/reliability"]]
    files = (str(p.relative_to(ROOT)) for p in (ROOT / "tests" / "reliability").glob("test_*.py"))
    others = sorted(f for f in files if f != WATCHER_SHARD)
    return [[WATCHER_SHARD], others]


def run_campaign(long: bool, jobs: int, extra: list[str], work: Path) -> tuple[int, float]:
    env = {**os.environ}
    if long:
        env["GUARDIAN_LONG"] = "1"
    else:
        env.pop("GUARDIAN_LONG", None)
    started = time.monotonic()
    running: list[subprocess.Popen[bytes]] = []
    for i, targets in enumerate(shards(jobs)):
        shard_env = {**env, "GUARDIAN_RELIABILITY_REPORT": str(work / f"counters-{i}.jsonl")}
        log = open(work / f"pytest-{i}.log", "wb")  # noqa: SIM115 - closed when the shard ends
        argv = [
            sys.executable,
            "-m",
            "pytest",
            *targets,
            "-q",
            "-rfEs",
            f"--junitxml={work / f'junit-{i}.xml'}",
            f"--basetemp={work / f'tmp-{i}'}",
            *extra,
        ]
        running.append(subprocess.Popen(argv, cwd=ROOT, env=shard_env, stdout=log, stderr=subprocess.STDOUT))
    codes = [proc.wait() for proc in running]
    for i in range(len(running)):
        sys.stdout.write((work / f"pytest-{i}.log").read_text(errors="replace"))
    return max(codes), time.monotonic() - started


def load_counters(work: Path) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    totals: dict[str, float] = defaultdict(float)
    by_case: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    lines = [line for report in sorted(work.glob("counters-*.jsonl")) for line in report.read_text().splitlines()]
    for line in lines:
        item = json.loads(line)
        for name, value in item["counters"].items():
            for table in (totals, by_case[item["case"]]):
                if name.endswith("_max"):
                    table[name] = max(table[name], value)
                else:
                    table[name] += value
    return totals, by_case


@dataclass
class Outcome:
    tests: int = 0
    failures: int = 0
    errors: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)
    skips: list[str] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return self.tests - self.failures - self.errors - self.skipped


def load_junit(work: Path) -> Outcome:
    outcome = Outcome()
    roots = [ET.parse(junit).getroot() for junit in sorted(work.glob("junit-*.xml"))]
    for suite in [s for root in roots for s in ([root] if root.tag == "testsuite" else list(root.iter("testsuite")))]:
        outcome.tests += int(suite.get("tests", 0))
        outcome.failures += int(suite.get("failures", 0))
        outcome.errors += int(suite.get("errors", 0))
        outcome.skipped += int(suite.get("skipped", 0))
        for case in suite.iter("testcase"):
            name = f"{case.get('classname', '').split('.')[-1]}::{case.get('name')}"
            if case.find("failure") is not None or case.find("error") is not None:
                outcome.failed.append(name)
            skip = case.find("skipped")
            if skip is not None:
                outcome.skips.append(f"{name}: {skip.get('message', '')}")
    outcome.skips = sorted(set(outcome.skips))
    return outcome


def _version(cmd: list[str]) -> str:
    if shutil.which(cmd[0]) is None:
        return "not installed"
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return "unknown"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else "unknown"


def _guardian_version() -> str:
    # The distribution is "guardian-snapshots"; the package's own version serves a source checkout too.
    import guardian

    return str(getattr(guardian, "__version__", "unknown"))


def environment() -> list[tuple[str, str]]:
    import sqlite3

    import pygit2

    tmp = tempfile.gettempdir()
    df = subprocess.run(["df", "-T", tmp], capture_output=True, text=True, check=False).stdout.strip().splitlines()
    fs = " ".join(df[-1].split()[:2]) if len(df) > 1 else "unknown"
    fiu = _version(["dpkg-query", "-W", "-f=${Version}", "fiu-utils"]) if shutil.which("fiu-run") else "not installed"
    return [
        ("guardian", _guardian_version()),
        ("Python", platform.python_version()),
        ("pygit2", importlib.metadata.version("pygit2")),
        ("libgit2", pygit2.LIBGIT2_VERSION),
        ("watchdog", importlib.metadata.version("watchdog")),
        ("git", _version(["git", "--version"])),
        ("SQLite", sqlite3.sqlite_version),
        ("libfiu (fiu-utils)", fiu),
        ("rsync", _version(["rsync", "--version"])),
        ("kernel", platform.release()),
        ("filesystem of the temp dir", f"{tmp}: {fs}"),
        ("CPUs", str(os.cpu_count())),
    ]


def _n(value: float) -> str:
    return f"{value:g}" if value != int(value) else str(int(value))


def tables(totals: dict[str, float], by_case: dict[str, dict[str, float]]) -> str:
    lines: list[str] = []

    def case(name: str, key: str) -> float:
        return by_case.get(name, {}).get(key, 0)

    lines += [
        "### kill -9",
        "",
        "| trials | count | failed trials | fsck failures | acknowledged snapshots lost | final states lost "
        "| stale locks/temp cleaned | temp files left |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, key, cases in (
        ("named crash points (case 2)", "kill_trials_crash_point", ["2"]),
        ("random kills of the watcher under churn (case 1)", "kill_trials_random", ["1"]),
        ("random kills during a 50 MB restore (case 6)", "kill_trials_random", ["6"]),
    ):
        row = [
            sum(case(c, k) for c in cases)
            for k in (
                key,
                "kill_trial_failures",
                "fsck_failures",
                "acked_snapshots_lost",
                "final_states_lost",
                "stale_locks_cleaned",
                "temp_files_left",
            )
        ]
        lines.append(f"| {label} | " + " | ".join(_n(v) for v in row) + " |")
    lines += [
        "",
        f"Stale lock files: {_n(case('3', 'stale_locks_cleaned'))} cleared (dead holders), "
        f"{_n(case('3', 'live_locks_respected'))} respected (live holders) (case 3). "
        f"Torn 50 MB files: {_n(case('6', 'torn_files'))}.",
        "",
        "### Faults (case 4)",
        "",
        "| class | faults injected | handled (exit 0/1/5, one-line message) | escaped (traceback or exit 70) |",
        "|---|---|---|---|",
    ]
    for fault in ("ENOSPC", "EIO", "EFBIG"):
        lines.append(
            f"| {fault} | {_n(totals.get(f'faults_{fault}_injected', 0))} | "
            f"{_n(totals.get(f'faults_{fault}_handled', 0))} | {_n(totals.get(f'faults_{fault}_escaped', 0))} |"
        )
    lines += [
        "",
        f"Commits that landed despite an error: {_n(totals.get('commits_landed_despite_error', 0))} "
        f"(each recognised on the next run: listed, logged, not duplicated, unless a failure above says otherwise). "
        f"Fault trials whose run or recovery broke an invariant: {_n(totals.get('fault_trial_failures', 0))}.",
        "",
        "### Watcher (cases 1, 9, 11, 12, 13)",
        "",
        "| figure | value |",
        "|---|---|",
        f"| changes made (churn ops, burst files, single changes) | {_n(totals.get('watcher_changes', 0))} |",
        f"| missed by events (dropped at the seam) | {_n(totals.get('watcher_missed', 0))} |",
        f"| recovered by the rescan | {_n(totals.get('watcher_recovered_by_rescan', 0))} |",
        f"| worst-case latency, write to snapshot, events path (ms) | {_n(totals.get('watcher_latency_ms_max', 0))} |",
        f"| worst-case latency in polling fallback (ms) | {_n(totals.get('watcher_polling_latency_ms_max', 0))} |",
        f"| worst capture after a handler exception (ms, limit 2000) | "
        f"{_n(totals.get('watcher_recovery_ms_max', 0))} |",
        f"| burst: files / seconds until all captured | {_n(totals.get('watcher_burst_files', 0))} / "
        f"{_n(totals.get('watcher_burst_seconds_max', 0))} |",
        f"| two watchers at once: trials / failures / slowest refusal (ms) | "
        f"{_n(totals.get('watcher_race_trials', 0))} / {_n(totals.get('watcher_race_failures', 0))} / "
        f"{_n(round(totals.get('watcher_race_worst_ms_max', 0)))} |",
        f"| polling fallbacks with a warning event | {_n(totals.get('polling_fallbacks', 0))} |",
        "",
        "### Restores, damage, hostile inputs",
        "",
        "| figure | value |",
        "|---|---|",
        f"| restores checked | {_n(totals.get('restores', 0))} |",
        f"| restores byte-identical with mode kept | {_n(totals.get('restores_identical', 0))} |",
        f"| torn JSON writes / marked invalid (case 7) | {_n(totals.get('torn_writes', 0))} / "
        f"{_n(totals.get('torn_marked_invalid', 0))} |",
        f"| SQLite copies captured under concurrent writes / failing quick_check (case 8) | "
        f"{_n(totals.get('sqlite_copies', 0))} / {_n(totals.get('sqlite_copies_bad', 0))} |",
        f"| WAL files without a base file that were opened (must be 0) | "
        f"{_n(totals.get('wal_without_base_opened', 0))} |",
        f"| store damage trials / detected (exit 5, named) / repaired (case 5) | "
        f"{_n(totals.get('damage_trials', 0))} / {_n(totals.get('damage_detected', 0))} / "
        f"{_n(totals.get('damage_repaired', 0))} |",
        f"| bad event-log tails / log reader survived (case 5) | {_n(totals.get('log_trials', 0))} / "
        f"{_n(totals.get('log_reader_survived', 0))} |",
        f"| hostile inputs / refused cleanly | {_n(totals.get('hostile_inputs', 0))} / "
        f"{_n(totals.get('hostile_refused', 0))} |",
        f"| writes outside the root (must be 0) | {_n(totals.get('writes_outside_root', 0))} |",
        f"| canary leaks into the store (must be 0) | {_n(totals.get('canary_leaks', 0))} |",
        "",
        "### One bad file, bounded reads, check processes, deep trees, directory modes (cases 20-24)",
        "",
        "| figure | value |",
        "|---|---|",
        f"| unreadable files and directories, as a user without DAC override / captures they stopped "
        f"(must be 0) | {_n(totals.get('unreadable_trials', 0) + totals.get('unreadable_dir_trials', 0))} / "
        f"{_n(totals.get('unreadable_stopped_capture', 0))} |",
        f"| files under an unreadable directory recorded as deleted (must be 0) | "
        f"{_n(totals.get('unreadable_dir_files_deleted', 0))} |",
        f"| whole-capture failures / counted in status | {_n(totals.get('whole_capture_failures', 0))} / "
        f"{_n(totals.get('whole_capture_failures_counted', 0))} |",
        f"| files growing while read (a real writer, appending or sparse) / caught as too large | "
        f"{_n(totals.get('growing_reads', 0))} / {_n(totals.get('growing_reads_caught', 0))} |",
        f"| peak RSS of guardian while a file grows past a 32 MB limit (MB) | "
        f"{_n(round(totals.get('growing_read_rss_kb_max', 0) / 1024))} |",
        f"| peak RSS of guardian beside a 2 GB sparse file (MB) | "
        f"{_n(round(totals.get('sparse_read_rss_kb_max', 0) / 1024))} |",
        f"| check processes started / left running (must be 0) | "
        f"{_n(totals.get('check_children_started', 0))} / {_n(totals.get('check_children_left', 0))} |",
        f"| guardians killed during a check / file copies left behind (must be 0) | "
        f"{_n(totals.get('guardian_kills_during_check', 0))} / {_n(totals.get('check_copies_left', 0))} |",
        f"| 1,200-deep trees and paths over PATH_MAX / failed snapshots (must be 0) | "
        f"{_n(totals.get('deep_tree_trials', 0) + totals.get('path_max_trials', 0))} / "
        f"{_n(totals.get('deep_tree_exit_70', 0) + totals.get('path_max_failed_snapshots', 0))} |",
        f"| watchers on a deep tree / died (must be 0) | {_n(totals.get('deep_tree_watchers', 0))} / "
        f"{_n(totals.get('deep_tree_watchers_died', 0))} |",
        f"| private directories recreated / with the wrong bits (must be 0) | "
        f"{_n(totals.get('dir_mode_restores', 0))} / {_n(totals.get('dir_mode_restores_wrong', 0))} |",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--long", action="store_true", default=True, help="long mode (the default)")
    mode.add_argument("--short", action="store_true", help="the CI trial counts")
    parser.add_argument(
        "--jobs",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="pytest processes in parallel (default: 2 where there are 2 CPUs)",
    )
    parser.add_argument("--keep", metavar="DIR", help="keep the raw counters, logs and JUnit XML in DIR")
    parser.add_argument("pytest_args", nargs="*", help="extra arguments for pytest (after --)")
    args = parser.parse_args()
    long = not args.short
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="guardian-reliability-"))
    work.mkdir(parents=True, exist_ok=True)
    for old in [*work.glob("counters-*.jsonl"), *work.glob("junit-*.xml")]:
        old.unlink()
    code, seconds = run_campaign(long, args.jobs, args.pytest_args, work)
    totals, by_case = load_counters(work)
    outcome = load_junit(work)
    command = "GUARDIAN_LONG=1 " if long else ""
    print()
    print(f"## Figures ({'long' if long else 'short'} mode)")
    print()
    how = shlex.join([".venv/bin/python", "scripts/reliability.py", *(["--short"] if not long else [])])
    print(
        f"Run: `{how}` (equivalently `{command}.venv/bin/pytest tests/reliability`, in {max(1, args.jobs)} "
        f"parallel pytest process(es)), {seconds / 60:.1f} min wall clock; pytest exit code {code}."
    )
    print(
        f"Tests: {outcome.tests} run, {outcome.passed} passed, {outcome.failures + outcome.errors} failed, "
        f"{outcome.skipped} skipped."
    )
    print()
    print(tables(totals, by_case))
    print()
    print("### Environment")
    print()
    print("| component | version |")
    print("|---|---|")
    for name, value in environment():
        print(f"| {name} | {value} |")
    if outcome.failed:
        print()
        print("### Failing tests (each is a finding; see docs/reliability.md)")
        print()
        for name in outcome.failed:
            print(f"- `{name}`")
    if outcome.skips:
        print()
        print("### Skipped")
        print()
        for name in outcome.skips:
            print(f"- {name}")
    if args.keep:
        print(f"\nraw counters, pytest logs and JUnit XML: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
