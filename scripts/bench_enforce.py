"""What the watcher's enforcement (guardian.gates.enforce) adds to a capture.

A git repository of --files files (default 1,000; 20 of them protected under agents/)
with --commits commits of history on the protected file, guarded by guardian without
git hooks.  Each scenario changes files on disk, captures them as the watcher does
(``Capture.run(paths, "watch")`` under the writer lock), then times the enforcement of
that capture (``Enforcer.enforce``) on its own, in the same process, -n times:

- unprotected 1 / 100: ordinary edits of files no rule protects (the common case)
- protected edit 1: an edit of a protected file whose rule sets no ``modify`` (recorded only)
- mixed 100 (10 protected): a batch with ordinary edits of protected files in it; each
  protected file has --versions captured versions first (default 100), so the cost of a
  long history shows
- rollback, granted: a protected file back to its old content under a grant (classified,
  explained against the reflog, left standing)
- rollback, undone: the same without a grant: the time to the undo written, snapshotted
  and logged (the work an undo does, not overhead on other captures)

Enforcement is given as wall time and as this process's CPU time (user+sys; git's child
processes not counted), which a loaded machine inflates less.

The goal (issue 11): enforcement adds at most 5 ms to a capture.

Usage: python scripts/bench_enforce.py [-n 50] [--files 1000] [--commits 200] [--versions 100]
Everything lives in a temp directory under BENCH_TMP (default: the system's); GUARDIAN_HOME points into it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

POLICY = """version: 1
protect:
  - paths: ["agents/"]
    reason: "WO pipeline"
"""
RUN = "agents/run.py"


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def setup(base: Path, files: int, commits: int) -> Path:
    repo = base / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / ".git" / "info" / "exclude").write_text(".guardian-id\n")
    hooks = base / "no-hooks"
    hooks.mkdir()
    git(repo, "config", "core.hooksPath", str(hooks))
    (repo / "guardian.yaml").write_text(POLICY)
    for i in range(files - 20):
        path = repo / f"src/d{i // 10:03}/f{i:04}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"x = {i}\n")
    for i in range(20):
        path = repo / f"agents/a{i:02}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"a = {i}\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    for i in range(commits):
        (repo / RUN).write_text(f"v = {i}\n")
        git(repo, "add", RUN)
        git(repo, "commit", "-q", "-m", f"run {i}")
    return repo


def stats(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p90 = ms[min(len(ms) - 1, int(len(ms) * 0.9))]
    return f"median {statistics.median(ms):7.2f} ms  p90 {p90:7.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=50)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--commits", type=int, default=200)
    parser.add_argument("--versions", type=int, default=100, help="captured versions of each protected file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        base = Path(tmp)
        os.environ["GUARDIAN_HOME"] = str(base / "home")
        started = time.monotonic()
        repo = setup(base, args.files, args.commits)
        return bench(repo, args.n, started, args.versions)


def bench(root: Path, n: int, started: float, versions: int) -> int:
    from guardian.capture.engine import Capture, SnapshotResult
    from guardian.gates.enforce import Enforcer
    from guardian.ops.initialize import init_project
    from guardian.project import Project
    from guardian.trust.grants import add_grant, revoke_grants

    init_project(root)
    (root / RUN).write_text("v = 'fix'\n")  # newest; every 'v = i' before it is older
    project = Project.find(root)
    shadow = project.open_repo()
    catalog = project.open_catalog()
    capture = Capture(project, shadow, catalog)
    enforcer = Enforcer(project)

    def captured(paths: list[str]) -> SnapshotResult:
        with project.writer_lock():
            return capture.run(paths, "watch")

    captured([RUN])
    protected = [f"agents/a{i:02}.py" for i in range(10)]
    for round_ in range(versions):
        # A long captured history on each protected file: enforcement must not cost more for it.
        for rel in protected:
            (root / rel).write_text(f"history = {round_}\n")
        captured(protected)
    print(
        f"setup {time.monotonic() - started:.1f}s: {len(list(catalog.paths()))} files tracked, "
        f"{len(catalog.versions_of(protected[0]))} versions of each protected file, "
        f"{len((root / '.git' / 'logs' / 'HEAD').read_text().splitlines())} reflog entries, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    counter = [0]

    def edit(paths: list[str]) -> Callable[[], list[str]]:
        def go() -> list[str]:
            counter[0] += 1
            for rel in paths:
                (root / rel).write_text(f"edited = {counter[0]}\n")
            return paths

        return go

    plain = [f"src/d{i // 10:03}/f{i:04}.py" for i in range(100)]
    mixed = plain[:90] + protected

    def rollback() -> list[str]:
        (root / RUN).write_text("v = 'fix'\n")
        captured([RUN])  # an edit forward (or nothing, after an undo)
        (root / RUN).write_text("v = 3\n")  # content of commit 'run 3': older than the fix
        return [RUN]

    def scenario(name: str, change: Callable[[], list[str]], grant: bool = False) -> None:
        if grant:
            add_grant(project.paths.store, "rollback", [RUN], by="bench", seconds=3600)
        capture_times: list[float] = []
        enforce_times: list[float] = []
        enforce_cpu: list[float] = []
        acted = 0
        for _ in range(n):
            paths = change()
            t0 = time.perf_counter()
            result = captured(paths)
            t1, c1 = time.perf_counter(), time.process_time()
            done = enforcer.enforce(result, catalog, shadow)
            t2, c2 = time.perf_counter(), time.process_time()
            enforce_cpu.append(c2 - c1)
            acted += len(done)
            capture_times.append(t1 - t0)
            enforce_times.append(t2 - t1)
        if grant:
            revoke_grants(project.paths.store)
        ratio = statistics.median(enforce_times) / statistics.median(capture_times) * 100
        print(
            f"{name:<28} capture {stats(capture_times)}   enforce {stats(enforce_times)}"
            f"   cpu median {statistics.median(enforce_cpu) * 1000:6.2f} ms"
            f"   ({ratio:.0f}% of the capture; {acted} decision(s))"
        )

    scenario("unprotected 1", edit(plain[:1]))
    scenario("unprotected 100", edit(plain))
    scenario("protected edit 1", edit(protected[:1]))
    scenario("mixed 100 (10 protected)", edit(mixed))
    scenario("rollback, granted", rollback, grant=True)
    scenario("rollback, undone", rollback)
    catalog.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
