"""guardian.util.globs: gitignore meaning, equal to pathspec's, at a cost linear in the path.

The corpus test compares every answer with ``pathspec.GitIgnoreSpec`` (the matcher
guardian used before) on thousands of seeded random patterns and paths.  The timing
tests measure a pathological pattern at growing sizes and bound the growth, with
ratios wide enough for a loaded two-core machine: pathspec's regex takes seconds at
64 characters on the same shapes, so any backtracking shows as orders of magnitude.
"""

from __future__ import annotations

import random
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pathspec
import pytest

from guardian.util.globs import ITSELF, NO_MATCH, UNDER_DIR, GlobError, GlobSpec, compile_pattern


def matches(pattern: str, path: str) -> bool:
    return GlobSpec.from_lines([pattern]).match(path)


# --------------------------------------------------------------------------- gitignore meaning


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        # A name without a slash matches at any depth, and everything under a directory of that name.
        ("foo", "foo", True),
        ("foo", "a/b/foo", True),
        ("foo", "a/foo/b.txt", True),
        ("foo", "afoo", False),
        # A leading slash, or a slash in the middle, anchors to the top.
        ("/foo", "foo", True),
        ("/foo", "a/foo", False),
        ("a/foo", "a/foo/x", True),
        ("a/foo", "b/a/foo", False),
        # A trailing slash: directories only (a probe for a directory ends with "/").
        ("build/", "build/", True),
        ("build/", "src/build/x.o", True),
        ("build/", "build", False),
        # ** before, between and after.
        ("**/foo", "x/y/foo", True),
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("a/**/b", "a/xb", False),
        ("a/**", "a/x/y", True),
        ("a/**", "a", False),
        # Stars and ? stay inside one segment.
        ("*.py", "src/mod.py", True),
        ("a*b", "a/b", False),
        ("a?b", "a/b", False),
        ("a?b", "axb", True),
        # Bracket expressions, negated with ! or ^.
        ("*.py[cod]", "x.pyc", True),
        ("*.py[cod]", "x.pyx", False),
        ("[a-c]x", "bx", True),
        ("[!a]x", "bx", True),
        ("[!a]x", "ax", False),
        ("[^a]x", "ax", False),
        ("[]]x", "]x", True),
        # A backslash escapes the next character.
        ("\\*x", "*x", True),
        ("\\*x", "ax", False),
        ("\\#x", "#x", True),
        ("\\!x", "!x", True),
        ("a\\ ", "a ", True),
        # Trailing spaces are dropped unless escaped; comments and blanks match nothing.
        ("foo  ", "foo", True),
        ("#foo", "#foo", False),
        ("", "x", False),
        # An unterminated bracket drops the pattern, as git does.
        ("foo[", "foo[", False),
        # Catch-alls.
        ("*", "a/b", True),
        ("**", "a", True),
        ("*/", "a", False),
        ("*/", "a/b", True),
    ],
)
def test_gitignore_meaning(pattern: str, path: str, expected: bool) -> None:
    assert matches(pattern, path) is expected


def test_negation_re_includes_and_the_last_match_wins() -> None:
    spec = GlobSpec.from_lines(["*.log", "!keep.log"])
    assert spec.check("x.log") is True
    assert spec.check("keep.log") is False  # matched by the "!" line: re-included
    assert spec.check("x.txt") is None
    assert GlobSpec.from_lines(["!keep.log", "*.log"]).check("keep.log") is True


def test_a_file_match_outranks_a_later_directory_match() -> None:
    # pathspec's ranking (and git's): "logs/" covers logs/keep.txt only as a directory above it.
    spec = GlobSpec.from_lines(["!logs/keep.txt", "logs/"])
    assert spec.check("logs/keep.txt") is False
    assert spec.check("logs/other.txt") is True


def test_how_a_pattern_matched() -> None:
    pattern = compile_pattern("foo")
    assert pattern is not None
    assert pattern.priority("a/foo") == ITSELF
    assert pattern.priority("a/foo/b") == UNDER_DIR
    assert pattern.priority("a/food") == NO_MATCH


def test_leading_slash_and_dot_slash_of_a_path_are_dropped() -> None:
    assert matches("/foo", "/foo")
    assert matches("/foo", "./foo")


@pytest.mark.parametrize(
    ("line", "message"), [("!", "Invalid git pattern: '!'"), ("a\\", "Invalid git pattern: 'a\\\\'")]
)
def test_unreadable_patterns_raise_as_pathspec_does(line: str, message: str) -> None:
    with pytest.raises(GlobError, match=re.escape(message)):
        compile_pattern(line)
    with pytest.raises(ValueError):
        pathspec.GitIgnoreSpec.from_lines([line])


