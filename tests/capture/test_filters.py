"""guardian.capture.filters: what is captured, and that no pattern can stall the decision.

``watch.exclude``, ``watch.include`` and every ``.gitignore`` in the tree are matched
by guardian.util.globs.  The pathological pattern here took 11.7 s per 30-character
name when these were pathspec regexes; each test below allows a second for hundreds.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from guardian.capture import filters
from guardian.capture.filters import PathFilter
from guardian.capture.validate import checks_for
from guardian.config import CheckSpec, ProtectRule, ValidateRule, WatchSettings
from guardian.errors import ConfigError
from guardian.policy import PolicyEngine
from guardian.util import globs
from guardian.util.globs import GlobSpec

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


# --------------------------------------------------------------------------- compiled on first use

_NAMES = [
    "app.py",
    "app.pyc",
    ".env",
    ".env.local",
    "Credentials.json",
    "id_rsa.pub",
    "server.PEM",
    "a.log",
    "keep.log",
    "node_modules",
    "build",
    "dist",
    "__pycache__",
    ".venv",
    "db.sqlite-wal",
    "notes.txt~",
    "state.db",
    "g",
    "x.swp",
    "secrets.yaml",
    "config.json",
    ".aws",
    "credentials",
    ".git",
    "src",
    "frontend",
    "vendor",
    "gen",
    "data.tmp",
]
_WATCH = [
    WatchSettings(),
    WatchSettings(exclude=("*.log", "!keep.log", "vendor/", "**/gen/**")),
    WatchSettings(include=("*.py", ".env", "src/**", "**/.aws/credentials"), exclude=("build/",)),
    WatchSettings(include=("**",), gitignore=False),
]


def _eager(keep: PathFilter, dirs: set[str]) -> PathFilter:
    """keep with every regex of every spec compiled before its first path (as GlobSpec did before)."""
    for directory in sorted(dirs):
        keep._gitignore_for(directory)
    specs = [value for value in vars(keep).values() if isinstance(value, GlobSpec)]
    specs += [spec for spec in keep._gitignores.values() if spec is not None]
    for spec in specs:
        assert spec._any.pattern
        for pattern in spec.patterns:
            assert pattern.anywhere.pattern and (pattern.itself is None or pattern.itself.pattern)
    return keep


def test_a_filter_compiled_on_first_use_answers_as_one_compiled_up_front(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lazy regexes, the specs shared between filters and the name-shape prefilter give the eager answers."""
    monkeypatch.setattr(globs, "PREFILTER_CHECKS", 10**9)  # every lazy answer goes through the prefilter
    filters._spec.cache_clear()
    (tmp_path / ".gitignore").write_text("*.tmp\nfrontend/\n!src/*.tmp\n[z-a]\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / ".gitignore").write_text("*.json\n!config.json\n")
    rng = random.Random(15)
    paths = sorted({"/".join(rng.choices(_NAMES, k=rng.randint(1, 4))) for _ in range(3000)})
    dirs = {""} | {p.rsplit("/", 1)[0] for p in paths if "/" in p} | {p.split("/")[0] for p in paths}
    protect = [ProtectRule(paths=("frontend/app/", "*.db", "g/followup/state/"), rollback="force")]
    for watch in _WATCH:
        lazy = PathFilter(tmp_path, watch, protect)
        filters._spec.cache_clear()  # the eager filter's specs are its own, not compiled for the lazy one
        eager = _eager(PathFilter(tmp_path, watch, protect), dirs)
        assert eager._exclude is not lazy._exclude
        for path in rng.sample(paths, len(paths)):  # asked in another order than the eager one is
            for is_dir in (False, True):
                assert lazy(path, is_dir) == eager(path, is_dir), (watch, path, is_dir)
                assert lazy.hidden_by(path, is_dir) == eager.hidden_by(path, is_dir), (watch, path, is_dir)
        assert lazy.is_secret("a/.ENV") and not lazy.is_secret("a/env")


def test_filters_share_the_built_in_specs_but_not_their_own(tmp_path: Path) -> None:
    plain, excluding = PathFilter(tmp_path, WatchSettings()), PathFilter(tmp_path, WatchSettings(exclude=("*.log",)))
    assert plain._builtin is plain._exclude is excluding._builtin  # compiled once per process
    assert excluding._exclude is not excluding._builtin
    assert not excluding("a.log") and plain("a.log")


def test_the_name_shape_prefilter_never_misses_a_match() -> None:
    """A spec's first answers come from the shape of the names where it can; they are the combined regex's."""
    specs = [
        [*filters.DEFAULT_EXCLUDES, "*.log", "!keep.log", "a*b*c", "x*", "*y", "gen/", "/top.txt", "src/*.tmp"],
        [p.lower() for p in filters.SECRET_PATTERNS],
    ]
    rng = random.Random(7)
    names = [*_NAMES, "abc", "aXbYc", "ab", "xyz", "top.txt", "y", "a*b", "", "..", ".aws", ".kube", "config"]
    for lines in specs:
        compiled = GlobSpec.from_lines(lines)
        assert compiled._any is not None  # compiled first: no prefilter
        prefiltered = GlobSpec.from_lines(lines)
        for _ in range(3000):
            path = "/".join(rng.choices(names, k=rng.randint(1, 4)))
            path = rng.choice(["", "/", "./"]) + path + rng.choice(["", "/"])
            if prefiltered._prefilter_left == 0:  # a fresh spec for every PREFILTER_CHECKS paths
                prefiltered = GlobSpec.from_lines(lines)
            assert prefiltered._prefilter_left > 0
            assert prefiltered.check(path) == compiled.check(path), path
