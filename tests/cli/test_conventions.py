"""CLI conventions through the real CLI: shared options anywhere, --json everywhere (errors too),
times with their zone, -q/-v, colour, completion and a progress bar that stays off logs."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import click
import pytest

from guardian.cli.base import cli
from tests.conftest import guardian_subprocess, run_cli

ISO_WITH_ZONE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")


def _init(project: Path, files: int = 1) -> None:
    for i in range(files):
        (project / f"f{i:02}.txt").write_text(f"file {i}\n")
    r = run_cli("init", cwd=project)
    assert r.exit_code == 0, r.stderr


def _all_commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = []
    for name, command in sorted(group.commands.items()):
        found.append((f"{prefix}{name}", command))
        if isinstance(command, click.Group):
            found.extend(_all_commands(command, f"{prefix}{name} "))
    return found


def test_every_command_takes_the_shared_options() -> None:
    missing = []
    for name, command in _all_commands(cli):
        if command.hidden:
            continue  # hook-impl: git's own argument list, passed through untouched
        opts = {opt for p in command.params for opt in getattr(p, "opts", [])}
        for wanted in ("-C", "--debug", "--json", "-q", "-v"):
            if wanted not in opts:
                missing.append(f"{name} {wanted}")
    assert missing == []


def test_shared_options_work_after_the_command_name(project: Path, tmp_path: Path) -> None:
    _init(project)
    r = run_cli("status", "-C", str(project), "--json", cwd=tmp_path)
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["root"] == str(project.resolve())
    r = run_cli("remote", "list", "-C", str(project), "--json", cwd=tmp_path)
    assert (r.exit_code, json.loads(r.stdout)) == (0, [])
    r = run_cli("status", "-C", str(tmp_path / "nope"), cwd=tmp_path)
    assert r.exit_code == 2
    assert r.stderr == f"guardian: error: -C {tmp_path / 'nope'}: not a directory; give an existing project directory\n"


def test_debug_after_the_command_shows_the_traceback(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _init(project)
    import guardian.query.status

    def explode(_project: object) -> None:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(guardian.query.status, "status", explode)
    r = run_cli("status", "--debug", cwd=project)
    assert r.exit_code == 70
    assert "Traceback (most recent call last)" in r.stderr


def test_quiet_and_verbose_together_is_a_usage_error(project: Path) -> None:
    r = run_cli("-q", "status", "-v", cwd=project)
    assert r.exit_code == 2
    assert r.stderr == "guardian: error: -q and -v cannot be used together; pick one\n"


def test_errors_under_json_are_json_on_stdout(project: Path) -> None:
    _init(project)
    message = "'nope.py' never existed in any snapshot; check the name with 'guardian log' or 'guardian history'"
    for args in (("--json", "restore", "nope.py"), ("restore", "nope.py", "--json")):
        r = run_cli(*args, cwd=project)
        assert r.exit_code == 1
        assert json.loads(r.stdout) == {"error": message, "exit_code": 1}
        assert r.stderr == f"guardian: error: {message}\n"
    r = run_cli("status", "--bogus", "--json", cwd=project)
    assert r.exit_code == 2
    assert json.loads(r.stdout) == {"error": "No such option '--bogus'. Did you mean '--verbose'?", "exit_code": 2}
    r = run_cli("restore", "nope.py", cwd=project)
    assert r.stdout == ""


def test_json_on_commands_that_had_none(project: Path, tmp_path: Path) -> None:
    _init(project)
    bare = tmp_path / "mirror.git"
    r = run_cli("remote", "add", "origin", str(bare), "--json", cwd=project)
    assert r.exit_code == 0, r.stderr
    added = json.loads(r.stdout)["added"]
    assert (added["name"], added["url"]) == ("origin", str(bare))
    r = run_cli("remote", "remove", "origin", "--json", cwd=project)
    assert json.loads(r.stdout)["removed"]["name"] == "origin"
    r = run_cli("agent", "install", "claude", "--json", cwd=project)
    data = json.loads(r.stdout)
    settings = str(project / ".claude" / "settings.json")
    assert (data["action"], data["scope"], data["path"]) == ("installed", "project", settings)
    r = run_cli("agent", "uninstall", "claude", "--json", cwd=project)
    assert json.loads(r.stdout)["action"] == "removed"
    r = run_cli("completion", "bash", "--json", cwd=project)
    assert json.loads(r.stdout)["shell"] == "bash"


def test_json_times_carry_their_zone(project: Path) -> None:
    _init(project)
    log = json.loads(run_cli("log", "--json", cwd=project).stdout)["snapshots"][0]
    assert isinstance(log["time"], float | int)
    assert ISO_WITH_ZONE.match(log["time_iso"])
    status = json.loads(run_cli("status", "--json", cwd=project).stdout)
    assert ISO_WITH_ZONE.match(status["last_snapshot"])
    events = json.loads(run_cli("events", "--json", cwd=project).stdout)
    assert events[0]["ts"].endswith("+00:00")


def test_text_times_are_local_with_the_zone(project: Path) -> None:
    _init(project)
    env = {"TZ": "America/New_York"}
    # A December date in New York: EST, five hours behind UTC (the offset is the same all winter).
    r = guardian_subprocess("log", cwd=project, env=env)
    assert r.returncode == 0, r.stderr
    assert re.search(r"  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d -0[45]:00  init", r.stdout), r.stdout
    r = guardian_subprocess("events", "-n", "1", cwd=project, env=env)
    assert re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d -0[45]:00  ", r.stdout), r.stdout


def test_quiet_default_and_verbose_per_file_lines(project: Path) -> None:
    _init(project, files=1)
    for i in range(30):
        (project / f"n{i:02}.txt").write_text(f"new {i}\n")
    (project / "bad.json").write_text('{"a": ')
    r = run_cli("snapshot", "-q", cwd=project)
    lines = r.stdout.splitlines()
    assert re.match(r"^snapshot [0-9a-f]{12} \(31 file\(s\), 1 not valid\)$", lines[0])
    assert lines[1:] == ["  add     bad.json 6 B  INVALID: json: line 1 column 7: Expecting value"]
    for i in range(30):
        (project / f"n{i:02}.txt").write_text(f"changed {i}\n")
    r = run_cli("snapshot", cwd=project)
    lines = r.stdout.splitlines()
    assert len(lines) == 1 + 20 + 1
    assert lines[1] == "  modify  n00.txt 10 B"
    assert lines[-1] == "  ... and 10 more file(s) (-v lists them all)"
    for i in range(30):
        (project / f"n{i:02}.txt").write_text(f"again {i}\n")
    r = run_cli("snapshot", "--verbose", cwd=project)
    assert len(r.stdout.splitlines()) == 1 + 30


def test_colour_marks_verdicts_and_honours_no_color(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _init(project)
    (project / "bad.json").write_text('{"a": ')
    monkeypatch.setenv("FORCE_COLOR", "1")
    r = run_cli("snapshot", cwd=project)
    assert "\x1b[31m\x1b[1mINVALID\x1b[0m: json: " in r.stdout
    (project / "bad.json").write_text('{"b": ')
    monkeypatch.setenv("NO_COLOR", "1")
    r = run_cli("snapshot", cwd=project)
    assert "\x1b[" not in r.stdout and "INVALID: json: " in r.stdout
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.delenv("FORCE_COLOR")
    (project / "bad.json").write_text('{"c": ')
    r = run_cli("snapshot", cwd=project)  # not a terminal: no colour
    assert "\x1b[" not in r.stdout


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_clicks_script(shell: str, project: Path) -> None:
    r = run_cli("completion", shell, cwd=project)
    assert r.exit_code == 0
    assert "_GUARDIAN_COMPLETE" in r.stdout
    assert f"{shell}_complete" in r.stdout


def test_completion_offers_snapshot_ids_and_files(project: Path) -> None:
    _init(project)
    head = json.loads(run_cli("log", "--json", cwd=project).stdout)["snapshots"][0]["snapshot"]
    env = {"_GUARDIAN_COMPLETE": "bash_complete", "COMP_WORDS": "guardian show f00.txt --at ", "COMP_CWORD": "4"}
    r = guardian_subprocess(cwd=project, env=env)
    assert r.stdout.splitlines() == [f"plain,{head[:12]}"]
    env = {"_GUARDIAN_COMPLETE": "bash_complete", "COMP_WORDS": "guardian restore f", "COMP_CWORD": "2"}
    r = guardian_subprocess(cwd=project, env=env)
    assert r.stdout.splitlines() == ["file,f"]


def test_progress_prints_nothing_off_a_terminal(project: Path) -> None:
    for i in range(300):
        (project / f"g{i:03}.txt").write_text(f"{i}\n" * 50)
    r = guardian_subprocess("init", cwd=project)
    assert r.returncode == 0
    assert "\r" not in r.stderr and r.stderr == ""


def test_progress_draws_on_a_terminal(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from guardian.cli import output
    from guardian.cli.base import Context

    monkeypatch.setattr(output, "_stderr_is_terminal", lambda: True)
    progress = output.Progress("snapshot", Context(), delay=0)
    progress(5, 10)
    progress(10, 10)
    progress.finish()
    assert "snapshot" in capsys.readouterr().err
    quiet = output.Progress("snapshot", Context(quiet=True), delay=0)
    quiet(5, 10)
    quiet.finish()
    assert capsys.readouterr().err == ""
    assert os.environ.get("NO_COLOR") is None
