"""Shared fixtures.  The autouse fixture keeps every test away from the real home directory."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

REAL_HOME = Path.home()


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point GUARDIAN_HOME, HOME and the XDG dirs into a temp dir, and prove nothing leaked."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GUARDIAN_HOME", str(home / "guardian-home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local" / "state"))
    # Real git commands in tests must not read the developer's config or hooks.
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for key, value in {
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("GUARDIAN_CRASH_AT", raising=False)
    monkeypatch.delenv("GUARDIAN_FORCE", raising=False)
    from guardian.paths import guardian_home

    assert REAL_HOME not in guardian_home().parents, "GUARDIAN_HOME must not be under the real home"
    real_store = REAL_HOME / ".local" / "share" / "guardian"
    before = _snapshot_dir(real_store)
    yield home
    assert _snapshot_dir(real_store) == before, f"a test wrote into the real home: {real_store}"


def _snapshot_dir(path: Path) -> list[tuple[str, int]]:
    if not path.exists():
        return []
    return sorted((str(p), p.stat().st_mtime_ns) for p in path.rglob("*"))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An empty project directory (no git) with guardian initialised."""
    root = tmp_path / "proj"
    root.mkdir()
    return root


@dataclass
class CliOutcome:
    exit_code: int
    stdout: str
    stderr: str


def run_cli(*args: str, cwd: Path | None = None, input: str | None = None) -> CliOutcome:
    """Drive the real CLI in process, through guardian's own exit-code mapping (guardian.cli.main)."""
    from guardian.cli import main

    runner = CliRunner()
    old = Path.cwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        with runner.isolation(input=input) as streams:
            code = main(list(args))
            out, err = streams[0].getvalue(), streams[1].getvalue()
    finally:
        os.chdir(old)
    return CliOutcome(code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))


def guardian_subprocess(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run guardian as a real process, the way users and hooks do."""
    return subprocess.run(
        [sys.executable, "-m", "guardian", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        check=False,
    )


def git(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=check, timeout=60)


def fsck(store_repo: Path) -> None:
    proc = subprocess.run(
        ["git", "--git-dir", str(store_repo), "fsck", "--strict", "--no-dangling"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
