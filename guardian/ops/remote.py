"""Files back from a mirror: ``init --from`` (a new store, every file written back), ``restore --from-remote``."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guardian.errors import GuardianError, OperationFailed, PathRefused
from guardian.events import MAX_EVENT_PATHS
from guardian.lifecycle.gc import maintenance_lock
from guardian.lifecycle.mirror import (
    MAINTENANCE_WAIT,
    choose_ref,
    choose_remote,
    fetch_snapshot,
    mirror_ref,
    normalize_url,
    remote_refs,
)
from guardian.lifecycle.rewrite import catalog_for
from guardian.ops.restore import RestoreReport, apply_restore, choose_version
from guardian.project import Project, ProjectPaths, make_store_dir, write_project_meta
from guardian.query.lookup import resolve_path
from guardian.store.repo import ShadowRepo
from guardian.store.tree import Entry
from guardian.trust.policy import read_accepted, without_command_checks, write_accepted
from guardian.util.fs import lstat_at

GITLINK_SKIPPED = "a gitlink (a submodule's commit): the mirror holds none of its files"


@dataclass
class InitFromReport:
    root: Path
    store: Path
    url: str
    ref: str
    head: str
    restored: list[str] = field(default_factory=list)
    older_valid: list[str] = field(default_factory=list)  # restored from an earlier, valid version
    kept: list[str] = field(default_factory=list)  # already present and different: left alone
    refused: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # not written back, and why (gitlinks)
    snapshot: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "store": str(self.store),
            "url": self.url,
            "ref": self.ref,
            "head": self.head,
            "restored": self.restored,
            "older_valid": self.older_valid,
            "kept": self.kept,
            "refused": [{"path": p, "reason": r} for p, r in self.refused],
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
            "snapshot": self.snapshot,
        }


def init_from(root: Path, url: str, *, ref: str | None = None, cwd: Path | None = None) -> InitFromReport:
    """A new store for root from a mirror, then every file of its latest snapshot written back.

    Files already in root are never overwritten (they are listed as kept); each restored
    file is its latest valid version, as 'guardian restore' would pick.  A gitlink (a submodule's
    commit, which no mirror holds) is skipped with a note in the report and a "skip" event.
    """
    from guardian.config import load_policy, preset_text
    from guardian.ops.snapshot import take_snapshot
    from guardian.paths import POLICY_FILENAME
    from guardian.store.repo import ShadowRepo
    from guardian.store.tree import Entry
    from guardian.util.fs import write_user_file
    from guardian.util.lock import FileLock

    if not root.is_dir():
        raise OperationFailed(f"cannot init {root}: not a directory")
    root = root.resolve()
    url = normalize_url(url, cwd or root)
    paths = ProjectPaths.for_root(root)
    if paths.repo.is_dir() and ShadowRepo(paths.repo).head() is not None:
        raise OperationFailed(
            f"{root} already has a store with snapshots ({paths.store}); "
            "recover files from the mirror with 'guardian restore --from-remote PATH'"
        )
    refs = remote_refs(url)
    chosen = choose_ref(refs, url, root.name, None, ref)
    head = refs[chosen]
    make_store_dir(paths.store)
    if not paths.repo.is_dir():
        ShadowRepo.create(paths.repo)
    write_project_meta(paths)
    repo = ShadowRepo(paths.repo)
    with FileLock(paths.writer_lock, f"the store {paths.store}", 30.0):
        fetch_snapshot(repo, url, chosen, head)
        repo.update_ref(head, None)
        if "origin" not in repo.remotes():
            repo.set_remote("origin", url)
    report = InitFromReport(root, paths.store, url, chosen, head)
    if lstat_at(root, POLICY_FILENAME) is None:
        entry = repo.entry_at(head, POLICY_FILENAME)
        if entry is not None:
            _write_back(root, repo, POLICY_FILENAME, entry, report)
        else:
            write_user_file(root, POLICY_FILENAME, preset_text("default").encode())
    if read_accepted(paths.store) is None:
        # The mirror's policy protects at once, but its command checks would run programs that
        # anyone who can push to the mirror chose: they wait for 'guardian policy accept'.
        load_policy(paths.policy_file)  # a broken policy is reported before anything is accepted
        write_accepted(paths.store, without_command_checks(paths.policy_file.read_text(encoding="utf-8")))
    project = Project.find(root)
    report.skipped = [(path, GITLINK_SKIPPED) for path in repo.gitlinks(head)]
    if report.skipped:
        project.events.append(
            "skip", [path for path, _ in report.skipped][:MAX_EVENT_PATHS], head, "init", {"reason": GITLINK_SKIPPED}
        )
    catalog = project.open_catalog()
    try:
        with project.writer_lock():
            catalog.sync(repo)  # plain sync: these snapshots were logged on the machine that took them
        for path, entry in repo.iter_tree(head):
            if path == POLICY_FILENAME:
                continue
            version = catalog.latest_valid(path)
            chosen_entry = entry
            if version is not None and version.blob is not None and version.mode is not None:
                chosen_entry = Entry(version.blob, version.mode)
            if _write_back(root, repo, path, chosen_entry, report) and chosen_entry != entry:
                report.older_valid.append(path)
    finally:
        catalog.close()
    report.snapshot = take_snapshot(project, None, "init").snapshot
    project.events.append(
        "init",
        [],
        head,
        "init",
        {
            "from": url,
            "ref": chosen,
            "restored": len(report.restored),
            "kept": report.kept[:100],
            "skipped": [path for path, _ in report.skipped][:100],
        },
    )
    return report


def _write_back(root: Path, repo: ShadowRepo, rel: str, entry: Entry, report: InitFromReport) -> bool:
    from guardian.ops.restore import write_entry
    from guardian.store.repo import hash_blob

    existing = lstat_at(root, rel)
    if existing is not None:
        from guardian.util.fs import read_state

        try:
            same = hash_blob(read_state(root, rel).data or b"") == entry.oid
        except (OSError, GuardianError):
            same = False
        if not same:
            report.kept.append(rel)
        return False
    try:
        write_entry(root, repo, rel, entry)
    except PathRefused as exc:  # a crafted tree must not steer a write outside the root
        report.refused.append((rel, str(exc)))
        return False
    report.restored.append(rel)
    return True


def restore_from_remote(
    project: Project,
    typed_paths: Sequence[str],
    *,
    remote: str | None = None,
    ref: str | None = None,
    cwd: Path | None = None,
    at: str | None = None,
    before: float | None = None,
    dry_run: bool = False,
    force: bool = False,
) -> RestoreReport:
    """Like 'guardian restore', but choosing versions from a mirror's history.

    The mirror ref (this store's own unless --ref names another) is fetched into the
    store's objects; its chain is indexed in a temporary catalog to pick each file's
    latest valid version.  The policy is asked, the current state snapshotted
    (pre-restore) and the files written as any restore does; each protected path moved
    back to older content gets a rollback grant, as with ``restore --force``.
    """
    name, url = choose_remote(project, remote)
    repo = project.open_repo()
    root = project.root
    with maintenance_lock(project, MAINTENANCE_WAIT):  # a gc would prune what we fetch before we use it
        refs = remote_refs(url)
        chosen = choose_ref(refs, url, root.name, mirror_ref(project), ref)
        head = refs[chosen]
        fetch_snapshot(repo, url, chosen, head)
        with tempfile.TemporaryDirectory(prefix="guardian-remote-") as tmp:
            remote_catalog = catalog_for(repo, head, Path(tmp) / "catalog.db")
            try:
                targets = [
                    choose_version(
                        repo, remote_catalog, resolve_path(root, remote_catalog, typed, cwd), typed, at, before
                    )
                    for typed in typed_paths
                ]
            finally:
                remote_catalog.close()
        details = {"from_remote": name, "url": url, "ref": chosen}
        # A version picked from a mirror is one the person chose, as with --at or --force: each
        # protected path it moves back gets a grant, so the watcher does not undo it as a rollback.
        return apply_restore(project, repo, targets, dry_run=dry_run, force=force, details=details, leave_grants=True)
