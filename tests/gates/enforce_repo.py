"""A real git repository guarded by guardian WITHOUT git hooks, for the enforcement tests.

The watcher alone must hold: ``core.hooksPath`` points at an empty directory, so no hook
guardian may install (now or in a later version of ``init``) ever runs.  History:
``base`` (agents/run.py "old") then ``fix`` (agents/run.py "fix"); guardian captured
both, so the fix is "the newest valid version".

Waiting polls with generous deadlines (the machine is shared); the 1 s target is
asserted on the enforce event itself: its time minus the capture time of the change.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from guardian.events import Event
from guardian.ops.initialize import init_project
from guardian.ops.snapshot import take_snapshot
from guardian.project import Project
from tests.watch.test_watcher import wait_captured, wait_until

POLICY = """\
version: 1
guardrail:
  interval: 300s
  repair: false
protect:
  - paths: ["agents/"]
    reason: "WO pipeline"
  - paths: ["frozen/"]
    rollback: block
    delete: block
    reason: "frozen release"
"""
A = "agents/run.py"
FROZEN = "frozen/release.txt"
OLD = "v = 'old'\n"
FIX = "v = 'fix'\n"
# Generous: other engineers' suites load this machine; the 1 s target is checked on the event.
WAIT = 60.0
TARGET_SECONDS = 1.0


def g(root: Path, *args: str, env: dict[str, str] | None = None, check: bool = True) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=root, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=120
    )
    if check:
        assert proc.returncode == 0, f"git {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def write(root: Path, rel: str, text: str) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(text)


def read(root: Path, rel: str) -> str | None:
    try:
        return (root / rel).read_text()
    except FileNotFoundError:
        return None


def commit_all(root: Path, message: str) -> str:
    g(root, "add", "-A")
    g(root, "commit", "-q", "-m", message)
    return g(root, "rev-parse", "HEAD").strip()


@dataclass
class Repo:
    root: Path
    project: Project
    base: str
    fix: str

    def git(self, *args: str, env: dict[str, str] | None = None, check: bool = True) -> str:
        return g(self.root, *args, env=env, check=check)

    def read(self, rel: str = A) -> str | None:
        return read(self.root, rel)

    def write(self, rel: str, text: str) -> None:
        write(self.root, rel, text)

    def mark(self) -> int:
        """How many events the log holds now: the ones after it are this step's."""
        return len(list(self.project.events.read()))

    def enforce_events(self, after: int) -> list[Event]:
        return [e for e in list(self.project.events.read())[after:] if e.event == "enforce"]


def make_repo(base_dir: Path, *, capture_old: bool = True, extra: dict[str, str] | None = None) -> Repo:
    """base (A old, frozen v1, other o1) then fix (A fix, frozen v2); hooks off; guardian has captured both.

    capture_old=False: guardian is set up only after the fix is committed, so the old
    content is known only from git's history.
    """
    root = base_dir / "repo"
    root.mkdir(parents=True)
    g(root, "init", "-q", "-b", "main")
    (root / ".git" / "info" / "exclude").write_text(".guardian-id\n")
    write(root, "guardian.yaml", POLICY)
    write(root, A, OLD)
    write(root, FROZEN, "release 1\n")
    write(root, "other.txt", "o1\n")
    for rel, text in (extra or {}).items():
        write(root, rel, text)
    base = commit_all(root, "base")
    if capture_old:
        init_project(root)
    write(root, A, FIX)
    write(root, FROZEN, "release 2\n")
    fix = commit_all(root, "fix")
    if not capture_old:
        init_project(root)
    # Without git hooks: whatever `guardian init` installs, git runs none of it.
    no_hooks = base_dir / "no-hooks"
    no_hooks.mkdir()
    g(root, "config", "core.hooksPath", str(no_hooks))
    project = Project.find(root)
    take_snapshot(project, None, "manual")
    return Repo(root, project, base, fix)


def event_time(event: Event) -> float:
    return dt.datetime.fromisoformat(event.ts).timestamp()


def latency(event: Event) -> float:
    """Seconds from the capture of the change to the enforce event."""
    return event_time(event) - float(event.details["captured_at"])


def record_latency(route: str, event: Event) -> float:
    seconds = latency(event)
    log = os.environ.get("GUARDIAN_ENFORCE_LATENCY_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(f"{route}\t{seconds * 1000:.1f}\n")
    return seconds


def wait_undone(repo: Repo, after: int, want: str | None, rel: str = A, route: str = "") -> Event:
    """Wait until the watcher put ``want`` back at rel and logged it; assert the 1 s target on the event."""

    def done() -> bool:
        return repo.read(rel) == want and any(
            e.details.get("action") == "undone" and rel in e.paths for e in repo.enforce_events(after)
        )

    try:
        wait_until(done, f"{rel} to be put back ({want!r})", WAIT)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{explain_state(repo, after, rel)}") from None
    event = next(e for e in repo.enforce_events(after) if e.details.get("action") == "undone" and rel in e.paths)
    seconds = record_latency(route or rel, event)
    assert seconds < TARGET_SECONDS, f"the undo came {seconds:.3f}s after the capture: {event.details}"
    settle(repo)
    assert repo.read(rel) == want, "the content put back did not stay"
    return event


def wait_stands(repo: Repo, after: int, want: str | None, rel: str = A) -> None:
    """The watcher captured ``want`` at rel and, well past the 1 s target, left it there."""
    wait_captured(repo.project, rel, want, WAIT)
    settle(repo)
    assert repo.read(rel) == want
    undone = [e for e in repo.enforce_events(after) if e.details.get("action") == "undone" and rel in e.paths]
    assert undone == [], [e.details.get("summary") for e in undone]


def explain_state(repo: Repo, after: int, rel: str) -> str:
    """What the watcher did, for a failure message: the events since ``after`` and rel's versions."""
    lines = [f"{rel} now holds {repo.read(rel)!r}; events since the step:"]
    for e in list(repo.project.events.read())[after:]:
        said = e.details.get("summary") or e.details.get("error") or ""
        lines.append(f"  {e.ts} {e.event} {e.trigger} {e.paths[:4]} {said}")
    with repo.project.reader() as (_repo, catalog):
        for v in catalog.versions_of(rel)[-6:]:
            lines.append(f"  version {v.seq} {v.snapshot[:8]} {v.trigger} {v.change} {(v.blob or '-')[:8]} {v.verdict}")
    return "\n".join(lines)


def settle(repo: Repo, seconds: float = 1.5) -> None:
    """Give the watcher well over the 1 s target to act (it would have by now)."""
    time.sleep(seconds)
