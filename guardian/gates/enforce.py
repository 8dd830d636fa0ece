"""The watcher enforces the policy on every captured change to a protected path, whatever process made it.

After each capture the watcher hands the result here.  Each captured change to a
protected path is classified against the path's content history
(``guardian.query.rollbacks``): a *rollback* (content older than what it replaced), a
*delete*, or an *edit*.  The rule for that operation decides: ``allow`` records it (the
snapshot already did), ``force`` undoes it unless a force grant covers it, ``block``
always undoes it.  An edit is judged only where a rule sets ``modify`` explicitly, and
never for guardian.yaml itself (the trusted policy keeps a weakening edit out of force),
so enforcement never fights a person editing a file.

Git can explain a move back without anything being lost (a branch switch, a merge, a
pull, ``git stash``, a ``merge --abort`` of what a merge brought in): such a change is
recorded, never undone.  What a merge under way brought in is kept in the store
(:class:`MergeMemory`), so a watcher restarted mid-merge still knows it.  A rebase under
way is judged once it has ended, against what the path held before it began.

This module judges; ``guardian.gates.enforce_undo`` acts (the grant check's event, the
undo through the restore path, the ``enforce`` event and the watcher log line).  The
watcher's capture of the change is the snapshot from before the undo, so ``guardian
restore --at`` that snapshot undoes the undo.  While git (or a guardian hook) is still
writing the work tree, the undo waits for it, so it never races git.

Cost: nothing but a policy match per captured file when no protected path changed; for
a protected change, a few indexed catalog lookups (never the path's whole history, so the
cost does not grow with its versions) and a look at git's object files, and git calls
only for a change that moves content back.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Container, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from guardian.config import ProtectRule
from guardian.gates.enforce_undo import Enforcement, Verdict, granted, record, undo_changes
from guardian.paths import POLICY_FILENAME
from guardian.policy import ChangeKind, Operation, Outcome, PathChange, PolicyEngine, stricter
from guardian.query.rollbacks import (
    NOT_EXPLAINED,
    Change,
    ContentAges,
    GitReason,
    classify,
    deciding_versions,
    explain,
    judge,
)
from guardian.query.userrepo import InProgress, UserRepo, parse_reflog_line
from guardian.trust.grants import covering_grant
from guardian.util.fs import atomic_write_file

if TYPE_CHECKING:
    from guardian.capture.engine import SnapshotResult
    from guardian.catalog.db import Catalog, VersionRow
    from guardian.project import Project
    from guardian.store.repo import ShadowRepo

# The watcher's log file names the logger on every line; enforcement is the watcher's work.
log = logging.getLogger("guardian.watch.watcher")

_CONTENT_CHANGES = ("add", "modify", "delete")
_LOCATE_AGAIN = 30.0  # seconds before a project outside git is looked at again (git init)
_POLL_EVERY = 0.05  # how often changes that wait for git are looked at again
_BUSY_LIMIT = 15.0  # git busy longer than this (a stale index.lock): act anyway
_TRANSIENT_SECONDS = 5  # a file seen only by the watcher, deleted this soon after it appeared, was temporary


@dataclass
class _Deferred:
    """A protected change judged later: what the path held before, since when, and what it waits for."""

    before_blob: str | None
    since: float
    waits_for: str  # "rebase": until the rebase has ended; "git": until git (or its hook) is done
    captured_at: float  # when the change that waits was captured
    started: float = field(default_factory=time.monotonic)


@dataclass
class Enforcer:
    """The watcher's enforcement: holds the user's git repository and the rebases under way."""

    project: Project
    engine: PolicyEngine = field(init=False)
    _repo: UserRepo | None = field(default=None, init=False)
    _located: float | None = field(default=None, init=False)
    _deferred: dict[str, _Deferred] = field(default_factory=dict, init=False)
    _next_poll: float = field(default=0.0, init=False)
    _busy_seen: tuple[float, str | None] | None = field(default=None, init=False)
    _merged: MergeMemory = field(init=False)  # contents a merge brought in

    def __post_init__(self) -> None:
        self.engine = PolicyEngine.from_policy(self.project.policy)
        self._merged = MergeMemory(self.project.paths.store)

    def use(self, project: Project) -> None:
        """The policy in force changed: judge with it from now on."""
        self.project = project
        self.engine = PolicyEngine.from_policy(project.policy)

    @property
    def waiting(self) -> bool:
        """Whether changes wait for a rebase to end or git to finish (the watcher then calls :meth:`poll`)."""
        return bool(self._deferred)

    @property
    def next_poll(self) -> float | None:
        """When :meth:`poll` has work (a ``time.monotonic`` time), or None with nothing waiting."""
        return self._next_poll if self._deferred else None

    # ------------------------------------------------------------------ entry points

    def enforce(self, result: SnapshotResult, catalog: Catalog, repo: ShadowRepo | None = None) -> list[Enforcement]:
        """Judge every protected change ``result`` captured; undo what the policy does not let stand."""
        if result.snapshot is None:
            return []
        changed = [f.path for f in result.files if f.change in _CONTENT_CHANGES and self.engine.is_protected(f.path)]
        if not changed:
            return []
        git = self.git()
        progress = git.in_progress() if git is not None else None
        merging = progress is not None and bool(progress.merge_heads)
        verdicts: list[Verdict] = []
        for rel in changed:
            deferred = self._deferred.get(rel)
            before = deferred.before_blob if deferred is not None else None
            upto = deciding_versions(catalog, rel, result.snapshot, before)  # not the whole history
            if not upto:
                continue
            blob = upto[-1].blob
            if merging and blob is not None and git is not None:
                # Captured while a merge is under way (its result, conflict markers, a resolution):
                # `merge --abort` or a reset that takes it out again is not a rollback.
                self._merged.add(rel, blob, git)
            rebasing = progress is not None and progress.rebase
            if deferred is not None and not (deferred.waits_for == "rebase" and rebasing):
                del self._deferred[rel]
            verdict = self._judge(catalog, upto, git, progress, deferred, result.time)
            if verdict is not None:
                verdicts.append(verdict)
        return self._act(verdicts, repo)

    def poll(self, catalog: Catalog, pending: Container[str], repo: ShadowRepo | None = None) -> list[Enforcement]:
        """Judge the changes that waited, once the rebase has ended or git is done (``pending`` paths wait on).

        A path still ``pending`` is about to be captured again: that capture judges it.
        """
        now = time.monotonic()
        if not self._deferred or now < self._next_poll:
            return []
        self._next_poll = now + _POLL_EVERY
        git = self.git()
        if git is None:
            self._deferred.clear()
            return []
        progress = git.in_progress()
        rebase = progress.rebase
        busy = self._busy(git, fresh=True) if any(d.waits_for == "git" for d in self._deferred.values()) else None
        verdicts: list[Verdict] = []
        for rel, deferred in list(self._deferred.items()):
            if rel in pending or (deferred.waits_for == "rebase" and rebase):
                continue
            if deferred.waits_for == "git" and busy is not None and now - deferred.started < _BUSY_LIMIT:
                continue
            del self._deferred[rel]
            upto = deciding_versions(catalog, rel, None, deferred.before_blob)
            if not upto:
                continue
            verdict = self._judge(catalog, upto, git, progress, deferred, deferred.captured_at)
            if verdict is not None:
                verdicts.append(verdict)
        return self._act(verdicts, repo)

    def _busy(self, git: UserRepo, fresh: bool = False) -> str | None:
        """What git is doing in the work tree now (looked at once per batch, or afresh), or None."""
        now = time.monotonic()
        if fresh or self._busy_seen is None or now - self._busy_seen[0] > _POLL_EVERY:
            self._busy_seen = (now, git.busy())
        return self._busy_seen[1]

    def _wait_for_git(self, rel: str, before: str | None, since: float, captured_at: float) -> None:
        if rel not in self._deferred:
            self._deferred[rel] = _Deferred(before, since, "git", captured_at)
        self._next_poll = time.monotonic() + _POLL_EVERY
        log.info("enforce: %s; judging %s once it is done", self._busy_seen[1] if self._busy_seen else "git", rel)

    def git(self) -> UserRepo | None:
        """The user's git repository around the root (looked for again now and then while there is none)."""
        now = time.monotonic()
        if self._repo is None and (self._located is None or now - self._located > _LOCATE_AGAIN):
            self._located = now
            self._repo = UserRepo.locate(self.project.root)
        return self._repo

    # ------------------------------------------------------------------ judging one change

    def _judge(
        self,
        catalog: Catalog,
        upto: list[VersionRow],
        git: UserRepo | None,
        progress: InProgress | None,
        deferred: _Deferred | None,
        captured_at: float,
    ) -> Verdict | None:
        """Judge the newest of ``upto``: the versions that decide its change (``deciding_versions``)."""
        index = len(upto) - 1
        version = upto[index]
        rel = version.path
        before = deferred.before_blob if deferred is not None else None
        ages = ContentAges()
        ages.add_versions(upto)
        change = classify(upto, index, ages, before)  # by the snapshots alone: no git yet
        if change is None:
            return None
        if change.kind == "delete" and _transient(catalog, version):
            log.debug("enforce: %s lived only moments (a tool's temporary file): its deletion stands", rel)
            return None
        plain_edit = change.kind == "edit" and self._rule(rel, change) is None
        if plain_edit and (git is None or version.blob is None or not git.has_object(version.blob)):
            return None  # new content, and git holds no older copy of it: an edit nobody judges
        since = deferred.since if deferred is not None else (change.previous.ts if change.previous else None)
        patient = deferred is None or (
            deferred.waits_for == "git" and time.monotonic() - deferred.started < _BUSY_LIMIT
        )
        if git is not None and patient and self._busy(git):
            # Never race git in its own work tree, nor ask it anything while it writes there: a guardian
            # hook may be deciding about this very change, put it back itself and refuse the command.
            if before is None and change.replaced is not None:
                before = change.replaced.blob
            self._wait_for_git(rel, before, since if since is not None else version.ts, captured_at)
            return None
        change = judge(upto, index, git, rel, before, ages=ages)  # git's history, when the snapshots say edit
        if change is None:
            return None
        decided = self._rule(rel, change)
        if decided is None:
            return None
        operation, outcome, rule = decided
        reason = NOT_EXPLAINED
        if git is not None and since is not None:
            replaced = change.replaced.blob if change.replaced is not None else None
            if deferred is not None:
                replaced = deferred.before_blob
            reason = explain(git, rel, version.blob, replaced, since, in_progress=progress)
            reason = self._merge_memory(rel, reason, replaced, progress, git)
        if reason.deferred:
            if rel not in self._deferred:
                before = change.replaced.blob if change.replaced is not None else None
                self._deferred[rel] = _Deferred(
                    before, since if since is not None else version.ts, "rebase", captured_at
                )
            log.info("enforce: %s %s by %s: judged once the rebase ends", change.kind, rel, reason.process)
            return None
        if reason.explained:
            log.info("enforce: kept %s of %s: %s moved it there (nothing is lost)", change.kind, rel, reason.process)
            return None
        target = _target(catalog, version)
        if target is None or target.blob == version.blob:
            return None
        before = deferred.before_blob if deferred is not None else None
        if deferred is None and change.replaced is not None:
            before = change.replaced.blob
        return Verdict(
            rel,
            change,
            operation,
            outcome,
            rule,
            reason.process,
            version.snapshot,
            captured_at,
            target,
            before,
            since if since is not None else version.ts,
        )

    def _rule(self, rel: str, change: Change) -> tuple[Operation, str, ProtectRule] | None:
        """(operation, outcome, deciding rule) when the policy does not simply allow the change."""
        if change.kind == "edit":
            if rel == POLICY_FILENAME:
                return None  # the trusted policy keeps a weakening edit out of force
            explicit = [(r, r.modify) for r in self.engine.rules_for(rel) if r.modify is not None]
            if not explicit:
                return None  # edits are judged only where the policy says so
            outcome: Outcome = "allow"
            for _rule, action in explicit:
                outcome = stricter(outcome, action)
            rule = next(r for r, action in explicit if action == outcome)
            return None if outcome == "allow" else ("modify", outcome, rule)
        operation: Operation = "delete" if change.kind == "delete" else "rollback"
        kind: ChangeKind = "delete" if change.kind == "delete" else "modify"
        decided = self.engine.decide_path(operation, PathChange(rel, kind))
        deciding = self.engine.rule_for(rel, operation, kind)
        if decided.outcome == "allow" or deciding is None:
            return None
        return operation, decided.outcome, deciding

    def _merge_memory(
        self, rel: str, reason: GitReason, replaced: str | None, progress: InProgress | None, git: UserRepo
    ) -> GitReason:
        """A merge under way brought content in; an abort (or a reset) that takes it out again loses nothing."""
        merging = progress is not None and bool(progress.merge_heads)
        if (
            not reason.explained
            and not merging
            and replaced is not None
            and self._merged.holds(rel, replaced)
            and self._merged.head_stayed(git)
        ):
            self._merged.forget(rel)
            return GitReason(True, "git merge --abort (or a reset of the merge)")
        if not merging:
            self._merged.forget(rel)
        return reason

    # ------------------------------------------------------------------ acting

    def _act(self, verdicts: Sequence[Verdict], repo: ShadowRepo | None) -> list[Enforcement]:
        done: list[Enforcement] = []
        undo: list[Verdict] = []
        store = self.project.paths.store
        for v in verdicts:
            grant = covering_grant(store, v.operation, v.path) if v.outcome == "force" else None
            if grant is not None:
                done.append(granted(v, grant))
            else:
                undo.append(v)
        if undo:
            done.extend(undo_changes(self.project, undo, repo))
        if done:
            record(self.project, done)
        return done


