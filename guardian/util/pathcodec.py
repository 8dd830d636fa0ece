"""Reversible encoding of file names that are not valid UTF-8.

Linux file names are bytes; Python hands them to us as str with surrogate
escapes.  libgit2 (through pygit2) and SQLite only take real UTF-8, so a name
such as b"report\\xff.txt" would make a snapshot fail.  Such a name component is
stored as PREFIX + base64url(raw bytes) and decoded on the way out, so every
name round-trips byte for byte.  A real name that happens to start with PREFIX
is escaped the same way, which keeps the mapping unambiguous.

A worktree's ``.git`` pointer file (see guardian.util.gitfile) is escaped the same way,
because git refuses a tree entry named ``.git``; it decodes back only as the last
component of a path, so no decoded path ever passes *through* a ``.git``.
"""

from __future__ import annotations

import base64
import os

PREFIX = ".guardian-bytes-"


def _encode_component(name: str) -> str:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        if not name.startswith(PREFIX) and name.lower() != ".git":
            return name
    return PREFIX + base64.urlsafe_b64encode(os.fsencode(name)).decode("ascii")


def _decode_component(name: str, last: bool) -> str:
    if not name.startswith(PREFIX):
        return name
    try:
        raw = base64.urlsafe_b64decode(name[len(PREFIX) :])
    except (ValueError, TypeError):
        return name  # not one of ours after all: leave it as stored
    # A crafted entry must not decode to a name that could leave the root or reach a .git
    # directory (git's own name checks cannot see through the encoding): keep it as stored.
    # Only a file's own name may be ".git" (a worktree pointer), never a directory on the way.
    if b"/" in raw or b"\0" in raw or raw in (b"", b".", b".."):
        return name
    if raw.lower() == b".git" and not (last and raw == b".git"):
        return name
    return os.fsdecode(raw)


def _plain(path: str) -> bool:
    """Whether no component of path needs encoding: the common case, decided without splitting it.

    A snapshot looks up and stores each path several times, so this runs for every file
    again and again; a component needs encoding only if the name is not UTF-8, or holds
    the prefix or a ".git" (any case), and a path with none of these anywhere has none.
    """
    if not path.isascii():
        try:
            path.encode("utf-8")
        except UnicodeEncodeError:
            return False
    return PREFIX not in path and ".git" not in path.lower()


def encode_path(path: str) -> str:
    if _plain(path):
        return path
    return "/".join(_encode_component(part) for part in path.split("/"))


def decode_path(path: str) -> str:
    if PREFIX not in path:
        return path  # nothing was encoded (see _decode_component)
    parts = path.split("/")
    return "/".join(_decode_component(part, index == len(parts) - 1) for index, part in enumerate(parts))
