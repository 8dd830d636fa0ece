"""Whether paths a user named exist anywhere guardian could capture them from: on disk or in history."""

from __future__ import annotations

import os
from collections.abc import Sequence

from guardian.errors import UsageError
from guardian.project import Project
from guardian.util.fs import lstat_at


def _symlinked_parent(project: Project, rel: str) -> str:
    parts = rel.split("/")
    for end in range(1, len(parts)):
        if (project.root.joinpath(*parts[:end])).is_symlink():
            return "/".join(parts[:end])
    return rel


def _present(project: Project, rel: str) -> bool:
    # A SQLite database whose base file is gone but whose WAL or journal survives is no typo:
    # it is the incident guardian exists for (seed 004), and the snapshot must look at it.
    return any(lstat_at(project.root, rel + suffix) is not None for suffix in ("", "-wal", "-journal"))


def require_known_or_present(project: Project, rels: Sequence[str], typed: Sequence[str]) -> None:
    """A path that is neither in the work tree nor in any snapshot is a typo: say so (exit 2).

    A path that is gone from disk but known to history is fine: snapshotting it records its deletion.
    """
    missing = [(rel, text) for rel, text in zip(rels, typed, strict=True) if not _present(project, rel)]
    if not missing:
        return
    if not project.paths.repo.is_dir():
        rel, text = missing[0]
        _refuse(project, rel, text, f"'{text}' does not exist ({project.root / rel}); check the path")
    with project.reader() as (_repo, catalog):
        for rel, text in missing:
            if not (catalog.known_path(rel) or catalog.paths_under(rel)):
                _refuse(
                    project,
                    rel,
                    text,
                    f"'{text}' does not exist ({project.root / rel}) and never did in any snapshot; check the path",
                )


def _refuse(project: Project, rel: str, text: str, message: str) -> None:
    if os.path.lexists(project.root / rel):
        # There on disk, but only through a symlinked directory: guardian never reads through one.
        message = (
            f"'{text}' is reached through a symlinked directory ({_symlinked_parent(project, rel)}); "
            "guardian records the link itself and never reads or writes through it"
        )
    raise UsageError(message)
