"""`guardian verify`: fail closed with a clear report, and `--repair` from git, the source of truth."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guardian.catalog.sync import sync_catalog
from guardian.errors import StoreDamaged
from guardian.project import Project
from guardian.store.repair import clear_stale_git_locks, clear_temp_objects
from guardian.store.repo import ShadowRepo, hash_blob


@dataclass
class VerifyReport:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    snapshots: int = 0
    test_restored_files: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problems": self.problems,
            "warnings": self.warnings,
            "repaired": self.repaired,
            "snapshots": self.snapshots,
            "test_restored_files": self.test_restored_files,
        }


def _test_restore(repo: ShadowRepo, head: str) -> tuple[int, list[str]]:
    """Write every file of the latest snapshot into a temp dir and read it back."""
    problems: list[str] = []
    count = 0
    with tempfile.TemporaryDirectory(prefix="guardian-verify-") as tmp:
        base = Path(tmp)
        for rel, entry in repo.iter_tree(head):
            try:
                data = repo.read_blob(entry.oid)
            except StoreDamaged as exc:
                problems.append(f"{rel}: {exc}")
                continue
            target = base / f"{count:08d}"
            if entry.is_link:
                os.symlink(os.fsdecode(data), target)
                back = os.fsencode(os.readlink(target))
            else:
                target.write_bytes(data)
                back = target.read_bytes()
            if hash_blob(back) != entry.oid:
                problems.append(f"{rel}: test restore does not match blob {entry.oid}")
            count += 1
    return count, problems


def _last_good_commit(repo: ShadowRepo) -> str | None:
    """The newest snapshot whose whole tree reads back, found along the ref or among all objects."""
    try:
        for record in repo.walk():
            if repo.commit_readable(record.id):
                return record.id
    except StoreDamaged:
        pass
    # The ref itself is unreadable: take the newest readable commit that no other
    # commit names as its parent (the tip of the chain; same-second commits are common).
    records = {}
    for commit_id in repo.raw_commit_ids_from_reflog_or_objects():
        try:
            records[commit_id] = repo.commit_record(commit_id)
        except StoreDamaged:
            continue
    parents = {r.parent for r in records.values() if r.parent}
    tips = [r for cid, r in records.items() if cid not in parents and repo.commit_readable(cid)]
    if tips:
        return max(tips, key=lambda r: r.time).id
    readable = [r for cid, r in records.items() if repo.commit_readable(cid)]
    return max(readable, key=lambda r: r.time).id if readable else None


def verify(project: Project, repair: bool = False) -> VerifyReport:
    report = VerifyReport()
    repo = project.open_repo()
    with project.writer_lock():
        if repair:
            for lock in clear_stale_git_locks(repo, repo.stale_git_locks()):
                report.repaired.append(f"removed stale lock {lock} (its writer is gone)")
            for tmp in clear_temp_objects(repo):
                report.repaired.append(f"removed half-written temp file {tmp}")
            # An unreadable object file must go: libgit2 never overwrites one, so a later capture
            # of the same content would point at the damaged copy again.
            for moved in repo.quarantine(repo.unreadable_loose_objects()):
                report.repaired.append(f"moved the unreadable object {moved.name.split('.')[0]} to {moved}")
        else:
            for lock in repo.stale_git_locks():
                report.warnings.append(
                    f"lock file {lock} exists; 'guardian verify --repair' clears it if its writer is dead"
                )
        problems = repo.integrity_problems(deep=True)
        if problems and repair:
            good = _last_good_commit(repo)
            if good is None:
                report.problems.extend(problems)
                report.problems.append("no readable snapshot is left to return to")
                return report
            repo.reset_ref(good)
            report.repaired.append(f"returned the snapshot ref to the last good snapshot {good[:12]}")
            problems = repo.integrity_problems(deep=True)
        report.problems.extend(problems)
        if report.problems:
            return report
        head = repo.head()
        try:
            catalog = project.open_catalog()
        except StoreDamaged as exc:
            if not repair:
                report.problems.append(str(exc).split(";")[0])
                return report
            project.paths.catalog.unlink(missing_ok=True)
            catalog = project.open_catalog()
        try:
            if repair:
                catalog.reset()
                sync_catalog(project.events, repo, catalog)
                report.repaired.append("rebuilt the catalog from git")
            elif catalog.indexed_head != head:
                report.warnings.append("the catalog is behind git; it catches up on the next command")
            commits = sum(1 for _ in repo.walk()) if head else 0
            report.snapshots = commits
            if catalog.indexed_head == head and catalog.snapshot_count() != commits:
                report.problems.append(f"the catalog lists {catalog.snapshot_count()} snapshots but git has {commits}")
        finally:
            catalog.close()
        if head:
            count, restore_problems = _test_restore(repo, head)
            report.test_restored_files = count
            report.problems.extend(restore_problems)
        torn = project.events.torn_lines()
        if torn:
            report.warnings.append(f"the event log has {torn} unreadable line(s) (a torn write); they are skipped")
        project.events.append(
            "verify",
            [],
            head,
            "verify",
            {"ok": report.ok, "problems": report.problems[:20], "repaired": report.repaired},
        )
    return report
