"""Restore: ask the policy, snapshot what is there now, then write each file atomically."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from guardian.capture.sqlite import is_sqlite_bytes
from guardian.catalog.db import Catalog, VersionRow
from guardian.catalog.sync import sync_catalog
from guardian.errors import Blocked, NeedsForce, OperationFailed
from guardian.ops.restore_dir import directory_targets, is_directory, reattach_hints
from guardian.ops.session import write_session
from guardian.ops.sqlite_restore import plan_sqlite_restore, put_back, set_aside_sidecars
from guardian.paths import check_relative
from guardian.policy import Decision, PathChange, PolicyEngine
from guardian.project import Project
from guardian.query.dirmodes import RecordedDirModes
from guardian.query.lookup import latest_valid_before, require_known, resolve_path, resolve_snapshot
from guardian.store.repo import ShadowRepo, hash_blob
from guardian.store.tree import MODE_EXEC, MODE_FILE, MODE_LINK, Entry
from guardian.util.fs import DirMode, lstat_at, read_state, remove_user_file, write_user_file, write_user_symlink


class RestoreTarget(NamedTuple):
    """The version a path is restored to.

    A NamedTuple, not a frozen dataclass: the same fields, equality, hash, repr and
    immutability, without ~1 ms of generated methods on every import (every restore).
    """

    path: str
    entry: Entry
    snapshot: str
    time: float
    verdict: str
    perm: int | None = None  # the version's recorded permission bits, for a file that is gone


class RestoredFile(NamedTuple):
    """A file a restore wrote (a NamedTuple, as RestoreTarget is: it is never changed once made)."""

    path: str
    snapshot: str
    time: float
    size_before: int | None
    size_after: int

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "snapshot": self.snapshot,
            "time": self.time,
            "size_before": self.size_before,
            "size_after": self.size_after,
        }


class UnchangedFile(NamedTuple):
    """A target the file on disk already holds: nothing to write (a NamedTuple, as RestoreTarget is)."""

    path: str
    snapshot: str
    time: float

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "snapshot": self.snapshot, "time": self.time}


class RestoreReport:
    """What a restore did, filled in as it goes.

    A plain slotted class, not a dataclass (~1 ms of generated methods on every restore's
    import): it is read by attribute and as JSON, never compared or printed.
    """

    __slots__ = ("decision", "dry_run", "files", "notes", "post_snapshot", "pre_snapshot", "set_aside", "unchanged")

    def __init__(self, dry_run: bool = False) -> None:
        self.files: list[RestoredFile] = []
        self.unchanged: list[UnchangedFile] = []
        self.pre_snapshot: str | None = None
        self.post_snapshot: str | None = None
        self.dry_run = dry_run
        self.decision: Decision | None = None
        # A restored database's -wal/-shm/-journal, renamed beside it: (old path, new path).
        self.set_aside: list[tuple[str, str]] = []
        self.notes: list[str] = []  # what was found on the way (an orphaned WAL replayed)

    def to_json(self) -> dict[str, Any]:
        return {
            "set_aside": [{"from": old, "to": new} for old, new in self.set_aside],
            "notes": self.notes,
            "restored": [f.to_json() for f in self.files],
            "unchanged": [f.to_json() for f in self.unchanged],
            "pre_snapshot": self.pre_snapshot,
            "post_snapshot": self.post_snapshot,
            "dry_run": self.dry_run,
            "decision": self.decision.to_json() if self.decision else None,
        }


def choose_version(
    repo: ShadowRepo,
    catalog: Catalog,
    rel: str,
    typed: str,
    at: str | None,
    before: float | None,
    *,
    now: float | None = None,
    newest_valid: VersionRow | None = None,
) -> RestoreTarget:
    """The version of rel to restore: at snapshot ``at``, the latest valid one before ``before``, or the latest valid.

    ``before`` is read against the snapshots' order (query.lookup.last_snapshot_before), so a
    version stamped while the clock was wrong is not picked over the one really taken before.
    ``newest_valid`` replaces the catalog's latest valid version (see :func:`newest_valid_version`).
    """
    require_known(catalog, rel, typed)
    if at is not None:
        snap = resolve_snapshot(catalog, at)
        entry = repo.entry_at(snap.id, rel)
        if entry is None:
            raise OperationFailed(f"'{rel}' is not in snapshot {snap.id[:12]} (not yet created, or deleted by then)")
        versions = [v for v in catalog.versions_of(rel) if v.seq <= snap.seq and v.blob]
        verdict = versions[-1].verdict if versions else "valid"
        perm = versions[-1].perm if versions and versions[-1].blob == entry.oid else None
        return RestoreTarget(rel, entry, snap.id, snap.ts, verdict, perm)
    version: VersionRow | None = newest_valid
    if version is None:
        version = catalog.latest_valid(rel) if before is None else latest_valid_before(catalog, rel, before, now)
    if version is None or version.blob is None or version.mode is None:
        when = " before that time" if before is not None else ""
        raise OperationFailed(
            f"no valid version of '{rel}'{when}; see 'guardian history {rel}', then pick one with --at SNAPSHOT"
        )
    return RestoreTarget(
        rel, Entry(version.blob, version.mode), version.snapshot, version.ts, version.verdict, version.perm
    )


def newest_valid_version(project: Project, catalog: Catalog, rel: str) -> VersionRow | None:
    """A protected path's newest valid version that is not a rollback (None: use the catalog's latest valid).

    Rolled-back content parses, so the catalog calls it valid; but a bare-name restore of a
    rolled-back protected file must bring back what the rollback took away
    (guardian.query.rollbacks tells the two apart, as history does).
    """
    if not PolicyEngine(project.policy.protect_rules).is_protected(rel):
        return None
    versions = catalog.versions_of(rel)
    if not versions:
        return None
    from guardian.query.rollbacks import path_story  # protected paths only: it reads the user's git history

    return path_story(project, versions, rel).newest_valid


def moved_back(catalog: Catalog, rel: str, new_blob: str, old_blob: str | None) -> bool:
    """Whether content ``new_blob`` first appeared in rel's snapshots before ``old_blob`` did."""
    if old_blob is None or old_blob == new_blob:
        return False
    from guardian.query.rollbacks import ContentAges

    ages = ContentAges()
    ages.add_versions(catalog.versions_of(rel))
    return ages.older(new_blob, old_blob)