def enforce_capture(project: Project, result: SnapshotResult) -> list[Enforcement]:
    """Enforce the policy on one capture's changes (the watcher keeps an :class:`Enforcer` instead)."""
    catalog = project.open_catalog()
    try:
        return Enforcer(project).enforce(result, catalog)
    finally:
        catalog.close()


# --------------------------------------------------------------------------- what a merge brought in

MERGE_MEMORY_FILE = "enforce-merge.json"


class MergeMemory:
    """The contents captured at protected paths while a merge was under way, kept in the store.

    ``git merge --abort`` (or a reset) that takes them out again loses nothing, so it is
    not a rollback.  They must outlive the watcher: the conflict markers and resolutions a
    merge leaves were never git objects, so git's state cannot name them to a watcher
    restarted mid-merge, and one that was stopped while the merge was aborted finds no
    merge at all.  ``<store>/enforce-merge.json`` holds them, rewritten atomically on each
    change; a path is forgotten once a change to it is judged with no merge under way, and
    the file is removed when nothing is left.

    The memory excuses only the merge's own end.  A merge that was committed and then
    reset away is a rewind like any other, so the memory also keeps where HEAD stood and
    how long HEAD's reflog was when the merge began: once HEAD's reflog records a move
    anywhere else (the merge commit), the memory no longer excuses anything.
    """

    def __init__(self, store: Path) -> None:
        self.path = store / MERGE_MEMORY_FILE
        self._head: str | None = None  # HEAD when the merge began
        self._reflog_size = 0  # bytes in HEAD's reflog then
        self._blobs = self._load()

    def _load(self) -> dict[str, set[str]]:
        try:
            raw = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("enforce: cannot read %s (%s): starting without what a merge brought in", self.path, exc)
            return {}
        paths = raw.get("paths") if isinstance(raw, dict) else None
        if not isinstance(paths, dict):
            return {}
        head, size = raw.get("head"), raw.get("reflog_size")
        if not isinstance(head, str) or not isinstance(size, int):
            return {}  # written before HEAD was kept: it cannot tell its merge's end from a later reset
        self._head, self._reflog_size = head, size
        return {str(rel): {str(b) for b in blobs} for rel, blobs in paths.items() if isinstance(blobs, list)}

    def add(self, rel: str, blob: str, git: UserRepo) -> None:
        if not self._blobs:
            self._head, self._reflog_size = _head_and_reflog_size(git)
        if blob not in self._blobs.get(rel, ()):
            self._blobs.setdefault(rel, set()).add(blob)
            self._save()

    def head_stayed(self, git: UserRepo) -> bool:
        """Whether HEAD has moved nowhere but where the merge began since it began (an abort, not a commit)."""
        if self._head is None:
            return False
        try:
            with open(_head_reflog(git), "rb") as handle:
                if handle.seek(0, os.SEEK_END) < self._reflog_size:
                    return False  # the reflog was expired or rewritten: no way to tell
                handle.seek(self._reflog_size)
                since = handle.read()
        except OSError:
            return False
        for line in os.fsdecode(since).splitlines():
            entry = parse_reflog_line(line)
            if entry is not None and entry.new != self._head:
                return False
        return True

    def holds(self, rel: str, blob: str) -> bool:
        return blob in self._blobs.get(rel, ())

    def forget(self, rel: str) -> None:
        if self._blobs.pop(rel, None) is not None:
            self._save()

    def _save(self) -> None:
        try:
            if not self._blobs:
                self.path.unlink(missing_ok=True)
                return
            paths = {rel: sorted(blobs) for rel, blobs in sorted(self._blobs.items())}
            record = {"version": 2, "head": self._head, "reflog_size": self._reflog_size, "paths": paths}
            atomic_write_file(self.path, (json.dumps(record, indent=1) + "\n").encode())
        except OSError as exc:  # the watcher still knows them until it stops
            log.warning("enforce: cannot keep what the merge brought in at %s: %s", self.path, exc)


