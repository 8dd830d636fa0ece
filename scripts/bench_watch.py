#!/usr/bin/env python3
"""Benchmark the guardian watcher against the gitwatch approach.

Measures, in one run on one machine:

1. latency from a file write to the snapshot ref update, p50/p99 over N single-file
   changes in a tree of F files: guardian's watcher, then the gitwatch approach
   (inotifywait piped into a debounced ``git add -A && git commit``) at its default
   2 s debounce and with none;
2. time until every file of a B-file burst is captured by guardian;
3. the watcher's RSS (and idle CPU) on a tree of R files.

Everything lives in a temp dir (GUARDIAN_HOME included); nothing touches the real
home.  ``--quick`` shrinks every size for iteration.  Needs Linux and, for the
baseline, inotifywait (Debian: ``apt-get install inotify-tools``).

    python scripts/bench_watch.py            # full run, several minutes
    python scripts/bench_watch.py --quick    # a minute or so
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import os
import platform
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

IN_MODIFY = 0x002
IN_CLOSE_WRITE = 0x008
IN_MOVED_TO = 0x080
IN_CREATE = 0x100

# gitwatch's core loop (github.com/gitwatch/gitwatch), reduced to what matters for timing:
# every event restarts a "sleep DEBOUNCE; git add -A; git commit" job in the background.
GITWATCH = r"""
cd "$1" || exit 1
SLEEP_TIME="$2"
inotifywait -qmr -e close_write,move,move_self,delete,create,modify --exclude '(^|/)\.git(/|$)' . |
while read -r line; do
  if [ -n "$SLEEP_PID" ] && kill -0 "$SLEEP_PID" 2>/dev/null; then
    kill "$SLEEP_PID" 2>/dev/null || true
    wait "$SLEEP_PID" 2>/dev/null || true
  fi
  ( sleep "$SLEEP_TIME"; git add -A . >/dev/null 2>&1; git commit -q -m "auto-commit" >/dev/null 2>&1 ) &
  SLEEP_PID=$!
