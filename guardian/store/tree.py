"""Snapshot trees: their entries, reading a snapshot's commit and tree, and building a new tree.

Each snapshot commit's tree mirrors the captured files by relative path (exec bit kept,
symlinks stored as symlinks).  A new tree is rebuilt only along the changed paths with
TreeBuilder, so a snapshot of k files costs O(k x depth) whatever the size of the tree.

Every read names the store and what could not be read: a missing or damaged object
raises StoreDamaged, never a bare pygit2 error.

A gitlink (mode 160000, a submodule's commit) holds no file and its commit is never in the store:
guardian never writes one, but a tree fetched from a mirror may hold one.  Every read here skips
it, as if the path were absent (``gitlinks`` lists them, for the caller to report).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from guardian.errors import StoreDamaged
from guardian.store import gitcore
from guardian.store.durability import write_failed
from guardian.util.pathcodec import decode_path, encode_path

MODE_FILE = 0o100644
MODE_EXEC = 0o100755
MODE_LINK = 0o120000
MODE_TREE = 0o040000
MODE_GITLINK = 0o160000


class Entry(NamedTuple):
    """One file in a snapshot tree: its blob id and git file mode.

    A NamedTuple, not a frozen dataclass: the same fields, equality, hash, repr and
    immutability, without importing dataclasses (and with it inspect, ~10 ms) on restore's
    and the git hooks' paths.  Nothing iterates it or compares it with a plain tuple.
    """

    oid: str
    mode: int

    @property
    def is_link(self) -> bool:
        return self.mode == MODE_LINK

    @property
    def executable(self) -> bool:
        return self.mode == MODE_EXEC


class TreeChange(NamedTuple):
    """One path a snapshot commit changed: its entry before (None: added) and after (None: deleted)."""

    path: str
    old: Entry | None
    new: Entry | None


# --------------------------------------------------------------------------- reading


def read_commit(repo: gitcore.Repository, git_dir: Path, oid: str) -> gitcore.Commit:
    try:
        obj = gitcore.lookup(repo, oid)
    except (KeyError, ValueError, gitcore.GitError) as exc:
        raise StoreDamaged(f"snapshot {oid} is missing or unreadable in {git_dir}: {exc}") from None
    if not isinstance(obj, gitcore.Commit):
        raise StoreDamaged(f"object {oid} in {git_dir} is not a snapshot commit")
    return obj


def tree_of(repo: gitcore.Repository, git_dir: Path, commit_id: str | None) -> gitcore.Tree | None:
    if commit_id is None:
        return None
    commit = read_commit(repo, git_dir, commit_id)
    try:
        return commit.tree
    except (KeyError, ValueError, gitcore.GitError) as exc:
        raise StoreDamaged(
            f"the tree {commit.tree_id} of snapshot {commit_id} is missing or unreadable in {git_dir}: {exc}"
        ) from None


def _subtree(repo: gitcore.Repository, git_dir: Path, oid: gitcore.Oid, path: str) -> gitcore.Tree:
    try:
        obj = gitcore.lookup(repo, oid)
    except (KeyError, ValueError, gitcore.GitError) as exc:
        raise StoreDamaged(f"tree {oid} ({path}) is missing or unreadable in {git_dir}: {exc}") from None
    if not isinstance(obj, gitcore.Tree):
        raise StoreDamaged(f"object {oid} ({path}) in {git_dir} is not a tree")
    return obj


def entry_at(repo: gitcore.Repository, git_dir: Path, commit_id: str, path: str) -> Entry | None:
    tree = tree_of(repo, git_dir, commit_id)
    if tree is None:
        return None
    try:
        obj = tree[encode_path(path)]
    except KeyError:
        return None
    except (ValueError, gitcore.GitError) as exc:  # a tree on the way is unreadable
        raise StoreDamaged(
            f"a tree on the path '{path}' of snapshot {commit_id} is unreadable in {git_dir}: {exc}"
        ) from None
    if obj.filemode in (MODE_TREE, MODE_GITLINK):
        return None
    return Entry(str(obj.id), int(obj.filemode))


def iter_tree(repo: gitcore.Repository, git_dir: Path, commit_id: str | None) -> Iterator[tuple[str, Entry]]:
    """Every file of a snapshot (gitlinks skipped), by path."""
    for path, entry in _walk(repo, git_dir, commit_id):
        if entry.mode != MODE_GITLINK:
            yield path, entry


def gitlinks(repo: gitcore.Repository, git_dir: Path, commit_id: str | None) -> list[str]:
    """The paths of a snapshot's gitlinks (which every other read skips), sorted."""
    return sorted(path for path, entry in _walk(repo, git_dir, commit_id) if entry.mode == MODE_GITLINK)


