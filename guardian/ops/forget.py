"""``guardian forget``: purge a secret from every stored version, or every version of a path.

``--text SECRET`` replaces the text with ``[REDACTED by guardian forget]`` in every stored
version that holds it (a file with a NUL byte gets the same number of ``*`` instead, so a
SQLite image keeps its layout) and in every snapshot message; ``forget PATH`` drops every
version of PATH (a file, or everything under a directory).  The chain is rewritten with
guardian.lifecycle.rewrite's ContentRewrite, as gc rewrites it: every snapshot stays, with
the edited tree, and a ``Guardian-Original`` trailer keeps each old id resolving.

Like gc, it holds the maintenance lock throughout (no gc or push meanwhile) and the writer
lock only to start and to swap: snapshots taken while it runs are copied onto the new chain
with the same edit before the ref moves.  The old objects stay on disk, unreachable, until
the next gc prunes them; the next push replaces the mirror's history (the mirror's own
objects go when git gc runs there).

It refuses, before changing anything, when the work tree still holds what it would purge:
the next capture would store it again.  It asks no question (the command says what to do),
prints what it rewrote, and ``--dry-run`` lists the versions it would change.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guardian.capture.engine import walk_tree
from guardian.capture.filters import PathFilter
from guardian.capture.secret_record import read_index, write_index
from guardian.capture.secrets import findings_for, kinds_of
from guardian.errors import OperationFailed, UsageError
from guardian.lifecycle.gc import GC_LOCK_TIMEOUT, maintenance_lock
from guardian.lifecycle.retention import event_references
from guardian.lifecycle.rewrite import ContentRewrite, catalog_for, chain_of, commits_since, swap_catalog
from guardian.paths import to_relative
from guardian.project import Project
from guardian.store.repo import ShadowRepo
from guardian.store.trailers import TRAILER_ACCEPTED, TRAILER_PERM, TRAILER_VERDICT
from guardian.store.tree import Entry
from guardian.util.fs import lstat_at, read_state

MARK = "[REDACTED by guardian forget]"
MIN_TEXT = 4  # shorter text would match all over the history, and is no secret


@dataclass(frozen=True)
class ForgottenVersion:
    snapshot: str  # the id it had before forget
    time: float
    path: str
    action: str  # "redact" or "drop"

    def to_json(self) -> dict[str, Any]:
        return {"snapshot": self.snapshot, "time": self.time, "path": self.path, "action": self.action}


@dataclass
class ForgetResult:
    dry_run: bool
    paths: list[str]
    text_given: bool
    versions: list[ForgottenVersion] = field(default_factory=list)
    messages: int = 0  # snapshot messages that held the text
    snapshots: int = 0  # snapshots with a new id
    head_before: str | None = None
    head_after: str | None = None
    replayed: int = 0
    still_on_disk: list[str] = field(default_factory=list)  # (dry run) what blocks a real run

    @property
    def files(self) -> list[str]:
        return sorted({v.path for v in self.versions})

    def to_json(self) -> dict[str, Any]:
        # Never the text itself: the result is printed and logged.
        return {
            "dry_run": self.dry_run,
            "paths": self.paths,
            "text": self.text_given,
            "versions": [v.to_json() for v in self.versions],
            "files": self.files,
            "messages": self.messages,
            "snapshots": self.snapshots,
            "head_before": self.head_before,
            "head_after": self.head_after,
            "replayed": self.replayed,
            "still_on_disk": self.still_on_disk,
        }


class _Purge:
    """The edit: a dropped path goes, a version holding the text gets a redacted copy (one per blob)."""

    def __init__(self, repo: ShadowRepo, text: str | None, dropped: Sequence[str], write: bool) -> None:
        self.repo = repo
        self.needle = text.encode("utf-8") if text else None
        self.text = text
        self.dropped = list(dropped)
        self.write = write
        self.replaced: dict[str, str] = {}  # old blob -> its redacted copy
        self.messages = 0

    def is_dropped(self, path: str) -> bool:
        return any(path == p or path.startswith(p + "/") for p in self.dropped)

    def __call__(self, path: str, entry: Entry) -> Entry | None:
        if self.is_dropped(path):
            return None
        if self.needle is None:
            return entry
        if entry.oid not in self.replaced:
            data = self.repo.read_blob(entry.oid)
            if self.needle not in data:
                self.replaced[entry.oid] = entry.oid
            else:
                binary = b"\0" in data[:8192]
                mark = b"*" * len(self.needle) if binary else MARK.encode()
                clean = data.replace(self.needle, mark)
                self.replaced[entry.oid] = self.repo.write_blob(clean) if self.write else "0" * 40
        new = self.replaced[entry.oid]
        return entry if new == entry.oid else Entry(new, entry.mode)

    def message(self, message: str) -> str:
        lines = message.split("\n")
        if self.dropped:
            lines = [line for line in lines if not self._names_dropped(line)]
        edited = "\n".join(lines)
        if self.text and self.text in edited:
            edited = edited.replace(self.text, MARK)
        if edited != message:
            self.messages += 1
        return edited

    def _names_dropped(self, line: str) -> bool:
        """A verdict, acceptance or permission trailer for a dropped path (its version is gone)."""
        if not line.startswith((f"{TRAILER_VERDICT}: ", f"{TRAILER_ACCEPTED}: ", f"{TRAILER_PERM}: ")):
            return False
        return any(self.is_dropped(p) for p in _quoted_paths(line))


def _quoted_paths(line: str) -> list[str]:
    import json

    start = line.find(' "')
    if start < 0:
        return []
    try:
        path, _end = json.JSONDecoder().raw_decode(line[start + 1 :])
    except ValueError:
        return []
    return [path] if isinstance(path, str) else []


def resolve_paths(project: Project, typed: Sequence[str], cwd: Path | None) -> list[str]:
    """Root-relative paths for what was typed; each must name something the store holds."""
    out: list[str] = []
    catalog = project.open_catalog()
    try:
        for raw in typed:
            rel = to_relative(project.root, raw, cwd)
            if not catalog.known_path(rel) and not catalog.paths_under(rel):
                raise UsageError(f"'{raw}' has no stored version; check the name with 'guardian history {raw}'")
            out.append(rel)
    finally:
        catalog.close()
    return out


def _captured_on_disk(project: Project, dropped: Sequence[str]) -> list[str]:
    """Files under the dropped paths that are in the work tree and would be captured again."""
    keep = PathFilter(project.root, project.policy.watch, project.policy.protect_rules)
    found: list[str] = []
    for rel in dropped:
        st = lstat_at(project.root, rel)
        if st is None:
            continue
        if os.path.isdir(project.root / rel) and not os.path.islink(project.root / rel):
            found.extend(sub for sub, _st in walk_tree(project.root, keep, rel))
        elif keep(rel):
            found.append(rel)
    return sorted(found)


def _holding_text(project: Project, repo: ShadowRepo, head: str, text: str) -> list[str]:
    """Files of the newest snapshot whose copy in the work tree still holds the text."""
    needle = text.encode("utf-8")
    found: list[str] = []
    for path, _entry in repo.iter_tree(head):
        state = read_state(project.root, path, project.policy.watch.max_file_size)
        if state.kind in ("file", "symlink") and needle in state.data:
            found.append(path)
    return found


def _refusal(on_disk: list[str], text: bool) -> OperationFailed:
    shown = ", ".join(on_disk[:5]) + (f" and {len(on_disk) - 5} more" if len(on_disk) > 5 else "")
    if text:
        why = (
            f"{shown} still hold(s) that text in the work tree, so the next capture would store it again: "
            "remove it from the file(s) first (and rotate the secret), then run forget again"
        )
    else:
        why = (
            f"{shown} is still in the work tree and would be captured again: delete it, or add it to "
            "watch.exclude in guardian.yaml, then run forget again"
        )
    return OperationFailed(f"{why}; nothing was changed")


def forget(
    project: Project,
    *,
    text: str | None = None,
    paths: Sequence[str] = (),
    cwd: Path | None = None,
    dry_run: bool = False,
    lock_timeout: float = GC_LOCK_TIMEOUT,
) -> ForgetResult:
    """Rewrite every stored version holding text (and drop every version of paths); see the module doc."""
    if text is None and not paths:
        raise UsageError("say what to forget: 'guardian forget --text SECRET' or 'guardian forget PATH'")
    if text is not None and len(text) < MIN_TEXT:
        raise UsageError(f"--text is {len(text)} character(s); give the whole secret (at least {MIN_TEXT})")
    dropped = resolve_paths(project, paths, cwd)
    result = ForgetResult(dry_run, dropped, text is not None)
    repo = project.open_repo()
    with maintenance_lock(project, lock_timeout):
        with project.writer_lock(lock_timeout):
            project.sweep_store(repo, "forget")
            head0 = repo.head()
        result.head_before = result.head_after = head0
        if head0 is None:
            return result
        files_left = _captured_on_disk(project, dropped)
        text_left = _holding_text(project, repo, head0, text) if text is not None else []
        if not dry_run and (files_left or text_left):
            raise _refusal(files_left, False) if files_left else _refusal(text_left, True)
        result.still_on_disk = sorted({*files_left, *text_left})
        mentioned, _restore_refs = event_references(project.events)
        purge = _Purge(repo, text, dropped, write=not dry_run)
        rewrite = ContentRewrite(repo, purge, mentioned, purge.message, write=not dry_run)
        old = chain_of(repo, head0)
        new = rewrite.copy(old)
        result.snapshots = sum(1 for a, b in zip(old, new, strict=True) if a != b)
        if rewrite.rewriting and not dry_run:
            _swap(project, repo, rewrite, result)
        result.versions = _versions(repo, rewrite.touched)
        result.messages = purge.messages
        if not dry_run and rewrite.rewriting:
            _update_index(project, repo, purge)
            details = result.to_json()
            details.pop("versions")
            details["versions"] = len(result.versions)
            project.events.append("forget", result.files[:1000], result.head_after, "manual", details)
    return result


def _swap(project: Project, repo: ShadowRepo, rewrite: ContentRewrite, result: ForgetResult) -> None:
    """Index the new chain, then under the writer lock copy newer snapshots onto it and move the ref."""
    head0 = result.head_before
    assert head0 is not None
    work = project.paths.store / f"forget-tmp-{os.getpid()}-{threading.get_ident()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(mode=0o700)
    staged = catalog_for(repo, rewrite.parent, work / "catalog.db")
    try:
        with project.writer_lock():
            head1 = repo.head()
            if head1 != head0:
                if head1 is None or not repo.is_ancestor(head0, head1):
                    raise OperationFailed(
                        "the snapshot history was reset while forget ran; nothing was changed: run it again"
                    )
                newer = commits_since(repo, head0, head1)
                rewrite.copy(newer)  # after the first rewritten snapshot, every later one gets a new id
                result.replayed = len(newer)
                result.snapshots += len(newer)
            tip = rewrite.parent
            assert tip is not None
            repo.sync_objects()
            repo.update_ref(tip, head1)
            swap_catalog(project, staged, repo, tip)
        result.head_after = tip
    finally:
        staged.close()
        shutil.rmtree(work, ignore_errors=True)


def _versions(repo: ShadowRepo, touched: list[tuple[str, str, Entry | None]]) -> list[ForgottenVersion]:
    times: dict[str, float] = {}
    out: list[ForgottenVersion] = []
    for commit_id, path, entry in touched:
        if commit_id not in times:
            times[commit_id] = repo.commit_record(commit_id).time
        out.append(ForgottenVersion(commit_id, times[commit_id], path, "drop" if entry is None else "redact"))
    return out


def _update_index(project: Project, repo: ShadowRepo, purge: _Purge) -> None:
    """Keep the record of secrets true: purged versions leave it, a redacted copy that still holds one joins."""
    store = project.paths.store
    index = read_index(store)
    for path in list(index):
        if purge.is_dropped(path):
            del index[path]
            continue
        blobs = index[path]
        for old in [b for b in blobs if purge.replaced.get(b, b) != b]:
            record = blobs.pop(old)
            new = purge.replaced[old]
            findings = findings_for(path, repo.read_blob(new))
            if findings:
                blobs[new] = {**record, "kinds": kinds_of(findings), "lines": sorted({f.line for f in findings})}
    write_index(store, index)
