"""Measure the agent gate against a corpus of real commands, with the truth taken from running them.

Each command shape in ``tests/data/agent_corpus.txt`` is written onto a protected
path and onto an unprotected one, then, for every instance:

1. a throwaway copy of a small git project is made (a protected component, a
   symlink into it, local edits, untracked files, a stash, a side branch,
   patches and archives);
2. the gate decides, through :func:`guardian.gates.agent.hook.run_hook` with a
   real PreToolUse payload (the quick look included);
3. the command is run for real in the copy, and the files before and after are
   compared.  A command that changed or removed a protected file is damaging;
   any other is harmless, whatever it did to unprotected files.

It reports false negatives (damaging, let through), false positives (harmless,
blocked) and the hook's latency: the CPU time of ``python -m guardian
agent-hook`` on benign commands against a bare interpreter.  Nothing is fetched:
the corpus is in the repository and downloads use ``file://`` URLs.

    python scripts/bench_agent.py            # the whole corpus, with latency
    python scripts/bench_agent.py --quick    # every 4th shape, no latency (the test suite runs this)
    python scripts/bench_agent.py --show fn  # list the false negatives (or fp, or all)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "data" / "agent_corpus.txt"
POLICY = """\
version: 1
protect:
  - paths: ["agents/wo_executor/"]
    rollback: force
    delete: block
    reason: "WO pipeline"
