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
import hashlib
import os
import shutil
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Set
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pygit2

from guardian.errors import OperationFailed, StoreDamaged
from guardian.util.crash import crash_point
from guardian.util.fs import fsync_dir, temp_name
from guardian.util.pathcodec import decode_path, encode_path

SNAPSHOT_REF = "refs/heads/snapshots"
MODE_FILE = 0o100644
MODE_EXEC = 0o100755
MODE_LINK = 0o120000
MODE_TREE = 0o040000

ENV_FSYNC = "GUARDIAN_FSYNC"
# A staged batch of fewer objects than this is written loose, a larger one as a pack: git's own
# rule for received objects (fetch.unpackLimit, default 100).  Small packs would pile up; loose
# objects by the hundred thousand cost one inode each (see ShadowRepo.staged_writes).
STAGED_LOOSE_LIMIT = 100
# Staged objects are flushed to a pack once they hold this much content, so memory stays bounded.
STAGED_FLUSH_BYTES = 64 << 20
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
        # Snapshot trees and parents are always written by us just before the commit;
        # libgit2's existence check of each (a pack-index lookup) is pure overhead.
        pygit2.settings.enable_strict_object_creation(False)
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


def _loose_object_ok(path: Path, oid: str) -> bool:
    """Whether a loose object file inflates completely to content whose hash is its id.

    Read in Python, not through libgit2, whose odb may answer from a pack instead.
    """
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


class _StagedObjects(pygit2.OdbBackend):
    """An in-memory object backend: a snapshot's new objects wait here until its commit.

    libgit2 writes each object as a loose file and never packs.  An initial snapshot of
    100k files made 115k loose files, which the pack that followed then unlinked; on an
    ext4 without a journal, every file created in the next minute scanned past those
    freed inodes (0.5 ms per create, measured), tripling snapshot times.  Staged, a large
    batch reaches disk as one pack and never makes those files at all.
    """

    def __init__(self) -> None:
        super().__init__()
        self.objects: dict[pygit2.Oid, tuple[int, bytes]] = {}
        self.size = 0

    # pygit2 calls these *_cb methods from libgit2; a KeyError means "not in this backend".
    def read_cb(self, oid: pygit2.Oid) -> tuple[int, bytes]:
        return self.objects[oid]

    def read_header_cb(self, oid: pygit2.Oid) -> tuple[int, int]:
        kind, data = self.objects[oid]
        return kind, len(data)

    def read_prefix_cb(self, prefix: str) -> tuple[int, bytes, pygit2.Oid]:
        # pygit2's Odb.read and some object lookups ask by prefix, even with a full id.
        oid = self.exists_prefix_cb(prefix)
        kind, data = self.objects[oid]
        return kind, data, oid

    def exists_cb(self, oid: pygit2.Oid) -> bool:
        return oid in self.objects

    def exists_prefix_cb(self, prefix: str) -> pygit2.Oid:
        if len(prefix) == pygit2.GIT_OID_HEXSZ:
            full = pygit2.Oid(hex=prefix)
            if full in self.objects:
                return full
            raise KeyError(prefix)
        matches = [oid for oid in self.objects if str(oid).startswith(prefix)]
        if len(matches) > 1:
            raise ValueError(f"ambiguous object prefix {prefix}")  # pygit2 maps it to GIT_EAMBIGUOUS
        if not matches:
            raise KeyError(prefix)
        return matches[0]

    def refresh_cb(self) -> None:
        return None

    def write_cb(self, oid: pygit2.Oid, data: bytes, kind: int) -> None:
        if oid not in self.objects:
            self.objects[oid] = (kind, bytes(data))
            self.size += len(data)

    def __iter__(self) -> Iterator[pygit2.Oid]:
        return iter(list(self.objects))

    def clear(self) -> None:
        self.objects.clear()
        self.size = 0


