"""``guardian rollback``: return the tree, or some paths, to a snapshot, protected components excepted.

The whole operation holds the writer lock, and its steps are ordered so that a
crash or an error at any point leaves something to go back to:

1. The target snapshot is resolved first, so a typo fails before anything is written.
2. The current state is snapshotted ("pre-rollback").  Edits nobody snapshotted
   yet are thereby both kept (the rollback can be undone) and compared.
3. The plan is the difference between the target tree and that new head tree:
   files that differ are rewritten, files added since are deleted, files deleted
   since are recreated.
4. The policy judges the whole plan once.  Changes it does not permit are
   skipped (needs --force) or never touched (blocked).
5. Permitted changes are applied one file at a time, each atomically.
6. The result is snapshotted ("rollback", with the target as source) and a
   "rollback" event records who did it, with which command, and what was decided.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from guardian.capture.engine import Capture
from guardian.catalog.db import Catalog, SnapshotRow
from guardian.errors import (
    EXIT_BLOCKED,
    EXIT_FAILED,
    EXIT_NEEDS_FORCE,
    EXIT_OK,
    GuardianError,
    OperationFailed,
    PathRefused,
    StoreDamaged,
    UsageError,
)
from guardian.events import MAX_EVENT_PATHS
from guardian.ops.grant import grant_forced
from guardian.ops.restore import moved_back, write_entry
from guardian.ops.session import write_session
from guardian.paths import ROOT, check_relative, relative_or_root
from guardian.policy import ChangeKind, Decision, PathChange, PathDecision, PolicyEngine, decision_record
from guardian.project import Project
from guardian.query.dirmodes import RecordedDirModes
from guardian.query.lookup import last_snapshot_before, resolve_snapshot
from guardian.store.repo import ShadowRepo
from guardian.store.tree import Entry
from guardian.util.crash import crash_point
from guardian.util.fs import DirMode, lstat_at, open_parent, remove_user_file
from guardian.util.proc import caller_details
from guardian.util.times import format_time

ProgressFn = Callable[[int, int], None]
Action = Literal["rewrite", "delete", "recreate"]

# How each action reads to the policy: recreating a file deleted since the target "adds" it.
CHANGE_OF: dict[Action, ChangeKind] = {"rewrite": "modify", "delete": "delete", "recreate": "add"}
_PROGRESS_EVERY = 50


@dataclass(frozen=True)
class PlannedChange:
    """One file the rollback would change; ``entry`` is the target's version (None for a deletion)."""

    path: str
    action: Action
    entry: Entry | None

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "action": self.action}


@dataclass(frozen=True)
class FailedChange:
    path: str
    action: Action
    error: str

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "action": self.action, "error": self.error}


@dataclass
class RollbackReport:
    target: str
    target_time: float
    scope: tuple[str, ...]
    force: bool
    dry_run: bool
    pre_snapshot: str | None = None
    post_snapshot: str | None = None
    plan: list[PlannedChange] = field(default_factory=list)
    decision: Decision | None = None
    applied: list[PlannedChange] = field(default_factory=list)  # with dry_run: what would be applied
    failed: list[FailedChange] = field(default_factory=list)
    complete: bool = False  # False while applying, and if an interruption stopped it

    def _refused(self, outcome: str) -> list[PathDecision]:
        if self.decision is None:
            return []
        return [p for p in self.decision.paths if p.outcome == outcome and not p.permitted]

    @property
    def skipped(self) -> list[PathDecision]:
        """Protected paths left alone because they need --force and it was not given."""
        return self._refused("force")

    @property
    def blocked(self) -> list[PathDecision]:
        """Protected paths no flag may touch."""
        return self._refused("block")

    @property
    def forced(self) -> dict[str, PathDecision]:
        if self.decision is None:
            return {}
        return {p.path: p for p in self.decision.paths if p.forced}

    def count(self, action: Action) -> int:
        return sum(1 for c in self.applied if c.action == action)

    @property
    def exit_code(self) -> int:
        """1 if a file could not be written, else 4 if anything is blocked, 3 if anything needs --force, else 0.

        A skipped protected path is reported, and the rest is rolled back, but
        the run still exits non-zero so that a script notices the tree is not
        entirely at the target.  --dry-run exits with the code the real run would.
        """
        if self.failed:
            return EXIT_FAILED
        if self.blocked:
            return EXIT_BLOCKED
        if self.skipped:
            return EXIT_NEEDS_FORCE
        return EXIT_OK

    def summary(self) -> str:
        when = format_time(self.target_time)
        if not self.plan and not self.failed:
            return f"nothing to roll back: the tree already matches snapshot {self.target[:12]} ({when})"
        verb = "would roll back" if self.dry_run else "rolled back"
        text = (
            f"{verb} {len(self.applied)} file(s) to {self.target[:12]} ({when}): "
            f"{self.count('rewrite')} rewritten, {self.count('delete')} deleted, {self.count('recreate')} recreated; "
            f"{len(self.skipped)} skipped (protected), {len(self.blocked)} blocked"
        )
        if self.failed:
            text += f", {len(self.failed)} failed"
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "target_time": self.target_time,
            "scope": list(self.scope),
            "force": self.force,
            "dry_run": self.dry_run,
            "pre_snapshot": self.pre_snapshot,
            "post_snapshot": self.post_snapshot,
            "applied": [c.to_json() for c in self.applied],
            "skipped": [p.to_json() for p in self.skipped],
            "blocked": [p.to_json() for p in self.blocked],
            "failed": [f.to_json() for f in self.failed],
            "counts": {
                "rewritten": self.count("rewrite"),
                "deleted": self.count("delete"),
                "recreated": self.count("recreate"),
                "skipped": len(self.skipped),
                "blocked": len(self.blocked),
                "failed": len(self.failed),
            },
            "complete": self.complete,
            "exit_code": self.exit_code,
            "summary": self.summary(),
            "decision": self.decision.to_json() if self.decision else None,
        }