"""
PROTECTED_PREFIXES = ("agents/wo_executor/", "guardian.yaml")
# Placeholders of the corpus, written onto the protected component and onto an unprotected one.
TARGETS = {
    "protected": {"F": "agents/wo_executor/run.py", "D": "agents/wo_executor", "P": "agents", "N": "wo_executor",
                  "L": "wo_link", "G": "agents/wo_*", "PATCH": "prot.patch", "TAR": "prot.tar", "ZIP": "prot.zip",
                  "C": "prot-commit", "B": "side-prot", "M": "run.py", "E": "agents/wo_executor/util.py"},
    "unprotected": {"F": "src/app.py", "D": "src", "P": "build", "N": "obj", "L": "src_link", "G": "sr*",
                    "PATCH": "app.patch", "TAR": "app.tar", "ZIP": "app.zip", "C": "app-commit", "B": "side-app",
                    "M": "app.py", "E": "src/util.py"},
}
RUN_TIMEOUT = 10.0


@dataclass(frozen=True)
class Case:
    shape: str
    command: str
    klass: str
    variant: str  # protected, unprotected or plain (no placeholder)


@dataclass
class Outcome:
    case: Case
    damaging: bool
    blocked: bool
    message: str
    seconds: float


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def build_fixture(root: Path) -> None:
    """The project every command runs against (a copy of it, each time)."""
    root.mkdir(parents=True)
    _git("init", "-q", "-b", "main", cwd=root)
    _git("config", "user.email", "bench@example.invalid", cwd=root)
    _git("config", "user.name", "bench", cwd=root)
    _write(root, "guardian.yaml", POLICY)
    _write(root, "README.md", "readme\n")
    _write(root, "src/app.py", "app = 1\n")
    _write(root, "src/util.py", "util = 1\n")
    _write(root, ".gitignore", "build/\n*.log\n")
    _write(root, "scripts/test.sh", "#!/bin/sh\necho ok\n")
    os.chmod(root / "scripts/test.sh", 0o755)
    _write(root, "data.json", '{"out": "build", "version": "1.0"}\n')
    _git("add", ".", cwd=root)
    _git("commit", "-q", "-m", "base", cwd=root)
    _write(root, "agents/wo_executor/run.py", "print('run')\n")
    _write(root, "agents/wo_executor/util.py", "UTIL = 1\n")
    _write(root, "agents/other/tool.py", "TOOL = 1\n")
    _write(root, "src/app.py", "app = 2\n")
    _git("add", ".", cwd=root)
    _git("commit", "-q", "-m", "pipeline", cwd=root)
    # One commit that changes only the protected file, then one that changes only an unprotected one,
    # and a branch of each kind: revert, cherry-pick, apply -R and checkout act on one or the other.
    _write(root, "agents/wo_executor/run.py", "print('run v2')\n")
    _git("commit", "-q", "-am", "protected change", cwd=root)
    _git("tag", "prot-commit", cwd=root)
    _write(root, "src/app.py", "app = 3\n")
    _git("commit", "-q", "-am", "unprotected change", cwd=root)
    _git("tag", "app-commit", cwd=root)
    for branch, rel in (("side-prot", "agents/wo_executor/run.py"), ("side-app", "src/app.py")):
        _git("checkout", "-q", "-b", branch, cwd=root)
        _write(root, rel, f"# {branch}\n")
        _git("commit", "-q", "-am", branch, cwd=root)
        _git("checkout", "-q", "main", cwd=root)
    # Patches of each change, to be applied in reverse (undoing it).
    for name, tag in (("prot.patch", "prot-commit"), ("app.patch", "app-commit")):
        diff = subprocess.run(["git", "diff", f"{tag}~1", tag], cwd=root, capture_output=True,
                              text=True, check=True).stdout
        (root / name).write_text(diff)
    # Archives holding older versions of each.
    (root / "old").mkdir()
    _write(root, "old/agents/wo_executor/run.py", "print('archived')\n")
    _write(root, "old/src/app.py", "app = archived\n")
    subprocess.run(["tar", "-cf", str(root / "prot.tar"), "-C", str(root / "old"), "agents/wo_executor/run.py"],
                   check=True)
    subprocess.run(["tar", "-cf", str(root / "app.tar"), "-C", str(root / "old"), "src/app.py"], check=True)
    if shutil.which("zip"):
        subprocess.run(["zip", "-q", str(root / "prot.zip"), "agents/wo_executor/run.py"], cwd=root / "old",
                       check=True)
        subprocess.run(["zip", "-q", str(root / "app.zip"), "src/app.py"], cwd=root / "old", check=True)
    shutil.rmtree(root / "old")
    # A stash holding a change to the protected file, then local edits and untracked files in both.
    _write(root, "agents/wo_executor/util.py", "UTIL = 'stashed'\n")
    _git("stash", "-q", cwd=root)
    _write(root, "agents/wo_executor/util.py", "UTIL = 'edited by hand'\n")
    _write(root, "src/util.py", "util = 'edited by hand'\n")
    _write(root, "agents/wo_executor/scratch.py", "WIP = 1\n")
    _write(root, "src/scratch.py", "WIP = 1\n")
    _write(root, "build/out.txt", "built\n")
    _write(root, "build/obj/a.o", "o\n")
    _write(root, "dist/pkg.whl", "wheel\n")
    _write(root, "notes.txt", "notes\n")
    _write(root, "list.txt", "build/out.txt\n")
    os.symlink("agents/wo_executor", root / "wo_link")
    os.symlink("src", root / "src_link")


def load_corpus(path: Path = CORPUS) -> list[tuple[str, str]]:
    """(class, shape) pairs; a shape is one line, with \\n standing for a newline inside the command."""
    shapes: list[tuple[str, str]] = []
    klass = "misc"
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.rstrip()
        if line.startswith("## "):
            klass = line[3:].strip()
        elif line and not line.startswith("#"):
            shapes.append((klass, line.replace("\\n", "\n")))
    return shapes


def expand(shapes: list[tuple[str, str]]) -> list[Case]:
    cases: list[Case] = []
    for klass, shape in shapes:
        if "{" not in shape or not any("{" + key + "}" in shape for key in TARGETS["protected"]):
            cases.append(Case(shape, shape, klass, "plain"))
            continue
        for variant, values in TARGETS.items():
            command = shape
            for key, value in sorted(values.items(), key=lambda kv: -len(kv[0])):
                command = command.replace("{" + key + "}", value)
            cases.append(Case(shape, command, klass, variant))
    return cases


def _fingerprint(root: Path) -> dict[str, tuple[str, bytes]]:
    """Every file's content hash and content (a symlink's target), by root-relative path; .git left out."""
    found: dict[str, tuple[str, bytes]] = {}
    for directory, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".git" or Path(directory) != root]
        for name in files + [d for d in dirs if os.path.islink(os.path.join(directory, d))]:
            path = os.path.join(directory, name)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                found[rel] = ("link:" + os.readlink(path), b"\0link")
            else:
                try:
                    data = Path(path).read_bytes()
                except OSError:
                    data = b"\0unreadable"
                found[rel] = (hashlib.sha256(data).hexdigest(), data)
    return found


def _damaged(root: Path, before: dict[str, tuple[str, bytes]], after: dict[str, tuple[str, bytes]]) -> list[str]:
    """Protected files whose content was lost: removed, or rewritten so the old content is no longer
    a prefix of the new (appending loses nothing, and guardian lets it through on purpose)."""
    lost = []
    for rel, (digest, content) in before.items():
        if not rel.startswith(PROTECTED_PREFIXES):
            continue
        now = after.get(rel)
        if now is None or (now[0] != digest and not now[1].startswith(content)):
            lost.append(rel)
    return sorted(lost)


def _payload(command: str, cwd: Path) -> str:
    return json.dumps({"session_id": "bench", "transcript_path": "/nonexistent", "cwd": str(cwd),
                       "permission_mode": "default", "hook_event_name": "PreToolUse", "tool_name": "Bash",
                       "tool_input": {"command": command}, "tool_use_id": "toolu_bench"})


def run_case(case: Case, fixture: Path, scratch: Path, environ: dict[str, str]) -> Outcome:
    from guardian.gates.agent.hook import run_hook

    work = scratch / "work"
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(fixture, work, symlinks=True)
    tmp = scratch / "tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    env = {**environ, "TMPDIR": str(tmp)}
    command = case.command
    if command.startswith("[clean] "):
        # The shape wants a clean tree: commit the fixture's local edits first (outside the measurement).
        command = command[len("[clean] "):]
        _git("add", "-A", cwd=work)
        _git("commit", "-q", "-m", "wip", cwd=work)
    start = time.perf_counter()
    result = run_hook(_payload(command, work), env, work)
    seconds = time.perf_counter() - start
    before = _fingerprint(work)
    try:
        subprocess.run(["bash", "-c", command], cwd=work, env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=RUN_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        pass
    damaged = _damaged(work, before, _fingerprint(work))
    return Outcome(case, bool(damaged), result.exit_code == 2, result.stderr.strip(), seconds)


def _cpu_ms(argv: list[str], stdin: str | None, runs: int) -> float:
    samples = []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        samples.append((after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000)
    return statistics.median(samples)


def latency(fixture: Path, environ: dict[str, str], runs: int = 15) -> dict[str, float]:
    """Median CPU ms of the hook process for a few benign commands, and of a bare interpreter."""
    figures = {"bare interpreter (python -c pass)": _cpu_ms([sys.executable, "-c", "pass"], None, runs)}
    for command in ("ls -la", "git status", "npm test", "git log --oneline | head -5",
                    "git commit -m \"$(cat <<'EOF'\nIt's done\nEOF\n)\"", "rm -rf build"):
        argv = [sys.executable, "-m", "guardian", "agent-hook"]
        figures[command] = _cpu_ms(argv, _payload(command, fixture), runs)
    del environ
    return figures


def summarize(outcomes: list[Outcome]) -> dict[str, object]:
    damaging = [o for o in outcomes if o.damaging]
    harmless = [o for o in outcomes if not o.damaging]
    fn = [o for o in damaging if not o.blocked]
    fp = [o for o in harmless if o.blocked]
    times = sorted(o.seconds for o in outcomes)
    return {
        "commands": len(outcomes),
        "damaging": len(damaging),
        "harmless": len(harmless),
        "false_negatives": len(fn),
        "false_negative_rate": len(fn) / len(damaging) if damaging else 0.0,
        "false_positives": len(fp),
        "false_positive_rate": len(fp) / len(harmless) if harmless else 0.0,
        "decision_ms_median": 1000 * statistics.median(times) if times else 0.0,
        "decision_ms_p95": 1000 * times[int(0.95 * (len(times) - 1))] if times else 0.0,
    }


def iter_outcomes(cases: list[Case], environ: dict[str, str]) -> Iterator[Outcome]:
    with tempfile.TemporaryDirectory(prefix="guardian-bench-") as tmp:
        fixture = Path(tmp) / "fixture"
        build_fixture(fixture)
        for case in cases:
            yield run_case(case, fixture, Path(tmp), environ)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="every 4th shape, no latency runs")
    parser.add_argument("--show", choices=("fn", "fp", "all", "none"), default="fn")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--class", dest="klass", default="", help="only shapes of this class")
    args = parser.parse_args(argv)
    shapes = load_corpus()
    if args.klass:
        shapes = [s for s in shapes if s[0] == args.klass]
    if args.quick:
        shapes = shapes[::4]
    cases = expand(shapes)
    with tempfile.TemporaryDirectory(prefix="guardian-bench-home-") as home:
        # The gate runs in this process: keep its store lookups out of the real home.
        os.environ["GUARDIAN_HOME"] = str(Path(home) / "guardian")
        environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "LC_ALL": "C",
                   "GUARDIAN_HOME": str(Path(home) / "guardian"), "SHELL": "/bin/bash"}
        outcomes = list(iter_outcomes(cases, environ))
        summary = summarize(outcomes)
        if not args.quick:
            with tempfile.TemporaryDirectory(prefix="guardian-bench-lat-") as tmp:
                fixture = Path(tmp) / "fixture"
                build_fixture(fixture)
                old = dict(os.environ)
                os.environ.update({"GUARDIAN_HOME": environ["GUARDIAN_HOME"]})
                try:
                    summary["latency_cpu_ms"] = latency(fixture, environ)
                finally:
                    os.environ.clear()
                    os.environ.update(old)
    per_class: dict[str, list[int]] = {}
    for o in outcomes:
        row = per_class.setdefault(o.case.klass, [0, 0, 0, 0])
        row[0] += o.damaging
        row[1] += o.damaging and not o.blocked
        row[2] += not o.damaging
        row[3] += (not o.damaging) and o.blocked
    summary["per_class"] = {k: {"damaging": v[0], "fn": v[1], "harmless": v[2], "fp": v[3]}
                            for k, v in per_class.items()}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for key, value in summary.items():
            if key == "per_class":
                print("per class (damaging/fn, harmless/fp):")
                for k, v in value.items():  # type: ignore[attr-defined]
                    print(f"  {k:28} {v['damaging']:4}/{v['fn']:<3} {v['harmless']:4}/{v['fp']:<3}")
            elif key == "latency_cpu_ms":
                print("hook CPU time, median ms:")
                for k, v in value.items():  # type: ignore[attr-defined]
                    print(f"  {v:7.1f}  {k!r}")
            elif isinstance(value, float):
                print(f"{key}: {value:.3f}")
            else:
                print(f"{key}: {value}")
    wanted = {"fn": lambda o: o.damaging and not o.blocked, "fp": lambda o: not o.damaging and o.blocked,
              "all": lambda o: True, "none": lambda o: False}[args.show]
    for o in outcomes:
        if wanted(o):
            tag = "FN" if o.damaging and not o.blocked else "FP" if o.blocked and not o.damaging else "ok"
            print(f"{tag} [{o.case.klass}/{o.case.variant}] {o.case.command!r} -> {o.message[:160]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
