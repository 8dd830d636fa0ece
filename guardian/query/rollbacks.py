"""Which versions of a path roll it back: content that moves back to an older version.

A captured change is a *rollback* when its content first appeared before the content it
replaced: in guardian's snapshots, or, for content guardian never captured, in the
user's git history of the path (every ref and reflog, so a commit that a reset dropped
still counts).  New content is an *edit*; a missing file is a *delete*.  This is decided
by content, never by the command's name: a reset that undoes a revert brings the fix
forward again, a rebase onto a main that fixed the file brings the fix in.

Git may still explain a change that moves content back without anything being lost: a
switch to an older branch, a merge, a pull, a cherry-pick, a reset to a commit that is
not an ancestor (moving forward or sideways), ``git stash`` (the stash keeps what it
replaced), a merge under way.  :func:`explain` reads the HEAD reflog for that.  A reset
to an ancestor (or to where HEAD already was) rewinds, and a rebase is judged by
content alone, so ``rebase --onto`` that drops a fix is a rollback and ``rebase main``
is not.

The watcher's enforcement (``guardian.gates.enforce``), ``history`` and a bare-name
``restore`` all read the story from here, so they tell the same one.

Snapshot and commit times are whole seconds, so the order is (time, where, position):
within one second a commit comes before a snapshot, commits keep their topological
order and snapshots their sequence.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from guardian.catalog.db import Catalog, VersionRow
from guardian.events import Event
from guardian.project import Project
from guardian.query.userrepo import InProgress, PathCommit, ReflogEntry, UserRepo
from guardian.util.times import format_time

_GIT, _SNAPSHOT = 0, 1
# Triggers of the versions guardian itself wrote on a person's behalf (or to enforce the
# policy): never a rollback by another process, whatever their content.
OWN_WRITES = frozenset({"restore", "rollback", "enforce"})
ChangeKind = Literal["edit", "rollback", "delete"]


@dataclass(frozen=True, order=True)
class Appearance:
    time: int
    where: int  # _GIT before _SNAPSHOT within a second
    position: int  # the snapshot's sequence number, or the commit's topological index


@dataclass(frozen=True)
class Origin:
    """Where a content first appeared: a snapshot, or a commit of the user's git history."""

    appearance: Appearance
    snapshot: str | None = None
    commit: str | None = None

    @property
    def time(self) -> float:
        return float(self.appearance.time)

    def describe(self) -> str:
        """'the version of 12:04:31 (snapshot 3f2a…)' or '… (commit 9c1e…)'."""
        where = f"snapshot {self.snapshot[:12]}" if self.snapshot else f"commit {(self.commit or '')[:12]}"
        return f"the version of {format_time(self.time)} ({where})"

    def to_json(self) -> dict[str, object]:
        return {"time": self.time, "snapshot": self.snapshot, "commit": self.commit}


class ContentAges:
    """The first appearance of each content (by blob id) of one path."""

    def __init__(self) -> None:
        self.first: dict[str, Origin] = {}
        self.has_git = False

    def add(self, blob: str, origin: Origin) -> None:
        known = self.first.get(blob)
        if known is None or origin.appearance < known.appearance:
            self.first[blob] = origin

    def add_versions(self, versions: Iterable[VersionRow]) -> None:
        for v in versions:
            if v.blob is not None:
                self.add(v.blob, Origin(Appearance(int(v.ts), _SNAPSHOT, v.seq), snapshot=v.snapshot))

    def add_git(self, commits: Sequence[PathCommit]) -> None:
        """Blobs the path had in git, ``commits`` parents first; a parent's blob counts as just before."""
        self.has_git = True
        for index, c in enumerate(commits, 1):
            if c.old_blob is not None:
                self.add(c.old_blob, Origin(Appearance(c.time, _GIT, index * 2 - 1), commit=c.commit))
            if c.new_blob is not None:
                self.add(c.new_blob, Origin(Appearance(c.time, _GIT, index * 2), commit=c.commit))

    def origin(self, blob: str) -> Origin | None:
        return self.first.get(blob)

    def older(self, new: str, old: str) -> bool:
        """Did content ``new`` first appear before content ``old``?  Content never seen is new."""
        seen_new = self.first.get(new)
        if seen_new is None:
            return False
        seen_old = self.first.get(old)
        return seen_old is None or seen_new.appearance < seen_old.appearance


def add_git_if_needed(ages: ContentAges, repo: UserRepo | None, path: str, version: VersionRow) -> None:
    """Add git's history of ``path`` when ``version``'s content is stored in the user's repository.

    Only git can say that content guardian first captured late (an old commit checked out,
    or a rollback captured before) is older than what it replaced.  Content git does not
    hold (an ordinary edit) costs no git call: presence is read from the object files.
    """
    if repo is None or ages.has_git or version.blob is None:
        return
    if repo.has_object(version.blob):
        ages.add_git(repo.path_history(path))