# --------------------------------------------------------------------------- choosing the target


def snapshot_before(catalog: Catalog, before: float, now: float | None = None) -> SnapshotRow:
    """The latest snapshot taken strictly before ``before``, its time read against the snapshots' order.

    A snapshot stamped while the clock was wrong is never picked over one the chain shows was
    taken earlier (the rule: guardian.lifecycle.clock).
    """
    row = last_snapshot_before(catalog, before, now)
    if row is None:
        raise OperationFailed(
            f"--before: no snapshot was taken before {format_time(before)}; list them with 'guardian log'"
        )
    return row


def resolve_target(catalog: Catalog, to: str | None, before: float | None, now: float | None = None) -> SnapshotRow:
    if to is not None:
        return resolve_snapshot(catalog, to, "--to")
    assert before is not None
    return snapshot_before(catalog, before, now)


# --------------------------------------------------------------------------- planning


def in_scope(path: str, scope: Sequence[str]) -> bool:
    return not scope or any(path == s or path.startswith(s + "/") for s in scope)


def tree_in_scope(repo: ShadowRepo, commit_id: str | None, scope: Sequence[str]) -> dict[str, Entry]:
    return {path: entry for path, entry in repo.iter_tree(commit_id) if in_scope(path, scope)}


def outside_gitlinks(current: dict[str, Entry], links: Sequence[str]) -> dict[str, Entry]:
    """current without the files at or under the target's gitlinks.

    A gitlink (only a mirror's tree holds one) says something stood there that the snapshot
    did not capture: what is there now is left alone, neither deleted nor rewritten.
    """
    if not links:
        return current
    return {path: entry for path, entry in current.items() if not in_scope(path, links)}


def plan_changes(
    target: dict[str, Entry], current: dict[str, Entry], refused: list[FailedChange] | None = None
) -> list[PlannedChange]:
    """What turns ``current`` into ``target``, sorted by path.

    A path no file may have ('..', '.git', a NUL: only a crafted or corrupt shadow tree
    holds one) is never planned; it goes to ``refused`` instead, to be reported as failed.
    """
    plan: list[PlannedChange] = []
    for path in sorted(target.keys() | current.keys()):
        want, have = target.get(path), current.get(path)
        try:
            check_relative(path)
        except PathRefused as exc:
            if refused is not None and want != have:
                action: Action = "delete" if want is None else ("recreate" if have is None else "rewrite")
                refused.append(FailedChange(path, action, str(exc)))
            continue
        if want is None:
            plan.append(PlannedChange(path, "delete", None))
        elif have is None:
            plan.append(PlannedChange(path, "recreate", want))
        elif want != have:  # content or mode (exec bit, file vs symlink) differs
            plan.append(PlannedChange(path, "rewrite", want))
    return plan


def _target_tree(repo: ShadowRepo, target_id: str, scope: Sequence[str]) -> tuple[dict[str, Entry], set[str]]:
    """The target's files within scope, and every directory of the whole target tree."""
    wanted: dict[str, Entry] = {}
    dirs: set[str] = set()
    for path, entry in repo.iter_tree(target_id):
        parts = path.split("/")[:-1]
        dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
        if in_scope(path, scope):
            wanted[path] = entry
    return wanted, dirs


def _scope(root: Path, typed: Iterable[str], cwd: Path | None) -> tuple[str, ...]:
    rels: list[str] = []
    for text in typed:
        rel = relative_or_root(root, text, cwd)
        if rel == ROOT:
            return ()  # the root named explicitly: the whole tree
        if rel not in rels:
            rels.append(rel)
    return tuple(rels)