class ShadowRepo:
    """A bare git repository holding one chain of snapshot commits."""

    def __init__(self, git_dir: Path) -> None:
        durability_mode()
        self.git_dir = git_dir
        self._plain = self._open(git_dir)
        self._repo = self._plain  # while staged_writes is active: the staging repository
        self._staging: tuple[pygit2.Repository, _StagedObjects] | None = None
        self._staged: _StagedObjects | None = None

    @staticmethod
    def _open(git_dir: Path) -> pygit2.Repository:
        try:
            return pygit2.Repository(str(git_dir), pygit2.enums.RepositoryOpenFlag.BARE)
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

    def _write_failed(self, exc: Exception) -> OperationFailed:
        # libgit2 often loses the errno of a failed write (ENOSPC, EIO, EFBIG): name the store instead.
        return OperationFailed(
            f"cannot write to the store {self.git_dir}: {exc}; check free space and permissions"
        )

    def write_blob(self, data: bytes) -> str:
        try:
            oid = str(self._repo.create_blob(data))
        except (pygit2.GitError, OSError, ValueError) as exc:
            raise self._write_failed(exc) from None
        if self._staged is not None and self._staged.size >= STAGED_FLUSH_BYTES:
            self._flush_staged()
        return oid

    @contextmanager
    def staged_writes(self) -> Iterator[None]:
        """Hold the objects written inside in memory, and write them in one go.

        commit() flushes them before it moves the ref, and so does a normal exit: fewer
        than STAGED_LOOSE_LIMIT objects go loose, more go into one pack (several, past
        STAGED_FLUSH_BYTES).  On an exception they are dropped: no ref names them.
        Reads inside see the staged objects too.  Re-entering is a no-op.
        """
        if self._staged is not None:
            yield
            return
        if self._staging is None:
            staging = self._open(self.git_dir)
            backend = _StagedObjects()
            # Highest priority: libgit2 writes to the first backend that can write.
            staging.odb.add_backend(backend, 1000)
            self._staging = (staging, backend)
        staging, backend = self._staging
        self._repo, self._staged = staging, backend
        try:
            yield
            self._flush_staged()
        finally:
            backend.clear()
            self._repo, self._staged = self._plain, None

    def _flush_staged(self) -> None:
        staged = self._staged
        if staged is None or not staged.objects:
            return
        try:
            if len(staged.objects) < STAGED_LOOSE_LIMIT:
                odb = self._plain.odb
                for kind, data in staged.objects.values():
                    odb.write(kind, data)
            else:
                self._write_staged_pack(list(staged.objects))
        except (pygit2.GitError, OSError, ValueError) as exc:
            raise self._write_failed(exc) from None
        staged.clear()

    def _write_staged_pack(self, oids: list[pygit2.Oid]) -> None:
        # The work directory sits in objects/ (same filesystem, so the pack moves in by rename);
        # one left by a killed writer is removed by snapshot.clear_temp_objects.
        work = self.git_dir / "objects" / temp_name()
        work.mkdir(mode=0o700)
        try:
            builder = pygit2.PackBuilder(self._repo)  # the staging repository: it reads the staged objects
            builder.set_threads(0)
            for oid in oids:
                builder.add(oid)
            builder.write(str(work))
            crash_point("pack-staged-written")
            self.install_pack(work)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def has_object(self, oid: str) -> bool:
        """Whether oid is stored and reads back.

        A loose copy that exists but does not read back (zeroed, torn) counts as missing and
        is moved to the quarantine first: libgit2 never overwrites an existing object file,
        so the caller's write_blob would otherwise leave the damaged copy in place.
        """
        key = pygit2.Oid(hex=oid)
        if key not in self._repo.odb:
            return False
        try:
            self._repo.odb.read(key)
        except (KeyError, ValueError, pygit2.GitError):
            if not _loose_object_ok(self._loose_path(oid), oid):
                self.quarantine([oid])
            return False
        return True

    def _loose_path(self, oid: str) -> Path:
        return self.git_dir / "objects" / oid[:2] / oid[2:]

    @property
    def quarantine_dir(self) -> Path:
        """Where damaged object files are moved: beside repo.git in the store, out of git's sight."""
        return self.git_dir.parent / "quarantine"

    def unreadable_loose_objects(self) -> list[str]:
        """Ids of the loose object files that do not inflate to content hashing to their name."""
        loose, _packs = self.object_files()
        return sorted(oid for oid in loose if not _loose_object_ok(self._loose_path(oid), oid))

    def quarantine(self, oids: Iterable[str]) -> list[Path]:
        """Move these loose object files to the quarantine (kept, not deleted).  Returns where each went."""
        moved: list[Path] = []
        target_dir = self.quarantine_dir
        for oid in oids:
            source = self._loose_path(oid)
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
        commit = self._commit(commit_id)
        try:
            return commit.tree
        except (KeyError, ValueError, pygit2.GitError) as exc:
            raise StoreDamaged(
                f"the tree {commit.tree_id} of snapshot {commit_id} is missing or unreadable in {self.git_dir}: {exc}"
            ) from None

    def _subtree(self, oid: pygit2.Oid, path: str) -> pygit2.Tree:
        try:
            obj = self._repo[oid]
        except (KeyError, ValueError, pygit2.GitError) as exc:
            raise StoreDamaged(f"tree {oid} ({path}) is missing or unreadable in {self.git_dir}: {exc}") from None
        if not isinstance(obj, pygit2.Tree):
            raise StoreDamaged(f"object {oid} ({path}) in {self.git_dir} is not a tree")
        return obj

    def entry_at(self, commit_id: str, path: str) -> Entry | None:
        tree = self._tree_of(commit_id)
        if tree is None:
            return None
        try:
            obj = tree[encode_path(path)]
        except KeyError:
            return None
        except (ValueError, pygit2.GitError) as exc:  # a tree on the way is unreadable
            raise StoreDamaged(
                f"a tree on the path '{path}' of snapshot {commit_id} is unreadable in {self.git_dir}: {exc}"
            ) from None
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
                    stack.append((path + "/", self._subtree(item.id, decode_path(path))))
                else:
                    yield decode_path(path), Entry(str(item.id), int(item.filemode))

    def changes(self, commit_id: str) -> list[TreeChange]:
        """What a snapshot changed relative to its parent."""
        commit = self._commit(commit_id)
        try:
            parent_tree = commit.parents[0].tree if commit.parents else None
            tree = commit.tree
            diff = parent_tree.diff_to_tree(tree) if parent_tree is not None else tree.diff_to_tree(swap=True)
        except (KeyError, ValueError, pygit2.GitError) as exc:
            raise StoreDamaged(
                f"snapshot {commit_id} cannot be compared with its parent: an object is missing or unreadable "
                f"in {self.git_dir}: {exc}"
            ) from None
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
                        existing = self._subtree(obj.id, decode_path(name))
                sub = self._build(existing, change)
                if sub is None:
                    if builder.get(name) is not None:
                        builder.remove(name)
                else:
                    self._insert(builder, name, sub, MODE_TREE)
            elif change is None:
                if builder.get(name) is not None:
                    builder.remove(name)
            else:
                self._insert(builder, name, pygit2.Oid(hex=change.oid), change.mode)
        if len(builder) == 0:
            return None
        try:
            return builder.write()
        except (pygit2.GitError, OSError, ValueError) as exc:
            raise self._write_failed(exc) from None

    def _insert(self, builder: pygit2.TreeBuilder, name: str, oid: pygit2.Oid, mode: int) -> None:
        try:
            builder.insert(name, oid, mode)
        except (pygit2.GitError, OSError, ValueError) as exc:
            raise self._write_failed(exc) from None

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
            try:
                tree_id = self._repo.TreeBuilder().write()
            except (pygit2.GitError, OSError, ValueError) as exc:
                raise self._write_failed(exc) from None
        crash_point("snapshot-after-tree")
        when = int(timestamp if timestamp is not None else time.time())
        offset = -(time.altzone if time.daylight and time.localtime(when).tm_isdst else time.timezone) // 60
        signature = pygit2.Signature("guardian", "guardian@localhost", when, offset)
        parents = [pygit2.Oid(hex=parent)] if parent else []
        try:
            commit_id = str(self._repo.create_commit(None, signature, signature, message, tree_id, parents))
        except (pygit2.GitError, OSError, ValueError) as exc:
            raise self._write_failed(exc) from None
        crash_point("snapshot-after-commit")
        self._flush_staged()
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

    # ------------------------------------------------------------------ lifecycle: rewrite, pack, prune, remotes
    # Used by guardian.lifecycle (gc and mirror); the policy (what to keep, when) lives there.

    def copy_commit(self, commit_id: str, parent: str | None, message: str) -> str:
        """Write a commit with commit_id's tree, author and committer but a new parent and message.

        The ref does not move; the caller swaps it once the whole new chain exists.
        """
        commit = self._commit(commit_id)
        parents = [pygit2.Oid(hex=parent)] if parent else []
        return str(self._repo.create_commit(None, commit.author, commit.committer, message, commit.tree_id, parents))

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        if ancestor == descendant:
            return True
        return bool(self._repo.descendant_of(pygit2.Oid(hex=descendant), pygit2.Oid(hex=ancestor)))

    def sync_objects(self) -> None:
        """Make every object written so far durable (what commit() does before it moves the ref)."""
        _sync_store(self.git_dir)

    def reachable_objects(self, commit_ids: Iterable[str], known: Set[str] = frozenset()) -> Iterator[tuple[str, str]]:
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
            commit = self._commit(commit_id)
            stack: list[tuple[str, pygit2.Oid]] = [("", commit.tree_id)]
            while stack:
                path, oid = stack.pop()
                key = str(oid)
                if key in known or key in seen:
                    continue
                seen.add(key)
                yield key, path
                tree = self._repo[oid]
                for item in tree:  # type: ignore[attr-defined]
                    sub = f"{path}/{item.name or ''}" if path else str(item.name or "")
                    if item.filemode == MODE_TREE:
                        stack.append((sub, item.id))
                    else:
                        blob = str(item.id)
                        if blob not in known and blob not in seen:
                            seen.add(blob)
                            yield blob, sub

    def write_pack(self, objects: Iterable[tuple[str, str]], directory: Path) -> int:
        """Write one pack (.pack + .idx) of these (id, path) objects into directory; returns the object count.

        Each object is inserted with its path: libgit2 orders delta candidates by a hash of
        that name, so successive versions of one file get deltified against each other.
        pygit2's PackBuilder.add passes no name, which made packs about 4x bigger here.
        """
        builder = pygit2.PackBuilder(self._repo)
        builder.set_threads(0)  # delta search on every CPU (0: libgit2 counts them)
        insert = _named_insert(builder)
        for oid, path in objects:
            insert(pygit2.Oid(hex=oid), path)
        builder.write(str(directory))
        return int(builder.written_objects_count)

    def object_files(self) -> tuple[list[str], list[Path]]:
        """(loose object ids, pack files) currently in the object directory."""
        objects = self.git_dir / "objects"
        loose: list[str] = []
        for sub in objects.iterdir():
            if len(sub.name) == 2 and sub.is_dir():
                with os.scandir(sub) as entries:
                    loose.extend(sub.name + item.name for item in entries if len(item.name) == 38)
        packs = sorted((objects / "pack").glob("pack-*.pack"))
        return loose, packs

    def install_pack(self, directory: Path) -> Path:
        """Move a pack written by write_pack into objects/pack, index last, durably.  Returns the .pack path."""
        target = self.git_dir / "objects" / "pack"
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

    def remove_loose(self, oids: Iterable[str]) -> int:
        removed = 0
        objects = os.path.join(self.git_dir, "objects")
        for oid in oids:
            try:
                os.unlink(os.path.join(objects, oid[:2], oid[2:]))
                removed += 1
            except FileNotFoundError:
                continue
        return removed

    def remove_pack(self, pack: Path) -> bool:
        """Delete a pack and its side files, unless a .keep file says git is still using it."""
        if pack.with_suffix(".keep").exists():
            return False
        # The index goes first: without it no reader picks the pack up again.
        for suffix in (".idx", ".pack", ".rev", ".bitmap", ".mtimes", ".promisor"):
            pack.with_suffix(suffix).unlink(missing_ok=True)
        return True

    def remotes(self) -> dict[str, str]:
        """Remote name -> URL, from the store's own git config."""
        found: dict[str, str] = {}
        for entry in self._repo.config:
            name = entry.name
            if name.startswith("remote.") and name.endswith(".url"):
                found[name[len("remote.") : -len(".url")]] = str(entry.value)
        return dict(sorted(found.items()))

    def set_remote(self, name: str, url: str) -> None:
        self._repo.config[f"remote.{name}.url"] = url

    def remove_remote(self, name: str) -> None:
        config = self._repo.config
        for entry in list(config):
            if entry.name.startswith(f"remote.{name}."):
                del config[entry.name]


def _named_insert(builder: pygit2.PackBuilder) -> Callable[[pygit2.Oid, str], None]:
    try:
        from pygit2.errors import check_error
        from pygit2.ffi import C, ffi

        raw = builder._packbuilder
    except (ImportError, AttributeError):  # pragma: no cover - a pygit2 without these internals
        return lambda oid, _path: builder.add(oid)

    def insert(oid: pygit2.Oid, path: str) -> None:
        git_oid = ffi.new("git_oid *")
        ffi.buffer(git_oid)[:] = oid.raw
        name = path.encode("utf-8", "surrogateescape") if path else ffi.NULL
        check_error(C.git_packbuilder_insert(raw, git_oid, name))

    return insert
