"""Where things live: GUARDIAN_HOME, per-project stores, and safe project-relative paths.

Every state directory is overridable by environment variable so that tests (and
users with unusual setups) never write into the real home directory.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from guardian.errors import NotAProject, PathRefused, UsageError

ENV_HOME = "GUARDIAN_HOME"


def guardian_home() -> Path:
    override = os.environ.get(ENV_HOME)
    if override:
        home = Path(override).expanduser()
        if not home.is_absolute():
            # A relative home would move with the current directory, and inside a work tree the
            # store would capture itself.
            raise UsageError(
                f"{ENV_HOME}={override} is a relative path; set it to an absolute directory, "
                f"for example {ENV_HOME}={home.absolute()}"
            )
        return home
    import platformdirs  # imported lazily: it is only needed when no override is set

    return Path(platformdirs.user_data_dir("guardian", appauthor=False))


def _sha256_constructor() -> Callable[[bytes], Any]:
    """CPython's own sha256 module (``_sha256``; ``_sha2`` from 3.12), else hashlib's.

    Importing hashlib loads OpenSSL (~5 ms), and every command names its store with one
    sha256; the built-in module gives the same digest (the tests compare them) and costs
    under 1 ms.  hashlib remains the fallback where an interpreter has neither.
    """
    for name in ("_sha2", "_sha256"):
        try:
            return __import__(name).sha256  # type: ignore[no-any-return]
        except (ImportError, AttributeError):
            continue
    import hashlib

    return hashlib.sha256


_sha256: Callable[[bytes], Any] | None = None


def sha256_hex(data: bytes) -> str:
    """The sha256 of data as hex, as ``hashlib.sha256(data).hexdigest()`` gives it."""
    global _sha256
    if _sha256 is None:
        _sha256 = _sha256_constructor()
    return str(_sha256(data).hexdigest())


def store_dir_for(root: Path) -> Path:
    """<GUARDIAN_HOME>/<dirname>-<short hash of the absolute root>: readable and collision-free."""
    root = root.absolute()
    digest = sha256_hex(os.fsencode(root))[:12]
    return guardian_home() / f"{root.name or 'root'}-{digest}"


def has_own_store(root: Path) -> bool:
    """Whether root has a store (repo.git) whose project.json names root itself."""
    import json  # imported here: git hooks import this module on every checkout, and json costs ~4 ms

    try:
        real = root.resolve()
        store = store_dir_for(real)
        meta = json.loads((store / "project.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RuntimeError):
        return False
    return isinstance(meta, dict) and meta.get("root") == str(real) and (store / "repo.git").is_dir()


def find_project_root(start: Path) -> Path:
    """Walk up from start to the nearest directory holding guardian.yaml, like git does for .git.

    guardian.yaml is usually untracked, so `git clean -fdx` or `rsync --delete` can
    remove it: a directory whose store still exists is still a project, and
    Project.find then loads the policy from the store (and warns).
    """
    here = start.absolute()
    for candidate in (here, *here.parents):
        if (candidate / POLICY_FILENAME).is_file() or has_own_store(candidate):
            return candidate
    raise NotAProject(f"no {POLICY_FILENAME} found in {here} or any parent; run 'guardian init' there, or pass -C DIR")


def _is_git_dir_name(part: str) -> bool:
    # Case-insensitive: on macOS (and in git's own checks) ".GIT" is ".git".
    return part.lower() == ".git"


def is_git_pointer_path(rel: str) -> bool:
    """Whether rel names a ``.git`` file in a subdirectory: a linked worktree's (or submodule's) pointer.

    Only the exact name, and never at the root, whose ``.git`` is the project's own
    repository.  What such a file may hold is checked where it is read and written
    (guardian.util.gitfile); a ``.git`` directory is never entered.
    """
    return rel.endswith("/.git")


def check_relative(rel: str) -> str:
    """Validate a POSIX path relative to the root, as found in a shadow tree or a catalog.

    Refuses anything that could escape the root or touch a .git directory; this is
    the check that makes a crafted shadow tree harmless.  The one ``.git`` it lets
    through is a subdirectory's pointer file (is_git_pointer_path): a last component,
    so nothing is ever reached *through* it.
    """
    if not rel or "\x00" in rel:
        raise PathRefused(f"refusing path {rel!r}: empty or contains a NUL byte")
    if rel.startswith("/") or ("\\" in rel and os.sep == "\\"):
        raise PathRefused(f"refusing path {rel!r}: it must be relative to the project root")
    parts = rel.split("/")
    pointer = is_git_pointer_path(rel)
    for index, part in enumerate(parts):
        if part in ("", ".", ".."):
            raise PathRefused(f"refusing path {rel!r}: '{part or '//'}' components are not allowed")
        if _is_git_dir_name(part) and not (pointer and index == len(parts) - 1):
            raise PathRefused(f"refusing path {rel!r}: guardian never reads or writes inside a .git directory")
    return rel


def to_relative(root: Path, user_path: str, cwd: Path | None = None) -> str:
    """Turn a path typed by a user (relative to cwd, or absolute) into a checked root-relative path.

    Only the *lexical* path is used here; symlinked parents are refused later, at
    the moment of reading or writing, by fsutil's no-follow directory walk.
    """
    if "\x00" in user_path:
        raise PathRefused(f"refusing path {user_path!r}: it contains a NUL byte")
    root = root.absolute()
    base = (cwd or Path.cwd()).absolute()
    raw = Path(user_path) if os.path.isabs(user_path) else base / user_path
    normal = PurePosixPath(os.path.normpath(raw))
    try:
        rel = normal.relative_to(PurePosixPath(root))
    except ValueError:
        raise PathRefused(f"refusing path '{user_path}': it is outside the project root {root}") from None
    text = rel.as_posix()
    if text in ("", "."):
        raise PathRefused(f"refusing path '{user_path}': it is the project root itself; name a file inside it")
    return check_relative(text)


POLICY_FILENAME = "guardian.yaml"


ROOT = "."  # the project root as a path: "everything"



def relative_or_root(root: Path, typed: str, cwd: Path | None) -> str:
    """Like :func:`guardian.paths.to_relative`, but the project root itself is '.' (the whole tree)."""
    base = (cwd or Path.cwd()).absolute()
    raw = typed if os.path.isabs(typed) else str(base / typed)
    if os.path.normpath(raw) == str(root.absolute()):
        return ROOT
    return to_relative(root, typed, cwd)