def _check_scope_exists(
    root: Path, catalog: Catalog, scope: Sequence[str], target: dict[str, Entry], target_id: str
) -> None:
    """A path that is nowhere (not in the target, not on disk, not tracked) is a typo, not a no-op."""
    for rel in scope:
        if any(in_scope(path, (rel,)) for path in target):
            continue
        if lstat_at(root, rel) is not None or catalog.file(rel) is not None or catalog.files_under(rel):
            continue
        raise OperationFailed(
            f"'{rel}' is neither in snapshot {target_id[:12]} nor in the work tree; "
            "check the path with 'guardian log' or 'guardian history'"
        )


# --------------------------------------------------------------------------- applying


def _remove_empty_parents(root: Path, rel: str, keep: set[str]) -> None:
    """After deleting rel, remove parent directories it leaves empty, unless the target has them.

    Snapshots do not hold empty directories, so one that only held files added
    since the target is itself something "added since".  A directory with
    anything left in it (an ignored file, say) stays: rmdir refuses.
    """
    parent = rel.rpartition("/")[0]
    while parent and parent not in keep:
        try:
            with open_parent(root, parent) as (dir_fd, leaf):
                os.rmdir(leaf, dir_fd=dir_fd)
        except (OSError, PathRefused):
            return
        parent = parent.rpartition("/")[0]


def _apply(
    root: Path,
    repo: ShadowRepo,
    report: RollbackReport,
    changes: list[PlannedChange],
    target_dirs: set[str],
    progress: ProgressFn | None,
    perms: dict[str, int] | None = None,
    dir_modes: Callable[[str, str], DirMode] | None = None,
) -> None:
    # Deletions first: a file that must become a directory (or the reverse) is only
    # free to be written once what stood in its way is gone.
    ordered = [c for c in changes if c.action == "delete"] + [c for c in changes if c.action != "delete"]
    total = len(ordered)
    for done, change in enumerate(ordered, 1):
        try:
            if change.entry is None:
                remove_user_file(root, change.path)
                _remove_empty_parents(root, change.path, target_dirs)
            else:
                perm = (perms or {}).get(change.path)
                dir_mode = dir_modes(change.path, change.entry.oid) if dir_modes is not None else None
                write_entry(root, repo, change.path, change.entry, perm=perm, dir_mode=dir_mode)
        except StoreDamaged:
            raise  # the store itself is broken: nothing else it holds can be trusted either
        except (GuardianError, OSError) as exc:
            # One file in the way (a directory, a symlinked parent, a permission) must not
            # strand the rest of the tree half-way; it is reported and the run exits 1.
            text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            report.failed.append(FailedChange(change.path, change.action, text))
        else:
            report.applied.append(change)
        if done == 1:
            crash_point("rollback-mid")
        if progress is not None and (done % _PROGRESS_EVERY == 0 or done == total):
            progress(done, total)


def _recorded_perms(catalog: Catalog, target_seq: int, changes: Iterable[PlannedChange]) -> dict[str, int]:
    """The permission bits recorded for the target's version of each file to recreate (where known)."""
    perms: dict[str, int] = {}
    for change in changes:
        if change.action == "recreate" and change.entry is not None and not change.entry.is_link:
            perm = catalog.perm_at(change.path, target_seq, change.entry.oid)
            if perm is not None:
                perms[change.path] = perm
    return perms


def _record(project: Project, report: RollbackReport, argv: Sequence[str]) -> None:
    assert report.decision is not None
    refused = bool(report.skipped or report.blocked)
    details: dict[str, Any] = {
        **caller_details(argv),
        "command": shlex.join(argv),
        "target": report.target,
        "target_time": report.target_time,
        "scope": list(report.scope),
        "pre_snapshot": report.pre_snapshot,
        "post_snapshot": report.post_snapshot,
        "force": report.force,
        "forced": sorted(report.forced),
        "complete": report.complete,
        "exit_code": report.exit_code,
        "summary": report.summary(),
        "counts": report.to_json()["counts"],
        "failed": [f.to_json() for f in report.failed][:MAX_EVENT_PATHS],
        "decision": decision_record(report.decision),
    }
    # "block" when the policy kept any path back, so `events --kind block` lists it.
    trigger = "block" if refused else "rollback"
    paths = [c.path for c in report.applied][:MAX_EVENT_PATHS]
    project.events.append("rollback", paths, report.post_snapshot, trigger, details)


