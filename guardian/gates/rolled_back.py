"""A standing rollback as drift: a protected file whose content went back to an older version.

Without a watcher nothing undoes ``git reset --hard OLD`` or a ``cp`` of an old copy at the
moment it happens, and the old content parses, so the guardrail's verdicts call it valid.
``guardian check`` asks this module instead: a protected file drifts when its content now
(captured or not) first appeared, in guardian's snapshots or in git's history of the path,
before the content it replaced, and the newest valid version is something else.  The
classification is ``guardian.query.rollbacks``'s, the one the watcher's enforcement,
``history`` and a bare-name ``restore`` use, so all of them tell the same story.

It is not drift when the policy lets the path be rolled back (``rollback: allow``), when
git explains the move (a switch, a merge, a forward reset: see ``rollbacks.explain``), when
guardian itself wrote it (restore, rollback, the watcher's undo), or when a force grant
covered it: one in effect now, or one the event log shows was in effect when the change
happened (the file's mtime when no snapshot caught it), so an intended rollback does not
turn into drift once its grant expires.  A ``block`` rule's path is never granted.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from typing import NamedTuple

from guardian.catalog.db import Catalog, FileRow, VersionRow
from guardian.policy import PathChange, PolicyEngine
from guardian.project import Project
from guardian.query.rollbacks import ContentAges, classify, path_story, rollback_at
from guardian.query.userrepo import PathCommit, UserRepo
from guardian.trust.grants import DEFAULT_GRANT_SECONDS, Grant, covering_grant
from guardian.util.git import GitError, run_git
from guardian.util.times import format_time

PROBLEM = "rolled-back"
_GRANT_EVENTS = 500  # the newest grant events read back from the log's end
_HISTORY_BATCH = 500  # paths per 'git log' call
_GIT_TIMEOUT = 30.0


class StandingRollback(NamedTuple):
    """The fields of a ``guardrail.Drift`` after its path, for a rolled-back file."""

    problem: str
    detail: str
    protected: bool
    last_valid_snapshot: str
    last_valid_time: float


class RollbackFinder:
    """Finds standing rollbacks of protected files against one catalog.  Reads only."""

    def __init__(self, project: Project, catalog: Catalog, engine: PolicyEngine) -> None:
        self.project = project
        self.catalog = catalog
        self.engine = engine
        self._git: UserRepo | None = None
        self._git_located = False
        self._grants: list[Grant] | None = None
        self._noted: list[str] = []
        self._protected: set[str] = set()  # the noted files a rule covers: no second policy match for them
        self._history: dict[str, list[PathCommit]] | None = None

    def note(self, rows: list[FileRow]) -> list[FileRow]:
        """The files this check will look at (returned as given): git's history of them is read in one go."""
        self._noted = [r.path for r in rows if self.engine.is_protected(r.path)]
        self._protected = set(self._noted)
        return rows

    def find(self, rel: str, blob: str, st: os.stat_result) -> StandingRollback | None:
        """Is ``blob`` (rel's content now, whose stat is ``st``) a rollback that nothing explains or granted?"""
        if rel not in self._protected and not self.engine.is_protected(rel):
            return None
        versions = self.catalog.versions_of(rel)
        if not versions:
            return None
        latest = versions[-1]
        if latest.blob != blob:
            # Not captured yet (no watcher ran): judge what is on disk as if it were captured now.
            versions = [*versions, _uncaptured(latest, blob, st)]
        ages = ContentAges()
        ages.add_versions(versions)
        # The cheap questions first (most files were only ever edited forward): classify by the
        # snapshots, and ask git only about content it holds that the snapshots call new.
        change = classify(versions, len(versions) - 1, ages)
        if change is None or change.replaced is None:
            return None  # unchanged, or nothing earlier to go back from
        git = self.git()
        if change.kind == "edit":
            if git is None or not git.has_object(blob):
                return None
            ages.add_git(self._git_history(git, rel))  # every noted file's history comes in one call
            change = classify(versions, len(versions) - 1, ages)
            if change is None or change.kind != "rollback":
                return None
        outcome = self.engine.decide_path("rollback", PathChange(rel, "modify")).outcome
        if outcome == "allow":
            return None
        rollback = rollback_at(versions, len(versions) - 1, ages, git, rel)  # guardian's own write? git's move?
        if rollback is None or rollback.change.origin is None:
            return None
        # A grant never lets a 'block' rule's path be rolled back, as with the watcher's enforcement.
        if outcome != "block" and (
            covering_grant(self.project.paths.store, "rollback", rel) is not None
            or self._granted_at(rel, rollback.version.ts)
        ):
            return None
        story = path_story(self.project, versions, rel)
        newest = story.newest_valid
        if story.rollback is None or story.rollback.version.seq != rollback.version.seq:
            return None  # the watcher's log says a grant let it stand
        if newest is None or newest.blob == blob:
            return None
        by = f", by {rollback.process}" if rollback.process else ""
        detail = (
            f"rolled back to {rollback.change.origin.describe()}{by}; newest valid version is snapshot "
            f"{newest.snapshot[:12]} ({format_time(newest.ts)})"
        )
        return StandingRollback(PROBLEM, detail, True, newest.snapshot, newest.ts)

    def git(self) -> UserRepo | None:
        if not self._git_located:
            self._git_located = True
            self._git = UserRepo.locate(self.project.root)
        return self._git

    def _git_history(self, git: UserRepo, rel: str) -> list[PathCommit]:
        if self._history is None:
            self._history = {}
            for start in range(0, len(self._noted), _HISTORY_BATCH):
                self._history.update(_path_histories(git, self._noted[start : start + _HISTORY_BATCH]))
        found = self._history.get(rel)
        return found if found is not None else git.path_history(rel)

    def _granted_at(self, rel: str, when: float) -> bool:
        """Did a rollback grant on rel, as the event log records them, cover the moment ``when``?"""
        if self._grants is None:
            self._grants = []
            for event in self.project.events.recent(["grant"], limit=_GRANT_EVENTS):
                created = _timestamp(event.ts)
                if created is None or event.details.get("operation") != "rollback":
                    continue
                expires = event.details.get("expires")
                until = float(expires) if isinstance(expires, (int, float)) else created + DEFAULT_GRANT_SECONDS
                grant_id = str(event.details.get("grant", ""))
                self._grants.append(Grant(grant_id, "rollback", tuple(event.paths), created, until, ""))
        # Snapshot and file times are whole seconds or finer: a second's slack either side.
        return any(g.covers("rollback", rel) and g.created - 1 <= when <= g.expires + 1 for g in self._grants)