def current_blob(root: Path, rel: str) -> tuple[str, int] | None:
    """(blob id, git mode) of what is at rel now, or None when there is no file or symlink."""
    state = read_state(root, rel)
    if state.kind == "symlink":
        return hash_blob(state.data), MODE_LINK
    if state.kind != "file":
        return None
    return hash_blob(state.data), MODE_EXEC if state.mode & 0o100 else MODE_FILE


def write_entry(
    root: Path,
    repo: ShadowRepo,
    rel: str,
    entry: Entry,
    *,
    perm: int | None = None,
    set_aside: list[tuple[str, str]] | None = None,
    content: bytes | None = None,
    dir_mode: DirMode | None = None,
) -> int:
    """Put one snapshotted entry back on disk, atomically.  Returns the size written.

    perm: the entry's recorded permission bits, used if the file does not exist now.
    set_aside: collects the database sidecars moved aside.  content: written instead of
    the entry's blob (a stored database with an orphaned WAL replayed over it).  dir_mode:
    the recorded bits of the directories it has to recreate (query.dirmodes).
    """
    check_relative(rel)  # a crafted shadow tree must not steer a write outside the root
    data = repo.read_blob(entry.oid) if content is None else content
    if entry.is_link:
        write_user_symlink(root, rel, data, dir_mode=dir_mode)
        return len(data)
    if not is_sqlite_bytes(data):
        write_user_file(root, rel, data, executable=entry.executable, perm=perm, dir_mode=dir_mode)
        return len(data)
    # Stale -wal/-shm files would be replayed over the restored database and corrupt it; they
    # are renamed beside it, never deleted: an orphaned WAL may hold the only copy of recent commits.
    moved = set_aside_sidecars(root, rel)
    try:
        write_user_file(root, rel, data, executable=entry.executable, perm=perm, dir_mode=dir_mode)
    except BaseException:
        put_back(root, moved)
        raise
    if set_aside is not None:
        set_aside.extend(moved)
    return len(data)


