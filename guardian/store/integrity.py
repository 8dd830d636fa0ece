"""Checking the store: does the ref resolve, does every object read back, and what to do with one that does not.

A damaged loose object file is moved to the quarantine beside ``repo.git``, never deleted:
it may be the only copy of something.  Loose files are checked in Python, not through
libgit2, whose odb may answer from a pack instead.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Iterable
from pathlib import Path

from guardian.errors import StoreDamaged
from guardian.store import gitcore
from guardian.store.packs import object_files
from guardian.store.refs import read_head, ref_file_problem
from guardian.store.tree import MODE_GITLINK, MODE_TREE, read_commit
from guardian.util.fs import fsync_dir

# --------------------------------------------------------------------------- reachable objects


def integrity_problems(repo: gitcore.Repository, git_dir: Path, deep: bool = True) -> list[str]:
    """Check that the ref resolves and every reachable object reads back."""
    problems: list[str] = []
    corrupt = ref_file_problem(git_dir)
    if corrupt is not None:
        return [corrupt]
    try:
        head = read_head(repo)
    except StoreDamaged as exc:
        return [str(exc)]
    if head is None:
        return problems
    seen: set[str] = set()
    oid: str | None = head
    while oid:
        try:
            commit = read_commit(repo, git_dir, oid)
        except StoreDamaged as exc:
            problems.append(str(exc))
            break
        if deep:
            problems.extend(_check_tree(repo, commit.tree_id, seen))
        oid = str(commit.parent_ids[0]) if commit.parent_ids else None
    return problems


def commit_readable(repo: gitcore.Repository, git_dir: Path, commit_id: str) -> bool:
    try:
        commit = read_commit(repo, git_dir, commit_id)
        return not _check_tree(repo, commit.tree_id, set())
    except StoreDamaged:
        return False


def _check_tree(repo: gitcore.Repository, tree_id: gitcore.Oid, seen: set[str]) -> list[str]:
    key = str(tree_id)
    if key in seen:
        return []
    seen.add(key)
    try:
        tree = gitcore.lookup(repo, tree_id)
    except (KeyError, ValueError, gitcore.GitError) as exc:
        return [f"tree {key} is missing or unreadable: {exc}"]
    problems: list[str] = []
    for item in tree:  # type: ignore[attr-defined]
        if item.filemode == MODE_TREE:
            problems.extend(_check_tree(repo, item.id, seen))
        elif item.filemode == MODE_GITLINK:
            continue  # a submodule's commit, which a store never holds (guardian.store.tree)
        elif str(item.id) not in seen:
            seen.add(str(item.id))
            try:
                repo.odb.read(item.id)
            except (KeyError, ValueError, gitcore.GitError) as exc:
                problems.append(f"blob {item.id} ({item.name}) is missing or unreadable: {exc}")
    return problems


def commit_ids_in_odb(repo: gitcore.Repository) -> list[str]:
    """Every commit object present in the odb (for repair when the ref is damaged)."""
    ids: list[str] = []
    for oid in repo.odb:
        try:
            obj = gitcore.lookup(repo, oid)
        except (KeyError, ValueError, gitcore.GitError):
            continue
        if isinstance(obj, gitcore.Commit):
            ids.append(str(oid))
    return ids


# --------------------------------------------------------------------------- loose object files


def has_object(repo: gitcore.Repository, git_dir: Path, oid: str) -> bool:
    """Whether oid is stored and reads back.

    A loose copy that exists but does not read back (zeroed, torn) counts as missing and
    is moved to the quarantine first: libgit2 never overwrites an existing object file,
    so the caller's write_blob would otherwise leave the damaged copy in place.
    """
    key = gitcore.Oid(hex=oid)
    if key not in repo.odb:
        return False
    try:
        repo.odb.read(key)
    except (KeyError, ValueError, gitcore.GitError):
        if not _loose_object_ok(_loose_path(git_dir, oid), oid):
            quarantine(git_dir, [oid])
        return False
    return True


def _loose_path(git_dir: Path, oid: str) -> Path:
    return git_dir / "objects" / oid[:2] / oid[2:]


def _loose_object_ok(path: Path, oid: str) -> bool:
    """Whether a loose object file inflates completely to content whose hash is its id."""
    digest = hashlib.sha256() if len(oid) == 64 else hashlib.sha1()
    inflater = zlib.decompressobj()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(inflater.decompress(chunk))
        digest.update(inflater.flush())
    except (OSError, zlib.error):
        return False
    return inflater.eof and digest.hexdigest() == oid


def unreadable_loose_objects(git_dir: Path) -> list[str]:
    """Ids of the loose object files that do not inflate to content hashing to their name."""
    loose, _packs = object_files(git_dir)
    return sorted(oid for oid in loose if not _loose_object_ok(_loose_path(git_dir, oid), oid))


def quarantine_dir(git_dir: Path) -> Path:
    """Where damaged object files are moved: beside repo.git in the store, out of git's sight."""
    return git_dir.parent / "quarantine"


def quarantine(git_dir: Path, oids: Iterable[str]) -> list[Path]:
    """Move these loose object files to the quarantine (kept, not deleted).  Returns where each went."""
    moved: list[Path] = []
    target_dir = quarantine_dir(git_dir)
    for oid in oids:
        source = _loose_path(git_dir, oid)
        if not source.exists():
            continue
        target_dir.mkdir(mode=0o700, exist_ok=True)
        target = target_dir / oid
        n = 1
        while target.exists():
            target = target_dir / f"{oid}.{n}"
            n += 1
        os.replace(source, target)
        fsync_dir(source.parent)
        moved.append(target)
    if moved:
        fsync_dir(target_dir)
    return moved


def stale_git_locks(git_dir: Path) -> list[Path]:
    """Every ``*.lock`` file in the git dir (callers decide whether the holder is dead)."""
    found: list[Path] = []
    for dirpath, _dirnames, filenames in os.walk(git_dir):
        for name in filenames:
            if name.endswith(".lock"):
                found.append(Path(dirpath) / name)
    return found