def _walk(repo: gitcore.Repository, git_dir: Path, commit_id: str | None) -> Iterator[tuple[str, Entry]]:
    tree = tree_of(repo, git_dir, commit_id)
    if tree is None:
        return
    stack: list[tuple[str, gitcore.Tree]] = [("", tree)]
    while stack:
        prefix, current = stack.pop()
        for item in current:
            name = item.name or ""
            path = f"{prefix}{name}"
            if item.filemode == MODE_TREE:
                stack.append((path + "/", _subtree(repo, git_dir, item.id, decode_path(path))))
            else:
                yield decode_path(path), Entry(str(item.id), int(item.filemode))


def tree_changes(repo: gitcore.Repository, git_dir: Path, commit_id: str) -> list[TreeChange]:
    """What a snapshot changed relative to its parent."""
    commit = read_commit(repo, git_dir, commit_id)
    try:
        parent_tree = commit.parents[0].tree if commit.parents else None
        tree = commit.tree
        diff = parent_tree.diff_to_tree(tree) if parent_tree is not None else tree.diff_to_tree(swap=True)
    except (KeyError, ValueError, gitcore.GitError) as exc:
        raise StoreDamaged(
            f"snapshot {commit_id} cannot be compared with its parent: an object is missing or unreadable "
            f"in {git_dir}: {exc}"
        ) from None
    out: list[TreeChange] = []
    for delta in diff.deltas:
        # A gitlink side reads as absent: a file that became a gitlink is gone, one that replaced it is added.
        old = (
            None
            if delta.status == gitcore.GIT_DELTA_ADDED or delta.old_file.mode == MODE_GITLINK
            else Entry(str(delta.old_file.id), int(delta.old_file.mode))
        )
        new = (
            None
            if delta.status == gitcore.GIT_DELTA_DELETED or delta.new_file.mode == MODE_GITLINK
            else Entry(str(delta.new_file.id), int(delta.new_file.mode))
        )
        if old is None and new is None:
            continue  # a gitlink added, removed or moved to another commit: no file changed
        path = delta.new_file.path if new is not None else delta.old_file.path
        out.append(TreeChange(decode_path(path), old, new))
    return out


# --------------------------------------------------------------------------- building


def build_tree(
    repo: gitcore.Repository, git_dir: Path, parent_tree: gitcore.Tree | None, changes: Mapping[str, Entry | None]
) -> gitcore.Oid:
    """Write the tree that applies changes (path -> new entry, None to delete) to parent_tree."""
    tree_id = _build(repo, git_dir, parent_tree, _nest(changes))
    if tree_id is None:
        try:
            tree_id = repo.TreeBuilder().write()
        except (gitcore.GitError, OSError, ValueError) as exc:
            raise write_failed(git_dir, exc) from None
    return tree_id


def _nest(changes: Mapping[str, Entry | None]) -> dict[str, Any]:
    """The changes as nested dicts of encoded path components, one level per directory."""
    nested: dict[str, Any] = {}
    # Deletions first, so a file that replaces a directory (or the reverse) wins over
    # the deletions of what used to be there.
    for path, entry in sorted(changes.items(), key=lambda item: item[1] is not None):
        node: Any = nested
        parts = encode_path(path).split("/")
        for part in parts[:-1]:
            child = node.get(part)
            if entry is None and isinstance(child, Entry):
                node = None  # the parent is now a file: everything below it is gone anyway
                break
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        if node is None:
            continue
        if isinstance(node.get(parts[-1]), dict) and entry is None:
            continue  # a deleted file whose name is now a directory: the directory wins
        node[parts[-1]] = entry
    return nested


def _build(
    repo: gitcore.Repository, git_dir: Path, tree: gitcore.Tree | None, changes: Mapping[str, Any]
) -> gitcore.Oid | None:
    builder = repo.TreeBuilder(tree) if tree is not None else repo.TreeBuilder()
    for name, change in changes.items():
        if isinstance(change, dict):
            existing = None
            if tree is not None and name in tree:
                obj = tree[name]
                if obj.filemode == MODE_TREE:
                    existing = _subtree(repo, git_dir, obj.id, decode_path(name))
            sub = _build(repo, git_dir, existing, change)
            if sub is None:
                if builder.get(name) is not None:
                    builder.remove(name)
            else:
                _insert(git_dir, builder, name, sub, MODE_TREE)
        elif change is None:
            if builder.get(name) is not None:
                builder.remove(name)
        else:
            _insert(git_dir, builder, name, gitcore.Oid(hex=change.oid), change.mode)
    if len(builder) == 0:
        return None
    try:
        return builder.write()
    except (gitcore.GitError, OSError, ValueError) as exc:
        raise write_failed(git_dir, exc) from None


def _insert(git_dir: Path, builder: gitcore.TreeBuilder, name: str, oid: gitcore.Oid, mode: int) -> None:
    try:
        builder.insert(name, oid, mode)
    except (gitcore.GitError, OSError, ValueError) as exc:
        raise write_failed(git_dir, exc) from None
