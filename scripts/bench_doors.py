#!/usr/bin/env python3
"""Every door of issue 15, each against its baseline in the same run: wall time and CPU time.

The doors a user passes through every day, and what each is compared with:

a. the watcher, from a write to the durable snapshot ref, p50/p99 at 10k files, against a faithful
   re-implementation of gitwatch's loop with no debounce (``inotifywait -r``, then ``git add -A &&
   git commit``; gitwatch's own script is not available here): bench_watch's ``GITWATCH``;
b. ``git checkout`` of a branch touching nothing protected, with guardian's hooks against no hooks;
c. ``git checkout`` of a branch whose protected files differ, the same two setups;
d. ``agent-hook`` on a benign ``ls -la`` (as ``python -m guardian agent-hook`` and as the
   ``guardian-agent-hook`` console script), against a bare interpreter (``python -c pass``);
e. the first snapshot (``guardian init``) of 20k files (``--full``: and 100k), against
   ``git add -A && git commit`` of the same tree;
f. ``guardian restore NAME`` and ``guardian history PATH`` with 2k snapshots (``--full``: 10k),
   against ``git log -1 -- PATH`` + ``git show`` on the same shadow repository.

Trees, stores and hooks come from bench_snapshot.py, bench_hooks.py and bench_watch.py, which
this script imports.  CPU time is the child's user+sys from ``os.wait4`` (its reaped children
included: git's hooks, the hook's git calls): on a shared, loaded machine it moves far less than
wall time.  Everything lives in a temp directory, GUARDIAN_HOME included.

    .venv/bin/python scripts/bench_doors.py --quick   # under ~3 minutes
    .venv/bin/python scripts/bench_doors.py           # more rounds
    .venv/bin/python scripts/bench_doors.py --full    # adds 100k files to (e) and 10k snapshots to (f)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
REPO_ROOT = SCRIPTS.parent
sys.path[:0] = [str(REPO_ROOT), str(SCRIPTS)]

import bench_agent  # noqa: E402
import bench_hooks  # noqa: E402
import bench_snapshot  # noqa: E402
import bench_watch  # noqa: E402

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}


# --------------------------------------------------------------------------- measuring


@dataclass
class Samples:
    """Wall and CPU milliseconds of repeated runs of one thing."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def p(self, q: float, cpu: bool = False) -> float:
        return bench_watch.percentile(self.cpu if cpu else self.wall, q)

    @property
    def median(self) -> float:
        return statistics.median(self.wall) if self.wall else float("nan")

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu) if self.cpu else float("nan")


