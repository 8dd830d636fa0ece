"""The shadow git repository: the only module that imports pygit2.

A store is a plain bare git repository that stock git can read.  Snapshots are
commits on one ref, ``refs/heads/snapshots``; each commit's tree mirrors the
captured files by relative path (exec bit kept, symlinks stored as symlinks).

Trees are rebuilt only along the changed paths with TreeBuilder, so a snapshot
of k files costs O(k x depth) whatever the size of the tree.  The ref moves by
compare-and-swap on the expected parent, using git's own ``<ref>.lock``
protocol so that stock git and guardian never interleave a ref update.

pygit2 is imported lazily by the callers (this module is only imported when a
store is actually opened) because importing it costs ~100 ms, which the git
hooks and the agent hook cannot afford.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pygit2

from guardian.crash import crash_point
from guardian.errors import OperationFailed, StoreDamaged
from guardian.fsutil import fsync_dir
from guardian.pathcodec import decode_path, encode_path

SNAPSHOT_REF = "refs/heads/snapshots"
MODE_FILE = 0o100644
MODE_EXEC = 0o100755
MODE_LINK = 0o120000
MODE_TREE = 0o040000

ENV_FSYNC = "GUARDIAN_FSYNC"
_durability_mode: str | None = None
_libc: Any = None


def _syncfs_available() -> bool:
    global _libc
    if not sys.platform.startswith("linux"):
        return False
    try:
        _libc = ctypes.CDLL(None, use_errno=True)
        return hasattr(_libc, "syncfs")
    except OSError:
        return False


def durability_mode() -> str:
    """'batch': one syncfs(2) of the store's filesystem before each ref update (Linux);
    'object': libgit2 fsyncs every object file and its directory (pygit2's fsync setting).

    Both make every object of a snapshot durable before the ref points at it; the ref
    update is the commit point.  'batch' measured 4x faster per snapshot here, because a
    depth-4 snapshot otherwise costs ~12 fsyncs.  GUARDIAN_FSYNC=object forces the other.
    """
    global _durability_mode
    if _durability_mode is None:
        wanted = os.environ.get(ENV_FSYNC, "batch")
        _durability_mode = "batch" if wanted == "batch" and _syncfs_available() else "object"
        if _durability_mode == "object":
            # Must happen before any repository's refs are first touched, or libgit2
            # keeps using the non-fsyncing refdb it already initialised.
            pygit2.settings.enable_fsync_gitdir(True)
    return _durability_mode


def _sync_store(git_dir: Path) -> None:
    if durability_mode() != "batch":
        return
    fd = os.open(git_dir, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"syncfs failed: {os.strerror(err)}", str(git_dir))
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Entry:
    """One file in a snapshot tree: its blob id and git file mode."""

    oid: str
    mode: int

    @property
    def is_link(self) -> bool:
        return self.mode == MODE_LINK

    @property
    def executable(self) -> bool:
        return self.mode == MODE_EXEC


@dataclass(frozen=True)
class CommitRecord:
    id: str
    parent: str | None
    time: float
    message: str


@dataclass(frozen=True)
class TreeChange:
    path: str
    old: Entry | None
    new: Entry | None


def hash_blob(data: bytes) -> str:
    return str(pygit2.hash(data))


class ShadowRepo:
    """A bare git repository holding one chain of snapshot commits."""

    def __init__(self, git_dir: Path) -> None:
        durability_mode()
        self.git_dir = git_dir
        try:
            self._repo = pygit2.Repository(str(git_dir), pygit2.enums.RepositoryOpenFlag.BARE)
        except pygit2.GitError as exc:
            raise StoreDamaged(f"cannot open the shadow repository {git_dir}: {exc}") from None

    @classmethod
    def create(cls, git_dir: Path) -> ShadowRepo:
        durability_mode()
        repo = pygit2.init_repository(str(git_dir), bare=True, initial_head=SNAPSHOT_REF)
        config = repo.config
        # Stock git must never start a surprise gc (or reflog expiry) on the store.
        config["gc.auto"] = 0
        config["core.logAllRefUpdates"] = False
        config["receive.denyNonFastForwards"] = False
        config["guardian.version"] = 1
        del repo
        return cls(git_dir)

    # ------------------------------------------------------------------ refs

    def head(self) -> str | None:
        try:
            ref = self._repo.references.get(SNAPSHOT_REF)
        except (pygit2.GitError, ValueError) as exc:
            raise StoreDamaged(f"the snapshot ref {SNAPSHOT_REF} is unreadable: {exc}") from None
        if ref is None:
            return None
        target = ref.target
        return str(target)

    def _ref_path(self) -> Path:
        return self.git_dir / SNAPSHOT_REF

    def update_ref(self, new: str, expected: str | None) -> None:
        """Move the snapshot ref from expected to new, or fail if someone else moved it.

        Uses git's lock-file protocol (create <ref>.lock exclusively, verify, write,
        sync, rename, fsync the directory), which makes the update a compare-and-swap
        that stock git respects too.
        """
        ref_path = self._ref_path()
        ref_path.parent.mkdir(parents=True, exist_ok=True)
        lock = ref_path.with_name(ref_path.name + ".lock")
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except FileExistsError:
            raise OperationFailed(
                f"the snapshot ref is locked by another writer ({lock}); if no git or guardian process is "
                "running on this store, run 'guardian verify --repair'"
            ) from None
        try:
            try:
                current = self.head()
                if current != expected:
                    raise OperationFailed(
                        f"the snapshot ref moved under us (expected {expected}, found {current}); retry the operation"
                    )
                os.write(fd, f"{new}\n".encode())
                if durability_mode() == "batch":
                    # One syncfs makes every object written so far *and* the new ref value
                    # durable before the rename publishes it.
                    _sync_store(self.git_dir)
                else:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(lock, ref_path)
        except BaseException:
            lock.unlink(missing_ok=True)
            raise
        fsync_dir(ref_path.parent)

    # ------------------------------------------------------------------ objects

    def write_blob(self, data: bytes) -> str:
        return str(self._repo.create_blob(data))

    def has_object(self, oid: str) -> bool:
        return pygit2.Oid(hex=oid) in self._repo.odb

    def blob_size(self, oid: str) -> int:
        try:
            _kind, size = self._repo.odb.read_header(pygit2.Oid(hex=oid))
        except (KeyError, ValueError, pygit2.GitError) as exc:
            raise StoreDamaged(f"blob {oid} is missing or unreadable in {self.git_dir}: {exc}") from None
        return int(size)

    def read_blob(self, oid: str) -> bytes:
        try:
            obj = self._repo[oid]
        except (KeyError, ValueError, pygit2.GitError) as exc:
            raise StoreDamaged(f"blob {oid} is missing or unreadable in {self.git_dir}: {exc}") from None
        if not isinstance(obj, pygit2.Blob):
            raise StoreDamaged(f"object {oid} in {self.git_dir} is not a blob")
        return bytes(obj.data)

    def _commit(self, oid: str) -> pygit2.Commit:
        try:
            obj = self._repo[oid]
        except (KeyError, ValueError, pygit2.GitError) as exc:
            raise StoreDamaged(f"snapshot {oid} is missing or unreadable in {self.git_dir}: {exc}") from None
        if not isinstance(obj, pygit2.Commit):
            raise StoreDamaged(f"object {oid} in {self.git_dir} is not a snapshot commit")
        return obj

    def resolve(self, prefix: str) -> str | None:
        """A full commit id from an abbreviated one, or None."""
        try:
            obj = self._repo.revparse_single(prefix)
        except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError):
            return None
        return str(obj.id) if isinstance(obj, pygit2.Commit) else None

    def commit_record(self, oid: str) -> CommitRecord:
        commit = self._commit(oid)
        parents = commit.parent_ids
        return CommitRecord(
            id=str(commit.id),
            parent=str(parents[0]) if parents else None,
            time=float(commit.commit_time),
            message=commit.message,
        )

    def walk(self, start: str | None = None) -> Iterator[CommitRecord]:
        """Snapshots newest first, along first parents."""
        oid = start or self.head()
        while oid:
            record = self.commit_record(oid)
            yield record
            oid = record.parent

    # ------------------------------------------------------------------ trees

    def _tree_of(self, commit_id: str | None) -> pygit2.Tree | None:
        if commit_id is None:
            return None
        return self._commit(commit_id).tree

    def entry_at(self, commit_id: str, path: str) -> Entry | None:
        tree = self._tree_of(commit_id)
        if tree is None:
            return None
        try:
            obj = tree[encode_path(path)]
        except KeyError:
            return None
        if obj.filemode == MODE_TREE:
            return None
        return Entry(str(obj.id), int(obj.filemode))

    def iter_tree(self, commit_id: str | None) -> Iterator[tuple[str, Entry]]:
        tree = self._tree_of(commit_id)
        if tree is None:
            return
        stack: list[tuple[str, pygit2.Tree]] = [("", tree)]
        while stack:
            prefix, current = stack.pop()
            for item in current:
                name = item.name or ""
                path = f"{prefix}{name}"
                if item.filemode == MODE_TREE:
                    stack.append((path + "/", self._repo[item.id]))  # type: ignore[arg-type]
                else:
                    yield decode_path(path), Entry(str(item.id), int(item.filemode))

    def changes(self, commit_id: str) -> list[TreeChange]:
        """What a snapshot changed relative to its parent."""
        commit = self._commit(commit_id)
        parent_tree = commit.parents[0].tree if commit.parents else None
        diff = parent_tree.diff_to_tree(commit.tree) if parent_tree is not None else commit.tree.diff_to_tree(swap=True)
        out: list[TreeChange] = []
        for delta in diff.deltas:
            old = (
                None
                if delta.status == pygit2.enums.DeltaStatus.ADDED
                else Entry(str(delta.old_file.id), int(delta.old_file.mode))
            )
            new = (
                None
                if delta.status == pygit2.enums.DeltaStatus.DELETED
                else Entry(str(delta.new_file.id), int(delta.new_file.mode))
            )
            path = delta.new_file.path if new is not None else delta.old_file.path
            out.append(TreeChange(decode_path(path), old, new))
        return out

    def _build(self, tree: pygit2.Tree | None, changes: Mapping[str, Any]) -> pygit2.Oid | None:
        builder = self._repo.TreeBuilder(tree) if tree is not None else self._repo.TreeBuilder()
        for name, change in changes.items():
            if isinstance(change, dict):
                existing = None
                if tree is not None and name in tree:
                    obj = tree[name]
                    if obj.filemode == MODE_TREE:
                        existing = self._repo[obj.id]
                sub = self._build(existing, change)  # type: ignore[arg-type]
                if sub is None:
                    if builder.get(name) is not None:
                        builder.remove(name)
                else:
                    builder.insert(name, sub, MODE_TREE)
            elif change is None:
                if builder.get(name) is not None:
                    builder.remove(name)
            else:
                builder.insert(name, pygit2.Oid(hex=change.oid), change.mode)
        if len(builder) == 0:
            return None
        return builder.write()

    def commit(
        self,
        changes: Mapping[str, Entry | None],
        message: str,
        parent: str | None,
        timestamp: float | None = None,
    ) -> str:
        """Write a snapshot commit applying changes to parent's tree, and move the ref to it."""
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
        parent_tree = self._tree_of(parent)
        tree_id = self._build(parent_tree, nested)
        if tree_id is None:
            tree_id = self._repo.TreeBuilder().write()
        crash_point("snapshot-after-tree")
        when = int(timestamp if timestamp is not None else time.time())
        offset = -(time.altzone if time.daylight and time.localtime(when).tm_isdst else time.timezone) // 60
        signature = pygit2.Signature("guardian", "guardian@localhost", when, offset)
        parents = [pygit2.Oid(hex=parent)] if parent else []
        commit_id = str(self._repo.create_commit(None, signature, signature, message, tree_id, parents))
        crash_point("snapshot-after-commit")
        self.update_ref(commit_id, parent)
        crash_point("snapshot-after-ref")
        return commit_id

    # ------------------------------------------------------------------ health

    def integrity_problems(self, deep: bool = True) -> list[str]:
        """Check that the ref resolves and every reachable object reads back."""
        problems: list[str] = []
        ref_path = self._ref_path()
        if ref_path.exists():
            text = ref_path.read_bytes().strip()
            if len(text) != 40 or any(c not in b"0123456789abcdef" for c in text):
                return [f"the snapshot ref {ref_path} is corrupt (holds {text[:60]!r})"]
        try:
            head = self.head()
        except StoreDamaged as exc:
            return [str(exc)]
        if head is None:
            return problems
        seen: set[str] = set()
        oid: str | None = head
        while oid:
            try:
                commit = self._commit(oid)
            except StoreDamaged as exc:
                problems.append(str(exc))
                break
            if deep:
                problems.extend(self._check_tree(commit.tree_id, seen))
            oid = str(commit.parent_ids[0]) if commit.parent_ids else None
        return problems

    def _check_tree(self, tree_id: pygit2.Oid, seen: set[str]) -> list[str]:
        key = str(tree_id)
        if key in seen:
            return []
        seen.add(key)
        try:
            tree = self._repo[tree_id]
        except (KeyError, ValueError, pygit2.GitError) as exc:
            return [f"tree {key} is missing or unreadable: {exc}"]
        problems: list[str] = []
        for item in tree:  # type: ignore[attr-defined]
            if item.filemode == MODE_TREE:
                problems.extend(self._check_tree(item.id, seen))
            elif str(item.id) not in seen:
                seen.add(str(item.id))
                try:
                    self._repo.odb.read(item.id)
                except (KeyError, ValueError, pygit2.GitError) as exc:
                    problems.append(f"blob {item.id} ({item.name}) is missing or unreadable: {exc}")
        return problems

    def stale_git_locks(self) -> list[Path]:
        """Every ``*.lock`` file in the git dir (callers decide whether the holder is dead)."""
        found: list[Path] = []
        for dirpath, _dirnames, filenames in os.walk(self.git_dir):
            for name in filenames:
                if name.endswith(".lock"):
                    found.append(Path(dirpath) / name)
        return found

    def pack(self) -> int:
        """Pack loose objects (libgit2's pack builder) and drop the loose copies."""
        written = int(self._repo.pack())
        try:
            self._prune_loose_packed()
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise
        return written

    def _prune_loose_packed(self) -> None:
        # After packing, loose objects that are also in a pack are redundant.
        objects = self.git_dir / "objects"
        for sub in objects.iterdir():
            if len(sub.name) != 2 or not sub.is_dir():
                continue
            for loose in sub.iterdir():
                loose.unlink()
            sub.rmdir()
        fsync_dir(objects)

    def reset_ref(self, commit_id: str) -> None:
        """Force the ref to a known-good commit (used only by verify --repair)."""
        ref_path = self._ref_path()
        ref_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = ref_path.with_name(ref_path.name + ".lock")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, f"{commit_id}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, ref_path)
        fsync_dir(ref_path.parent)

    def commit_readable(self, commit_id: str) -> bool:
        try:
            commit = self._commit(commit_id)
            return not self._check_tree(commit.tree_id, set())
        except StoreDamaged:
            return False

    def raw_commit_ids_from_reflog_or_objects(self) -> list[str]:
        """Every commit object present in the odb (for repair when the ref is damaged)."""
        ids: list[str] = []
        for oid in self._repo.odb:
            try:
                obj = self._repo[oid]
            except (KeyError, ValueError, pygit2.GitError):
                continue
            if isinstance(obj, pygit2.Commit):
                ids.append(str(oid))
        return ids
