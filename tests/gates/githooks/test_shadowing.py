"""A project with a ``guardian/`` package of its own never runs it in guardian's place.

Git runs hooks in the work tree's top directory, an agent runs its hook in the project, and
``guardian start`` spawns the watcher from wherever it was typed; ``python -m guardian`` puts
that directory first on ``sys.path``.  A project whose top directory holds a package named
``guardian`` (this very repository does) then ran that package: the hook "passed" without
checking anything.  Every such process is started with ``-P``.  Real git, real processes.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from guardian.gates.agent.install import hook_command
from tests.conftest import run_cli
from tests.gates.githooks.gitrepo import A, B, g, guard, last, make_repo, read, rev, snapshot, write

SHADOW = "import pathlib, sys\npathlib.Path({marker!r}).write_text(' '.join(sys.argv))\n"


def _shadow_package(top: Path, marker: Path) -> None:
    """An untracked guardian/ package at the top that, if ever run or imported, writes marker."""
    package = top / "guardian"
    package.mkdir()
    (package / "__init__.py").write_text(SHADOW.format(marker=str(marker)))
    (package / "__main__.py").write_text(SHADOW.format(marker=str(marker)))
    exclude = top / ".git" / "info" / "exclude"
    exclude.write_text(exclude.read_text() + "guardian/\n")


def test_a_git_hook_runs_guardian_not_the_repositorys_own_guardian_package(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    guard(repo)
    marker = tmp_path / "shadow-ran"
    _shadow_package(repo, marker)
    write(repo, A, "x = 3\n")  # uncommitted protected work that only guardian's snapshot holds
    snapshot(repo)
    before = rev(repo)
    r = g(repo, "reset", "--hard", "HEAD~1")
    assert not marker.exists(), f"the repository's guardian package ran: {marker.read_text()}"
    assert r.returncode == 128, r.stderr  # guardian itself ran, and refused
    assert "rolled back protected paths" in r.stderr
    assert rev(repo) == before and read(repo, A) == "x = 3\n" and read(repo, B) == "y = 1\n"
    assert last(repo, "block").details["hook"] == "reference-transaction"


def test_status_and_hooks_status_report_a_shim_without_dash_p_as_outdated_and_install_rewrites_it(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path / "repo")
    guard(repo)
    shim = repo / ".git" / "hooks" / "post-checkout"
    shim.write_text(shim.read_text().replace(" -P -m guardian hook-impl", " -m guardian hook-impl"))
    status = json.loads(run_cli("hooks", "status", "--json", cwd=repo).stdout)
    [entry] = [h for h in status["hooks"] if h["name"] == "post-checkout"]
    assert entry["outdated"] is True
    # After an upgrade nobody runs `hooks status`: `guardian status` says it too.
    note = "git hooks written by another guardian version: post-checkout; run 'guardian hooks install' to update them"
    assert f"note: {note}" in run_cli("status", cwd=repo).stdout
    assert note in json.loads(run_cli("status", "--json", cwd=repo).stdout)["notes"]
    assert run_cli("hooks", "install", cwd=repo).exit_code == 0
    assert ' -P -m guardian hook-impl "$hook" "$@"' in shim.read_text()
    assert "git hooks written by another guardian version" not in run_cli("status", cwd=repo).stdout


def test_guardian_start_spawns_guardian_not_the_projects_own_guardian_package(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "app.py").write_text("x = 1\n")
    g(root, "init", "-q")
    assert run_cli("init", "--no-hooks", cwd=root).exit_code == 0
    marker = tmp_path / "shadow-ran"
    _shadow_package(root, marker)
    # The command itself is started safely (-P); what is tested is the watcher it spawns from root.
    guardian = [sys.executable, "-P", "-m", "guardian"]
    start = subprocess.run([*guardian, "start", "--json"], cwd=root, capture_output=True, text=True, timeout=60)
    try:
        assert start.returncode == 0, start.stderr
        assert not marker.exists(), f"the project's guardian package ran: {marker.read_text()}"
        status = json.loads(
            subprocess.run([*guardian, "status", "--json"], cwd=root, capture_output=True, text=True, timeout=60).stdout
        )
        assert status["watcher"]["running"] is True
    finally:
        subprocess.run([*guardian, "stop"], cwd=root, capture_output=True, timeout=60)
    assert not marker.exists()


def test_the_agent_hooks_dash_m_form_runs_guardian_in_a_project_with_its_own_guardian_package(
    tmp_path: Path,
) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    g(root, "init", "-q")
    marker = tmp_path / "shadow-ran"
    _shadow_package(root, marker)
    command = f"{shlex.quote(sys.executable)} -P -m guardian agent-hook"
    assert hook_command() in (command, shlex.quote(str(Path(sys.executable).parent / "guardian-agent-hook")))
    payload = {
        "tool_name": "Bash",
        "tool_input": {"command": "ls -la"},
        "cwd": str(root),
        "hook_event_name": "PreToolUse",
    }
    r = subprocess.run(
        ["sh", "-c", command],
        cwd=root,
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
    )
    assert not marker.exists(), f"the project's guardian package ran: {marker.read_text()}"
    assert r.returncode == 0, r.stderr