def current_size(root: Path, rel: str) -> int | None:
    st = lstat_at(root, rel)
    return None if st is None else st.st_size


def enforce(decision: Decision) -> None:
    if decision.overall == "block":
        path = next(p for p in decision.paths if p.outcome == "block")
        raise Blocked(f"{decision.operation} of '{path.path}' is blocked by policy ({path.reason})")
    if decision.overall == "force":
        path = next(p for p in decision.paths if p.outcome == "force" and not p.forced)
        raise NeedsForce(f"{decision.operation} of '{path.path}' needs --force (protected: {path.reason})")


def restore(
    project: Project,
    typed_paths: Sequence[str],
    *,
    cwd: Path | None = None,
    at: str | None = None,
    before: float | None = None,
    dry_run: bool = False,
    force: bool = False,
) -> RestoreReport:
    """Each named file's latest valid version (or its version --at / --before), from the local store.

    A directory stands for every file under it in one snapshot (ops.restore_dir), each
    version picked as for a file named alone.
    """
    repo = project.open_repo()
    notes: list[str] = []
    with project.writer_lock():
        catalog = project.open_catalog()
        try:
            project.sweep_store(repo, "restore")
            sync_catalog(project.events, repo, catalog)
            targets: list[RestoreTarget] = []

            def pick(rel: str, typed: str) -> RestoreTarget:
                bare = at is None and before is None
                newest = newest_valid_version(project, catalog, rel) if bare and catalog.known_path(rel) else None
                return choose_version(repo, catalog, rel, typed, at, before, newest_valid=newest)

            for typed in typed_paths:
                rel = resolve_path(project.root, catalog, typed, cwd)
                if is_directory(project.root, catalog, rel):
                    targets.extend(directory_targets(project.root, repo, catalog, rel, at, before, pick, notes))
                else:
                    targets.append(pick(rel, typed))
        finally:
            catalog.close()
    # A person who picked an older version (--at, --before) or forced one meant it: leave a grant.
    chosen = at is not None or before is not None or force
    latest = at is None and before is None  # only the latest versions can be extended by an orphaned WAL
    report = apply_restore(
        project, repo, targets, dry_run=dry_run, force=force, leave_grants=chosen, recover_wal=latest
    )
    report.notes[:0] = notes
    if not dry_run:  # a worktree whose files came back is re-attached by git, not by guardian
        report.notes.extend(reattach_hints(project.root, [f.path for f in report.files]))
    return report


