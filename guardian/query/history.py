"""Answers about the past: a file's timeline with a diagnosis, show and diff (``guardian.query.log``: the log).

``guardian history PATH`` runs on every look at a file, so this module imports only what
a timeline needs: the catalog (never pygit2), and the rollback story, the git runner and
difflib only when a path is protected, the project is a git repository, or a diff is asked.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from guardian.catalog.db import Catalog, VersionRow
from guardian.errors import OperationFailed
from guardian.policy import PolicyEngine
from guardian.project import Project
from guardian.query.lookup import resolve_path, resolve_snapshot
from guardian.util.fs import read_state
from guardian.util.times import format_time

if TYPE_CHECKING:
    from guardian.query.rollbacks import Story

SPARK = "▁▂▃▄▅▆▇█"


class History:
    """A file's timeline, its diagnosis, and the user's git commits that touched it.

    A plain slotted class, not a dataclass (~1 ms of generated methods on every ``history``):
    it is read by attribute and as JSON, never compared or printed.
    """

    __slots__ = ("diagnosis", "exists_now", "git_commits", "path", "rollback", "sparkline", "versions")

    def __init__(
        self,
        path: str,
        versions: list[VersionRow],
        diagnosis: str,
        sparkline: str,
        git_commits: list[str],
        exists_now: bool,
        rollback: dict[str, Any] | None = None,
    ) -> None:
        self.path = path
        self.versions = versions
        self.diagnosis = diagnosis
        self.sparkline = sparkline
        self.git_commits = git_commits
        self.exists_now = exists_now
        self.rollback = rollback  # a protected path's rollback that stands in its history

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "exists_now": self.exists_now,
            "timeline": [
                {
                    "snapshot": v.snapshot,
                    "time": v.ts,
                    "trigger": v.trigger,
                    "event": _event_word(v),
                    "size": v.size,
                    "verdict": v.verdict,
                    "reason": v.reason,
                }
                for v in self.versions
            ],
            "sparkline": self.sparkline,
            "diagnosis": self.diagnosis,
            "rollback": self.rollback,
            "git_commits": self.git_commits,
        }


def _event_word(v: VersionRow) -> str:
    if v.change == "delete":
        return "deleted"
    if v.change == "accept":
        return "accepted"
    if v.trigger == "restore":
        return "restored"
    if v.trigger == "enforce":
        return "put back"
    return "created" if v.change == "add" else "changed"


def sparkline(versions: list[VersionRow]) -> str:
    sizes = [v.size for v in versions if v.size is not None]
    top = max(sizes, default=0) or 1
    marks = []
    for v in versions:
        if v.size is None:
            marks.append("·")
        else:
            marks.append(SPARK[min(len(SPARK) - 1, round(v.size / top * (len(SPARK) - 1)))])
    return "".join(marks[-60:])


def diagnose(versions: list[VersionRow]) -> str:
    if not versions:
        return "never existed in any snapshot"
    last_valid_index = None
    for i, v in enumerate(versions):
        if v.verdict == "valid" and v.change != "delete":
            last_valid_index = i
    if last_valid_index is None:
        first = versions[0]
        return f"never had a valid version; first seen at {format_time(first.ts)} ({first.verdict}: {first.reason})"
    good = versions[last_valid_index]
    head = f"last valid version at {format_time(good.ts)} (snapshot {good.snapshot[:12]})"
    since = versions[last_valid_index + 1 :]
    if not since:
        return f"{head}; no changes since"
    parts = []
    for v in since:
        word = "deleted" if v.change == "delete" else v.verdict
        parts.append(f"{word} at {format_time(v.ts)} ({v.trigger})")
    return f"{head}; since then: " + ", ".join(parts)


def user_git_commits(root: Path, rel: str, limit: int = 20) -> list[str]:
    """Commits of the user's own git history that touched rel (read-only, never their index).

    Best effort: the history is an extra, so a missing, slow or failing git gives no commits.
    """
    from guardian.util.git import GitError, run_git

    try:
        result = run_git(
            ["log", f"-n{limit}", "--date=iso", "--format=%h %ad %an: %s", "--", rel], cwd=root, timeout=10
        )
    except GitError:
        return []
    return result.text.splitlines()


def file_history(project: Project, typed: str, cwd: Path | None = None) -> History:
    with project.reader() as (_repo, catalog):
        rel = resolve_path(project.root, catalog, typed, cwd)
        versions = catalog.versions_of(rel)
    exists = read_state(project.root, rel).kind != "missing"
    commits = user_git_commits(project.root, rel) if (project.root / ".git").exists() else []
    history = History(rel, versions, diagnose(versions), sparkline(versions), commits, exists)
    if versions and PolicyEngine.from_policy(project.policy).is_protected(rel):
        from guardian.query.rollbacks import path_story

        story = path_story(project, versions, rel)
        if story.rollback is not None:
            history.diagnosis, history.rollback = diagnose_rollback(project, rel, story)
    return history


def diagnose_rollback(project: Project, rel: str, story: Story) -> tuple[str, dict[str, Any]]:
    """'rolled back at T to the version of T0 (snapshot X), by PROCESS; ...; the newest valid version is ...'."""
    from guardian.query.rollbacks import enforce_events

    assert story.rollback is not None
    rolled = story.rollback.version
    origin = story.rollback.change.origin
    decided = {str(e.details.get("captured")): e for e in enforce_events(project, rel)}
    event = decided.get(rolled.snapshot)
    # The watcher's decision named the process as it saw it then; the reflog read now is the fallback.
    seen = event.details.get("process") if event is not None else None
    process = str(seen) if seen else story.rollback.process
    went = f" to {origin.describe()}" if origin is not None else ""
    text = f"rolled back at {format_time(rolled.ts)}{went}, by {process or 'an unknown process'}"
    for own in story.undone_by[:1]:
        who = "the watcher undid it" if own.trigger == "enforce" else f"guardian {own.trigger} put a version back"
        text += f"; {who} at {format_time(own.ts)} (snapshot {own.snapshot[:12]})"
    newest = story.newest_valid
    if newest is None:
        text += "; there is no valid version to go back to"
    else:
        text += f"; the newest valid version is snapshot {newest.snapshot[:12]} ({format_time(newest.ts)})"
    record: dict[str, Any] = {
        "snapshot": rolled.snapshot,
        "time": rolled.ts,
        "to": origin.to_json() if origin is not None else None,
        "process": process,
        "undone_by": [{"snapshot": v.snapshot, "time": v.ts, "trigger": v.trigger} for v in story.undone_by],
        "newest_valid": {"snapshot": newest.snapshot, "time": newest.ts} if newest is not None else None,
    }
    return text, record


def _version_for(
    catalog: Catalog, project: Project, typed: str, at: str | None, cwd: Path | None
) -> tuple[str, str, str]:
    """(path, blob id, snapshot id) of the version show and diff compare with."""
    rel = resolve_path(project.root, catalog, typed, cwd)
    if at is not None:
        snap = resolve_snapshot(catalog, at)
        candidates = [v for v in catalog.versions_of(rel) if v.seq <= snap.seq]
        if not candidates or candidates[-1].blob is None:
            raise OperationFailed(f"'{rel}' is not in snapshot {snap.id[:12]} (not yet created, or deleted by then)")
        return rel, candidates[-1].blob or "", snap.id
    valid = catalog.latest_valid(rel)
    if valid is None or valid.blob is None:
        if not catalog.known_path(rel):
            raise OperationFailed(f"'{typed}' never existed in any snapshot")
        raise OperationFailed(
            f"no valid version of '{rel}'; pick one with --at SNAPSHOT (see 'guardian history {rel}')"
        )
    return rel, valid.blob, valid.snapshot


def show(project: Project, typed: str, at: str | None = None, cwd: Path | None = None) -> tuple[str, str, bytes]:
    with project.reader() as (repo, catalog):
        rel, blob, snap = _version_for(catalog, project, typed, at, cwd)
        return rel, snap, repo.read_blob(blob)


def diff(project: Project, typed: str, at: str | None = None, cwd: Path | None = None) -> str:
    with project.reader() as (repo, catalog):
        rel, blob, snap = _version_for(catalog, project, typed, at, cwd)
        old = repo.read_blob(blob)
    state = read_state(project.root, rel)
    new = state.data if state.kind != "missing" else b""
    if b"\0" in old[:8000] or b"\0" in new[:8000]:
        return "" if old == new else f"Binary files {rel}@{snap[:12]} and {rel} differ\n"
    import difflib

    lines = difflib.unified_diff(
        old.decode("utf-8", "replace").splitlines(keepends=True),
        new.decode("utf-8", "replace").splitlines(keepends=True),
        fromfile=f"{rel}@{snap[:12]}",
        tofile=rel if state.kind != "missing" else "/dev/null",
    )
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)