# --------------------------------------------------------------------------- one change


@dataclass(frozen=True)
class Change:
    """How one captured version changed its path."""

    kind: ChangeKind
    version: VersionRow
    replaced: VersionRow | None  # the newest earlier version with content
    previous: VersionRow | None  # the version just before it (a deletion too)
    origin: Origin | None = None  # a rollback: where the content it went back to first appeared


def replaced_version(versions: Sequence[VersionRow], index: int) -> VersionRow | None:
    for earlier in reversed(versions[:index]):
        if earlier.blob is not None:
            return earlier
    return None


def classify(
    versions: Sequence[VersionRow], index: int, ages: ContentAges, replaced_blob: str | None = None
) -> Change | None:
    """The change version ``index`` made, or None when its content did not change (accept, settle, mode).

    ``ages`` as they stand: see :func:`judge` for the classification that asks git when it must.
    """
    version = versions[index]
    previous = versions[index - 1] if index > 0 else None
    replaced = replaced_version(versions, index)
    if version.blob is None:
        return Change("delete", version, replaced, previous)
    if version.change in ("accept", "settle"):
        return None
    old = replaced_blob if replaced_blob is not None else (replaced.blob if replaced else None)
    if old == version.blob:
        return None
    if old is not None and ages.older(version.blob, old):
        return Change("rollback", version, replaced, previous, ages.origin(version.blob))
    return Change("edit", version, replaced, previous)


def deciding_versions(
    catalog: Catalog, path: str, snapshot: str | None = None, replaced_blob: str | None = None
) -> list[VersionRow]:
    """The versions of ``path`` that decide how one version changed it, oldest first, that version last.

    The version is the one ``snapshot`` recorded (none: the newest); the list is empty when
    that snapshot recorded no version of ``path``.  With it: the version just before it, the
    newest earlier one with content (what it replaced), and the first appearance (up to it)
    of each content compared: its own, the replaced one and ``replaced_blob``.
    :func:`classify` and :func:`judge` at the last index of this list give the same change as
    over the path's whole history, since they read nothing else.  Two or three index
    lookups, so the cost does not grow with the number of versions.
    """
    newest = catalog.newest_versions(path, 2, upto=snapshot)
    if not newest or (snapshot is not None and newest[0].snapshot != snapshot):
        return []
    version = newest[0]
    previous = newest[1] if len(newest) > 1 else None
    replaced = previous
    if previous is not None and previous.blob is None:
        replaced = catalog.newest_version(path, before=version.seq, kind="content")
    picked = {v.seq: v for v in (previous, replaced, version) if v is not None}
    if version.blob is not None and version.change not in ("accept", "settle"):
        blobs = {version.blob, replaced_blob, replaced.blob if replaced is not None else None}
        firsts = catalog.first_versions_with(path, [b for b in blobs if b is not None], version.seq)
        picked.update((first.seq, first) for first in firsts.values())
    return [picked[seq] for seq in sorted(picked)]


def judge(
    versions: Sequence[VersionRow],
    index: int,
    repo: UserRepo | None,
    path: str,
    replaced_blob: str | None = None,
    ages: ContentAges | None = None,
) -> Change | None:
    """:func:`classify` by guardian's snapshots, and by git's history too when they call it an edit.

    ``ages`` (the path's snapshots, already added) is reused and may gain git's history.
    """
    if ages is None:
        ages = ContentAges()
        ages.add_versions(versions)
    change = classify(versions, index, ages, replaced_blob)
    if change is not None and change.kind == "edit" and not ages.has_git:
        add_git_if_needed(ages, repo, path, versions[index])
        if ages.has_git:
            change = classify(versions, index, ages, replaced_blob)
    return change


# --------------------------------------------------------------------------- what git says


@dataclass(frozen=True)
class GitReason:
    """What the user's git history says about a change that moved content back."""

    explained: bool  # a switch or a forward move put it there: nothing was lost
    process: str | None = None  # the git command, from the reflog ("git reset: moving to HEAD~1")
    deferred: bool = False  # a rebase is under way: judge it once the rebase has ended


NOT_EXPLAINED = GitReason(False)


