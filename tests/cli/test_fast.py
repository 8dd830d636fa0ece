"""The hot commands answered without click (guardian.cli.fast): which command lines, and the same output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from guardian.cli.fast import plain_command
from tests.conftest import guardian_subprocess, run_cli


@pytest.mark.parametrize(
    ("args", "fast"),
    [
        (["history", "a.py"], True),
        (["restore", "a.py"], True),
        (["restore", "a.py", "b.py"], True),
        (["history", "a.py", "b.py"], False),  # click reports the extra argument
        (["history"], False),
        (["history", "a.py", "--json"], False),
        (["history", "--", "-a.py"], False),
        (["-C", "p", "history", "a.py"], False),
        (["restore", "a.py", "--at", "abcd"], False),
        (["restore", ""], False),
        (["log"], True),
        (["log", "a.py"], True),
        (["log", "a.py", "b.py"], False),
        (["log", "-n", "3"], False),
        (["restore"], False),  # click says the path is missing
        (["status"], False),
    ],
)
def test_only_plain_history_log_and_restore_skip_click(args: list[str], fast: bool) -> None:
    assert (plain_command(args) is not None) is fast


def test_shell_completion_always_goes_to_click(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_GUARDIAN_COMPLETE", "bash_complete")
    assert plain_command(["history", "a.py"]) is None


def test_history_and_restore_print_what_click_prints(project: Path) -> None:
    (project / "a.py").write_text("x = 1\n")
    assert run_cli("init", cwd=project).exit_code == 0
    (project / "a.py").write_text("x = (\n")  # invalid: a verdict mark in the timeline
    assert run_cli("snapshot", cwd=project).exit_code == 0
    fast = run_cli("history", "a.py", cwd=project)
    slow = run_cli("history", "-q", "a.py", cwd=project)  # an option: click parses it
    assert fast.exit_code == slow.exit_code == 0
    assert "INVALID" in fast.stdout
    assert (fast.stdout, fast.stderr) == (slow.stdout, slow.stderr)
    for args in ((), ("a.py",)):
        fast_log = run_cli("log", *args, cwd=project)
        click_log = run_cli("log", "-n", "20", *args, cwd=project)
        assert fast_log.exit_code == click_log.exit_code == 0
        assert (fast_log.stdout, fast_log.stderr) == (click_log.stdout, click_log.stderr)
        assert "a.py" in fast_log.stdout
    missing = run_cli("restore", "nope.py", cwd=project)
    missing_click = run_cli("restore", "nope.py", "-v", cwd=project)
    assert missing.exit_code == missing_click.exit_code != 0
    assert missing.stderr == missing_click.stderr
    restored = run_cli("restore", "a.py", cwd=project)
    assert restored.exit_code == 0, restored.stderr
    assert restored.stdout.startswith("restored a.py from snapshot ")
    assert (project / "a.py").read_text() == "x = 1\n"
    again = run_cli("restore", "a.py", cwd=project)
    again_click = run_cli("restore", "-v", "a.py", cwd=project)
    assert again.stdout == again_click.stdout
    assert again.stdout.startswith("nothing to restore: a.py already has that content")


def test_history_in_a_process_imports_no_click_pygit2_or_yaml(project: Path) -> None:
    (project / "a.py").write_text("x = 1\n")
    assert run_cli("init", cwd=project).exit_code == 0
    for _ in range(2):  # the second run reuses the parsed policy (guardian.project.load_policy_reusing)
        out = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "guardian", "history", "a.py"],
            cwd=project,
            capture_output=True,
            text=True,
            check=True,
        )
    assert out.stdout.startswith("a.py  ")
    imported = {line.split("|")[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
    assert not {"click", "pygit2", "detect_secrets", "yaml"} & imported
    assert guardian_subprocess("history", "a.py", cwd=project).stdout == out.stdout
