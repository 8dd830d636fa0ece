"""The recorded bits of the directories a restore or a rollback has to recreate.

Each snapshot records (``Guardian-DirPerm``) the bits of the directories above the files
it captured, where they are not 0755.  A file being put back was captured by one
snapshot; what that snapshot recorded for the directories above the file is what a
recreated directory gets (``guardian.util.fs.make_dir_mode``).  A directory that still
exists is left as it is, and nothing is looked up unless one has to be made.
"""

from __future__ import annotations

from guardian.catalog.db import Catalog
from guardian.store.repo import ShadowRepo
from guardian.store.trailers import parse_message
from guardian.util.fs import DirMode


class RecordedDirModes:
    """Looks up, and caches per snapshot, the directory bits recorded with captured versions."""

    def __init__(self, catalog: Catalog, repo: ShadowRepo) -> None:
        self._catalog = catalog
        self._repo = repo
        self._by_snapshot: dict[str, dict[str, int]] = {}

    def for_version(self, rel: str, blob: str, snapshot: str | None = None) -> DirMode:
        """dir_mode for writing rel's content ``blob``: its newest such version, as of ``snapshot`` if given."""
        found: dict[str, int] | None = None

        def lookup(directory: str) -> int | None:
            nonlocal found
            if found is None:
                row = self._catalog.snapshot(snapshot) if snapshot is not None else None
                found = self.above(rel, blob, row.seq if row is not None else None)
            return found.get(directory)

        return lookup

    def above(self, rel: str, blob: str, upto_seq: int | None = None) -> dict[str, int]:
        """{directory above rel: bits} as recorded by the snapshot that captured this content."""
        if "/" not in rel:
            return {}
        versions = [
            v for v in self._catalog.versions_of(rel) if v.blob == blob and (upto_seq is None or v.seq <= upto_seq)
        ]
        if not versions:
            return {}
        snapshot = versions[-1].snapshot
        if snapshot not in self._by_snapshot:
            self._by_snapshot[snapshot] = parse_message(self._repo.commit_record(snapshot).message).dir_perms
        recorded = self._by_snapshot[snapshot]
        return {d: bits for d, bits in recorded.items() if rel.startswith(d + "/")}