def _finish(capture: Capture, project: Project, report: RollbackReport, argv: Sequence[str]) -> None:
    touched = [c.path for c in report.applied] + [f.path for f in report.failed]
    if touched:
        post = capture.run(touched, "rollback", source=report.target, command=shlex.join(argv))
        report.post_snapshot = post.snapshot
    _record(project, report, argv)


def rollback(
    project: Project,
    *,
    to: str | None,
    before: float | None,
    paths: Sequence[str] = (),
    cwd: Path | None = None,
    force: bool = False,
    dry_run: bool = False,
    argv: Sequence[str] = (),
    progress: ProgressFn | None = None,
) -> RollbackReport:
    """Roll the tree (or ``paths``) back to snapshot ``to``, or to the last one before ``before``."""
    if to is not None and before is not None:
        raise UsageError("--to and --before cannot be used together; pick one")
    if to is None and before is None:
        raise UsageError("say where to roll back to: --to SNAPSHOT (see 'guardian log') or --before TIME")
    root = project.root
    scope = _scope(root, paths, cwd)
    engine = PolicyEngine.from_policy(project.policy)
    with write_session(project, "rollback") as session:
        repo, catalog, capture = session.repo, session.catalog, session.capture
        target = resolve_target(catalog, to, before)
        wanted, target_dirs = _target_tree(repo, target.id, scope)
        _check_scope_exists(root, catalog, scope, wanted, target.id)
        note = "taken by rollback --dry-run" if dry_run else None
        try:
            pre = capture.run(
                list(scope) or None, "pre-rollback", note=note, command=shlex.join(argv), progress=progress
            )
        except OSError as exc:
            raise OperationFailed(
                f"rollback failed: cannot take the pre-rollback snapshot: {exc.strerror or exc} "
                f"({exc.filename or project.paths.store}); no file was changed"
            ) from None
        report = RollbackReport(
            target.id, target.ts, scope, force, dry_run, pre_snapshot=pre.snapshot or repo.head()
        )
        refused: list[FailedChange] = []
        current = tree_in_scope(repo, report.pre_snapshot, scope)
        report.plan = plan_changes(wanted, outside_gitlinks(current, repo.gitlinks(target.id)), refused)
        report.failed.extend(refused)  # hostile tree entries: reported, never touched
        decision = engine.decide("rollback", [PathChange(c.path, CHANGE_OF[c.action]) for c in report.plan], force)
        report.decision = decision
        permitted = [c for c, d in zip(report.plan, decision.paths, strict=True) if d.permitted]
        if dry_run:
            report.applied = permitted
            report.complete = True
            return report
        perms = _recorded_perms(catalog, target.seq, permitted)  # recreated files get their recorded bits
        try:
            recorded = RecordedDirModes(catalog, repo)  # recreated directories get their recorded bits too

            def dir_modes(path: str, oid: str) -> DirMode:
                return recorded.for_version(path, oid, target.id)

            _apply(root, repo, report, permitted, target_dirs, progress, perms, dir_modes)
        except BaseException:
            # Interrupted part-way (^C, a damaged store): still snapshot what is on disk
            # now and put the partial rollback on the record, then let the error through.
            try:
                _finish(capture, project, report, argv)
            except (GuardianError, OSError):
                pass  # the original error is the one the user needs to see
            raise
        report.complete = True
        try:
            _finish(capture, project, report, argv)
        except OSError as exc:
            raise OperationFailed(
                "the rollback was applied, but the post-rollback snapshot could not be taken: "
                f"{exc.strerror or exc} ({exc.filename or project.paths.store}); "
                "run 'guardian snapshot' once the cause is fixed"
            ) from None
        _leave_grants(project, engine, catalog, repo, report)
        return report


def _leave_grants(
    project: Project, engine: PolicyEngine, catalog: Catalog, repo: ShadowRepo, report: RollbackReport
) -> None:
    """A grant for each protected path this rollback moved back or deleted: the person asked for it.

    So no enforcer (the watcher, a git hook) takes it for a rollback to undo, even if the
    file is captured again.  Paths it moved forward need none.
    """
    back: list[str] = []
    deleted: list[str] = []
    for change in report.applied:
        if not engine.is_protected(change.path):
            continue
        if change.entry is None:
            deleted.append(change.path)
            continue
        before = repo.entry_at(report.pre_snapshot, change.path) if report.pre_snapshot else None
        if moved_back(catalog, change.path, change.entry.oid, before.oid if before is not None else None):
            back.append(change.path)
    for operation, paths in (("rollback", back), ("delete", deleted)):
        if paths:
            grant_forced(project, operation, paths, "guardian rollback")


__all__ = [
    "CHANGE_OF",
    "FailedChange",
    "PlannedChange",
    "RollbackReport",
    "plan_changes",
    "resolve_target",
    "rollback",
    "snapshot_before",
]