def explain(
    repo: UserRepo,
    path: str,
    new_blob: str | None,
    replaced_blob: str | None,
    since: float,
    until: float | None = None,
    in_progress: InProgress | None = None,
) -> GitReason:
    """Did git move ``path`` to ``new_blob`` (None: delete it) between ``since`` and ``until``, without a rewind?

    ``in_progress`` is what git has under way now (the watcher asks at once; readers
    judging the past pass None).  One ``git cat-file`` call for every blob looked up,
    and ``git merge-base`` for a reset.
    """
    entries = [e for e in repo.reflog("HEAD", since, until) if e.kind != "commit"]
    stashes = repo.reflog("refs/stash", since, until) if replaced_blob is not None else []
    heads = in_progress.merge_heads if in_progress is not None else ()
    if in_progress is not None and in_progress.rebase and entries and entries[-1].kind == "rebase":
        return GitReason(False, _rebase_process(entries), deferred=True)
    specs = [(rev, path) for e in entries for rev in (e.old, e.new)]
    specs += [(head, path) for head in heads] + [(s.new, path) for s in stashes]
    if not specs:
        return NOT_EXPLAINED
    blobs = repo.blobs(specs)
    for head in heads:
        if blobs.get((head, path)) == new_blob:
            return GitReason(True, "git merge (under way)")
    for stash in stashes:
        if blobs.get((stash.new, path)) == replaced_blob:
            return GitReason(True, "git stash")
    for entry in reversed(entries):
        at_new, at_old = blobs.get((entry.new, path)), blobs.get((entry.old, path))
        if entry.kind == "rebase":
            return GitReason(False, _rebase_process(entries))  # judged by its content alone
        if entry.kind == "reset":
            if repo.is_ancestor(entry.new, entry.old):
                return GitReason(False, f"git {entry.message}")  # rewinds (or stays): a rollback
            if at_new == new_blob:
                return GitReason(True, f"git {entry.message}")
            continue
        if at_new == new_blob and at_old != new_blob:
            return GitReason(True, f"git {entry.message}")
    return NOT_EXPLAINED


def _rebase_process(entries: Sequence[ReflogEntry]) -> str:
    """The rebase's first step in the window ('rebase (start): checkout main'): it names where it went."""
    run = [e for e in entries if e.kind == "rebase"]
    start = next((e for e in run if "(start)" in e.action), run[-1] if run else None)
    return f"git {start.message}" if start is not None else "git rebase"


# --------------------------------------------------------------------------- a whole timeline


@dataclass(frozen=True)
class Rollback:
    change: Change
    process: str | None  # the git command, when the reflog names it

    @property
    def version(self) -> VersionRow:
        return self.change.version


def rollback_at(
    versions: Sequence[VersionRow], index: int, ages: ContentAges, repo: UserRepo | None, path: str
) -> Rollback | None:
    """Version ``index`` as a rollback by another process; None for an edit, guardian's own write, or a git move."""
    version = versions[index]
    if version.trigger in OWN_WRITES or version.blob is None:
        return None
    change = judge(versions, index, repo, path, ages=ages)
    if change is None or change.kind != "rollback":
        return None
    process: str | None = None
    if repo is not None and change.previous is not None:
        replaced = change.replaced.blob if change.replaced is not None else None
        reason = explain(repo, path, version.blob, replaced, change.previous.ts, version.ts + 1)
        if reason.explained:
            return None
        process = reason.process
    return Rollback(change, process)


@dataclass(frozen=True)
class Story:
    """What happened to a path lately: the rollback that stands in its history, and its newest valid version."""

    rollback: Rollback | None  # the newest change by another process, when it was a rollback
    undone_by: list[VersionRow]  # guardian's own writes after it (the watcher's undo, a restore)
    newest_valid: VersionRow | None  # the newest valid version that is not a rollback


def read_story(
    versions: Sequence[VersionRow], repo: UserRepo | None, path: str, intended: Collection[str] = ()
) -> Story:
    """The story of ``path``; ``intended`` names snapshots whose rollback a grant let stand (not rollbacks here).

    Only the newest versions are judged (the newest change by another process, and the
    newest valid versions until one is not a rollback), so the cost does not grow with history.
    """
    ages = ContentAges()
    ages.add_versions(versions)
    rollback: Rollback | None = None
    undone_by: list[VersionRow] = []
    for index in range(len(versions) - 1, -1, -1):
        version = versions[index]
        if version.trigger in OWN_WRITES:
            undone_by.insert(0, version)
            continue
        if version.change in ("accept", "settle"):
            continue
        if version.snapshot not in intended:
            rollback = rollback_at(versions, index, ages, repo, path)
        break
    newest: VersionRow | None = None
    for index in range(len(versions) - 1, -1, -1):
        version = versions[index]
        if version.verdict != "valid" or version.blob is None:
            continue
        if rollback is not None and version.seq == rollback.version.seq:
            continue
        if version.snapshot not in intended and rollback_at(versions, index, ages, repo, path) is not None:
            continue
        newest = version
        break
    return Story(rollback, undone_by if rollback is not None else [], newest)


def enforce_events(project: Project, path: str) -> list[Event]:
    """The watcher's recent ``enforce`` decisions about ``path``, oldest first (read from the log's end)."""
    return [e for e in project.events.recent(["enforce"], limit=500) if path in e.paths]


def path_story(project: Project, versions: Sequence[VersionRow], path: str) -> Story:
    """:func:`read_story` with the project's git repository, and the rollbacks its grants let stand."""
    granted = [e for e in enforce_events(project, path) if e.details.get("action") == "granted"]
    intended = {str(e.details.get("captured")) for e in granted}
    return read_story(versions, UserRepo.locate(project.root), path, intended)
