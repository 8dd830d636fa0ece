"""The shadow git repository: one handle on a store, for every layer above guardian.store.

A store is a plain bare git repository that stock git can read.  Snapshots are commits on
one ref, ``refs/heads/snapshots`` (guardian.store.refs); each commit's tree mirrors the
captured files by relative path (guardian.store.tree).  ShadowRepo opens and creates the
repository, reads blobs and commits, writes snapshot commits, and hands the rest to the
modules that do it: staged writes (staged), integrity checks and the quarantine
(integrity), packs and pruning (packs).  Only guardian.store imports pygit2.

pygit2 comes through guardian.store.gitcore (its C core alone, ~20 ms instead of ~170 ms),
and callers import this module lazily, only once a store is actually opened: the git hooks
and the agent hook cannot afford even that.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Set
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from guardian.errors import StoreDamaged
from guardian.store import gitcore, integrity, packs, refs, tree
from guardian.store.durability import durability_mode, sync_store, write_failed
from guardian.store.staged import Staging
from guardian.store.tree import Entry, TreeChange
from guardian.util.crash import crash_point


class CommitRecord(NamedTuple):
    """One snapshot commit as read.  (A NamedTuple, not a frozen dataclass: no dataclasses import on restore.)"""

    id: str
    parent: str | None
    time: float
    message: str


def hash_blob(data: bytes) -> str:
    return str(gitcore.hash_bytes(data))


class ShadowRepo:
    """A bare git repository holding one chain of snapshot commits."""

    def __init__(self, git_dir: Path) -> None:
        durability_mode()
        self.git_dir = git_dir
        self._plain = self._open(git_dir)
        self._repo = self._plain  # while staged_writes is active: the staging repository
        self._staging: Staging | None = None  # made on first use, then reused
        self._active: Staging | None = None  # set while staged_writes is active

    @staticmethod
    def _open(git_dir: Path) -> gitcore.Repository:
        try:
            return gitcore.open_repository(str(git_dir))
        except gitcore.GitError as exc:
            raise StoreDamaged(f"cannot open the shadow repository {git_dir}: {exc}") from None

    @classmethod
    def create(cls, git_dir: Path) -> ShadowRepo:
        durability_mode()
        import pygit2  # the whole package (~150 ms): init_repository and config need it, and a store is made once

        repo = pygit2.init_repository(str(git_dir), bare=True, initial_head=refs.SNAPSHOT_REF)
        config = repo.config
        # Stock git must never start a surprise gc (or reflog expiry) on the store.
        config["gc.auto"] = 0
        config["core.logAllRefUpdates"] = False
        config["receive.denyNonFastForwards"] = False
        config["guardian.version"] = 1
        del repo
        return cls(git_dir)

    # ------------------------------------------------------------------ the ref

    def head(self) -> str | None:
        return refs.read_head(self._repo)

    def update_ref(self, new: str, expected: str | None) -> None:
        """Move the snapshot ref from expected to new, or fail if someone else moved it (refs.update_ref)."""
        refs.update_ref(self._repo, self.git_dir, new, expected)

    def reset_ref(self, commit_id: str) -> None:
        """Force the ref to a known-good commit (used only by verify --repair)."""
        refs.reset_ref(self.git_dir, commit_id)

    # ------------------------------------------------------------------ writing

    def write_blob(self, data: bytes) -> str:
        try:
            oid = str(self._repo.create_blob(data))
        except (gitcore.GitError, OSError, ValueError) as exc:
            raise write_failed(self.git_dir, exc) from None
        if self._active is not None and self._active.full:
            self._active.flush()
        return oid

    def write_new_blob(self, data: bytes) -> str:
        """write_blob for content the caller knows is not stored (a has_object miss, or a store it fills).

        Inside staged_writes the blob goes straight to the staged objects, without libgit2's
        existence check (Staging.stage_new_blob); content that is stored already would only be
        written a second time, never lost.
        """
        if self._active is None:
            return self.write_blob(data)
        oid = str(self._active.stage_new_blob(data))
        if self._active.full:
            self._active.flush()
        return oid

    @contextmanager
    def staged_writes(self) -> Iterator[None]:
        """Hold the objects written inside in memory, and write them in one go (see guardian.store.staged).

        commit() flushes them before it moves the ref, and so does a normal exit: fewer
        than STAGED_LOOSE_LIMIT objects go loose, more go into one pack (several, past
        STAGED_FLUSH_BYTES).  On an exception they are dropped: no ref names them.
        Reads inside see the staged objects too.  Re-entering is a no-op.
        """
        if self._active is not None:
            yield
            return
        if self._staging is None:
            self._staging = Staging(self.git_dir, self._open(self.git_dir), self._plain)
        staging = self._staging
        self._repo, self._active = staging.repo, staging
        try:
            yield
            staging.flush()
        finally:
            staging.clear()
            self._repo, self._active = self._plain, None

    def commit(
        self,
        changes: Mapping[str, Entry | None],
        message: str,
        parent: str | None,
        timestamp: float | None = None,
    ) -> str:
        """Write a snapshot commit applying changes to parent's tree, and move the ref to it."""
        parent_tree = tree.tree_of(self._repo, self.git_dir, parent)
        tree_id = tree.build_tree(self._repo, self.git_dir, parent_tree, changes)
        crash_point("snapshot-after-tree")
        when = int(timestamp if timestamp is not None else time.time())
        offset = -(time.altzone if time.daylight and time.localtime(when).tm_isdst else time.timezone) // 60
        signature = gitcore.Signature("guardian", "guardian@localhost", when, offset)
        parents = [gitcore.Oid(hex=parent)] if parent else []
        try:
            commit_id = str(self._repo.create_commit(None, signature, signature, message, tree_id, parents))
        except (gitcore.GitError, OSError, ValueError) as exc:
            raise write_failed(self.git_dir, exc) from None
        crash_point("snapshot-after-commit")
        if self._active is not None:
            self._active.flush()
        self.update_ref(commit_id, parent)
        crash_point("snapshot-after-ref")
        return commit_id

    def copy_commit(
        self, commit_id: str, parent: str | None, message: str, changes: Mapping[str, Entry | None] | None = None
    ) -> str:
        """Write a commit with commit_id's tree, author and committer but a new parent and message.

        With changes (path -> entry, None to drop it), the tree is commit_id's with those applied
        (forget and the mirror's redacted copies).  The ref does not move; the caller swaps it
        once the whole new chain exists.
        """
        commit = self._commit(commit_id)
        parents = [gitcore.Oid(hex=parent)] if parent else []
        tree_id = commit.tree_id
        if changes:
            base = tree.tree_of(self._repo, self.git_dir, commit_id)
            tree_id = tree.build_tree(self._repo, self.git_dir, base, changes)
        return str(self._repo.create_commit(None, commit.author, commit.committer, message, tree_id, parents))

    def sync_objects(self) -> None:
        """Make every object written so far durable (what commit() does before it moves the ref)."""
        sync_store(self.git_dir)

    # ------------------------------------------------------------------ reading

    def has_object(self, oid: str) -> bool:
        """Whether oid is stored and reads back; a damaged loose copy is quarantined (integrity.has_object)."""
        return integrity.has_object(self._repo, self.git_dir, oid)

    def blob_size(self, oid: str) -> int:
        try:
            _kind, size = self._repo.odb.read_header(gitcore.Oid(hex=oid))
        except (KeyError, ValueError, gitcore.GitError) as exc:
            raise StoreDamaged(f"blob {oid} is missing or unreadable in {self.git_dir}: {exc}") from None
        return int(size)

    def read_blob(self, oid: str) -> bytes:
        try:
            obj = gitcore.lookup(self._repo, oid)
        except (KeyError, ValueError, gitcore.GitError) as exc:
            raise StoreDamaged(f"blob {oid} is missing or unreadable in {self.git_dir}: {exc}") from None
        if not isinstance(obj, gitcore.Blob):
            raise StoreDamaged(f"object {oid} in {self.git_dir} is not a blob")
        return bytes(obj.data)

    def _commit(self, oid: str) -> gitcore.Commit:
        return tree.read_commit(self._repo, self.git_dir, oid)

    def resolve(self, prefix: str) -> str | None:
        """A full commit id from an abbreviated one, or None."""
        try:
            obj = self._repo.revparse_single(prefix)
        except (KeyError, ValueError, gitcore.GitError, gitcore.InvalidSpecError):
            return None
        return str(obj.id) if isinstance(obj, gitcore.Commit) else None

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

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        if ancestor == descendant:
            return True
        return bool(self._repo.descendant_of(gitcore.Oid(hex=descendant), gitcore.Oid(hex=ancestor)))

    def entry_at(self, commit_id: str, path: str) -> Entry | None:
        return tree.entry_at(self._repo, self.git_dir, commit_id, path)

    def iter_tree(self, commit_id: str | None) -> Iterator[tuple[str, Entry]]:
        return tree.iter_tree(self._repo, self.git_dir, commit_id)

    def gitlinks(self, commit_id: str | None) -> list[str]:
        """Paths of the snapshot's gitlinks (a mirror's submodules), which every other read skips."""
        return tree.gitlinks(self._repo, self.git_dir, commit_id)

    def changes(self, commit_id: str) -> list[TreeChange]:
        """What a snapshot changed relative to its parent."""
        return tree.tree_changes(self._repo, self.git_dir, commit_id)

    # ------------------------------------------------------------------ health (guardian.store.integrity)

    def integrity_problems(self, deep: bool = True) -> list[str]:
        """Check that the ref resolves and every reachable object reads back."""
        return integrity.integrity_problems(self._repo, self.git_dir, deep)

    def commit_readable(self, commit_id: str) -> bool:
        return integrity.commit_readable(self._repo, self.git_dir, commit_id)

    def raw_commit_ids_from_reflog_or_objects(self) -> list[str]:
        """Every commit object present in the odb (for repair when the ref is damaged)."""
        return integrity.commit_ids_in_odb(self._repo)

    def unreadable_loose_objects(self) -> list[str]:
        """Ids of the loose object files that do not inflate to content hashing to their name."""
        return integrity.unreadable_loose_objects(self.git_dir)

    @property
    def quarantine_dir(self) -> Path:
        """Where damaged object files are moved: beside repo.git in the store, out of git's sight."""
        return integrity.quarantine_dir(self.git_dir)

    def quarantine(self, oids: Iterable[str]) -> list[Path]:
        """Move these loose object files to the quarantine (kept, not deleted).  Returns where each went."""
        return integrity.quarantine(self.git_dir, oids)

    def stale_git_locks(self) -> list[Path]:
        """Every ``*.lock`` file in the git dir (callers decide whether the holder is dead)."""
        return integrity.stale_git_locks(self.git_dir)

    # ------------------------------------------------------------------ packs (guardian.store.packs)
    # Used by guardian.lifecycle (gc and mirror); the policy (what to keep, when) lives there.

    def pack(self) -> int:
        """Pack loose objects (libgit2's pack builder) and drop the loose copies."""
        return packs.pack_loose_objects(self._repo, self.git_dir)

    def reachable_objects(self, commit_ids: Iterable[str], known: Set[str] = frozenset()) -> Iterator[tuple[str, str]]:
        """(object id, path) for the commits, their trees and blobs, each once; objects in known are skipped."""
        return packs.reachable_objects(self._repo, self.git_dir, commit_ids, known)

    def write_pack(self, objects: Iterable[tuple[str, str]], directory: Path) -> int:
        """Write one pack (.pack + .idx) of these (id, path) objects into directory; returns the object count."""
        return packs.write_pack(self._repo, objects, directory)

    def install_pack(self, directory: Path) -> Path:
        """Move a pack written by write_pack into objects/pack, index last, durably.  Returns the .pack path."""
        return packs.install_pack(self.git_dir, directory)

    def object_files(self) -> tuple[list[str], list[Path]]:
        """(loose object ids, pack files) currently in the object directory."""
        return packs.object_files(self.git_dir)

    def remove_loose(self, oids: Iterable[str]) -> int:
        return packs.remove_loose(self.git_dir, oids)

    def remove_pack(self, pack: Path) -> bool:
        """Delete a pack and its side files, unless a .keep file says git is still using it."""
        return packs.remove_pack(pack)

    # ------------------------------------------------------------------ remotes (in the store's own git config)

    # The git config is pygit2's Python package (gitcore.full_repository): only mirror commands get here.

    def remotes(self) -> dict[str, str]:
        """Remote name -> URL, from the store's own git config."""
        found: dict[str, str] = {}
        for entry in gitcore.full_repository(self._repo).config:
            name = entry.name
            if name.startswith("remote.") and name.endswith(".url"):
                found[name[len("remote.") : -len(".url")]] = str(entry.value)
        return dict(sorted(found.items()))

    def set_remote(self, name: str, url: str) -> None:
        gitcore.full_repository(self._repo).config[f"remote.{name}.url"] = url

    def remove_remote(self, name: str) -> None:
        config = gitcore.full_repository(self._repo).config
        for entry in list(config):
            if entry.name.startswith(f"remote.{name}."):
                del config[entry.name]