def timed(argv: list[str], cwd: Path, env: dict[str, str], stdin: bytes | None = None,
          expect: int | None = 0) -> tuple[float, float, int]:
    """(wall ms, CPU ms of the child and its reaped children, exit code) of one process."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.PIPE if stdin is not None else None,
                                stdout=subprocess.DEVNULL, stderr=err)
        if stdin is not None:
            assert proc.stdin is not None
            proc.stdin.write(stdin)
            proc.stdin.close()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = (time.perf_counter() - start) * 1000
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: tell Popen so
        if expect is not None and proc.returncode != expect:
            err.seek(0)
            raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {err.read().decode(errors='replace')}")
    return wall, (usage.ru_utime + usage.ru_stime) * 1000, proc.returncode


def repeat(n: int, argv: list[str], cwd: Path, env: dict[str, str], stdin: bytes | None = None,
           prepare: Callable[[], None] | None = None) -> Samples:
    timed(argv, cwd, env, stdin)  # warm the page cache and the bytecode cache
    out = Samples()
    for _ in range(n):
        if prepare:
            prepare()
        wall, cpu, _ = timed(argv, cwd, env, stdin)
        out.wall.append(wall)
        out.cpu.append(cpu)
    return out


def base_env(tmp: Path) -> dict[str, str]:
    """A private home, store and git config, and guardian's bytecode cached as an install leaves it."""
    env = {**os.environ, **GIT_IDENTITY, "GUARDIAN_HOME": str(tmp / "guardian-home"), "HOME": str(tmp),
           "GIT_CONFIG_GLOBAL": str(tmp / "gitconfig"), "GIT_CONFIG_NOSYSTEM": "1",
           # No detached `git gc --auto` after the baseline's commit: it would compete with the next
           # measurement, and it still writes in .git while the scratch tree is being removed.
           "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "gc.auto", "GIT_CONFIG_VALUE_0": "0"}
    for key in ("GUARDIAN_FORCE", "GUARDIAN_WATCH_QUIET", "GUARDIAN_WATCH_MAX_DELAY", "GUARDIAN_FORCE_POLLING",
                "PYTHONDONTWRITEBYTECODE"):
        env.pop(key, None)
    return env


@contextmanager
def scratch(name: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"guardian-doors-{name}-", dir=os.environ.get("BENCH_TMP")) as tmp:
        yield Path(tmp)


def proc_cpu_ms(pid: int) -> float:
    """CPU of a process and its reaped children (Linux /proc): the warm server's workers are its children."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) * 1000 / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime


@contextmanager
def warm_watcher(root: Path, env: dict[str, str]) -> Iterator[int]:
    """A background watcher on root, its warm server answering; yields the server's pid."""
    guardian = [sys.executable, "-m", "guardian"]
    subprocess.run([*guardian, "start"], cwd=root, env=env, check=True, capture_output=True)
    try:
        run_dir, deadline = Path(env["GUARDIAN_HOME"]) / "run", time.monotonic() + 120
        while not (sockets := sorted(run_dir.glob("warm-*.sock")) if run_dir.is_dir() else []):
            if time.monotonic() > deadline:
                raise RuntimeError("the watcher's warm server did not start")
            time.sleep(0.05)
        probe = subprocess.run([*guardian, "--version"], cwd=root, env={**env, "GUARDIAN_WARM_TRACE": "1"},
                               capture_output=True, check=True)
        if b"served by worker" not in probe.stderr:
            raise RuntimeError(f"the warm server did not answer: {probe.stderr.decode(errors='replace')}")
        # Steady state, as door (a): the watcher scans the secret-scan queue (init's, the cold rounds'
        # restores') once it has caught up, and a restore waits for the slice that holds the writer lock.
        status = subprocess.run([*guardian, "status", "--json"], cwd=root, env=env, capture_output=True, check=True)
        queue, drain_started = Path(json.loads(status.stdout)["store"]) / "secrets-pending.jsonl", time.monotonic()
        while queue.exists() and time.monotonic() - drain_started < 600:
            time.sleep(0.05)
        yield int(sockets[-1].name.removeprefix("warm-").removesuffix(".sock"))
    finally:
        subprocess.run([*guardian, "stop"], cwd=root, env=env, check=False, capture_output=True)


def with_worker_cpu(series: list[Samples], server: int, before_ms: float) -> None:
    """Add the warm workers' CPU (the server's reaped children) to every sample of ``series``, spread evenly."""
    time.sleep(0.2)  # the server reaps its last worker
    share = (proc_cpu_ms(server) - before_ms) / max(1, sum(len(samples.cpu) for samples in series))
    for samples in series:
        samples.cpu = [c + share for c in samples.cpu]


@dataclass
class Row:
    door: str
    guardian: Samples
    baseline: Samples
    baseline_name: str
    goal: str
    verdict: Callable[[float, float], str]  # (guardian figure, baseline figure) -> "met" / "missed by ..."
    percentiles: tuple[float, ...] = ()
    note: str = ""


def over_baseline(limit_ms: float) -> Callable[[float, float], str]:
    def judge(g: float, b: float) -> str:
        over = g - b
        return "met" if over <= limit_ms else f"missed by {over - limit_ms:.0f} ms"
    return judge


def at_most(limit_ms: float) -> Callable[[float, float], str]:
    def judge(g: float, b: float) -> str:
        del b
        return "met" if g <= limit_ms else f"missed by {g - limit_ms:.0f} ms"
    return judge


def not_slower() -> Callable[[float, float], str]:
    def judge(g: float, b: float) -> str:
        return "met" if g <= b else f"missed: {g / b:.2f}x"
    return judge


# --------------------------------------------------------------------------- (a) watcher


def door_watcher(files: int, changes: int) -> list[Row]:
    """bench_watch's latency probe on guardian's watcher and on the gitwatch loop with no debounce."""
    with scratch("watch") as tmp:
        env = base_env(tmp)
        root = tmp / "guardian-tree"
        root.mkdir()
        rels = bench_watch.make_tree(root, files)
        g = bench_watch.Guardian(root, env)
        g.run("init")
        store = g.store()
        ref = store / "repo.git" / "refs" / "heads" / "snapshots"
        pid = g.start()
        try:
            # init queued its secret scan for the watcher: measure once that one-off catch-up is over.
            queue, drain_started = store / "secrets-pending.jsonl", time.perf_counter()
            while queue.exists() and time.perf_counter() - drain_started < 1800:
                time.sleep(0.1)
            drained_s = time.perf_counter() - drain_started
            cpu0 = bench_watch.cpu_seconds(pid)
            latency = bench_watch.measure_latency("guardian watcher", root, rels, ref, changes, timeout=10)
            watcher_cpu_ms = (bench_watch.cpu_seconds(pid) - cpu0) * 1000 / max(1, changes)
        finally:
            g.stop()
        shutil.rmtree(root, ignore_errors=True)
        if shutil.which("inotifywait") is None:
            raise SystemExit("inotifywait not found: the watcher baseline needs it (apt-get install inotify-tools)")
        gw = bench_watch.bench_gitwatch(tmp, env, files, changes, 0.0)
    guardian = Samples(wall=[s * 1000 for s in latency.samples])
    baseline_latency = gw["latency"]
    # bench_gitwatch reports a summary; its samples are what the p50/p99 below come from.
    baseline = Samples(wall=[baseline_latency["p50_ms"]])
    note = (f"guardian: {latency.missed} missed; watcher CPU {watcher_cpu_ms:.1f} ms per change; "
            f"measured after the watcher drained init's secret-scan queue ({drained_s:.1f} s after 'watching'); "
            f"gitwatch loop: p99 {baseline_latency['p99_ms']} ms, {baseline_latency['missed']} missed; "
            f"n={len(latency.samples)}")
    return [
        Row(f"(a) watcher, write to durable snapshot, p50 ({files // 1000}k files)", guardian, baseline,
            "gitwatch loop, no debounce (re-implemented)", "p50 ≤ gitwatch p50", not_slower(), (99,), note),
        Row(f"(a) watcher, p99 ({files // 1000}k files)", Samples(wall=[guardian.p(99)]),
            Samples(wall=[baseline_latency["p99_ms"]]), "gitwatch loop p99", "p99 < 150 ms", at_most(150)),
    ]


# --------------------------------------------------------------------------- (b, c) git hooks


def door_checkout(rounds: int) -> list[Row]:
    """Switch between main and a side branch, alternately, under no hooks and under guardian's shims."""
    with scratch("hooks") as tmp:
        env = base_env(tmp)
        repo = bench_hooks.setup(tmp, env)
        git = ["git", "-C", str(repo)]
        for branch, rel in (("side-plain", "file001.txt"), ("side-prot", "agents/wo_executor/processor.py")):
            subprocess.run([*git, "checkout", "-q", "-b", branch], env=env, check=True, capture_output=True)
            (repo / rel).write_text(f"# {branch}\n")
            subprocess.run([*git, "commit", "-q", "-am", branch], env=env, check=True, capture_output=True)
            subprocess.run([*git, "checkout", "-q", "main"], env=env, check=True, capture_output=True)
        results: dict[tuple[str, str], Samples] = {}
        for mode in ("none", "guardian"):
            bench_hooks.set_hooks(repo, env, mode)
            for branch in ("side-plain", "side-prot"):
                samples = Samples()
                for i in range(2 * rounds + 2):
                    target = branch if i % 2 == 0 else "main"
                    wall, cpu, _ = timed([*git, "checkout", "-q", target], repo, env)
                    if i >= 2:  # the first round trip warms caches
                        samples.wall.append(wall)
                        samples.cpu.append(cpu)
                head = subprocess.run([*git, "symbolic-ref", "--short", "HEAD"], env=env, capture_output=True,
                                      text=True, check=True).stdout.strip()
                assert head == "main", f"checkout under {mode} hooks ended on {head}"
                results[(mode, branch)] = samples
        # The same protected checkouts with a watcher running: the hook is answered by its warm server.
        with warm_watcher(repo, env) as server:
            samples, before = Samples(), proc_cpu_ms(server)
            for i in range(2 * rounds + 2):
                target = "side-prot" if i % 2 == 0 else "main"
                wall, cpu, _ = timed([*git, "checkout", "-q", target], repo, env)
                if i >= 2:
                    samples.wall.append(wall)
                    samples.cpu.append(cpu)
            with_worker_cpu([samples], server, before)
            results[("warm", "side-prot")] = samples
    return [
        Row("(b) `git checkout` of a branch touching nothing protected", results[("guardian", "side-plain")],
            results[("none", "side-plain")], "same checkout, no hooks", "≤ 15 ms over no hooks",
            over_baseline(15), note="each sample is one checkout, alternating main ↔ branch"),
        Row("(c) `git checkout` whose protected files differ", results[("guardian", "side-prot")],
            results[("none", "side-prot")], "same checkout, no hooks", "≤ 100 ms over no hooks",
            over_baseline(100), note="no watcher running: every hook starts its own interpreter"),
        Row("(c) the same, a watcher running (its warm server runs the hook)", results[("warm", "side-prot")],
            results[("none", "side-prot")], "same checkout, no hooks", "≤ 100 ms over no hooks",
            over_baseline(100), note="CPU includes the warm workers' (the server's reaped children), spread "
            "evenly over the samples; the watcher's own capture of each checkout is not counted"),
    ]


# --------------------------------------------------------------------------- (d) agent hook


def door_agent_hook(rounds: int) -> list[Row]:
    with scratch("agent") as tmp:
        env = base_env(tmp)
        root = tmp / "project"
        bench_agent.build_fixture(root)
        subprocess.run([sys.executable, "-m", "guardian", "init", "--no-hooks"], cwd=root, env=env, check=True,
                       capture_output=True)
        payload = bench_agent._payload("ls -la", root).encode()
        bare = repeat(rounds, [sys.executable, "-c", "pass"], root, env)
        via_m = repeat(rounds, [sys.executable, "-m", "guardian", "agent-hook"], root, env, payload)
        script = Path(sys.executable).parent / "guardian-agent-hook"
        rows = [Row("(d) `agent-hook`, benign `ls -la` (`python -m guardian agent-hook`)", via_m, bare,
                    "bare interpreter (`python -c pass`)", "≤ 25 ms over bare", over_baseline(25), (90,))]
        if script.is_file():
            console = repeat(rounds, [str(script)], root, env, payload)
            rows.append(Row("(d) `agent-hook`, benign `ls -la` (`guardian-agent-hook` console script)", console,
                            bare, "bare interpreter (`python -c pass`)", "≤ 25 ms over bare", over_baseline(25),
                            (90,)))
        else:
            print(f"note: {script} is not installed (run scripts/setup): measured python -m only", flush=True)
    return rows


# --------------------------------------------------------------------------- (e) first snapshot


def door_first_snapshot(files: int) -> Row:
    """``guardian init`` of a fresh tree, then the git CLI committing the very same tree."""
    with scratch("init") as tmp:
        env = base_env(tmp)
        root = tmp / "tree"
        root.mkdir()
        bench_snapshot.make_tree(root, files)
        os.sync()  # both sides start from a written-back tree, not one paying the other's writeback
        g_wall, g_cpu, _ = timed([sys.executable, "-m", "guardian", "init", "--no-hooks"], root, env)
        subprocess.run(["git", "init", "-q"], cwd=root, env=env, check=True)
        os.sync()
        b_wall, b_cpu, _ = timed(["sh", "-c", "git add -A && git commit -qm init"], root, env)
    return Row(f"(e) first snapshot (`guardian init`) of {files // 1000}k files", Samples([g_wall], [g_cpu]),
               Samples([b_wall], [b_cpu]), "`git add -A && git commit`", "≤ git", not_slower(),
               note="one run each")


# --------------------------------------------------------------------------- (f) restore, history


def door_queries(snapshots: int, rounds: int) -> list[Row]:
    """bench_snapshot.bench_queries, with its process runner swapped for one that records CPU time too."""
    kinds = ("restore", "history", "git", "restore-warm", "history-warm", "restore-warm-script", "history-warm-script")
    recorded: dict[str, Samples] = {kind: Samples() for kind in kinds}
    original = bench_snapshot.run

    def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
        wall, cpu, _ = timed(cmd, cwd, env or dict(os.environ))
        if cmd[0] == "sh":
            kind = "git"
        elif cmd[1] != "-m":  # the guardian console script
            kind = f"{cmd[1]}-warm-script"
        else:
            kind = cmd[3] + ("-warm" if (env or {}).get("BENCH_WARM") else "")
        recorded[kind].wall.append(wall)
        recorded[kind].cpu.append(cpu)
        return wall / 1000

    @contextmanager
    def warm(root: Path, env: dict[str, str]) -> Iterator[int]:
        with warm_watcher(root, env) as server:
            before = proc_cpu_ms(server)
            yield server
            with_worker_cpu([recorded[kind] for kind in kinds if "-warm" in kind], server, before)

    saved_home = os.environ.get("GUARDIAN_HOME")
    bench_snapshot.run = run
    try:
        result = bench_snapshot.bench_queries(files=1000, snapshots=snapshots, rounds=rounds, warm=warm)
    finally:
        bench_snapshot.run = original
        if saved_home is None:
            os.environ.pop("GUARDIAN_HOME", None)
        else:
            os.environ["GUARDIAN_HOME"] = saved_home
    count = int(result["snapshots"])
    note = f"{count:,} snapshots in the store"
    warm_note = note + "; CPU includes the warm workers' (the server's reaped children), spread evenly"
    rows = []
    for kind, name, limit in (("restore", "`guardian restore NAME`", 100), ("history", "`guardian history PATH`", 60)):
        rows.append(Row(f"(f) {name}, {count // 1000}k snapshots", recorded[kind], recorded["git"],
                        "`git log -1 -- PATH` + `git show`", f"≤ {limit} ms (at 10k snapshots)", at_most(limit),
                        (90,), note + "; no watcher running"))
        rows.append(Row(f"(f) {name}, {count // 1000}k snapshots, a watcher running (warm server)",
                        recorded[f"{kind}-warm"], recorded["git"], "`git log -1 -- PATH` + `git show`",
                        f"≤ {limit} ms (at 10k snapshots)", at_most(limit), (90,), warm_note))
        if recorded[f"{kind}-warm-script"].wall:
            rows.append(Row(f"(f) {name} as typed (the `guardian` script), {count // 1000}k snapshots, warm",
                            recorded[f"{kind}-warm-script"], recorded["git"], "`git log -1 -- PATH` + `git show`",
                            f"≤ {limit} ms (at 10k snapshots)", at_most(limit), (90,), warm_note))
    return rows


# --------------------------------------------------------------------------- report


def machine() -> str:
    from importlib.metadata import version

    import pygit2

    git_version = subprocess.run(["git", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    return (f"{platform.platform()}; nproc {os.cpu_count()}; python {platform.python_version()}; "
            f"pygit2 {version('pygit2')} (libgit2 {pygit2.LIBGIT2_VERSION}); {git_version}")


def print_table(rows: list[Row]) -> None:
    print("\n| door | guardian median (wall) | baseline median (wall) | baseline | gap | "
          "CPU guardian / baseline | goal | wall | CPU |")
    print("|---|---:|---:|---|---:|---:|---|---|---|")
    for r in rows:
        g, b = r.guardian.median, r.baseline.median
        extra = "".join(f", p{q:g} {r.guardian.p(q):.0f}" for q in r.percentiles)
        has_cpu = bool(r.guardian.cpu and r.baseline.cpu)
        cpu = f"{r.guardian.cpu_median:.0f} / {r.baseline.cpu_median:.0f} ms" if has_cpu else "n/a"
        cpu_verdict = r.verdict(r.guardian.cpu_median, r.baseline.cpu_median) if has_cpu else "n/a"
        print(f"| {r.door} | {g:.0f} ms{extra} | {b:.0f} ms | {r.baseline_name} | {g / b:.1f}x, {g - b:+.0f} ms "
              f"| {cpu} | {r.goal} | {r.verdict(g, b)} | {cpu_verdict} |")
    notes = [f"- {r.door}: {r.note}" for r in rows if r.note]
    if notes:
        print("\n" + "\n".join(notes))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer rounds; finishes in about 3 minutes")
    parser.add_argument("--full", action="store_true", help="adds 100k files to (e) and 10k snapshots to (f)")
    parser.add_argument("--only", default="abcdef", help="which doors to run, e.g. 'bd' (default all)")
    args = parser.parse_args(argv)
    rounds = 7 if args.quick else 21
    # Measure guardian as installed: with its bytecode compiled, as pip and scripts/setup leave it.
    import compileall

    compileall.compile_dir(str(REPO_ROOT / "guardian"), quiet=1)
    started = time.perf_counter()
    load_start = os.getloadavg()
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"machine: {machine()}")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in load_start)}", flush=True)
    rows: list[Row] = []
    steps: list[tuple[str, Callable[[], list[Row]]]] = [
        ("a", lambda: door_watcher(10000, 30 if args.quick else 200)),
        ("b", lambda: door_checkout(rounds)),
        ("d", lambda: door_agent_hook(15 if args.quick else 41)),
        ("e", lambda: [door_first_snapshot(n) for n in ((20000, 100000) if args.full else (20000,))]),
        ("f", lambda: door_queries(10000 if args.full else 2000, rounds)),
    ]
    for key, step in steps:
        if key in args.only or (key == "b" and "c" in args.only):
            t0 = time.perf_counter()
            rows.extend(step())
            print(f"door {key}: {time.perf_counter() - t0:.0f} s", flush=True)
    print_table(rows)
    print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