done
"""


# --------------------------------------------------------------------------- helpers


class DirNotify:
    """Blocks until something is renamed into or written in one directory (no polling)."""

    def __init__(self, directory: Path) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        mask = IN_MOVED_TO | IN_CLOSE_WRITE | IN_CREATE | IN_MODIFY
        if self._libc.inotify_add_watch(self.fd, os.fsencode(directory), mask) < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {directory}")

    def wait(self, timeout: float) -> None:
        readable, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        if readable:
            try:
                while os.read(self.fd, 65536):
                    pass
            except BlockingIOError:
                pass

    def close(self) -> None:
        os.close(self.fd)


def read_ref(path: Path) -> str:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""


def wait_ref_change(notify: DirNotify, ref: Path, old: str, timeout: float) -> float | None:
    """perf_counter() when ref no longer reads old, or None on timeout."""
    deadline = time.perf_counter() + timeout
    while True:
        now_value = read_ref(ref)
        if now_value and now_value != old:
            return time.perf_counter()
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            return None
        notify.wait(min(remaining, 0.05))


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def make_tree(root: Path, files: int, per_dir: int = 100) -> list[str]:
    rels: list[str] = []
    for i in range(files):
        rel = f"d{i // per_dir:04}/f{i % per_dir:03}.txt"
        path = root / rel
        if i % per_dir == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"file {i}\n" + "x" * 64 + "\n")
        rels.append(rel)
    return rels


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Latency:
    name: str
    samples: list[float] = field(default_factory=list)
    missed: int = 0

    def summary(self) -> dict[str, Any]:
        ms = [s * 1000 for s in self.samples]
        return {
            "name": self.name,
            "n": len(ms),
            "missed": self.missed,
            "p50_ms": round(statistics.median(ms), 1) if ms else None,
            "p99_ms": round(percentile(ms, 99), 1) if ms else None,
            "max_ms": round(max(ms), 1) if ms else None,
        }


# Between two changes: longer than guardian's 100 ms quiet window, so each change is a first change
# after quiet (the leading edge); changes closer together are coalesced by design (the bursts below).
PAUSE_BETWEEN_CHANGES = 0.2


def measure_latency(name: str, root: Path, rels: list[str], ref: Path, changes: int, timeout: float) -> Latency:
    result = Latency(name)
    notify = DirNotify(ref.parent)
    try:
        step = max(1, len(rels) // changes)
        for n in range(changes):
            rel = rels[(n * step) % len(rels)]
            old = read_ref(ref)
            data = f"change {n} at {time.time()}\n".encode()
            start = time.perf_counter()
            fd = os.open(root / rel, os.O_WRONLY | os.O_TRUNC)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            done = wait_ref_change(notify, ref, old, timeout)
            if done is None:
                result.missed += 1
            else:
                result.samples.append(done - start)
            time.sleep(PAUSE_BETWEEN_CHANGES)  # the writer's bookkeeping is done, and the tree is quiet again
    finally:
        notify.close()
    return result


# --------------------------------------------------------------------------- guardian


class Guardian:
    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env

    def run(self, *args: str, timeout: float = 3600) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "guardian", "-C", str(self.root), *args],
            env=self.env, capture_output=True, text=True, timeout=timeout, check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"guardian {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
        return proc.stdout

    def store(self) -> Path:
        status = json.loads(self.run("status", "--json"))
        return Path(status["store"])

    def start(self) -> int:
        """Start the watcher; return once its start rescan is done too (``self.watching_s`` and
        ``self.caught_up_s``: seconds from the start command to "watching" and to the rescan's end)."""
        # The store's path is read first: a `status` at 100k files takes ~0.7 s, which is not the start's.
        store = self.store()
        started = time.perf_counter()
        report = json.loads(self.run("start", "--json", "--timeout", "600"))
        pid = int(report["pid"])
        self.watching_s: float | None = None
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:  # watching means observing; wait for the start rescan too
            try:
                beat = json.loads((store / "watcher.json").read_text())
            except (OSError, ValueError):
                beat = {}
            if beat.get("pid") == pid and beat.get("state") == "watching":
                if self.watching_s is None:
                    self.watching_s = time.perf_counter() - started
                if beat.get("catching_up") is not True:
                    self.caught_up_s = time.perf_counter() - started
                    return pid
            time.sleep(0.02)
        raise RuntimeError("the watcher never finished its start rescan")

    def stop(self) -> None:
        self.run("stop", "--timeout", "600")


def proc_status(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) // 1024  # MiB
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def snapshot_blobs(repo: Path) -> dict[str, str]:
    out = subprocess.run(
        ["git", "--git-dir", str(repo), "ls-tree", "-r", "refs/heads/snapshots"],
        capture_output=True, text=True, check=True,
    ).stdout
    blobs: dict[str, str] = {}
    for line in out.splitlines():
        meta, _, path = line.partition("\t")
        blobs[path] = meta.split()[2]
    return blobs


def bench_guardian(work: Path, env: dict[str, str], files: int, changes: int, burst: int) -> dict[str, Any]:
    root = work / "guardian-tree"
    root.mkdir()
    rels = make_tree(root, files)
    g = Guardian(root, env)
    started = time.perf_counter()
    g.run("init")
    init_s = time.perf_counter() - started
    store = g.store()
    ref = store / "repo.git" / "refs" / "heads" / "snapshots"
    started = time.perf_counter()
    pid = g.start()
    start_s = time.perf_counter() - started
    try:
        # init queued its secret scan for the watcher; latency is measured once that catch-up,
        # a one-off after init, is over (its length is reported on its own).
        queue = store / "secrets-pending.jsonl"
        drain_started = time.perf_counter()
        while queue.exists() and time.perf_counter() - drain_started < 1800:
            time.sleep(0.1)
        queue_drained_s = time.perf_counter() - drain_started
        latency = measure_latency("guardian watcher", root, rels, ref, changes, timeout=10)
        # Burst 1: a Python loop rewrites `burst` files; burst 2: `cp -r` (C speed, like a git checkout)
        # lays another version of them over the tree.  Each ends when every final state is in the store.
        bursts = {tool: run_burst(root, store, rels[:burst], tool) for tool in ("python", "cp")}
        rss = proc_status(pid)
    finally:
        g.stop()
    return {
        "files": files,
        "init_s": round(init_s, 2),
        "start_s": round(start_s, 2),
        "secret_queue_drained_s": round(queue_drained_s, 2),
        "latency": latency.summary(),
        "burst": bursts,
        "rss_after_burst_mib": rss,
    }


def run_burst(root: Path, store: Path, targets: list[str], tool: str) -> dict[str, Any]:
    source = root.parent / f"burst-source-{tool}"
    contents = {rel: f"burst by {tool}: {rel}\n".encode() for rel in targets}
    if tool == "cp":
        for rel, data in contents.items():
            (source / rel).parent.mkdir(parents=True, exist_ok=True)
            (source / rel).write_bytes(data)
    notify = DirNotify(store / "repo.git" / "refs" / "heads")
    t0 = time.perf_counter()
    if tool == "cp":
        subprocess.run(["cp", "-r", f"{source}/.", str(root)], check=True)
    else:
        for rel, data in contents.items():
            (root / rel).write_bytes(data)
    written = time.perf_counter() - t0
    expected = {rel: git_blob_id(data) for rel, data in contents.items()}
    deadline = time.perf_counter() + 600
    captured_at: float | None = None
    while time.perf_counter() < deadline:
        blobs = snapshot_blobs(store / "repo.git")
        if all(blobs.get(rel) == oid for rel, oid in expected.items()):
            captured_at = time.perf_counter()
            break
        notify.wait(1.0)
    notify.close()
    shutil.rmtree(source, ignore_errors=True)
    return {
        "files": len(targets),
        "tool": tool,
        "write_s": round(written, 2),
        "all_captured_s": round(captured_at - t0, 2) if captured_at else None,
    }


# --------------------------------------------------------------------------- gitwatch approach


def bench_gitwatch(work: Path, env: dict[str, str], files: int, changes: int, debounce: float) -> dict[str, Any]:
    root = work / f"gitwatch-tree-{debounce:g}"
    root.mkdir()
    rels = make_tree(root, files)
    git_env = {**env, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "b@example.com",
               "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "b@example.com"}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "init"]):
        subprocess.run(["git", *args], cwd=root, env=git_env, check=True, capture_output=True)
    script = work / "gitwatch-core.sh"
    script.write_text(GITWATCH)
    proc = subprocess.Popen(
        ["bash", str(script), str(root), f"{debounce:g}"], env=git_env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        time.sleep(2.0)  # inotifywait sets up its watches
        ref = root / ".git" / "refs" / "heads" / "main"
        latency = measure_latency(
            f"gitwatch approach, {debounce:g} s debounce", root, rels, ref, changes, timeout=debounce + 10
        )
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    return {"files": files, "debounce_s": debounce, "latency": latency.summary()}


# --------------------------------------------------------------------------- RSS at scale


def bench_rss(work: Path, env: dict[str, str], files: int) -> dict[str, Any]:
    root = work / "rss-tree"
    root.mkdir()
    rels = make_tree(root, files)
    g = Guardian(root, env)
    started = time.perf_counter()
    g.run("init")
    init_s = time.perf_counter() - started
    pid = g.start()
    try:
        settled = proc_status(pid)
        cpu0 = cpu_seconds(pid)
        time.sleep(10)
        idle_cpu = cpu_seconds(pid) - cpu0
        store = g.store()
        ref = store / "repo.git" / "refs" / "heads" / "snapshots"
        latency = measure_latency(f"guardian watcher, {files} files", root, rels, ref, 20, timeout=10)
        after = proc_status(pid)
    finally:
        g.stop()
    return {
        "files": files,
        "init_s": round(init_s, 1),
        "start_to_watching_s": round(g.watching_s or 0.0, 2),
        "start_to_caught_up_s": round(g.caught_up_s, 2),
        "rss_mib": settled,
        "rss_after_changes_mib": after,
        "idle_cpu_s_per_10s": round(idle_cpu, 3),
        "latency": latency.summary(),
    }


# --------------------------------------------------------------------------- main


def machine() -> dict[str, Any]:
    def run(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()
        except OSError:
            return "n/a"

    return {
        "nproc": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "watchdog": version("watchdog"),
        "pygit2": version("pygit2"),
        "git": run("git", "--version"),
        "inotifywait": (run("inotifywait", "--help").splitlines() or ["n/a"])[0],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes, for iteration")
    parser.add_argument("--files", type=int, default=None, help="tree size for latency (default 10000)")
    parser.add_argument("--changes", type=int, default=None, help="single-file changes per run (default 200)")
    parser.add_argument("--burst", type=int, default=None, help="files in the burst (default 10000)")
    parser.add_argument("--rss-files", type=int, default=None, help="tree size for RSS (default 100000)")
    parser.add_argument("--skip-gitwatch", action="store_true")
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--workdir", type=Path, default=None, help="where trees go (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    files = args.files or (2000 if args.quick else 10000)
    changes = args.changes or (50 if args.quick else 200)
    burst = min(files, args.burst or (2000 if args.quick else 10000))
    rss_files = args.rss_files or (20000 if args.quick else 100000)

    work = Path(tempfile.mkdtemp(prefix="guardian-bench-", dir=args.workdir))
    env = {**os.environ, "GUARDIAN_HOME": str(work / "guardian-home"),
           "GIT_CONFIG_GLOBAL": str(work / "gitconfig"), "GIT_CONFIG_NOSYSTEM": "1"}
    for key in ("GUARDIAN_WATCH_QUIET", "GUARDIAN_WATCH_MAX_DELAY", "GUARDIAN_FORCE_POLLING"):
        env.pop(key, None)
    results: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "filesystem": subprocess.run(["df", "-T", str(work)], capture_output=True, text=True).stdout.strip(),
    }
    try:
        print(f"guardian: {files}-file tree, {changes} changes, {burst}-file burst ...", flush=True)
        results["guardian"] = bench_guardian(work, env, files, changes, burst)
        print(json.dumps(results["guardian"], indent=2), flush=True)
        if not args.skip_gitwatch:
            if shutil.which("inotifywait") is None:
                print("inotifywait not found: skipping the gitwatch baseline (apt-get install inotify-tools)")
            else:
                results["gitwatch"] = []
                for debounce in (2.0, 0.0):
                    print(f"gitwatch approach, {debounce:g} s debounce ...", flush=True)
                    entry = bench_gitwatch(work, env, files, changes, debounce)
                    results["gitwatch"].append(entry)
                    print(json.dumps(entry, indent=2), flush=True)
        if not args.skip_rss:
            print(f"RSS on a {rss_files}-file tree ...", flush=True)
            results["rss"] = bench_rss(work, env, rss_files)
            print(json.dumps(results["rss"], indent=2), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_summary(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def print_summary(results: dict[str, Any]) -> None:
    print("\n== summary ==")
    print(json.dumps(results["machine"]))
    print(results["filesystem"])
    g = results["guardian"]["latency"]
    print(f"{'approach':<40} {'n':>4} {'miss':>4} {'p50 ms':>8} {'p99 ms':>8} {'p50 ratio':>10}")
    rows = [g] + [entry["latency"] for entry in results.get("gitwatch", [])]
    for row in rows:
        ratio = (row["p50_ms"] / g["p50_ms"]) if row["p50_ms"] and g["p50_ms"] else float("nan")
        print(
            f"{row['name']:<40} {row['n']:>4} {row['missed']:>4} {row['p50_ms'] or 0:>8.1f} "
            f"{row['p99_ms'] or 0:>8.1f} {ratio:>9.1f}x"
        )
    for b in results["guardian"]["burst"].values():
        print(
            f"burst of {b['files']} files by {b['tool']}: written in {b['write_s']} s, "
            f"all captured after {b['all_captured_s']} s"
        )
    if "rss" in results:
        r = results["rss"]
        print(
            f"{r['files']} files: RSS {r['rss_mib'].get('VmRSS')} MiB (peak {r['rss_mib'].get('VmHWM')} MiB), "
            f"idle CPU {r['idle_cpu_s_per_10s']} s per 10 s, start to watching {r['start_to_watching_s']} s "
            f"(start rescan done after {r['start_to_caught_up_s']} s)"
        )


if __name__ == "__main__":
    raise SystemExit(main())
