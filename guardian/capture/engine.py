"""Taking snapshots: filesystem state -> verdicts -> shadow commit -> event log -> catalog.

The order of durable steps is what makes a crash at any point harmless:
blobs, then trees, then the commit, then the compare-and-swap ref update (the
snapshot exists from here on), then the event, then the catalog.  Whatever is
after the crash is derived data: on the next open the catalog catches up from
git and any snapshot event that never got written is appended as "recovered".
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Iterable
from typing import Any

from guardian.capture.filters import PathFilter
from guardian.capture.health import note_capture, note_failure
from guardian.capture.lookahead import LookAhead, git_mode, stat_key
from guardian.capture.lookahead import stat_matches as stat_matches
from guardian.capture.parsepool import Parsed, parse_pool
from guardian.capture.reading import FileReader as FileReader
from guardian.capture.reading import grew_reason
from guardian.capture.result import CapturedFile as CapturedFile
from guardian.capture.result import SnapshotResult as SnapshotResult
from guardian.capture.result import summarize as summarize
from guardian.capture.secret_record import secret_events
from guardian.capture.sqlite import is_sqlite_bytes, with_wal
from guardian.capture.validate import (
    MAX_PARSE_BYTES,
    checks_for,
    content_passed_before,
    is_in_progress,
    judge,
)
from guardian.capture.walk import DirectoryModes, Problem, describe_os_error, too_deep, too_deep_reason, under_any
from guardian.capture.walk import walk_tree as walk_tree
from guardian.capture.writers import OpenWriters
from guardian.catalog.db import Catalog, FileRow, NewVersion
from guardian.config import CheckSpec
from guardian.errors import PathRefused
from guardian.project import Project
from guardian.store.repo import ShadowRepo
from guardian.store.trailers import format_message
from guardian.store.tree import MODE_LINK, Entry
from guardian.trust.policy import accepted_path
from guardian.util.crash import crash_point
from guardian.util.fs import is_stale_temp, lstat_at, open_parent

ProgressFn = Callable[[int, int], None]


# --------------------------------------------------------------------------- scanning

# Files whose stat data a full scan compares with the catalog in one query.
SCAN_CHUNK = 500


def judge_content(
    project: Project,
    catalog: Catalog,
    repo: ShadowRepo,
    writers: OpenWriters,
    rel: str,
    kind: str,
    data: bytes,
    damage: str | None = None,
    blob: str | None = None,
    *,
    checks: tuple[CheckSpec, ...] | None = None,
    found: Parsed | None = None,
    history: bool = True,
    writer: str | None = None,
    writer_known: bool = False,
) -> tuple[str, str]:
    """The verdict for one file's content: the single place snapshots and the guardrail judge.

    The last valid version's content is read from ``repo`` when a torn-write check can use
    it (both small enough to compare); ``writers`` says whether a process still has the file
    open for writing.  ``damage``: why SQLite could not open a file that starts like a database.
    With ``blob`` (data's id), content the store already found valid at this path is not parsed again.
    ``checks``: checks_for(rel) if the caller has it already; ``found``: what a parse worker's
    pure checks found (see validate.judge).  Without ``history`` (the catalog has no version of
    any file) there is no earlier version to compare with, and none is looked up.  With
    ``writer_known``, ``writer`` is open_writer's answer for this content, asked already.
    """
    if kind == "symlink":
        return "valid", ""
    policy = project.policy
    if checks is None:
        checks = checks_for(rel, policy.validate)
    if is_sqlite_bytes(data) and all(spec.name != "sqlite" for spec in checks):
        checks = (*checks, CheckSpec(name="sqlite"))  # a database is checked as one whatever its name

    def last_valid_content() -> bytes | None:
        # Read only when a torn-write check can apply; bounded like the parse checks.
        valid = catalog.latest_valid(rel)
        if valid is None or valid.blob is None or valid.size is None or valid.size > MAX_PARSE_BYTES:
            return None
        return repo.read_blob(valid.blob)

    verdict = judge(
        rel,
        data,
        checks,
        last_valid_size=catalog.last_valid_size(rel) if history else None,
        suspect=policy.suspect,
        cwd=project.root,  # user command checks run from the root, so "./scripts/x" resolves
        previous=last_valid_content if history else None,
        writer=writer if writer_known else open_writer(writers, rel, kind, data),
        content_passed=history
        and blob is not None
        and damage is None
        and content_passed_before(
            catalog, (accepted_path(project.paths.store), project.paths.policy_file), rel, blob, checks
        ),
        found=found,
    )
    if damage is not None:
        found_too = verdict.reason if verdict.verdict == "invalid" and verdict.reason != damage else ""
        return "invalid", f"{damage}; {found_too}" if found_too else damage
    return verdict.verdict, verdict.reason


def open_writer(writers: OpenWriters, rel: str, kind: str, data: bytes) -> str | None:
    """The process that still has rel open for writing, if its content may not be settled yet.

    SQLite content is left out: it is read through the backup API, which gives a consistent
    image however many connections have the database open.
    """
    if kind != "file" or is_sqlite_bytes(data):
        return None
    return writers.describe(rel)


# --------------------------------------------------------------------------- capture


class Capture:
    """One snapshot transaction; the caller holds the writer lock."""

    def __init__(self, project: Project, repo: ShadowRepo, catalog: Catalog) -> None:
        self.project = project
        self.repo = repo
        self.catalog = catalog
        self.keep = PathFilter(project.root, project.policy.watch, project.policy.protect_rules)
        self.reader = FileReader(project)
        # Near the store's size cap or free-space floor, which files to skip (lifecycle.CaptureBudget:
        # (path, size) -> why, or None).  None captures everything.
        self.budget: Callable[[str, int], str | None] | None = None
        # ``.guardian-tmp-*`` files the last full scan walked past (see sweep_temps).
        self.temps: list[str] = []
        # Who has files open for writing: a fresh look at /proc for each run, taken on first need.
        self._writers = OpenWriters(project.root)
        # Paths the last walk could not look at or enter (unreadable or too deep), with why.
        self.problems: list[Problem] = []
        # The permission bits of the directories this run's walks entered (see DirectoryModes).
        self._walked_dirs: dict[str, int] = {}

    def scan(self) -> tuple[dict[str, os.stat_result], dict[str, FileRow | None], set[str]]:
        """A full scan that keeps only what it must look at: (changed files, their rows, gone paths).

        The walk's stat data is compared with the catalog a chunk at a time, so memory holds
        the changed files and the set of paths seen, not every stat result and every row.
        Unchanged files are not read.  Tracked files no longer on disk, or no longer
        captured (the filter changed), are gone.
        """
        self.temps = []
        present: dict[str, os.stat_result] = {}
        rows: dict[str, FileRow | None] = {}
        seen: set[str] = set()
        chunk: list[tuple[str, os.stat_result]] = []

        def settle() -> None:
            # stat_matches, asked of the few fields it compares: rows are built for changed files only.
            known = self.catalog.stat_keys([rel for rel, _st in chunk])
            changed = [(rel, st) for rel, st in chunk if known.get(rel) != stat_key(st)]
            if changed:
                found = self.catalog.files_named([rel for rel, _st in changed])
                for rel, st in changed:
                    present[rel] = st
                    rows[rel] = found.get(rel)
            chunk.clear()

        walk = walk_tree(self.project.root, self.keep, temps=self.temps, problems=self.problems, dirs=self._walked_dirs)
        for rel, st in walk:
            seen.add(rel)
            chunk.append((rel, st))
            if len(chunk) >= SCAN_CHUNK:
                settle()
        settle()
        # Under a directory that could not be listed, a file not seen is not gone.
        unseen = [p for p, _why in self.problems]
        gone = {rel for rel in self.catalog.paths() if rel not in seen and not under_any(rel, unseen)}
        return present, rows, gone

    def candidates(self, paths: Iterable[str]) -> tuple[dict[str, os.stat_result], set[str]]:
        """(present files to look at, tracked paths to check for deletion) for these paths."""
        present: dict[str, os.stat_result] = {}
        gone: set[str] = set()
        root = self.project.root
        for rel in paths:
            if too_deep(rel):
                self.problems.append((rel, too_deep_reason()))
                continue
            try:
                found = lstat_at(root, rel)
            except OSError as exc:  # a parent directory cannot be entered: rel is not gone
                self.problems.append((rel, f"cannot look at it: {describe_os_error(exc)}"))
                continue
            if found is not None and stat.S_ISDIR(found.st_mode):
                if self.keep(rel, is_dir=True):
                    mark = len(self.problems)
                    for sub, sub_st in walk_tree(root, self.keep, rel, problems=self.problems, dirs=self._walked_dirs):
                        present[sub] = sub_st
                    unseen = [p for p, _why in self.problems[mark:]]
                    gone.update(
                        r.path
                        for r in self.catalog.files_under(rel)
                        if r.path not in present and not under_any(r.path, unseen)
                    )
                    continue
                gone.update(r.path for r in self.catalog.files_under(rel) if r.path not in present)
            elif found is not None:
                if self.keep(rel):
                    present[rel] = with_wal(found, lstat_at(root, rel + "-wal"))
                # A file now where a directory used to be: the directory's files are gone.
                gone.update(r.path for r in self.catalog.files_under(rel))
            else:
                if self.catalog.file(rel) is not None:
                    gone.add(rel)
                gone.update(r.path for r in self.catalog.files_under(rel))
        return present, gone

    def run(
        self,
        paths: Iterable[str] | None,
        trigger: str,
        *,
        note: str | None = None,
        accept: Iterable[str] = (),
        source: str | None = None,
        command: str | None = None,
        progress: ProgressFn | None = None,
        details: dict[str, Any] | None = None,
    ) -> SnapshotResult:
        """Capture these paths, or with None whatever a full scan finds changed."""
        self._writers = OpenWriters(self.project.root)
        self.problems = []
        self._walked_dirs = {}
        scope = None if paths is None else list(paths)
        try:
            # The new objects reach disk together at the commit: loose when few, one pack when many.
            with self.repo.staged_writes():
                rows: dict[str, FileRow | None] | None = None
                if scope is None:
                    present, rows, gone = self.scan()
                    self.sweep_temps(trigger)
                else:
                    present, gone = self.candidates(scope)
                result = self._run(present, rows, gone, trigger, note, accept, source, command, progress, details)
        except Exception as exc:
            note_failure(self.project.paths.store, str(exc) or type(exc).__name__)
            raise
        self._note_problems(result, scope)
        return result

    def _run(
        self,
        present: dict[str, os.stat_result],
        rows: dict[str, FileRow | None] | None,
        gone: set[str],
        trigger: str,
        note: str | None,
        accept: Iterable[str],
        source: str | None,
        command: str | None,
        progress: ProgressFn | None,
        details: dict[str, Any] | None,
    ) -> SnapshotResult:
        accept_set = set(accept)
        parent = self.repo.head()
        started = time.time()
        result = SnapshotResult(None, parent, started, trigger)
        changes: dict[str, Entry | None] = {}
        verdicts: dict[str, tuple[str, str]] = {}
        perms: dict[str, int] = {}  # path -> permission bits, for the Guardian-Perm trailers
        dir_modes, dir_perms = DirectoryModes(self.project.root, self._walked_dirs), {}  # Guardian-DirPerm
        versions: list[NewVersion] = []
        stats: list[FileRow] = []
        removed: list[str] = []
        total = len(present) + len(gone)
        done = 0
        # An empty catalog (a first snapshot) has no earlier version of any file to look up; and in a
        # store with no object file yet, a blob is there only if this capture wrote it: no lookup
        # (a miss rescans the pack directory) is needed.  The writer lock keeps other writers out.
        history = self.catalog.last_snapshot() is not None
        written: set[str] | None = set() if parent is None and self.repo.object_files() == ([], []) else None
        with parse_pool(len(present)) as pool, self.reader.keeping_parents():
            reads = LookAhead(
                self.reader, self.catalog, self.project.policy.validate, self.budget, present, rows, accept_set
            )
            for look, found in reads.looks(sorted(present), pool):
                rel, row, kind, data, distrust, oid = look.rel, look.row, look.kind, look.data, look.distrust, look.oid
                done += 1
                if progress is not None and done % 200 == 0:
                    progress(done, total)
                if kind == "same":
                    continue
                if kind == "budget":
                    result.skipped.append((rel, look.why))  # logged as a "skip" event with the snapshot
                    continue
                if kind == "unreadable":  # this file keeps its last version; the rest goes on
                    result.files.append(CapturedFile(rel, "error", present[rel].st_size, "error", look.why))
                    continue
                if kind == "busy":  # a locked database: no stat recorded, so it is read again next time
                    result.deferred.append(rel)
                    result.unstable.append(rel)
                    if rel in self.reader.databases.deferrals:
                        result.skipped.append((rel, self.reader.databases.deferrals.pop(rel)))
                    continue
                if kind in ("missing", "other"):
                    if row is not None and kind == "missing":
                        gone.add(rel)
                    continue
                assert look.st is not None
                st = look.st
                if kind == "toolarge":
                    limit = self.project.policy.watch.max_file_size
                    if distrust is not None:
                        result.unstable.append(rel)
                        result.skipped.append((rel, grew_reason(present[rel].st_size, limit)))
                    else:
                        result.skipped.append((rel, f"{st.st_size} bytes is over watch.max_file_size ({limit})"))
                    continue
                mode = MODE_LINK if kind == "symlink" else git_mode(st.st_mode)
                # git keeps only the exec bit; the permission bits go to the catalog (and, when not the
                # default, a Guardian-Perm trailer) so a deleted 0600 file comes back 0600.
                perm = None if kind == "symlink" else stat.S_IMODE(st.st_mode)
                # A stat that may not describe the data read is stored without mtime: the next scan re-reads.
                mtime_ns = None if distrust is not None else st.st_mtime_ns
                stats.append(FileRow(rel, oid, mode, st.st_size, mtime_ns, st.st_ctime_ns, st.st_ino, perm))
                if distrust == "changed":
                    result.unstable.append(rel)
                unchanged = row is not None and row.blob == oid and row.mode == mode
                settling = False
                if unchanged and rel not in accept_set:
                    # Content captured while its writer still had it open is judged again once the
                    # writer may be done; such a version's stat was stored untrusted (no mtime).
                    if row is None or row.mtime_ns is not None or not self._awaits_settling(rel, oid):
                        continue
                    settling = True
                if written is not None:
                    if oid not in written:
                        self.repo.write_new_blob(data)
                        written.add(oid)
                elif not self.repo.has_object(oid):
                    self.repo.write_new_blob(data)
                crash_point("snapshot-after-blob")
                writer = open_writer(self._writers, rel, kind, data)
                verdict, reason = self._judge(rel, kind, data, oid, look.checks, found, history, writer)
                if writer is not None:
                    # Not settled: make the next scan read it again, and have the watcher look again after
                    # its quiet window (a close event also brings it back).  A version already recorded
                    # as in progress gets no second one while the writer keeps it open.
                    stats[-1] = stats[-1]._replace(mtime_ns=None)
                    if settling:
                        continue
                    if rel not in result.unstable:
                        result.unstable.append(rel)
                if rel in accept_set:
                    verdict, reason = "valid", "accepted by user"
                elif settling:
                    reason = reason or "no longer open for writing"
                    verdicts[rel] = (verdict, reason)  # valid ones too: the catalog rebuilds this version from it
                elif verdict != "valid":
                    verdicts[rel] = (verdict, reason)
                change = "settle" if settling else "accept" if unchanged else ("add" if row is None else "modify")
                if not unchanged:
                    changes[rel] = Entry(oid, mode)
                result.files.append(CapturedFile(rel, change, len(data), verdict, reason, oid, mode))
                versions.append(NewVersion(rel, change, oid, mode, len(data), verdict, reason, perm))
                dir_perms.update(dir_modes.above(rel))
                if perm is not None:
                    perms[rel] = perm
        for rel in sorted(gone):
            if rel in changes:
                continue
            changes[rel] = None
            removed.append(rel)
            result.files.append(CapturedFile(rel, "delete", None, "valid", ""))
            versions.append(NewVersion(rel, "delete", None, None, None, "valid", ""))
        if progress is not None:
            progress(total, total)
        accepted = [f.path for f in result.files if f.reason == "accepted by user"]
        settled = [f.path for f in result.files if f.change == "settle"]
        result.skipped.extend(self.problems)
        if not changes and not accepted and not settled:
            self.catalog.update_stats(stats)
            deferred = [(p, why) for p, why in result.skipped if p in result.deferred]
            for path, why in deferred:  # no snapshot carries these "skip" events: log them alone
                self.project.events.append("skip", [path], None, trigger, {"pid": os.getpid(), "reason": why})
            return result
        summary = summarize(trigger, result.files)
        message = format_message(summary, trigger, verdicts, accepted, source, command, note, perms, dir_perms)
        commit_id = self.repo.commit(changes, message, parent, started)
        result.snapshot = commit_id
        self._log(result, details or {})
        crash_point("snapshot-after-event")
        self.catalog.record_snapshot(commit_id, float(int(started)), trigger, summary, versions, stats, removed)
        return result

    def sweep_temps(self, trigger: str) -> list[str]:
        """Remove the stale ``.guardian-tmp-*`` files the full scan walked past, and log a repair.

        They are a killed restore's half-done copies (up to the size of the file); a
        live writer's temp is kept (its pid is in the name), and every user-file write
        runs under the writer lock, which the caller holds.
        """
        removed: list[str] = []
        for rel in self.temps:
            try:
                with open_parent(self.project.root, rel) as (dir_fd, leaf):
                    if not is_stale_temp(leaf):
                        continue
                    os.unlink(leaf, dir_fd=dir_fd)
            except (OSError, PathRefused):
                continue
            removed.append(rel)
        self.temps = []
        if removed:
            details = {"removed_temp_files": removed[:1000], "reason": "left by a killed guardian write"}
            self.project.events.append("repair", removed[:1000], None, trigger, details)
        return removed

    def _judge(
        self,
        rel: str,
        kind: str,
        data: bytes,
        blob: str,
        checks: tuple[CheckSpec, ...] | None = None,
        found: Parsed | None = None,
        history: bool = True,
        writer: str | None = None,
    ) -> tuple[str, str]:
        damage = self.reader.databases.damaged.pop(rel, None)
        try:
            return judge_content(
                self.project,
                self.catalog,
                self.repo,
                self._writers,
                rel,
                kind,
                data,
                damage,
                blob,
                checks=checks,
                found=found,
                history=history,
                writer=writer,
                writer_known=True,
            )
        except Exception as exc:  # noqa: BLE001 - a broken check must not stop the capture of every file
            return "error", f"could not be checked: {type(exc).__name__}: {exc}"[:300]

    def _note_problems(self, result: SnapshotResult, scope: list[str] | None) -> None:
        """Record what this capture could not read or skipped, and log what is new since the last one.

        With a snapshot, its own events name every problem; without one, only new problems
        are logged, so a file that stays unreadable is not logged again at every rescan.
        """
        found = {path: ("skip", why) for path, why in result.skipped}
        found.update({f.path: ("error", f.reason) for f in result.files if f.change == "error"})
        fresh = note_capture(self.project.paths.store, scope, found)
        if result.snapshot is not None:
            return
        from guardian.events import Event, current_user, now_iso

        base = {"user": current_user(), "pid": os.getpid()}
        records = [
            Event(now_iso(), "verdict", [path], None, result.trigger, {**base, "verdict": "error", "reason": why})
            if kind == "error"
            else Event(now_iso(), "skip", [path], None, result.trigger, {**base, "reason": why})
            for path, kind, why in fresh
            if path not in result.deferred  # logged already, once per wait
        ]
        # Versions a watcher or hook capture queued for the secret scan wait for no new snapshot.
        records.extend(secret_events(self.project, self.repo, result, base))
        if records:
            self.project.events.append_many(records, durable=False)

    def _awaits_settling(self, rel: str, oid: str) -> bool:
        """Whether rel's latest version is this content, recorded while its writer still had it open."""
        valid = self.catalog.latest_valid(rel)
        if valid is not None and valid.blob == oid:
            return False  # the cheap common answer: this content is already a valid version
        versions = self.catalog.versions_of(rel)
        return bool(versions) and versions[-1].blob == oid and is_in_progress(versions[-1].reason)

    def _log(self, result: SnapshotResult, details: dict[str, Any]) -> None:
        from guardian.events import Event, current_user, now_iso

        base = {"user": current_user(), "pid": os.getpid()}
        changed = [f.path for f in result.files]
        records = [
            Event(
                now_iso(),
                "snapshot",
                changed[:1000],
                result.snapshot,
                result.trigger,
                {**base, **details, "files": len(changed), "bad": len(result.bad)},
            )
        ]
        for f in result.bad:
            records.append(
                Event(
                    now_iso(),
                    "verdict",
                    [f.path],
                    result.snapshot,
                    result.trigger,
                    {**base, "verdict": f.verdict, "reason": f.reason, "size": f.size},
                )
            )
        for path, reason in result.skipped:
            records.append(
                Event(now_iso(), "skip", [path], result.snapshot, result.trigger, {**base, "reason": reason})
            )
        records.extend(secret_events(self.project, self.repo, result, base))
        # Snapshot events are re-derived from git if lost (sync_catalog), so they skip the fsync.
        self.project.events.append_many(records, durable=False)
