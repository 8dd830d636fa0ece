"""`guardian gate`: exit codes, exact output, --from-git against real git, and the audit record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from guardian.gates.gate import _change_kinds, changes_for_paths
from guardian.policy import PathChange
from guardian.project import ProjectPaths
from guardian.util.git import parse_name_status
from tests.conftest import git, guardian_subprocess, run_cli

POLICY = textwrap.dedent(
    """\
    version: 1
    protect:
      - paths: ["agents/wo_executor/"]
        rollback: force
        delete: block
        reason: "WO pipeline processor"
      - paths: ["state/"]
        rollback: force
        delete: force
        reason: "follow-up state"
      - paths: ["docs/"]
        rollback: allow
        delete: allow
        reason: "docs"
    """
)


def _setup(root: Path, policy: str = POLICY) -> ProjectPaths:
    (root / "guardian.yaml").write_text(policy)
    (root / "agents" / "wo_executor").mkdir(parents=True)
    (root / "agents" / "wo_executor" / "run.sh").write_text("#!/bin/sh\necho run\n")
    (root / "state").mkdir()
    (root / "state" / "cursor.json").write_text('{"n": 1}\n')
    (root / "notes.txt").write_text("notes\n")
    r = run_cli("init", cwd=root)
    assert r.exit_code == 0, r.stderr
    return ProjectPaths.for_root(root.resolve())


def _events(paths: ProjectPaths, kind: str) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in paths.events.read_text().splitlines()]
    return [e for e in records if e["event"] == kind]


def test_allow_exits_0_with_exact_lines(project: Path) -> None:
    paths = _setup(project)
    r = run_cli("gate", "rollback", "notes.txt", "docs/new.md", cwd=project)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.splitlines() == [
        "allow  notes.txt (modify)",
        "allow  docs/new.md (add): allowed (protected: docs)",
        "gate rollback: allow (exit 0): 2 path(s)",
    ]
    assert r.stderr == ""
    [event] = _events(paths, "gate")
    assert event["paths"] == ["notes.txt", "docs/new.md"]
    assert event["trigger"] == "allow"
    d = event["details"]
    assert (d["operation"], d["force"], d["outcome"], d["exit_code"], d["source"]) == (
        "rollback",
        False,
        "allow",
        0,
        "paths",
    )
    assert d["user"] and d["pid"] == os.getpid() and d["ppid"] == os.getppid()
    assert d["cwd"] == str(project)
    assert d["argv"] == sys.argv
    # Only governed paths are listed in full; the rest are counted.
    assert [p["path"] for p in d["decision"]["paths"]] == ["docs/new.md"]
    assert d["decision"]["unprotected"] == 1


def test_needs_force_exits_3_then_force_exits_0(project: Path) -> None:
    paths = _setup(project)
    r = run_cli("gate", "rollback", "agents/wo_executor/run.sh", "notes.txt", cwd=project)
    assert r.exit_code == 3
    assert r.stdout.splitlines() == [
        "force  agents/wo_executor/run.sh (modify): needs --force (protected: WO pipeline processor)",
        "allow  notes.txt (modify)",
        "gate rollback: needs --force (exit 3): 1 protected path(s)",
    ]
    assert r.stderr == "rerun with --force if you mean to change protected paths\n"

    r = run_cli("gate", "rollback", "--force", "agents/wo_executor/run.sh", cwd=project)
    assert r.exit_code == 0
    assert r.stdout.splitlines() == [
        "forced agents/wo_executor/run.sh (modify): allowed by --force (protected: WO pipeline processor)",
        "gate rollback: allow with --force (exit 0): 1 protected path(s) forced",
    ]
    refused, forced = _events(paths, "gate")
    assert (refused["trigger"], refused["details"]["outcome"], refused["details"]["force"]) == ("block", "force", False)
    assert (forced["trigger"], forced["details"]["force"], forced["details"]["forced"]) == (
        "allow",
        True,
        ["agents/wo_executor/run.sh"],
    )

    # The audit questions: what was forced, and what was refused.
    r = run_cli("events", "--kind", "force", "--json", cwd=project)
    assert [e["details"]["exit_code"] for e in json.loads(r.stdout)] == [0]
    r = run_cli("events", "--kind", "block", "--json", cwd=project)
    assert [(e["event"], e["details"]["exit_code"]) for e in json.loads(r.stdout)] == [("gate", 3)]


def test_blocked_exits_4_even_with_force(project: Path) -> None:
    paths = _setup(project)
    r = run_cli("gate", "delete", "agents/wo_executor", cwd=project)
    assert r.exit_code == 4
    assert r.stdout.splitlines() == [
        "block  agents/wo_executor (delete): blocked (protected: WO pipeline processor)",
        "gate delete: blocked (exit 4): 1 path(s) blocked by policy",
    ]
    assert r.stderr == "blocked paths cannot be forced; change the protect rule in guardian.yaml if you must\n"
    r = run_cli("gate", "delete", "--force", "agents", "notes.txt", cwd=project)
    assert r.exit_code == 4
    assert r.stdout.splitlines()[0] == "block  agents (delete): blocked (protected: WO pipeline processor)"
    assert [e["details"]["exit_code"] for e in _events(paths, "gate")] == [4, 4]


def test_change_kind_follows_the_disk(project: Path) -> None:
    _setup(project)
    root = project.resolve()
    typed = ["notes.txt", "gone.txt", "state"]
    assert changes_for_paths(root, "rollback", typed, root) == [
        PathChange("notes.txt", "modify"),
        PathChange("gone.txt", "add"),
        PathChange("state", "modify"),
    ]
    # A delete is a delete whether or not the file is still there.
    assert [c.change for c in changes_for_paths(root, "delete", typed, root)] == ["delete"] * 3
    # Paths are relative to the working directory (or -C), and repeats collapse.
    assert changes_for_paths(root, "restore", ["cursor.json", "../state/cursor.json"], root / "state") == [
        PathChange("state/cursor.json", "modify")
    ]


def test_the_root_means_the_whole_tree(project: Path) -> None:
    _setup(project)
    r = run_cli("gate", "rollback", ".", cwd=project)
    assert r.exit_code == 3
    assert r.stdout.splitlines()[0] == "force  . (modify): needs --force (protected: WO pipeline processor)"


def test_usage_errors(project: Path, tmp_path: Path) -> None:
    _setup(project)
    r = run_cli("gate", "rollback", cwd=project)
    assert (r.exit_code, r.stderr) == (
        2,
        "guardian: error: gate: name the PATHs the operation would change, or give --from-git REV\n",
    )
    r = run_cli("gate", "rollback", "../elsewhere.txt", cwd=project)
    assert r.exit_code == 2
    assert r.stderr == (
        f"guardian: error: refusing path '../elsewhere.txt': it is outside the project root {project.resolve()}\n"
    )
    r = run_cli("gate", "truncate", "notes.txt", cwd=project)
    assert r.exit_code == 2
    assert "'truncate' is not one of 'rollback', 'delete', 'restore'" in r.stderr
    r = run_cli("gate", "rollback", "--from-git", "HEAD~1", cwd=project)
    assert (r.exit_code, r.stderr) == (
        2,
        f"guardian: error: --from-git: {project.resolve()} is not inside a git repository\n",
    )


def test_gate_modify_uses_the_modify_action(project: Path) -> None:
    # The processor's rule sets no 'modify' (it follows rollback: force); the state's rule lets edits through.
    policy = POLICY.replace("    delete: force\n", "    delete: force\n    modify: allow\n")
    assert policy.count("modify: allow") == 1
    paths = _setup(project, policy)
    r = run_cli("gate", "modify", "agents/wo_executor/run.sh", "state/cursor.json", cwd=project)
    assert r.exit_code == 3
    assert r.stdout.splitlines() == [
        "force  agents/wo_executor/run.sh (modify): needs --force (protected: WO pipeline processor)",
        "allow  state/cursor.json (modify): allowed (protected: follow-up state)",
        "gate modify: needs --force (exit 3): 1 protected path(s)",
    ]
    assert run_cli("gate", "rollback", "state/cursor.json", cwd=project).exit_code == 3
    assert [e["details"]["operation"] for e in _events(paths, "gate")] == ["modify", "rollback"]


def test_no_store_means_no_unrecorded_decision(tmp_path: Path) -> None:
    root = tmp_path / "bare"
    root.mkdir()
    (root / "guardian.yaml").write_text("version: 1\n")
    r = run_cli("gate", "rollback", "x", cwd=root)
    assert r.exit_code == 1
    assert r.stderr.startswith(f"guardian: error: no store for {root.resolve()} at ")


# --------------------------------------------------------------------------- --from-git


def _git_project(root: Path, policy: str = POLICY) -> str:
    """A repo whose HEAD~1 lacks the protected processor, with guardian initialised; returns HEAD~1."""
    git("init", "-q", "-b", "main", cwd=root)
    (root / "guardian.yaml").write_text(policy)
    (root / "notes.txt").write_text("v1\n")
    (root / "old.txt").write_text("old\n")
    (root / "move_me.txt").write_text("moved content\n")
    git("add", "-A", cwd=root)
    git("commit", "-q", "-m", "one", cwd=root)
    base = git("rev-parse", "HEAD", cwd=root).stdout.strip()
    (root / "agents" / "wo_executor").mkdir(parents=True)
    (root / "agents" / "wo_executor" / "run.sh").write_text("#!/bin/sh\necho run\n")
    (root / "notes.txt").write_text("v2\n")
    (root / "old.txt").unlink()
    (root / "moved.txt").write_text("moved content\n")
    (root / "move_me.txt").unlink()
    git("add", "-A", cwd=root)
    git("commit", "-q", "-m", "two: add the processor", cwd=root)
    # The gate alone: guardian's git hooks (which init installs in a git repo) would judge these resets too.
    assert run_cli("init", "--no-hooks", cwd=root).exit_code == 0
    return base


def test_from_git_rewinding_past_a_protected_file_is_blocked(project: Path) -> None:
    base = _git_project(project)
    paths = ProjectPaths.for_root(project.resolve())
    r = run_cli("gate", "rollback", "--from-git", "HEAD~1", cwd=project)
    assert r.exit_code == 4, r.stderr
    # Going HEAD -> HEAD~1 deletes the processor (its delete rule is block), brings old.txt
    # back, and undoes the rename as a delete plus an add.
    assert r.stdout.splitlines() == [
        "block  agents/wo_executor/run.sh (delete): blocked (protected: WO pipeline processor)",
        "allow  move_me.txt (add)",
        "allow  moved.txt (delete)",
        "allow  notes.txt (modify)",
        "allow  old.txt (add)",
        "gate rollback: blocked (exit 4): 1 path(s) blocked by policy",
    ]
    [event] = _events(paths, "gate")
    assert event["details"]["source"] == "git diff --name-status HEAD HEAD~1"
    assert event["trigger"] == "block"
    # The same diff by commit id, narrowed to some paths.
    r = run_cli("gate", "rollback", "--from-git", base, "notes.txt", "old.txt", cwd=project)
    assert r.exit_code == 0
    assert r.stdout.splitlines()[:2] == ["allow  notes.txt (modify)", "allow  old.txt (add)"]


def test_from_git_needs_force_when_delete_is_force(project: Path) -> None:
    _git_project(project, POLICY.replace("delete: block", "delete: force"))
    r = run_cli("gate", "rollback", "--from-git", "HEAD~1", cwd=project)
    assert r.exit_code == 3
    assert r.stdout.splitlines()[0] == (
        "force  agents/wo_executor/run.sh (delete): needs --force (protected: WO pipeline processor)"
    )
    assert run_cli("gate", "rollback", "--force", "--from-git", "HEAD~1", cwd=project).exit_code == 0
    # Forward to where the processor exists: nothing protected is lost.
    git("checkout", "-q", "HEAD~1", cwd=project)
    r = run_cli("gate", "rollback", "--from-git", "main", cwd=project)
    assert r.exit_code == 3
    assert "force  agents/wo_executor/run.sh (add): needs --force (protected: WO pipeline processor)" in r.stdout


def test_from_git_errors(project: Path) -> None:
    _git_project(project)
    r = run_cli("gate", "rollback", "--from-git", "no-such-branch", cwd=project)
    assert r.exit_code == 2
    assert r.stderr == (
        f"guardian: error: --from-git: 'no-such-branch' is not a commit in {project.resolve()}; "
        "give a branch, tag or commit id\n"
    )
    r = run_cli("gate", "rollback", "--from-git=--output=/tmp/x", cwd=project)
    assert r.exit_code == 2
    assert "is not a revision" in r.stderr


def test_from_git_with_the_project_in_a_subdirectory(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    sub = repo / "svc"
    (sub / "state").mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=repo)
    (repo / "README").write_text("one\n")
    (sub / "state" / "cursor.json").write_text("1\n")
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "one", cwd=repo)
    (repo / "README").write_text("two\n")
    (sub / "state" / "cursor.json").write_text("2\n")
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "two", cwd=repo)
    (sub / "guardian.yaml").write_text(POLICY)
    assert run_cli("init", cwd=sub).exit_code == 0
    r = run_cli("gate", "rollback", "--from-git", "HEAD~1", cwd=sub)
    assert r.exit_code == 3
    assert r.stdout.splitlines() == [
        "force  state/cursor.json (modify): needs --force (protected: follow-up state)",
        "not judged: 1 path(s) outside the project root",
        "gate rollback: needs --force (exit 3): 1 protected path(s)",
    ]


def test_name_status_parsing() -> None:
    out = b"A\0new\0D\0gone\0M\0mod\0T\0typechange\0R100\0old\0renamed\0C75\0src\0copy\0"
    assert _change_kinds(parse_name_status(out)) == [
        ("new", "add"),
        ("gone", "delete"),
        ("mod", "modify"),
        ("typechange", "modify"),
        ("old", "delete"),
        ("renamed", "add"),
        ("copy", "add"),
    ]
    assert _change_kinds(parse_name_status(b"")) == []


# --------------------------------------------------------------------------- real processes


def test_gate_does_not_load_pygit2(project: Path) -> None:
    _setup(project)
    code = (
        "import sys\n"
        "from guardian.cli import main\n"
        "rc = main(['gate', 'rollback', 'agents/wo_executor/run.sh'])\n"
        "print('pygit2 loaded' if 'pygit2' in sys.modules else 'pygit2 not loaded', rc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True, timeout=60)
    assert proc.stdout.splitlines()[-1] == "pygit2 not loaded 3", proc.stderr


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc")
def test_event_names_the_calling_script(project: Path) -> None:
    paths = _setup(project)
    # "; exit $?" keeps bash from exec'ing guardian in its place, as a real script would.
    script = f"{sys.executable} -m guardian gate rollback notes.txt; exit $?"
    proc = subprocess.run(["bash", "-c", script], cwd=project, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    [event] = _events(paths, "gate")
    assert event["details"]["parent_cmdline"] == f"bash -c '{script}'"
    assert event["details"]["argv"][1:] == ["gate", "rollback", "notes.txt"]


SCRIPT_BODY = (Path(__file__).resolve().parents[2] / "docs" / "protection.md").read_text()


def _doc_script() -> str:
    """The rollback-script pattern exactly as docs/protection.md shows it."""
    block = SCRIPT_BODY.split("```bash\n", 1)[1].split("```", 1)[0]
    assert block.startswith("#!/usr/bin/env bash\n")
    return block


def test_documented_script_pattern_honours_force(project: Path) -> None:
    _git_project(project, POLICY.replace("delete: block", "delete: force"))
    script = project.parent / "rollback.sh"
    script.write_text(_doc_script())
    body = [line for line in _doc_script().splitlines()[1:] if line and not line.startswith("#")]
    assert len(body) == 5
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    head = git("rev-parse", "HEAD", cwd=project).stdout.strip()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(script), *args], cwd=project, env=env, capture_output=True, text=True, timeout=60
        )

    proc = run("HEAD~1")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert git("rev-parse", "HEAD", cwd=project).stdout.strip() == head
    assert (project / "agents" / "wo_executor" / "run.sh").exists()

    proc = run("HEAD~1", "--frce")
    assert proc.returncode == 2
    assert proc.stderr == f"usage: {script} REV [--force]\n"

    proc = run("HEAD~1", "--force")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert git("rev-parse", "HEAD", cwd=project).stdout.strip() != head
    assert not (project / "agents" / "wo_executor" / "run.sh").exists()
    r = guardian_subprocess("events", "--kind", "force", "--json", cwd=project)
    assert [e["details"]["operation"] for e in json.loads(r.stdout)] == ["rollback"]
