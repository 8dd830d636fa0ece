"""The store's object files: which objects a chain reaches, writing and installing packs, pruning.

guardian.lifecycle decides what to keep and when (gc, mirror); this module only does the
file work, each step safe to repeat after a crash: a pack is moved in index last, and a
pack is removed index first, so a reader never finds an index without its pack.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterable, Iterator, Set
from pathlib import Path
from typing import TYPE_CHECKING

from guardian.store import gitcore
from guardian.store.tree import MODE_GITLINK, MODE_TREE, read_commit
from guardian.util.fs import fsync_dir

if TYPE_CHECKING:
    import pygit2


def reachable_objects(
    repo: gitcore.Repository, git_dir: Path, commit_ids: Iterable[str], known: Set[str] = frozenset()
) -> Iterator[tuple[str, str]]:
    """(object id, path) for the commits, their trees and blobs, each once; objects in known are skipped.

    A tree in known is not entered: callers pass sets that are closed under reachability
    (a pack of whole snapshots), so everything below it is known too.
    """
    seen: set[str] = set()
    for commit_id in commit_ids:
        if commit_id in known or commit_id in seen:
            continue
        seen.add(commit_id)
        yield commit_id, ""
        commit = read_commit(repo, git_dir, commit_id)
        stack: list[tuple[str, gitcore.Oid]] = [("", commit.tree_id)]
        while stack:
            path, oid = stack.pop()
            key = str(oid)
            if key in known or key in seen:
                continue
            seen.add(key)
            yield key, path
            tree = gitcore.lookup(repo, oid)
            for item in tree:  # type: ignore[attr-defined]
                sub = f"{path}/{item.name or ''}" if path else str(item.name or "")
                if item.filemode == MODE_TREE:
                    stack.append((sub, item.id))
                elif item.filemode == MODE_GITLINK:
                    continue  # a submodule's commit, which a store never holds (guardian.store.tree)
                else:
                    blob = str(item.id)
                    if blob not in known and blob not in seen:
                        seen.add(blob)
                        yield blob, sub


def write_pack(repo: gitcore.Repository, objects: Iterable[tuple[str, str]], directory: Path) -> int:
    """Write one pack (.pack + .idx) of these (id, path) objects into directory; returns the object count.

    Each object is inserted with its path: libgit2 orders delta candidates by a hash of
    that name, so successive versions of one file get deltified against each other.
    pygit2's PackBuilder.add passes no name, which made packs about 4x bigger here.
    PackBuilder is pygit2's Python package (gc and mirror pay its import here).
    """
    import pygit2

    full = gitcore.full_repository(repo)
    builder = pygit2.PackBuilder(full)
    builder.set_threads(0)  # delta search on every CPU (0: libgit2 counts them)
    insert = _named_insert(builder)
    for oid, path in objects:
        insert(gitcore.Oid(hex=oid), path)
    builder.write(str(directory))
    return int(builder.written_objects_count)


def _named_insert(builder: pygit2.PackBuilder) -> Callable[[gitcore.Oid, str], None]:
    """builder.add with the object's path as its name: one of two uses of pygit2 internals (gitcore.full_repository).

    pygit2 (1.21 at the time of writing) has no public way to pass a name to
    git_packbuilder_insert, so this calls it through pygit2's cffi handle on the builder's
    private ``_packbuilder`` pointer.  A pygit2 without those falls back to the nameless add:
    packs come out bigger, never wrong.
    """
    try:
        from pygit2.errors import check_error
        from pygit2.ffi import C, ffi

        raw = builder._packbuilder
    except (ImportError, AttributeError):  # pragma: no cover - a pygit2 without these internals
        return lambda oid, _path: builder.add(oid)

    def insert(oid: gitcore.Oid, path: str) -> None:
        git_oid = ffi.new("git_oid *")
        ffi.buffer(git_oid)[:] = oid.raw
        name = path.encode("utf-8", "surrogateescape") if path else ffi.NULL
        check_error(C.git_packbuilder_insert(raw, git_oid, name))

    return insert


def install_pack(git_dir: Path, directory: Path) -> Path:
    """Move a pack written by write_pack into objects/pack, index last, durably.  Returns the .pack path."""
    target = git_dir / "objects" / "pack"
    target.mkdir(exist_ok=True)
    files = sorted(directory.iterdir(), key=lambda p: p.suffix == ".idx")  # readers find a pack by its .idx
    installed = target
    for item in files:
        fd = os.open(item, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(item, target / item.name)
        if item.suffix == ".pack":
            installed = target / item.name
    fsync_dir(target)
    return installed


def object_files(git_dir: Path) -> tuple[list[str], list[Path]]:
    """(loose object ids, pack files) currently in the object directory."""
    objects = git_dir / "objects"
    loose: list[str] = []
    for sub in objects.iterdir():
        if len(sub.name) == 2 and sub.is_dir():
            with os.scandir(sub) as entries:
                loose.extend(sub.name + item.name for item in entries if len(item.name) == 38)
    packs = sorted((objects / "pack").glob("pack-*.pack"))
    return loose, packs


def remove_loose(git_dir: Path, oids: Iterable[str]) -> int:
    removed = 0
    objects = os.path.join(git_dir, "objects")
    for oid in oids:
        try:
            os.unlink(os.path.join(objects, oid[:2], oid[2:]))
            removed += 1
        except FileNotFoundError:
            continue
    return removed


def remove_pack(pack: Path) -> bool:
    """Delete a pack and its side files, unless a .keep file says git is still using it."""
    if pack.with_suffix(".keep").exists():
        return False
    # The index goes first: without it no reader picks the pack up again.
    for suffix in (".idx", ".pack", ".rev", ".bitmap", ".mtimes", ".promisor"):
        pack.with_suffix(suffix).unlink(missing_ok=True)
    return True


def pack_loose_objects(repo: gitcore.Repository, git_dir: Path) -> int:
    """Pack loose objects (libgit2's pack builder, through pygit2's Python package) and drop the loose copies."""
    written = int(gitcore.full_repository(repo).pack())
    try:
        _prune_loose_packed(git_dir)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
    return written


def _prune_loose_packed(git_dir: Path) -> None:
    # After packing, loose objects that are also in a pack are redundant.
    objects = git_dir / "objects"
    for sub in objects.iterdir():
        if len(sub.name) != 2 or not sub.is_dir():
            continue
        for loose in sub.iterdir():
            loose.unlink()
        sub.rmdir()
    fsync_dir(objects)