def apply_restore(
    project: Project,
    repo: ShadowRepo,
    targets: Sequence[RestoreTarget],
    *,
    dry_run: bool,
    force: bool,
    details: dict[str, Any] | None = None,
    recover_wal: bool = False,
    leave_grants: bool = False,
) -> RestoreReport:
    """Ask the policy, snapshot what is there now, write each target atomically, snapshot again.

    Every restore comes through here whatever chose its versions: the local catalog,
    or a mirror's history (``ops.remote``).  A target the file already holds is reported
    as unchanged and not written.  With ``leave_grants``, each protected path this
    restore moved back to older content gets a rollback grant (``ops.grant``), so no
    enforcer takes for a rollback to undo what the person asked for.
    """
    root = project.root
    report = RestoreReport(dry_run=dry_run)
    pending: list[RestoreTarget] = []
    for t in targets:
        # A database with a -wal file beside it may still have a WAL to recover: not "unchanged".
        wal = lstat_at(root, t.path + "-wal") is not None
        if not wal and current_blob(root, t.path) == (t.entry.oid, t.entry.mode):
            report.unchanged.append(UnchangedFile(t.path, t.snapshot, t.time))
        else:
            pending.append(t)
    targets = pending
    if not targets:
        return report
    changes = [PathChange(t.path, "modify" if lstat_at(root, t.path) is not None else "add") for t in targets]
    engine = PolicyEngine(project.policy.protect_rules)
    decision = engine.decide("restore", changes, force)
    report.decision = decision
    enforce(decision)
    # recover_wal: the versions are the latest ones, which an orphaned WAL can extend (ops.sqlite_restore).
    chosen = [(t.path, t.entry.oid, t.snapshot) for t in targets]
    replacements, report.notes = plan_sqlite_restore(root, chosen, repo.read_blob, recover=recover_wal, dry_run=dry_run)
    if dry_run:
        for t in targets:
            size = len(replacements[t.path]) if t.path in replacements else repo.blob_size(t.entry.oid)
            report.files.append(RestoredFile(t.path, t.snapshot, t.time, current_size(root, t.path), size))
        return report
    paths = [t.path for t in targets]
    moved: list[str] = []
    try:
        with write_session(project, "restore", repo=repo) as session:
            pre = session.capture.run(paths, "pre-restore")
            report.pre_snapshot = pre.snapshot or repo.head()
            if pre.deferred:
                # Its current content could not be saved first, and another program is writing it.
                raise OperationFailed(
                    f"cannot restore '{pre.deferred[0]}': another program holds a lock on the database, so its "
                    "current content cannot be saved first; stop that program, then run the restore again"
                )
            if leave_grants:
                moved = [
                    t.path
                    for t in targets
                    if engine.is_protected(t.path)
                    and moved_back(session.catalog, t.path, t.entry.oid, _blob_of(current_blob(root, t.path)))
                ]
            dir_modes = RecordedDirModes(session.catalog, repo)
            for t in targets:
                before_size = current_size(root, t.path)
                try:
                    content = replacements.get(t.path)
                    dir_mode = dir_modes.for_version(t.path, t.entry.oid, t.snapshot)
                    size = write_entry(
                        root,
                        repo,
                        t.path,
                        t.entry,
                        perm=t.perm,
                        set_aside=report.set_aside,
                        content=content,
                        dir_mode=dir_mode,
                    )
                except OSError as exc:
                    done = f" ({len(report.files)} file(s) before it were restored)" if report.files else ""
                    raise OperationFailed(
                        f"cannot restore '{t.path}': {exc.strerror or exc}{done}; files are replaced whole or "
                        "not at all, so none is torn: run the restore again once the cause is fixed"
                    ) from None
                report.files.append(RestoredFile(t.path, t.snapshot, t.time, before_size, size))
            sources = sorted({t.snapshot for t in targets})
            try:
                # The sidecars set aside go into the store too: they may hold the only copy of some commits.
                captured = paths + [new for _old, new in report.set_aside]
                report.post_snapshot = session.capture.run(captured, "restore", source=",".join(sources)).snapshot
            except OSError as exc:
                raise OperationFailed(
                    "the files were restored, but the post-restore snapshot could not be taken: "
                    f"{exc.strerror or exc} ({exc.filename or project.paths.store}); "
                    "run 'guardian snapshot' once the cause is fixed"
                ) from None
    except OSError as exc:
        raise OperationFailed(
            f"restore failed: {exc.strerror or exc} ({exc.filename or project.paths.store}); "
            "files not yet written are unchanged"
        ) from None
    project.events.append(
        "restore",
        paths,
        report.post_snapshot,
        "restore",
        {
            **(details or {}),
            "sources": {t.path: t.snapshot for t in targets},
            "pre_snapshot": report.pre_snapshot,
            "force": force,
            "decision": decision.to_json(),
        },
    )
    if moved:
        from guardian.ops.grant import grant_forced

        grant_forced(project, "rollback", moved, "guardian restore")
    return report


def _blob_of(found: tuple[str, int] | None) -> str | None:
    return found[0] if found is not None else None


__all__ = [
    "RestoreReport",
    "RestoreTarget",
    "RestoredFile",
    "UnchangedFile",
    "apply_restore",
    "choose_version",
    "enforce",
    "remove_user_file",
    "restore",
    "write_entry",
]
