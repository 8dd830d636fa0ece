"""Staged writes: a snapshot's new objects wait in memory, then reach disk loose or as one pack.

libgit2 writes each object as a loose file and never packs.  An initial snapshot of
100k files made 115k loose files, which the pack that followed then unlinked; on an
ext4 without a journal, every file created in the next minute scanned past those
freed inodes (0.5 ms per create, measured), tripling snapshot times.  Staged, a large
batch reaches disk as one pack and never makes those files at all.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

from guardian.store import gitcore
from guardian.store.durability import write_failed
from guardian.store.packs import install_pack
from guardian.store.rawpack import write_raw_pack
from guardian.util.crash import crash_point
from guardian.util.fs import temp_name

# A staged batch of fewer objects than this is written loose, a larger one as a pack: git's own
# rule for received objects (fetch.unpackLimit, default 100).  Small packs would pile up; loose
# objects by the hundred thousand cost one inode each.
STAGED_LOOSE_LIMIT = 100
# Staged objects are flushed to a pack once they hold this much content, so memory stays bounded.
STAGED_FLUSH_BYTES = 64 << 20
# git's object type number for a blob (GIT_OBJECT_BLOB), as a pack entry and the backends store it.
BLOB_KIND = 3


class StagedObjects(gitcore.OdbBackend):
    """An in-memory object backend: a snapshot's new objects wait here until its commit."""

    def __init__(self) -> None:
        super().__init__()
        self.objects: dict[gitcore.Oid, tuple[int, bytes]] = {}
        self.size = 0

    # pygit2 calls these *_cb methods from libgit2; a KeyError means "not in this backend".
    def read_cb(self, oid: gitcore.Oid) -> tuple[int, bytes]:
        return self.objects[oid]

    def read_header_cb(self, oid: gitcore.Oid) -> tuple[int, int]:
        kind, data = self.objects[oid]
        return kind, len(data)

    def read_prefix_cb(self, prefix: str) -> tuple[int, bytes, gitcore.Oid]:
        # pygit2's Odb.read and some object lookups ask by prefix, even with a full id.
        oid = self.exists_prefix_cb(prefix)
        kind, data = self.objects[oid]
        return kind, data, oid

    def exists_cb(self, oid: gitcore.Oid) -> bool:
        return oid in self.objects

    def exists_prefix_cb(self, prefix: str) -> gitcore.Oid:
        if len(prefix) == gitcore.GIT_OID_HEXSZ:
            full = gitcore.Oid(hex=prefix)
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

    def write_cb(self, oid: gitcore.Oid, data: bytes, kind: int) -> None:
        if oid not in self.objects:
            self.objects[oid] = (kind, bytes(data))
            self.size += len(data)

    def __iter__(self) -> Iterator[gitcore.Oid]:
        return iter(list(self.objects))

    def clear(self) -> None:
        self.objects.clear()
        self.size = 0


class Staging:
    """A second handle on the store whose writes go to a StagedObjects backend.

    Reads through ``repo`` see the staged objects and the stored ones alike; ``flush``
    writes the staged ones through ``plain``, the store's ordinary handle.
    """

    def __init__(self, git_dir: Path, repo: gitcore.Repository, plain: gitcore.Repository) -> None:
        self.git_dir = git_dir
        self.repo = repo
        self._plain = plain
        self.backend = StagedObjects()
        # Highest priority: libgit2 writes to the first backend that can write.
        repo.odb.add_backend(self.backend, 1000)

    @property
    def full(self) -> bool:
        """Whether the staged objects hold enough content to go out now."""
        return self.backend.size >= STAGED_FLUSH_BYTES

    def stage_new_blob(self, data: bytes) -> gitcore.Oid:
        """Hold data as a blob the caller knows is not stored yet; its id.

        libgit2's create_blob first asks every backend whether the object exists, and a miss
        makes its pack backend rescan the pack directory: for a snapshot's new files that was
        a directory read per file, for nothing.  The id is hashed here from the data held.
        """
        oid = gitcore.hash_bytes(data)
        self.backend.write_cb(oid, data, BLOB_KIND)
        return oid

    def flush(self) -> None:
        """Write the staged objects: fewer than STAGED_LOOSE_LIMIT loose, more as one pack."""
        staged = self.backend
        if not staged.objects:
            return
        try:
            if len(staged.objects) < STAGED_LOOSE_LIMIT:
                odb = self._plain.odb
                for kind, data in staged.objects.values():
                    odb.write(kind, data)
            else:
                self._write_pack(list(staged.objects))
        except (gitcore.GitError, OSError, ValueError) as exc:
            raise write_failed(self.git_dir, exc) from None
        staged.clear()

    def clear(self) -> None:
        """Drop whatever is staged (a failed snapshot: no ref names it)."""
        self.backend.clear()

    def _write_pack(self, oids: list[gitcore.Oid]) -> None:
        # The work directory sits in objects/ (same filesystem, so the pack moves in by rename);
        # one left by a killed writer is removed by repair.clear_temp_objects.  The objects are
        # written whole, as they are held (guardian.store.rawpack): no delta search, no read-back.
        work = self.git_dir / "objects" / temp_name()
        work.mkdir(mode=0o700)
        objects = self.backend.objects
        try:
            write_raw_pack(((oid.raw, *objects[oid]) for oid in oids), len(oids), work)
            crash_point("pack-staged-written")
            install_pack(self.git_dir, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
