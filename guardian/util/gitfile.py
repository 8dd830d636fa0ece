"""A linked worktree's ``.git`` pointer file: what it says, and whether guardian may write one.

``git worktree add`` makes a directory whose ``.git`` is not a directory but a one-line
file, ``gitdir: /main/.git/worktrees/NAME`` (a submodule checkout has one too).  Without
it git walks up to the enclosing repository, and a commit made in the worktree lands on
that repository's branch.  So guardian captures that file and restores it.

It is also the one file in a work tree that tells git where to read its config, hooks
and objects: written from a crafted snapshot, ``gitdir: ../evil`` would make the next
``git status`` there run whatever ``../evil/config`` says.  So a pointer is written only
when it names a place guardian itself never writes, so no snapshot can have put a config
there: inside a ``.git`` directory (git's own admin area; every guardian write refuses to
enter one), or, outside the project, an existing linked-worktree entry of a bare
repository.  Nor may it name a repository's main git directory: that would make the
directory a second work tree of that repository, sharing its index and branch.
"""

from __future__ import annotations

import os
from pathlib import Path

POINTER_NAME = ".git"
MAX_POINTER_SIZE = 4096  # git's own pointers are one short line; anything longer is not one
_PREFIX = b"gitdir: "


def parse_pointer(data: bytes) -> str | None:
    """The git directory a pointer names, or None when data is not one ``gitdir: PATH`` line.

    As git reads it: trailing newlines (and carriage returns) are dropped; the path may be
    absolute or relative to the directory holding the file.
    """
    if len(data) > MAX_POINTER_SIZE or not data.startswith(_PREFIX) or b"\0" in data:
        return None
    body = data[len(_PREFIX) :].rstrip(b"\r\n")
    if not body or b"\n" in body or b"\r" in body:
        return None
    return os.fsdecode(body)


def pointer_target(root: Path, rel: str, gitdir: str) -> str:
    """The real, absolute directory that a pointer at root/rel naming gitdir leads git to."""
    base = os.path.dirname(os.path.join(os.path.realpath(root), rel))
    return os.path.realpath(os.path.join(base, gitdir))


def _is_git_name(part: str) -> bool:
    return part.lower() == POINTER_NAME


def pointer_refusal(root: Path, rel: str, data: bytes) -> str | None:
    """Why data may not be written as the pointer root/rel, or None when it may (see the module doc)."""
    gitdir = parse_pointer(data)
    if gitdir is None:
        return "a .git file is written only as a worktree pointer (one 'gitdir: PATH' line)"
    target = pointer_target(root, rel, gitdir)
    parts = target.split(os.sep)
    if _is_git_name(parts[-1]):
        return (
            f"it points at {target}, a repository's own git directory, which would make this directory "
            "a second work tree of that repository"
        )
    try:
        st: os.stat_result | None = os.stat(target)
    except OSError:
        st = None
    if st is not None and st.st_uid != os.geteuid():
        return f"it points at {target}, which another user owns (git would refuse it too)"
    if any(_is_git_name(part) for part in parts[:-1]):
        return None  # inside git's own admin area, where no guardian write ever goes
    real_root = os.path.realpath(root)
    outside = not (target == real_root or target.startswith(real_root.rstrip(os.sep) + os.sep))
    if outside and worktree_entry_exists(target) and os.path.basename(os.path.dirname(target)) == "worktrees":
        return None  # a bare repository's linked worktree, outside anything a snapshot writes
    return (
        f"it points at {target}, which is neither inside a .git directory nor a bare repository's "
        "worktree entry; a crafted snapshot could make git read a config of its choosing there"
    )


def worktree_entry_exists(target: str) -> bool:
    """Whether target looks like git's entry for a linked worktree (it holds HEAD and commondir)."""
    return os.path.isfile(os.path.join(target, "HEAD")) and os.path.isfile(os.path.join(target, "commondir"))


def worktree_main(target: str) -> str | None:
    """For a worktree entry ``<repo>/.git/worktrees/NAME``: the directory to run ``git worktree repair`` in.

    That is the main work tree (the parent of ``.git``), or the bare repository itself;
    None when target is not under a ``worktrees`` directory (a submodule's git directory).
    """
    parent = os.path.dirname(target)
    if os.path.basename(parent) != "worktrees":
        return None
    common = os.path.dirname(parent)
    return os.path.dirname(common) if _is_git_name(os.path.basename(common)) else common
