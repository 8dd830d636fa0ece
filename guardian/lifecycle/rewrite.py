"""Chain rewrite: the thinned chain as new commits, replay of newer snapshots, and old ids.

Thinning rewrites the chain: every kept snapshot after the first dropped one becomes a new
commit with the same tree, author, committer and message, plus trailers:

* the verdicts (and acceptances) of changes folded in from dropped snapshots, for files whose
  folded change is what the kept tree now shows, so a catalog rebuilt from git still knows them;
* ``Guardian-Folded: N``, how many dropped snapshots it absorbed;
* ``Guardian-Original: <id>`` for ids it had before: its first (capture-time) id, every earlier
  id an event mentions, and the id it had just before this gc.  Events and printed messages
  name the old ids; ``rewritten_to`` maps them to the current one.

Trailers rather than a rewrite-map file: they move with the ref in one atomic step (the ref
update is the commit point), travel to mirrors, survive catalog rebuilds, and stock git shows
them.  Keeping only the ids something may still name bounds their number.

The same copying serves a second kind of rewrite, :class:`ContentRewrite`: every snapshot
kept, but some files' versions replaced or dropped (``guardian forget`` purging a secret, the
mirror's redacted copy of the chain).  Commits before the first one it touches keep their ids;
each later one is copied with its tree edited and the same ``Guardian-Original`` trailers.

Nothing here moves the ref: guardian.lifecycle.gc (or forget) swaps it once the new chain
exists.  A chain the ref does not name yet (gc's new one, a remote's) is indexed into a catalog
of its own with catalog_for; swap_catalog then puts that index in the live catalog's place.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guardian.lifecycle.retention import RetentionPlan
from guardian.project import Project
from guardian.store.trailers import (
    TRAILER_ACCEPTED,
    TRAILER_DIR_PERM,
    TRAILER_FOLDED,
    TRAILER_ORIGINAL,
    TRAILER_PERM,
    TRAILER_VERDICT,
    folded_count,
    original_ids,
    parse_message,
)

if TYPE_CHECKING:
    from guardian.catalog.db import Catalog
    from guardian.store.repo import ShadowRepo
    from guardian.store.tree import Entry


@dataclass(frozen=True)
class _Touch:
    index: int
    invalid: tuple[str, str] | None
    accepted: bool
    perm: int | None = None


def rewritten_message(message: str, own_id: str, carried: Sequence[str], folded: int, mentioned: set[str]) -> str:
    """message with carried trailers, the folded count and the ids it may still be named by."""
    prefix_original = f"{TRAILER_ORIGINAL}: "
    prefix_folded = f"{TRAILER_FOLDED}: "
    originals = original_ids(message)
    ids = [originals[0] if originals else own_id]
    ids += [old for old in originals[1:] if old in mentioned]
    ids.append(own_id)
    lines = [line for line in message.rstrip("\n").split("\n") if not line.startswith((prefix_original, prefix_folded))]
    lines.extend(carried)
    total = folded_count(message) + folded
    if total:
        lines.append(f"{prefix_folded}{total}")
    lines.extend(f"{prefix_original}{old}" for old in dict.fromkeys(ids))
    return "\n".join(lines) + "\n"


def _carried_trailers(
    window: dict[str, _Touch], base: dict[str, str | None], state: dict[str, str], kept_index: int
) -> list[str]:
    """Trailers a kept snapshot needs for changes folded into it from dropped snapshots."""
    lines: list[str] = []
    for path, touch in sorted(window.items()):
        if touch.index == kept_index or state.get(path) is None:
            continue  # its own trailers already say it, or the file is gone by now
        if touch.accepted:
            lines.append(f"{TRAILER_ACCEPTED}: {json.dumps(path)}")
        elif touch.invalid is not None and base.get(path) != state.get(path):
            verdict, reason = touch.invalid
            lines.append(f"{TRAILER_VERDICT}: {verdict} {json.dumps(path)} {' '.join(reason.split())}")
        if touch.perm is not None:
            lines.append(f"{TRAILER_PERM}: {touch.perm:04o} {json.dumps(path)}")
    return lines


def rewrite_chain(
    repo: ShadowRepo,
    plan: RetentionPlan,
    mentioned: set[str],
    progress: Callable[[int], None] | None = None,
) -> list[str]:
    """Write the thinned chain as new commits (the ref does not move).  Returns its ids, oldest first."""
    chain: list[str] = []
    parent: str | None = None
    rewriting = False
    window: dict[str, _Touch] = {}  # path -> its last change since the previous kept snapshot
    base: dict[str, str | None] = {}  # path -> its blob at the previous kept snapshot
    state: dict[str, str] = {}  # path -> its blob now (the tree, kept incrementally)
    folded = 0
    dir_perms: dict[str, int] = {}  # Guardian-DirPerm of the snapshots folded since the last kept one
    for i, snap in enumerate(plan.snapshots):
        dir_perms.update(parse_message(snap.message).dir_perms)
        for path, blob in snap.changed.items():
            base.setdefault(path, state.get(path))
            if blob is None:
                state.pop(path, None)
            else:
                state[path] = blob
            window[path] = _Touch(i, snap.invalid.get(path), path in snap.accepted, snap.perms.get(path))
        for path in snap.accepted - snap.changed.keys():
            base.setdefault(path, state.get(path))
            window[path] = _Touch(i, None, True, snap.perms.get(path))
        if snap.id not in plan.keep:
            folded += 1
            rewriting = True
            continue
        if rewriting:
            carried = _carried_trailers(window, base, state, i)
            own = parse_message(snap.message).dir_perms  # the newest bits: the folded ones are older
            carried += [
                f"{TRAILER_DIR_PERM}: {bits:04o} {json.dumps(d)}" for d, bits in dir_perms.items() if d not in own
            ]
            message = rewritten_message(snap.message, snap.id, carried, folded, mentioned)
            parent = repo.copy_commit(snap.id, parent, message)
        else:
            parent = snap.id
        chain.append(parent)
        dir_perms.clear()
        window.clear()
        base.clear()
        folded = 0
        if progress is not None:
            progress(len(chain))
    return chain


# --------------------------------------------------------------------------- content rewrite (forget, the mirror)

# path, its entry in a snapshot -> the entry to store instead: the same one to keep it, None to drop the file.
EntryEdit = Callable[[str, "Entry"], "Entry | None"]


def _same(message: str) -> str:
    return message


def _no_trailers(edited: dict[str, Entry | None]) -> list[str]:
    return []


@dataclass
class ContentRewrite:
    """Copies of snapshots with some files' versions replaced or dropped, onto a chain of their own.

    ``edit`` decides for each version a snapshot brings; the decision stands for that path in
    every later snapshot until the path changes again, so an untouched file stays replaced.
    ``copy`` can be called again with newer snapshots (those taken while a forget ran, or since
    the last push): the state carries over.  ``touched`` lists every (snapshot, path, new entry)
    edited; with ``write`` False nothing is written and only ``touched`` is filled (a dry run).
    """

    repo: ShadowRepo
    edit: EntryEdit
    mentioned: set[str]
    message_edit: Callable[[str], str] = _same
    trailers: Callable[[dict[str, Entry | None]], list[str]] = _no_trailers
    write: bool = True
    parent: str | None = None
    rewriting: bool = False
    overrides: dict[str, Entry | None] = field(default_factory=dict)
    touched: list[tuple[str, str, Entry | None]] = field(default_factory=list)

    def copy(self, commits: Sequence[str], progress: Callable[[int], None] | None = None) -> list[str]:
        """Copy commits (oldest first, each the child of the last one copied); returns the new ids."""
        out: list[str] = []
        for done, commit_id in enumerate(commits, 1):
            edited: dict[str, Entry | None] = {}
            for change in self.repo.changes(commit_id):
                if change.new is None:
                    self.overrides.pop(change.path, None)
                    continue
                new = self.edit(change.path, change.new)
                if new == change.new:
                    self.overrides.pop(change.path, None)
                else:
                    self.overrides[change.path] = edited[change.path] = new
                    self.touched.append((commit_id, change.path, new))
            record = self.repo.commit_record(commit_id)
            message = self.message_edit(record.message)
            if not self.rewriting and not self.overrides and message == record.message:
                self.parent = commit_id
            else:
                self.rewriting = True
                if self.write:
                    message = rewritten_message(message, commit_id, self.trailers(edited), 0, self.mentioned)
                    self.parent = self.repo.copy_commit(commit_id, self.parent, message, dict(self.overrides))
                else:
                    self.parent = commit_id
            out.append(self.parent)
            if progress is not None:
                progress(done)
        return out


def chain_of(repo: ShadowRepo, head: str | None) -> list[str]:
    """Every snapshot up to head, oldest first."""
    ids = [record.id for record in repo.walk(head)] if head is not None else []
    ids.reverse()
    return ids


def commits_since(repo: ShadowRepo, since: str, head: str) -> list[str]:
    """The snapshots in (since, head], oldest first (since must be an ancestor of head)."""
    newer: list[str] = []
    for record in repo.walk(head):
        if record.id == since:
            break
        newer.append(record.id)
    newer.reverse()
    return newer


def replay(repo: ShadowRepo, onto: str, commits: Sequence[str], mentioned: set[str]) -> list[str]:
    """Copy commits (oldest first) onto the new chain; returns the new ids, oldest first."""
    out: list[str] = []
    parent = onto
    for commit_id in commits:
        record = repo.commit_record(commit_id)
        parent = repo.copy_commit(commit_id, parent, rewritten_message(record.message, commit_id, (), 0, mentioned))
        out.append(parent)
    return out


def rewritten_to(store: Path, prefix: str) -> list[str]:
    """Current ids of snapshots that were once named prefix (an id from before a gc)."""
    from guardian.store.repo import ShadowRepo

    repo_dir = store / "repo.git"
    if not repo_dir.is_dir():
        return []
    repo = ShadowRepo(repo_dir)
    found: list[str] = []
    for record in repo.walk():
        if any(old.startswith(prefix) for old in original_ids(record.message)):
            found.append(record.id)
    return found


# --------------------------------------------------------------------------- the catalog of a chain not at the ref yet


class _PinnedRepo:
    """A view of the store whose head is a given commit, to index a chain the ref does not name yet."""

    def __init__(self, repo: ShadowRepo, head: str | None) -> None:
        self._repo = repo
        self._head = head

    def head(self) -> str | None:
        return self._head

    def __getattr__(self, name: str) -> Any:
        return getattr(self._repo, name)


def catalog_for(repo: ShadowRepo, head: str | None, path: Path) -> Catalog:
    """A catalog at path indexing the chain that ends at head (not necessarily the ref's)."""
    from guardian.catalog.db import Catalog

    catalog = Catalog(path)
    catalog.sync(_PinnedRepo(repo, head))  # type: ignore[arg-type]
    return catalog


def swap_catalog(project: Project, staged: Catalog, repo: ShadowRepo, head: str) -> None:
    """Make the live catalog hold the staged one's index (at head), keeping the live stat cache."""
    staged.sync(_PinnedRepo(repo, head))  # type: ignore[arg-type]
    live = project.open_catalog()
    try:
        rows = list(live.files())
    finally:
        live.close()
    ours = {r.path: r for r in staged.files()}
    # The trees are the same, so the live stat data still describes the files: keep it, or the
    # next rescan would re-hash every file.
    staged.update_stats([r for r in rows if (o := ours.get(r.path)) and o.blob == r.blob and o.mode == r.mode])
    staged_path = staged.path
    staged.close()
    source = sqlite3.connect(str(staged_path))
    target = sqlite3.connect(str(project.paths.catalog))
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