def test_a_bad_range_raises_re_error() -> None:
    with pytest.raises(re.error, match="bad character range z-a"):
        compile_pattern("[z-a]")


def test_skip_invalid_drops_only_the_bad_lines() -> None:
    spec = GlobSpec.from_lines(["!", "[z-a]", "*.log"], skip_invalid=True)
    assert spec.skipped == ("!", "[z-a]")
    assert spec.match("x.log")


def test_nested_set_syntax_in_a_class_is_literal_and_quiet() -> None:
    # Python warns that "[[" may one day mean a nested set; the class is escaped so it never does.
    assert matches("[[:]x", ":x")
    assert matches("[[:]x", "[x")


# --------------------------------------------------------------------------- same answers as pathspec

_LITERALS = ["a", "b", "c", ".", "ab", "-", "]", "!", "#", " ", "\\*", "\\?", "\\[", "\\a", "\\!", "\\#", "\\ "]
_WILDCARDS = ["*", "**", "?", "*a", "a*", "*.*"]
_CLASSES = ["[ab]", "[a-c]", "[]a]", "[.]", "[\\]", "[a-]"]
# Classes that pathspec's regex lets match "/" (git's never do): compared on one-segment paths only.
_SLASH_CLASSES = ["[!a]", "[^b]", "[!]a]", "[+-0]"]


def _segment(rng: random.Random) -> str:
    tokens = []
    for _ in range(rng.randint(0, 4)):
        roll = rng.random()
        pool = _LITERALS if roll < 0.45 else _WILDCARDS if roll < 0.8 else _CLASSES if roll < 0.93 else _SLASH_CLASSES
        tokens.append(rng.choice(pool))
    return "".join(tokens)


def _pattern(rng: random.Random) -> str:
    segments = [_segment(rng) for _ in range(rng.randint(1, 4))]
    if rng.random() < 0.15:
        segments[rng.randrange(len(segments))] = "**"
    text = "/".join(segments)
    roll = rng.random()
    text = "/" + text if roll < 0.15 else text + "/" if roll < 0.3 else text
    text = "!" + text if rng.random() < 0.15 else text
    for tail, odds in (("[", 0.02), ("\\", 0.02), ("  ", 0.03)):
        text = text + tail if rng.random() < odds else text
    return text


def _random_path(rng: random.Random) -> str:
    segments = [
        "".join(rng.choice("aabbcc.*[]!- \\#") for _ in range(rng.randint(1, 4))) for _ in range(rng.randint(1, 5))
    ]
    return "/".join(segments) + ("/" if rng.random() < 0.3 else "")


def _path_like(rng: random.Random, pattern: str) -> str:
    """A path built from the pattern's own text, so that a good share of the corpus matches."""
    text = pattern.lstrip("!").strip("/").rstrip()
    text = re.sub(r"\*\*", lambda _: rng.choice(["", "a", "a/b", "c/c/a"]), text)
    text = re.sub(r"\[!?\]?[^]]*\]", lambda _: rng.choice("ab]c."), text)
    text = re.sub(r"\\(.)", lambda m: m.group(1), text)
    text = re.sub(r"\*", lambda _: rng.choice(["", "a", "ba", "aab", "c.a"]), text)
    text = re.sub("/+", "/", text.replace("?", rng.choice("abc"))).strip("/")
    if rng.random() < 0.3:
        text = rng.choice(["a", "b/c", "x"]) + "/" + text
    if rng.random() < 0.3:
        text += "/" + rng.choice(["a", "b/c", "x"])
    return (text or "a") + ("/" if rng.random() < 0.3 else "")


def _outcome(build: Callable[[list[str]], object], lines: list[str]) -> tuple[str, object]:
    try:
        return "ok", build(lines)
    except re.error:
        return "re.error", None
    except ValueError:
        return "ValueError", None


def _pathspec_priority(pattern: pathspec.Pattern, path: str) -> int:
    result = pattern.match_file(path)
    if result is None:
        return NO_MATCH
    return UNDER_DIR if result.match.groupdict().get("ps_d") else ITSELF