def _path_histories(git: UserRepo, paths: Sequence[str]) -> dict[str, list[PathCommit]]:
    """``UserRepo.path_history`` of many paths in one ``git log``: path -> its commits, parents first.

    A path git quotes (a tab or newline in its name) is left out: it is asked on its own.
    Best effort: a failing git gives no history.
    """
    # git quotes a name with a control character, a quote or a backslash even with core.quotepath off.
    found: dict[str, list[PathCommit]] = {p: [] for p in paths if not any(c < " " or c in '"\\' for c in p)}
    if not found:
        return found
    args = ["log", "--all", "--reflog", "--topo-order", "--reverse", "--format=%x01%H %ct", "--raw"]
    args += ["--no-abbrev", "--no-renames", "--relative", "--", *found]
    try:
        result = run_git(args, cwd=git.cwd, timeout=_GIT_TIMEOUT, check=False)
    except GitError:
        return {}
    if not result.ok:
        return {}
    commit, when = "", 0
    for line in os.fsdecode(result.stdout).splitlines():
        if line.startswith("\x01"):
            commit, _, stamp = line[1:].partition(" ")
            when = int(stamp or 0)
            continue
        meta, tab, path = line.partition("\t")
        fields = meta.split()
        if not line.startswith(":") or not tab or len(fields) < 5 or path not in found:
            continue
        old, new = _oid(fields[2]), _oid(fields[3])
        if old or new:
            found[path].append(PathCommit(commit, when, old, new))
    return found


def _oid(text: str) -> str | None:
    return None if not text.strip("0") or len(text) != 40 else text


def _uncaptured(latest: VersionRow, blob: str, st: os.stat_result) -> VersionRow:
    """rel's content on disk as a version after ``latest``, timed by the file's mtime (when the change was made)."""
    return VersionRow(
        latest.seq + 1,
        "",
        st.st_mtime,
        "disk",
        latest.path,
        "modify",
        blob,
        latest.mode,
        st.st_size,
        "valid",
        "",
    )


def _timestamp(iso: str) -> float | None:
    try:
        return dt.datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return None
