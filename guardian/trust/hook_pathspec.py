"""The trusted policy's protected paths as git pathspecs, for the hook shims' fast path.

A git hook runs on every commit and checkout; starting Python there costs 100 ms or
more even when nothing protected moves.  So whenever a policy is accepted, guardian
writes ``<store>/hooks/protected.pathspec``: a stamp (the sha256 of the accepted
text), then one ``:(top,glob)`` pathspec a line, then their count.  The shim (hooks/guardian-hook.sh)
asks git with it whether any protected path changed, and starts Python only if one
did, or if it cannot tell.

The pathspecs only ever match *more* than the policy protects, never less: a bracket
expression becomes ``?``, an escaped special character ``?``, a ``!`` exception is
left out, and a pattern they cannot express becomes ``**`` (everything).  Matching
too much only sends a command to the full check in Python.  A stale file is harmless
too: its stamp no longer names the accepted text, and the shim falls back to Python.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from guardian.config import parse_policy
from guardian.errors import ConfigError
from guardian.paths import POLICY_FILENAME
from guardian.util.fs import atomic_write_file
from guardian.util.globs import bracket_end

PATHSPEC_DIR = "hooks"
PATHSPEC_FILE = "protected.pathspec"
HEADER = "# guardian protected pathspec v1"
_MAGIC = ":(top,glob)"
EVERYTHING = _MAGIC + "**"
_GLOB_SPECIALS = "*?[]\\"


def pathspec_path(store: Path) -> Path:
    return store / PATHSPEC_DIR / PATHSPEC_FILE


def policy_stamp(accepted: bytes) -> str:
    """What the shim compares with ``sha256sum`` of the accepted policy and of guardian.yaml."""
    return hashlib.sha256(accepted).hexdigest()


def _segment(glob: str) -> str | None:
    """One gitignore segment as a git glob segment that matches at least as much; None if it cannot."""
    out: list[str] = []
    i, end = 0, len(glob)
    while i < end:
        char = glob[i]
        i += 1
        if char == "\\":
            if i >= end:
                return None
            escaped = glob[i]
            i += 1
            out.append("?" if escaped in _GLOB_SPECIALS else escaped)
        elif char == "[":
            # Read the bracket as guardian.util.globs does; whatever class it is, it matches one character.
            closing = bracket_end(glob, i)
            if closing is None:
                return None
            out.append("?")
            i = closing + 1
        else:
            out.append(char)
    return "".join(out)


def _component(part: str) -> str:
    """A directory component an anchored pattern names (fnmatch syntax), as a git glob that covers it."""
    return "*" if "[" in part or "\\" in part else part


def _exactly(glob: str) -> str:
    """``glob`` matching that path only: git takes a pathspec without wildcards for its whole subtree too."""
    if any(c in glob for c in "*?["):
        return glob
    last = glob[-1]
    return glob[:-1] + ("?" if last in "]!^" else f"[{last}]")


def pattern_pathspecs(line: str) -> list[str]:
    """The pathspecs that cover what one gitignore-style ``protect`` pattern governs (see PolicyEngine)."""
    text = line if line.endswith("\\ ") else line.rstrip()
    if not text or text.startswith("#") or text == "/" or text.startswith("!"):
        return []  # nothing, or an exception that only narrows its rule
    if any(c in text for c in "\n\r"):
        return [EVERYTHING]
    segments = text.split("/")
    if not segments[0]:
        del segments[0]
    elif (len(segments) == 1 or (len(segments) == 2 and not segments[1])) and segments[0] != "**":
        segments.insert(0, "**")  # a name without a slash matches at any depth
    if segments and not segments[-1]:
        segments[-1] = "**"
    while segments and segments[-1] == "**":
        segments.pop()
    globs = [_segment(s) for s in segments]
    if not globs or globs == ["**"] or any(not g for g in globs):
        return [EVERYTHING]  # the top itself, an empty segment (a//b), or a dangling escape or bracket
    body = "/".join(g for g in globs if g)
    # The path itself, and everything below it (a pattern matches a directory's contents too).
    specs = [_MAGIC + body, _MAGIC + body + "/**"]
    # A directory that holds what an anchored pattern names is governed by it too: a
    # submodule or a file that replaced such a directory shows up in a diff under that name.
    stripped = line.rstrip("/")
    if "/" in stripped:
        parts = [p for p in stripped.strip("/").split("/") if p]
        for depth in range(1, len(parts)):
            prefix = [_component(p) for p in parts[:depth]]
            if "**" in prefix:
                specs.append(_MAGIC + "/".join([*prefix[: prefix.index("**")], "**"]))
                break
            specs.append(_MAGIC + _exactly("/".join(prefix)))
    return specs


def protected_pathspecs(patterns: Iterable[str]) -> list[str]:
    """Every pathspec for these patterns, guardian.yaml's own included, without repeats."""
    found: dict[str, None] = {_MAGIC + POLICY_FILENAME: None}
    for pattern in patterns:
        for spec in pattern_pathspecs(pattern):
            found.setdefault(spec, None)
    return list(found)


def render_pathspec_file(accepted: bytes) -> str | None:
    """The file's text for this accepted policy; None when the policy does not parse."""
    try:
        policy = parse_policy(accepted.decode("utf-8"), POLICY_FILENAME)
    except (ConfigError, UnicodeDecodeError):
        return None
    specs = protected_pathspecs(p for rule in policy.protect_rules for p in rule.paths)
    lines = [HEADER, f"stamp {policy_stamp(accepted)}", f"clk_tck {os.sysconf('SC_CLK_TCK')}", ""]
    # The count at the end lets the shim tell a whole file from one cut short.
    return "\n".join([*lines, *specs, f"# end {len(specs)}"]) + "\n"


def write_pathspec_file(store: Path, accepted: bytes) -> None:
    """(Re)write the shims' pathspec file for the accepted policy; remove it if it cannot be written.

    Never raises: without the file (or with a stale one) the shim runs the full check.
    """
    path = pathspec_path(store)
    text = render_pathspec_file(accepted)
    try:
        if text is None:
            path.unlink(missing_ok=True)
            return
        path.parent.mkdir(mode=0o700, exist_ok=True)
        atomic_write_file(path, text.encode("utf-8"), 0o600)
    except OSError:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass  # its stamp names the previous policy, so the shim will not trust it


def refresh_pathspec_file(store: Path, accepted_file: Path) -> None:
    """Write the pathspec file from the accepted policy on disk (``guardian hooks install``)."""
    try:
        accepted = accepted_file.read_bytes()
    except OSError:
        return
    write_pathspec_file(store, accepted)