def test_same_answers_as_pathspec_on_a_seeded_corpus() -> None:
    rng = random.Random(20240613)
    compared = matched = ranked = 0
    for _ in range(2000):
        lines = [_pattern(rng) for _ in range(rng.randint(1, 4))]
        ref_kind, ref = _outcome(pathspec.GitIgnoreSpec.from_lines, lines)
        our_kind, ours = _outcome(GlobSpec.from_lines, lines)
        assert ref_kind == our_kind, lines
        if not isinstance(ref, pathspec.GitIgnoreSpec) or not isinstance(ours, GlobSpec):
            continue
        live = [p for p in ref.patterns if p.include is not None]
        assert [p.include for p in live] == [p.include for p in ours.patterns], lines
        slash_classes = any(c in line for line in lines for c in _SLASH_CLASSES)
        for _ in range(30):
            path = _random_path(rng) if rng.random() < 0.5 else _path_like(rng, rng.choice(lines))
            if slash_classes and "/" in path:
                continue
            expected = ref.check_file(path).include
            assert ours.check(path) == expected, (lines, path)
            norm = path[1:] if path.startswith("/") else path
            for theirs, mine in zip(live, ours.patterns, strict=True):
                priority = _pathspec_priority(theirs, norm)
                assert mine.priority(norm) == priority, (theirs.pattern, path)
                ranked += priority == UNDER_DIR
            compared += 1
            matched += expected is not None
    # The corpus is worth something only if it matches often, both ways of matching included.
    assert compared > 25_000
    assert matched > compared // 5
    assert ranked > 2_000


# --------------------------------------------------------------------------- where git and pathspec differ


@pytest.mark.parametrize(
    ("pattern", "path"),
    [
        ("a[!x]b", "a/b"),  # a bracket expression never matches "/"
        ("q[.-0]r", "q/r"),  # nor does a range that spans it
    ],
)
def test_a_class_never_matches_a_slash(pattern: str, path: str) -> None:
    assert pathspec.GitIgnoreSpec.from_lines([pattern]).match_file(path)  # pathspec's regex does
    assert not matches(pattern, path)


def test_a_newline_in_a_name_is_an_ordinary_character() -> None:
    assert not pathspec.GitIgnoreSpec.from_lines(["**/foo"]).match_file("n\nl/foo")  # "." stops at a newline
    assert matches("**/foo", "n\nl/foo")


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_differences_side_with_git(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    patterns = ["a[!x]b", "q[.-0]r", "**/foo"]
    (tmp_path / ".gitignore").write_text("\n".join(patterns) + "\n")
    paths = ["a/b", "ayb", "q/r", "q.r", "n\nl/foo", "x/foo"]
    result = subprocess.run(
        ["git", "check-ignore", "--no-index", "-z", "--stdin"],
        cwd=tmp_path,
        input="\0".join(paths) + "\0",
        capture_output=True,
        text=True,
    )
    ignored_by_git = set(result.stdout.split("\0")) - {""}
    spec = GlobSpec.from_lines(patterns)
    assert {p for p in paths if spec.match(p)} == ignored_by_git == {"ayb", "q.r", "n\nl/foo", "x/foo"}


# --------------------------------------------------------------------------- cost


def _best_seconds(spec: GlobSpec, path: str, calls: int = 20, repeats: int = 5) -> float:
    """The fastest of several runs: load on the machine only ever adds time."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            spec.match(path)
        best = min(best, time.perf_counter() - start)
    return best


PATHOLOGICAL: dict[str, tuple[str, Callable[[int], str]]] = {
    "stars-in-one-name": ("*a*a*a*a*a*a*b", lambda n: "a" * n),
    "double-stars-in-one-name": ("a**a**a**a**b", lambda n: "a" * n),
    "classes-and-stars": ("*[ab]*[ab]*[ab]*[ab]*c", lambda n: "ab" * (n // 2)),
    "question-marks-and-stars": ("?*?*?*?*?*x", lambda n: "a" * n),
    "double-star-segments": ("**/a/**/a/**/a/**/b", lambda n: "/".join(["a"] * (n // 2))),
    "double-star-segments-with-stars": ("**/*a*/**/*a*/**/b", lambda n: "/".join(["aa"] * (n // 3))),
}


@pytest.mark.parametrize("shape", sorted(PATHOLOGICAL))
def test_a_pathological_pattern_stays_linear(shape: str) -> None:
    pattern, make = PATHOLOGICAL[shape]
    spec = GlobSpec.from_lines([pattern])
    small, large = make(1_000), make(16_000)
    assert not spec.match(small) and not spec.match(large)
    t_small, t_large = _best_seconds(spec, small), _best_seconds(spec, large)
    # Linear is 16x; quadratic would be 256x.  Exponential (pathspec) does not finish at all.
    assert t_large < 256 * max(t_small, 1e-4), (t_small, t_large)
    assert t_large < 5.0


def test_the_reported_case_is_fast() -> None:
    # The case: 11.7 s per 30-character name with pathspec, doubling with each character.
    spec = GlobSpec.from_lines(["*a*a*a*a*a*a*b"])
    start = time.perf_counter()
    for _ in range(100):
        assert not spec.match("a" * 30)
    assert time.perf_counter() - start < 1.0
