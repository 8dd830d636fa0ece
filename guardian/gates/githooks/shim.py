"""The hook shim as a file: render it, read back what it was written with, and tell whose a hook file is.

A shim is hooks/guardian-hook.sh with the hook name, the interpreter and the known
projects (root -> store) filled in.  Other tools write hook files too, and two of
them rewrite guardian's: pre-commit moves a hook it finds to ``<hook>.legacy`` and
runs it from its own script, and husky 9's prepare step writes its own wrapper over
every hook name it manages.  :func:`manager_of` recognises their files, so ``hooks
status`` can say which tool a hook belongs to and whether guardian still runs.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path

MARKER_PREFIX = "# guardian-hook-shim"
SHIM_MARKER = "# guardian-hook-shim v2"
TEMPLATE_NAME = "guardian-hook.sh"
CHAIN_SUFFIX = ".guardian-chained"  # the hook guardian's shim replaced, run first
CHAIN_LINKS = ".guardian-chained"  # directory of symlinks named after the hooks, for chained non-shell hooks
V1_LEGACY_SUFFIX = ".legacy"  # where guardian before v2 kept the replaced hook (pre-commit uses it too)
PRE_COMMIT_LEGACY_SUFFIX = ".legacy"  # pre-commit's name for the hook it replaced, and runs first

_PROJECTS_LINE = "        # @PROJECTS@"
_CASE_START = "    case $1 in\n"
_PROJECT_ARM_END = ") store="

_PACKAGE_DIR = Path(__file__).resolve().parents[2]  # guardian/
_SOURCE_SHIMS = _PACKAGE_DIR.parent / "hooks"
_PACKAGED_SHIMS = _PACKAGE_DIR / "hook_shims"


def shims_dir() -> Path:
    """The shim templates live in hooks/ in a source checkout and in guardian/hook_shims in the wheel."""
    return _SOURCE_SHIMS if (_SOURCE_SHIMS / TEMPLATE_NAME).is_file() else _PACKAGED_SHIMS


def render_shim(name: str, python: str, projects: Sequence[tuple[Path, Path]] = ()) -> str:
    """The shim for hook ``name``: it runs ``python`` and knows ``projects`` as (root, store) pairs."""
    template = (shims_dir() / TEMPLATE_NAME).read_text(encoding="utf-8")
    arms = "".join(
        f"        {shlex.quote(str(root))}{_PROJECT_ARM_END}{shlex.quote(str(store))} ;;\n" for root, store in projects
    )
    lines = template.splitlines(keepends=True)
    rendered = "".join(arms + line if line.startswith(_PROJECTS_LINE) else line for line in lines)
    return rendered.replace("@HOOK@", shlex.quote(name)).replace("@PYTHON@", shlex.quote(python))


def read_head(path: Path, size: int = 4096) -> str:
    try:
        with open(path, "rb") as handle:
            return handle.read(size).decode("utf-8", "replace")
    except OSError:
        return ""


def is_guardian_shim(path: Path) -> bool:
    return MARKER_PREFIX in read_head(path, 512)


def shim_outdated(name: str, path: Path) -> bool:
    """Whether the shim at path differs from what this guardian would write with the same interpreter and projects."""
    python = shim_python(path)
    if python is None:
        return True
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return True
    return text != render_shim(name, python, shim_projects(path))


def outdated_hooks_note(root: Path) -> str | None:
    """``guardian status``'s note on the shims in root's own .git/hooks that this guardian would write differently.

    After an upgrade nothing else says so (``guardian hooks status`` does, if run).  Only the
    default hooks directory of a plain ``.git`` is read, and only when ``.git/config`` names no
    ``core.hooksPath``: finding the one git uses would start a git process on every status.
    """
    git_dir = root / ".git"
    try:
        config = (git_dir / "config").read_text(encoding="utf-8", errors="replace").lower()
    except OSError:
        return None  # no .git directory here (none, or a worktree's .git file)
    if "hookspath" in config:
        return None
    stale = outdated_shims(git_dir / "hooks")
    if not stale:
        return None
    names = ", ".join(stale)
    return f"git hooks written by another guardian version: {names}; run 'guardian hooks install' to update them"


def outdated_shims(directory: Path) -> list[str]:
    """The hooks in directory that are guardian shims an older (or another) guardian wrote, by name."""
    try:
        names = sorted(entry.name for entry in os.scandir(directory) if entry.is_file())
    except OSError:
        return []
    return [name for name in names if is_guardian_shim(directory / name) and shim_outdated(name, directory / name)]


def shim_python(path: Path) -> str | None:
    """The interpreter a shim runs, as written in it."""
    for line in _lines(path):
        if line.startswith("python="):
            words = _split(line[len("python=") :])
            return words[0] if words else None
    return None


def shim_projects(path: Path) -> list[tuple[Path, Path]]:
    """The (root, store) pairs a shim was written with (a root may hold any character, a newline too)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    start, end = text.find(_CASE_START), text.find(_PROJECTS_LINE)
    if start < 0 or end < start:
        return []
    try:
        lexer = shlex.shlex(text[start + len(_CASE_START) : end], posix=True, punctuation_chars=True)
        words = list(lexer)
    except ValueError:
        return []
    found: list[tuple[Path, Path]] = []
    # Each arm is: ROOT ) store=STORE ;;
    for i in range(0, len(words) - 3, 4):
        root, paren, assignment, end_arm = words[i : i + 4]
        if paren == ")" and assignment.startswith("store=") and end_arm == ";;":
            found.append((Path(root), Path(assignment[len("store=") :])))
    return found


def manager_of(path: Path) -> str | None:
    """The hook manager that wrote this hook file, if one is recognised: "husky" or "pre-commit"."""
    head = read_head(path)
    if "File generated by pre-commit" in head:
        return "pre-commit"
    if '. "$(dirname "$0")/h"' in head or "husky.sh" in head or "husky" in head.lower()[:200]:
        return "husky"
    return None


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []


def _split(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError:
        return []


def exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def same_bytes(a: Path, b: Path) -> bool:
    try:
        if a.is_symlink() or b.is_symlink():
            return a.is_symlink() and b.is_symlink() and os.readlink(a) == os.readlink(b)
        return a.read_bytes() == b.read_bytes()
    except OSError:
        return False


def unguarded(directory: Path, names: Sequence[str]) -> list[str]:
    """Those of ``names`` in ``directory`` through which guardian no longer runs (rewritten or removed).

    Cheap enough for every hook run: the first 512 bytes of a few files.
    """
    lost = []
    for name in names:
        if is_guardian_shim(directory / name):
            continue
        if (
            is_guardian_shim(directory / (name + PRE_COMMIT_LEGACY_SUFFIX))
            and manager_of(directory / name) == "pre-commit"
        ):
            continue
        lost.append(name)
    return lost
