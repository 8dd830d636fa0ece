"""guardian.capture.filters: what is captured, and that no pattern can stall the decision.

``watch.exclude``, ``watch.include`` and every ``.gitignore`` in the tree are matched
by guardian.util.globs.  The pathological pattern here took 11.7 s per 30-character
name when these were pathspec regexes; each test below allows a second for hundreds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from guardian.capture.filters import PathFilter
from guardian.capture.validate import checks_for
from guardian.config import CheckSpec, ProtectRule, ValidateRule, WatchSettings
from guardian.errors import ConfigError
from guardian.policy import PolicyEngine

BACKTRACKING = "*a*a*a*a*a*a*b"
NAME = "a" * 30


def _timed(call: Callable[..., object], *args: object, times: int = 200) -> float:
    start = time.perf_counter()
    for _ in range(times):
        call(*args)
    return time.perf_counter() - start


def test_defaults_keep_sources_and_drop_tool_output(tmp_path: Path) -> None:
    keep = PathFilter(tmp_path, WatchSettings())
    assert keep("src/app.py")
    assert not keep("src/__pycache__", is_dir=True)
    assert not keep("src/app.pyc")
    assert not keep("node_modules", is_dir=True)
    assert not keep("db.sqlite-wal")
    assert keep("guardian.yaml")


def test_secrets_need_an_include_that_names_them(tmp_path: Path) -> None:
    assert not PathFilter(tmp_path, WatchSettings())(".env")
    assert not PathFilter(tmp_path, WatchSettings(include=("**",)))(".env")
    assert PathFilter(tmp_path, WatchSettings(include=(".env",)))(".env")


def test_include_limits_files_but_not_the_directories_walked(tmp_path: Path) -> None:
    keep = PathFilter(tmp_path, WatchSettings(include=("*.py",)))
    assert keep("a/b.py")
    assert not keep("a/b.txt")
    assert keep("a", is_dir=True)


def test_nested_gitignore_applies_below_its_directory(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("*.log\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".gitignore").write_text("gen/\n")
    keep = PathFilter(tmp_path, WatchSettings())
    assert not keep("x.log")
    assert not keep("sub/x.log")
    assert not keep("sub/gen", is_dir=True)
    assert keep("gen", is_dir=True)


def test_a_backtracking_exclude_is_fast(tmp_path: Path) -> None:
    keep = PathFilter(tmp_path, WatchSettings(exclude=(BACKTRACKING,)))
    assert keep(NAME)
    assert not keep(NAME + "b")
    assert _timed(keep, NAME) < 1.0


def test_a_backtracking_include_is_fast(tmp_path: Path) -> None:
    keep = PathFilter(tmp_path, WatchSettings(include=(BACKTRACKING,)))
    assert not keep(NAME)
    assert _timed(keep, NAME) < 1.0


def test_a_backtracking_gitignore_is_fast(tmp_path: Path) -> None:
    # A .gitignore is whatever the repository holds: guardian cannot refuse it.
    (tmp_path / ".gitignore").write_text(f"{BACKTRACKING}\n*.tmp\n")
    keep = PathFilter(tmp_path, WatchSettings())
    assert keep(NAME)
    assert not keep("x.tmp")
    assert _timed(keep, NAME) < 1.0


def test_an_unreadable_gitignore_line_is_skipped_not_fatal(tmp_path: Path) -> None:
    # git skips such lines; pathspec raised, and the snapshot failed on every file.
    (tmp_path / ".gitignore").write_text("!\n[z-a]\nfoo\\\n*.tmp\n")
    keep = PathFilter(tmp_path, WatchSettings())
    assert not keep("x.tmp")
    assert keep("x.txt")


def test_a_backtracking_protect_pattern_is_fast() -> None:
    engine = PolicyEngine([ProtectRule(paths=(BACKTRACKING,), rollback="force")])
    assert not engine.is_protected(NAME)
    assert engine.is_protected(NAME + "b")
    assert _timed(engine.is_protected, NAME) < 1.0


def test_a_backtracking_validate_pattern_is_fast() -> None:
    rules = [ValidateRule(paths=(BACKTRACKING,), checks=(CheckSpec(name="not-empty"),))]
    assert checks_for(NAME + "b", rules) == (CheckSpec(name="not-empty"),)
    assert _timed(checks_for, NAME, rules) < 1.0


@pytest.mark.parametrize("line", ["!", "[z-a]"])
def test_a_bad_protect_pattern_is_still_a_config_error(line: str) -> None:
    with pytest.raises(ConfigError, match="bad path pattern"):
        PolicyEngine([ProtectRule(paths=(line,))])
