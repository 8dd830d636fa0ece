"""The one error handler: exit codes, one-line messages, no traceback unless --debug."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from guardian.project import ProjectPaths
from tests.conftest import guardian_subprocess, run_cli


def test_usage_error_from_click_is_exit_2(project: Path) -> None:
    r = run_cli("restore", cwd=project)
    assert r.exit_code == 2
    assert "Missing argument 'PATHS...'" in r.stderr


def test_unexpected_exception_is_exit_70_with_one_line(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (project / "a.txt").write_text("a")
    assert run_cli("init", cwd=project).exit_code == 0
    import guardian.query.status

    def explode(_project: object) -> None:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(guardian.query.status, "status", explode)
    r = run_cli("status", cwd=project)
    assert r.exit_code == 70
    assert r.stderr.startswith("guardian: internal error: RuntimeError: simulated bug; traceback saved to ")
    assert "Traceback" not in r.stderr
    log = Path(r.stderr.split("traceback saved to ")[1].split(";")[0])
    assert "simulated bug" in log.read_text()
    r = run_cli("--debug", "status", cwd=project)
    assert "Traceback (most recent call last)" in r.stderr


def test_no_traceback_in_a_real_process(project: Path) -> None:
    r = guardian_subprocess("restore", "x", cwd=project)
    assert r.returncode == 2
    assert r.stderr.strip() == (
        f"guardian: error: no guardian.yaml found in {project} or any parent; run 'guardian init' there, or pass -C DIR"
    )


def test_blocked_and_failed_operations_are_on_the_record(project: Path) -> None:
    (project / "guardian.yaml").write_text(
        "version: 1\nprotect:\n  - paths: [core/]\n    restore: block\n    reason: frozen\n"
    )
    (project / "core").mkdir()
    (project / "core" / "x.txt").write_text("x\n")
    assert run_cli("init", cwd=project).exit_code == 0
    (project / "core" / "x.txt").write_text("changed\n")  # so that the restore would change something
    assert run_cli("restore", "core/x.txt", cwd=project).exit_code == 4
    assert run_cli("restore", "ghost.txt", cwd=project).exit_code == 1
    events = [json.loads(x) for x in ProjectPaths.for_root(project.resolve()).events.read_text().splitlines()]
    kinds = [(e["event"], e["details"].get("exit_code")) for e in events if e["event"] in ("block", "error")]
    assert kinds == [("block", 4), ("error", 1)]


def test_help_and_version_are_fast_paths(project: Path) -> None:
    r = guardian_subprocess("--help", cwd=project)
    assert r.returncode == 0
    for command in (
        "init",
        "status",
        "snapshot",
        "log",
        "history",
        "show",
        "diff",
        "restore",
        "accept",
        "events",
        "projects",
        "verify",
    ):
        assert f"  {command} " in r.stdout
    r = guardian_subprocess("--version", cwd=project)
    assert r.stdout.startswith("guardian, version ")
