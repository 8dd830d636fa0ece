"""Show a version of a file, or diff two: a snapshot's (--at, --from, --to), the latest valid one
before a time (--before), the latest valid one (the default), or the working file.

Reads only; every version is named by what the user typed, so each error says which option
it came from.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from guardian.catalog.db import Catalog
from guardian.errors import OperationFailed
from guardian.project import Project
from guardian.query.lookup import resolve_path, resolve_snapshot
from guardian.store.repo import ShadowRepo
from guardian.util.fs import read_state
from guardian.util.times import format_time


@dataclass(frozen=True)
class VersionChoice:
    """Which version of a file to read: a snapshot (at), the latest valid before a time, or the latest valid."""

    at: str | None = None
    before: float | None = None
    option: str = "--at"  # how the user asked, for messages


@dataclass(frozen=True)
class Version:
    path: str
    snapshot: str | None  # None: the working file
    data: bytes | None  # None: the file does not exist there

    @property
    def label(self) -> str:
        return self.path if self.snapshot is None else f"{self.path}@{self.snapshot[:12]}"


def pick_version(catalog: Catalog, rel: str, typed: str, choice: VersionChoice) -> tuple[str | None, str]:
    """(blob id or None if the file is absent there, snapshot id) of the version choice names."""
    if choice.at is not None:
        snap = resolve_snapshot(catalog, choice.at, choice.option)
        candidates = [v for v in catalog.versions_of(rel) if v.seq <= snap.seq]
        blob = candidates[-1].blob if candidates else None
        return blob, snap.id
    valid = catalog.latest_valid(rel, choice.before)
    if valid is None or valid.blob is None:
        if not catalog.known_path(rel):
            raise OperationFailed(f"'{typed}' never existed in any snapshot")
        when = f" before {format_time(choice.before)}" if choice.before is not None else ""
        raise OperationFailed(
            f"no valid version of '{rel}'{when}; pick one with --at SNAPSHOT (see 'guardian history {rel}')"
        )
    return valid.blob, valid.snapshot


def _read(repo: ShadowRepo, catalog: Catalog, rel: str, typed: str, choice: VersionChoice) -> Version:
    blob, snap = pick_version(catalog, rel, typed, choice)
    return Version(rel, snap, repo.read_blob(blob) if blob else None)


def show_version(
    project: Project, typed: str, choice: VersionChoice, cwd: Path | None = None
) -> tuple[str, str, bytes]:
    """(path, snapshot id, content) of one snapshotted version."""
    with project.reader() as (repo, catalog):
        rel = resolve_path(project.root, catalog, typed, cwd)
        version = _read(repo, catalog, rel, typed, choice)
    if version.data is None:
        assert version.snapshot is not None
        raise OperationFailed(
            f"'{rel}' is not in snapshot {version.snapshot[:12]} (not yet created, or deleted by then)"
        )
    return rel, version.snapshot or "", version.data


def diff_versions(
    project: Project, typed: str, old: VersionChoice, new: VersionChoice | None, cwd: Path | None = None
) -> tuple[Version, Version, str]:
    """The unified diff from version old to version new (None: the working file), and both versions.

    A side where the file does not exist diffs as /dev/null; when neither has it, that is an error.
    """
    with project.reader() as (repo, catalog):
        rel = resolve_path(project.root, catalog, typed, cwd)
        before = _read(repo, catalog, rel, typed, old)
        after = _read(repo, catalog, rel, typed, new) if new is not None else None
    if after is None:
        state = read_state(project.root, rel)
        after = Version(rel, None, state.data if state.kind != "missing" else None)
    if before.data is None and after.data is None:
        raise OperationFailed(f"'{rel}' exists in neither {before.label} nor {after.label}")
    return before, after, unified_diff(before, after)


def unified_diff(old: Version, new: Version) -> str:
    a, b = old.data or b"", new.data or b""
    if b"\0" in a[:8000] or b"\0" in b[:8000]:
        return "" if a == b else f"Binary files {old.label} and {new.label} differ\n"
    lines = difflib.unified_diff(
        a.decode("utf-8", "replace").splitlines(keepends=True),
        b.decode("utf-8", "replace").splitlines(keepends=True),
        fromfile=old.label if old.data is not None else "/dev/null",
        tofile=new.label if new.data is not None else "/dev/null",
    )
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)