def _head_reflog(git: UserRepo) -> Path:
    return git.git_dir / "logs" / "HEAD"


def _head_and_reflog_size(git: UserRepo) -> tuple[str | None, int]:
    """HEAD now (its reflog's last entry) and the reflog's size in bytes."""
    try:
        size = os.path.getsize(_head_reflog(git))
    except OSError:
        return None, 0
    entries = git.reflog("HEAD")
    return (entries[-1].new if entries else None), size


# --------------------------------------------------------------------------- helpers


def _transient(catalog: Catalog, deleted: VersionRow) -> bool:
    """Whether the file ``deleted`` removed lived only moments, seen only by the watcher (rsync's temp files).

    Such a file was never part of a state anyone relied on; bringing it back would leave
    a stray copy next to the real one.  A file a snapshot, git hook or restore recorded is
    established, however young.  Its life: the versions since the deletion before this one.
    """
    path, seq = deleted.path, deleted.seq
    last_deletion = catalog.newest_version(path, before=seq, kind="deletion")
    after = last_deletion.seq if last_deletion is not None else None
    first = catalog.first_version_between(path, after, seq)
    if first is None or deleted.ts - first.ts >= _TRANSIENT_SECONDS:
        return False
    return not catalog.any_trigger_but(path, "watch", after, seq)  # only then: a short life, a short scan


def _target(catalog: Catalog, changed: VersionRow) -> VersionRow | None:
    """The version to put back: the newest valid one before the change, else the newest with content."""
    valid = catalog.newest_version(changed.path, before=changed.seq, kind="valid")
    return valid if valid is not None else catalog.newest_version(changed.path, before=changed.seq, kind="restorable")
