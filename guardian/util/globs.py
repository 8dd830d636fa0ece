"""Gitignore-style patterns, matched in time linear in the path: no catastrophic backtracking.

guardian reads patterns from places it does not control (``watch.exclude``, ``protect``,
``validate`` and every ``.gitignore`` in the tree).  pathspec turns each one into a
backtracking regex, so ``*a*a*a*a*a*a*b`` took seconds on a 30-character name and
doubled with every character.  This module reads the same syntax with the same meaning
as ``pathspec.GitIgnoreSpec`` (1.x) and compiles each pattern into regexes that cannot
backtrack into a choice already made: a glob is a run of fixed-width pieces between
stars, and placing each piece at its leftmost fit (an atomic group) is exact, because
an earlier piece that ends sooner only leaves the rest more room.  The same holds one
level up for groups of whole segments between ``**``.  So a match costs about
(path length x pattern length), whatever the pattern.

It departs from pathspec's regex in three places, each towards git's own meaning:
a bracket expression never matches ``/`` (``a[!x]b`` does not match ``a/b``), a
newline in a name is an ordinary character, and empty segments (``a//b``) get no
special treatment.  ``tests/util/test_globs.py`` compares both on a large seeded
corpus outside those three cases.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Literal

# How a pattern matched a path, as pathspec ranks them: a pattern that matched the path
# itself (ITSELF) beats one that matched a directory above it (UNDER_DIR), whatever the order.
NO_MATCH: Literal[0] = 0
UNDER_DIR: Literal[1] = 1
ITSELF: Literal[2] = 2
Priority = Literal[0, 1, 2]

_SEGMENT_END = r"(?=/|\Z)"
# Characters that Python may one day read as set syntax inside a class; escaped, they stay literal.
_CLASS_ESCAPES = str.maketrans({"[": r"\[", "&": r"\&", "~": r"\~", "|": r"\|"})


class GlobError(ValueError):
    """A pattern that cannot be read (worded as pathspec words it: ``Invalid git pattern: '!'``)."""


class _RangeError(Exception):
    """An unterminated bracket expression: git drops the whole pattern."""


class GlobPattern:
    """One translated line.  ``include`` is False for a ``!`` line.

    Its regexes are compiled on first use: a spec asks a pattern only once its combined
    regex matched a path, and compiling every line up front cost a capture path filter
    (about ninety lines, the built-in excludes and secret names included) ~15 ms per
    process, most of a hook's snapshot.  A plain slotted class: never compared, hashed or printed.
    """

    __slots__ = ("_anywhere", "_itself", "anywhere_source", "fixed", "include", "itself_source", "shape", "text")

    def __init__(
        self,
        text: str,
        include: bool,
        anywhere_source: str,
        itself_source: str | None,
        fixed: Priority,
        shape: tuple[str, str, bool] | None = None,
    ) -> None:
        self.text = text
        self.include = include
        # Matches (from the start) when the pattern covers the path itself or a directory above it.
        self.anywhere_source = anywhere_source
        # Matches when the pattern covers the path itself; None when ``fixed`` says how it matched.
        self.itself_source = itself_source
        self.fixed = fixed
        # (head, tail, exact) when the pattern can match only a path with a segment that starts
        # with head and ends with tail (is head, when exact): "*.pem", ".env", "node_modules/".
        self.shape = shape
        self._anywhere: re.Pattern[str] | None = None
        self._itself: re.Pattern[str] | None = None

    @property
    def anywhere(self) -> re.Pattern[str]:
        if self._anywhere is None:
            self._anywhere = re.compile(self.anywhere_source)
        return self._anywhere

    @property
    def itself(self) -> re.Pattern[str] | None:
        if self._itself is None and self.itself_source is not None:
            self._itself = re.compile(self.itself_source)
        return self._itself

    def priority(self, path: str) -> Priority:
        if self.anywhere.match(path) is None:
            return NO_MATCH
        itself = self.itself
        if itself is None:
            return self.fixed
        return ITSELF if itself.match(path) is not None else UNDER_DIR


def _bracket(expr: str) -> str:
    """A bracket expression as a regex that never matches "/": a class lives inside one segment."""
    try:
        crosses = re.compile(expr).match("/") is not None
    except re.error:
        # A bad range ("[z-a]"): compiling the whole pattern raises it, after every segment is read,
        # so an unterminated bracket later on still drops the pattern first, as in pathspec.
        return expr
    return "(?!/)" + expr if crosses else expr


def bracket_end(glob: str, start: int) -> int | None:
    """Where the ``]`` closing a bracket class is, ``start`` being just past its ``[``; None if unclosed.

    A ``!`` or ``^`` right after the ``[``, and then a ``]``, belong to the class (pathspec reads it so).
    """
    j, end = start, len(glob)
    if j < end and glob[j] in "!^":
        j += 1
    if j < end and glob[j] == "]":
        j += 1
    while j < end and glob[j] != "]":
        j += 1
    return j if j < end else None


def _pieces(glob: str) -> list[str]:
    """The regexes of the fixed-width pieces between the stars of one segment glob.

    Reads brackets, escapes and ``?`` exactly as pathspec's ``_translate_segment_glob``.
    """
    pieces: list[str] = []
    current: list[str] = []
    escape = False
    i, end = 0, len(glob)
    while i < end:
        char = glob[i]
        i += 1
        if escape:
            escape = False
            current.append(re.escape(char))
        elif char == "\\":
            escape = True
        elif char == "*":
            pieces.append("".join(current))
            current = []
        elif char == "?":
            current.append("[^/]")
        elif char == "[":
            closing = bracket_end(glob, i)
            if closing is None:
                raise _RangeError(glob)
            j = closing + 1
            expr = "["
            if glob[i] in "!^":
                expr += "^"
                i += 1
            expr += glob[i:j].replace("\\", "\\\\").translate(_CLASS_ESCAPES)
            current.append(_bracket(expr))
            i = j
        else:
            current.append(re.escape(char))
    if escape:
        raise ValueError(f"Escape character found with no next character to escape: {glob!r}")
    pieces.append("".join(current))
    return pieces


def _segment(glob: str) -> str:
    """A regex for one path segment that commits to each piece's leftmost fit."""
    if glob == "*":
        return "[^/]++"  # a segment that is only a star must not be empty (as in pathspec)
    pieces = _pieces(glob)
    if len(pieces) == 1:
        return pieces[0]  # no star: fixed width, nothing to choose
    first, *middle, last = pieces
    # The last piece is placed as far right as it goes: if it fits at the end of the segment,
    # the greedy star finds that first; if not, no other choice would end the segment either.
    inner = "".join(f"(?>[^/]*?{piece})" for piece in middle if piece)
    return f"(?>{first}{inner}[^/]*{last})"


def _normalised_segments(text: str, original: str) -> list[str]:
    """The pattern's segments as pathspec normalises them (a leading ``**`` for unanchored names)."""
    segments = text.split("/")
    if not segments[0]:
        del segments[0]
    elif (len(segments) == 1 or (len(segments) == 2 and not segments[1])) and segments[0] != "**":
        segments.insert(0, "**")
    if not segments:
        raise GlobError(f"Invalid git pattern: {original!r}")
    if not segments[-1]:
        segments[-1] = "**"
    collapsed = [segments[0]]
    for segment in segments[1:]:
        if not (segment == "**" and collapsed[-1] == "**"):
            collapsed.append(segment)
    return collapsed


def _compile_segments(segments: list[str], is_dir: bool) -> tuple[str, str | None, Priority]:
    """(anywhere regex, itself regex or None, the priority when itself is None)."""
    # pathspec's shortcuts for catch-all patterns, kept because they rank matches differently.
    # "**" and "*" match every path; "**/" and "*/" every path below the top.
    if segments == ["**"]:
        return ("[^/]*+/", None, UNDER_DIR) if is_dir else ("(?s:.)", None, ITSELF)
    if segments == ["**", "*"]:
        return "(?s:.)", None, ITSELF
    if segments == ["**", "*", "**"]:
        return "[^/]*+/", None, UNDER_DIR if is_dir else ITSELF
    lead = segments[0] == "**"
    trail = segments[-1] == "**"
    groups: list[list[str]] = [[]]
    for segment in segments[int(lead) : len(segments) - int(trail)]:
        if segment == "**":
            groups.append([])
        else:
            groups[-1].append(_segment(segment))
    anywhere: list[str] = []
    itself: list[str] = []
    for index, group in enumerate(groups):
        body = "/".join(group)
        last = index == len(groups) - 1
        if index == 0:
            skip = "(?:[^/]*+/)*?" if lead else ""
        else:
            skip = "(?:/[^/]*+)*?/"
        end = "/" if last and trail else _SEGMENT_END
        # Atomic: the leftmost fit of each group is final, so no later failure re-tries it.
        anywhere.append(f"(?>{skip}{body}{end})")
        itself.append(f"{skip}{body}\\Z" if last else f"(?>{skip}{body}{end})")
    if trail:
        return "".join(anywhere), None, UNDER_DIR if is_dir else ITSELF
    return "".join(anywhere), "".join(itself), ITSELF


def compile_pattern(line: str) -> GlobPattern | None:
    """One gitignore line, compiled; None for a blank line, a comment or a pattern git ignores.

    Raises :class:`GlobError` (a ValueError) for a pattern that cannot be read and
    ``re.error`` for a bad bracket range, as pathspec does.
    """
    text = line if line.endswith("\\ ") else line.rstrip()
    if not text or text.startswith("#") or text == "/":
        return None
    include = not text.startswith("!")
    if not include:
        text = text[1:]
    is_dir = text.endswith("/") or text == ""
    segments = _normalised_segments(text, line)
    try:
        anywhere, itself, fixed = _compile_segments(segments, is_dir)
    except _RangeError:
        return None  # git discards a pattern with an unterminated bracket
    except ValueError:
        raise GlobError(f"Invalid git pattern: {line!r}") from None
    pattern = GlobPattern(line, include, anywhere, itself, fixed, _name_shape(segments))
    if "[" in text:
        # Only a bracket expression can make a regex that does not compile (a bad range such
        # as "[z-a]"); everything else is escaped.  So such a line is compiled now, raising here
        # as ever, and every other one when a path first needs it.
        _compiled = pattern.anywhere, pattern.itself
    return pattern


def _name_shape(segments: list[str]) -> tuple[str, str, bool] | None:
    """The shape of the one segment an unanchored one-name pattern ("**/G", "**/G/**") needs, if plain.

    Its regex matches a whole segment (after a "/" or at the start, before a "/" or the
    end) against G's pieces, each literal when G holds no ``?``, ``[`` or backslash: so a
    path it matches has a segment equal to G, or starting with what comes before G's first
    star and ending with what follows its last.
    """
    if segments[0] != "**" or not (len(segments) == 2 or (len(segments) == 3 and segments[2] == "**")):
        return None
    glob = segments[1]
    if glob == "**" or any(c in glob for c in "?[\\"):
        return None
    if "*" not in glob:
        return glob, "", True
    return glob[: glob.index("*")], glob[glob.rindex("*") + 1 :], False


def normalise_path(path: str) -> str:
    """As pathspec's ``normalize_file``: one leading "/" or "./" is dropped."""
    if path.startswith("/"):
        return path[1:]
    if path.startswith("./"):
        return path[2:]
    return path


# A spec answers its first PREFILTER_CHECKS paths from the shape of their names where it can
# (a capture of a few files, a hook's, never compiles the built-in excludes' or the secret
# names' combined regex, ~3 ms each); a scan of many paths then compiles it, as matching in C
# beats the Python loop.  A spec with more patterns of other shapes than PREFILTER_OTHERS
# compiles it straight away: its patterns one by one would cost more.
PREFILTER_CHECKS = 32
PREFILTER_OTHERS = 4


class GlobSpec:
    """Compiled gitignore lines, ranked as ``pathspec.GitIgnoreSpec`` ranks them.

    The last pattern that matches a path itself decides; failing that, the last one
    that matches a directory above it.  ``skipped`` lists the lines dropped by
    ``from_lines(..., skip_invalid=True)``.
    """

    def __init__(self, patterns: Sequence[GlobPattern], skipped: Sequence[str] = ()) -> None:
        self.patterns = tuple(patterns)
        self.skipped = tuple(skipped)
        self._newest_first = self.patterns[::-1]
        self._any_regex: re.Pattern[str] | None = None
        # Until the combined regex is worth its compile, a path no pattern could match by the
        # shape of its segments is answered without it (see _may_match).
        self._names: set[str] = set()
        self._affixes: list[tuple[str, str]] = []
        self._others: list[GlobPattern] = []
        for pattern in self.patterns:
            if pattern.shape is None:
                self._others.append(pattern)
            elif pattern.shape[2]:
                self._names.add(pattern.shape[0])
            else:
                self._affixes.append(pattern.shape[:2])
        self._prefilter_left = PREFILTER_CHECKS if len(self._others) <= PREFILTER_OTHERS else 0

    @property
    def _any(self) -> re.Pattern[str]:
        """One pass that says "no pattern matches", the usual answer, without a Python loop.

        Compiled on the first check: a spec that is never asked (a capture that meets no
        secret name, say) costs no compile.
        """
        if self._any_regex is None:
            self._any_regex = re.compile("|".join(p.anywhere_source for p in self.patterns) or "(?!)")
        return self._any_regex

    def _may_match(self, norm: str) -> bool:
        """False only when no pattern can match norm: a superset of the combined regex, without compiling it."""
        segments = norm.split("/")
        if not self._names.isdisjoint(segments):
            return True
        for head, tail in self._affixes:
            for segment in segments:
                if segment.startswith(head) and segment.endswith(tail) and len(segment) >= len(head) + len(tail):
                    return True
        return any(pattern.anywhere.match(norm) is not None for pattern in self._others)

    @classmethod
    def from_lines(cls, lines: Iterable[str], *, skip_invalid: bool = False) -> GlobSpec:
        """Compile every line.  ``skip_invalid`` drops unreadable ones (as git does) instead of raising."""
        patterns: list[GlobPattern] = []
        skipped: list[str] = []
        for line in lines:
            try:
                pattern = compile_pattern(line)
            except (ValueError, re.error):
                if not skip_invalid:
                    raise
                skipped.append(line)
                continue
            if pattern is not None:
                patterns.append(pattern)
        return cls(patterns, skipped)

    def check(self, path: str) -> bool | None:
        """True: included by a pattern; False: excluded by a ``!`` pattern; None: no pattern matched."""
        norm = normalise_path(path)
        if self._any_regex is None and self._prefilter_left > 0:
            self._prefilter_left -= 1
            if not self._may_match(norm):
                return None
        if self._any.match(norm) is None:
            return None
        decided: bool | None = None
        best: Priority = NO_MATCH
        for pattern in self._newest_first:
            priority = pattern.priority(norm)
            if priority > best:
                decided, best = pattern.include, priority
                if priority == ITSELF:
                    break
        return decided

    def match(self, path: str) -> bool:
        return bool(self.check(path))
