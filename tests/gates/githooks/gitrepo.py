"""Real git repositories for the hook tests: build one, guard it with guardian, run git in it.

The hooks git starts inherit this process's environment, so they use the test's
GUARDIAN_HOME (tests/conftest.py's autouse fixture).
"""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

from guardian.events import Event
from guardian.project import Project
from tests.conftest import run_cli

POLICY = textwrap.dedent(
    """\
    version: 1
    protect:
      - paths: ["agents/wo_executor/"]
        rollback: force
        delete: block
        restore: allow
        reason: "WO pipeline"
    """
)
A = "agents/wo_executor/a.py"
B = "agents/wo_executor/b.py"
C = "agents/wo_executor/c.py"


def g(
    repo: Path, *args: str, force: bool = False, extra: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **(extra or {})}
    if force:
        env["GUARDIAN_FORCE"] = "1"
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"git {proc.args[1:]} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def rev(repo: Path, spec: str = "HEAD") -> str:
    return ok(g(repo, "rev-parse", spec)).strip()


def read(repo: Path, rel: str) -> str:
    return (repo / rel).read_text()


def write(repo: Path, rel: str, text: str) -> None:
    (repo / rel).parent.mkdir(parents=True, exist_ok=True)
    (repo / rel).write_text(text)


def commit_all(repo: Path, message: str) -> str:
    ok(g(repo, "add", "-A"))
    ok(g(repo, "commit", "-q", "-m", message))
    return rev(repo)


def make_repo(root: Path, *, policy: str = POLICY) -> Path:
    """c1: a.py "x = 1", other.txt "o1";  c2: a.py "x = 2", b.py added, other.txt "o2"."""
    root.mkdir(parents=True, exist_ok=True)
    ok(g(root, "init", "-q", "-b", "main"))
    # guardian init writes .guardian-id at the root; `git add -A` in these tests must not commit it.
    (root / ".git" / "info" / "exclude").write_text(".guardian-id\n")
    write(root, "guardian.yaml", policy)
    write(root, A, "x = 1\n")
    write(root, "other.txt", "o1\n")
    commit_all(root, "c1")
    write(root, A, "x = 2\n")
    write(root, B, "y = 1\n")
    write(root, "other.txt", "o2\n")
    commit_all(root, "c2")
    return root


def guard(repo: Path) -> None:
    """``guardian init`` (which installs the hooks in a git work tree), then ``hooks install`` to be sure."""
    for args in (("init",), ("hooks", "install")):
        r = run_cli(*args, cwd=repo)
        assert r.exit_code == 0, r.stderr


def snapshot(repo: Path) -> None:
    r = run_cli("snapshot", cwd=repo)
    assert r.exit_code == 0, r.stderr


def hook_events(repo: Path, *kinds: str) -> list[Event]:
    found = Project.find(repo).events.read()
    return [e for e in found if e.trigger == "hook" and (not kinds or e.event in kinds)]


def last(repo: Path, kind: str) -> Event:
    found = hook_events(repo, kind)
    assert found, f"no '{kind}' event from a hook"
    return found[-1]


def chain_hook(repo: Path, name: str, body: str) -> Path:
    """Put a user's own hook in front of guardian's: written as <name>.guardian-chained, run first."""
    path = repo / ".git" / "hooks" / f"{name}.guardian-chained"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path
