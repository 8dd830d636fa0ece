"""Which store belongs to a project, when the project moves or another takes its place.

Stores are named after the project's absolute path, so a path is the fast way in.  A
path alone cannot tell a moved project (``mv p1 p2``: the store is orphaned) or a new
project at an old one's path (``rm -rf p1; git clone ... p1``: the old store would be
reused), so each project also has an id, a uuid kept in two places:

* the store's ``project.json`` (``id``, with ``root``, the root directory's inode and the
  roots it was ``moved_from``);
* an extended attribute of the project's root directory, ``user.guardian.id``.

Why an attribute of the directory and not a file such as ``.guardian-id``: a file shows
in ``git status``, gets committed by ``git add -A``, and then breaks ``git switch`` and
``git merge`` to branches without it ("untracked file would be overwritten"); ``git clean
-fdx`` deletes it; and every tool that lists the tree sees it.  The attribute is on the
directory itself: ``mv`` keeps it (within a filesystem, and across one where ``mv``
preserves attributes), ``git clean`` cannot remove it, nothing captures it, and ``cp -r``
or a fresh clone does not copy it, so a copy is a new project.

Where the attribute cannot be kept (macOS, whose Python has no ``os.setxattr``; a
filesystem without user attributes) a moved project is not followed: it gets a new
store, and ``guardian projects`` still lists the old one.  There, the root directory's
inode is the only sign of a re-created directory, and a reused inode number (ext4 hands
the number of a directory just removed to the next one made) goes unnoticed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal, NamedTuple

from guardian.paths import guardian_home
from guardian.util.fs import atomic_write_file

ID_ATTRIBUTE = "user.guardian.id"
_ID_RE = re.compile(r"^[0-9a-f]{32}$")

State = Literal["same", "moved", "copy", "replaced", "unknown"]


def new_project_id() -> str:
    import uuid  # here: Project.find runs on hook paths, and only init makes an id

    return uuid.uuid4().hex


def read_root_id(root: Path) -> str | None:
    """The id on the root directory, or None (none set, or the system keeps no attributes)."""
    getxattr = getattr(os, "getxattr", None)
    if getxattr is None:
        return None
    try:
        text = getxattr(root, ID_ATTRIBUTE).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text if _ID_RE.match(text) else None


def write_root_id(root: Path, project_id: str) -> bool:
    """Set the id on the root directory; False where it cannot be kept (then moves are not followed)."""
    setxattr = getattr(os, "setxattr", None)
    if setxattr is None:
        return False
    try:
        setxattr(root, ID_ATTRIBUTE, project_id.encode("ascii"))
    except OSError:
        return False
    return True


def root_inode(root: Path) -> int | None:
    try:
        return os.stat(root).st_ino
    except OSError:
        return None


def read_meta(store: Path) -> dict[str, Any] | None:
    import json  # here, as in write_meta: only project.json needs it, and importing json costs ~4 ms

    try:
        raw = json.loads((store / "project.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return raw if isinstance(raw, dict) else None


def write_meta(store: Path, meta: dict[str, Any]) -> None:
    import json

    atomic_write_file(store / "project.json", (json.dumps(meta, indent=2) + "\n").encode(), 0o600)


class Identity(NamedTuple):
    """What the project at a root is to the stores: its own store, a moved one, a copy, or a newcomer.

    A NamedTuple, not a frozen dataclass: the same fields, equality, hash, repr and immutability,
    without ~1 ms of generated methods on every command that finds its project.
    """

    state: State
    project_id: str | None = None
    other_store: Path | None = None  # moved: the store to adopt; copy: the original's store
    other_root: str | None = None


def identify(root: Path, store: Path) -> Identity:
    """Decide from the root's id attribute, project.json and the root's inode.  Reads only.

    store is the store named after root's path (it may not exist).
    """
    file_id = read_root_id(root)
    meta = read_meta(store) if (store / "repo.git").is_dir() else None
    if meta is not None:
        known = meta.get("id")
        if not isinstance(known, str) or file_id == known:
            return Identity("same", file_id or (known if isinstance(known, str) else None))
        if file_id is None:
            if meta.get("id_on_root"):
                # The attribute was set on the root and nothing that edits files removes it: this is
                # another directory (rm -rf and mkdir, a fresh clone), even if it got the same inode.
                return Identity("replaced", None, store, str(meta.get("root", "")))
            recorded = meta.get("root_ino")
            if isinstance(recorded, int) and recorded != root_inode(root):
                # No attribute could be kept here: the inode is the best sign left (a reused inode
                # number goes unnoticed).
                return Identity("replaced", None, store, str(meta.get("root", "")))
            return Identity("same", known)
        return Identity("replaced", file_id, store, str(meta.get("root", "")))
    if file_id is None:
        return Identity("unknown")
    for other in _stores_with_id(file_id, exclude=store):
        other_meta = read_meta(other) or {}
        other_root = str(other_meta.get("root", ""))
        if other_root and read_root_id(Path(other_root)) == file_id and Path(other_root) != root:
            return Identity("copy", file_id, other, other_root)  # cp -r, or a clone of a committed id
        return Identity("moved", file_id, other, other_root)
    return Identity("unknown", file_id)


def _stores_with_id(project_id: str, exclude: Path) -> list[Path]:
    home = guardian_home()
    try:
        entries = sorted(home.iterdir())
    except OSError:
        return []
    found = []
    for store in entries:
        if store == exclude or not (store / "repo.git").is_dir():
            continue
        meta = read_meta(store)
        if meta is not None and meta.get("id") == project_id and not meta.get("replaced"):
            found.append(store)
    return found
