"""The distribution: its own name, an honest Python floor, a licence, type information, and a clear no on Windows."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest

import guardian
from tests.conftest import run_cli

REPO = Path(__file__).resolve().parents[2]


def _pyproject() -> dict[str, object]:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def test_the_distribution_has_a_name_of_its_own_and_keeps_the_command() -> None:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    assert project["name"] == "guardian-snapshots"
    assert project["scripts"] == {
        "guardian": "guardian.warm.client:console_main",  # a running watcher answers, else guardian.cli:main
        "guardian-agent-hook": "guardian.gates.agent.hook:main",  # agents' hook: starts sooner than `python -m`
    }
    assert project["version"] == guardian.__version__


def test_requires_python_matches_what_the_code_uses() -> None:
    data = _pyproject()
    project = data["project"]
    assert isinstance(project, dict)
    assert project["requires-python"] == ">=3.11"
    tool = data["tool"]
    assert isinstance(tool, dict)
    assert tool["ruff"]["target-version"] == "py311"
    assert "(3, 11)" in (REPO / "scripts" / "setup").read_text(encoding="utf-8")


def test_licence_classifiers_and_type_information_ship() -> None:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    assert (REPO / "LICENSE").read_text(encoding="utf-8").startswith("MIT License\n")
    assert "Typing :: Typed" in project["classifiers"]
    assert "Operating System :: POSIX :: Linux" in project["classifiers"]
    assert (REPO / "guardian" / "py.typed").is_file()


def test_windows_is_refused_in_one_line(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    r = run_cli("status", cwd=project)
    assert r.exit_code == 1
    assert r.stdout == ""
    assert r.stderr == "guardian: error: guardian needs Linux or macOS (it uses fcntl locks and POSIX file semantics)\n"


def test_the_readme_names_the_distribution_and_the_platforms() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "**`guardian-snapshots`**" in readme
    assert "Python 3.11" in readme
    assert "guardian needs Linux or macOS (it uses\nfcntl locks and POSIX file semantics)" in readme
