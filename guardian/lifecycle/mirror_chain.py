"""What a push sends: the snapshot chain with every secret taken out, as a chain of its own.

The mirror ref (``refs/guardian/<host>/<project>``) belongs to this store alone and is
force-pushed, so it can name a different chain from the local one.  The local chain keeps
every version as captured (the user's work matters); the mirror gets a copy in which each
version holding a secret is replaced by guardian.capture.secrets' redacted copy: each secret
value (a private key: its whole PEM block) becomes ``[REDACTED by guardian]``, or, when that is
not enough or the file is a secret by its name, the whole content becomes one line saying
why.  Redacting rather than skipping keeps the rest of the file's work on the mirror, and the
history keeps its shape: every snapshot is there, with the same times and messages.

The copy is made with guardian.lifecycle.rewrite's ContentRewrite.  Up to the first version
with a secret it is the local chain itself, ids included, so a store with no secret pushes
exactly what it always pushed.  Each copied commit carries ``Guardian-Original: <local id>``
and a ``Guardian-Redacted`` trailer per redacted path (kinds only, never a value); secrets
found in a message itself are redacted too.

Every push scans again what it sends, whatever the capture recorded: versions captured before
secrets were looked for, or whose capture-time scan failed, are covered the same way.  Text
up to MIRROR_SCAN_MAX_BYTES is scanned; a blob that cannot be scanned because the library
failed is replaced whole (fail closed).  Binary content is not scanned.

The copies are loose objects that no ref names: gc prunes them, and the next push makes them
again (identical, so the mirror receives nothing new).  ``<store>/mirror-chain.json`` keeps the
last local snapshot copied, its copy and the paths still replaced there, so a push copies only
the snapshots since; after gc or forget rewrote the local chain, or when a copy is gone, the
chain is copied again from its start.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guardian.capture.secrets import (
    MIRROR_MARK,
    Redaction,
    find_secrets,
    is_secret_name,
    redacted,
    whole_redaction,
)
from guardian.lifecycle.rewrite import ContentRewrite, chain_of, commits_since
from guardian.project import Project
from guardian.store.trailers import TRAILER_FOLDED, TRAILER_ORIGINAL, TRAILER_SOURCE, TRAILER_TRIGGER
from guardian.store.tree import Entry
from guardian.util.fs import atomic_write_file

if TYPE_CHECKING:
    from guardian.store.repo import ShadowRepo

log = logging.getLogger("guardian.lifecycle.mirror_chain")

STATE_NAME = "mirror-chain.json"
# Pushing runs in the background, so it scans larger text than a capture does (capture.secrets.SCAN_MAX_BYTES).
MIRROR_SCAN_MAX_BYTES = 16 << 20
TRAILER_REDACTED = "Guardian-Redacted"
_MESSAGE_NAME = "COMMIT_EDITMSG"
_ID_TRAILERS = (f"{TRAILER_ORIGINAL}: ", f"{TRAILER_SOURCE}: ", f"{TRAILER_FOLDED}: ", f"{TRAILER_TRIGGER}: ")
# Versions found clean, remembered for the life of the process (the watcher pushes every interval).
_CLEAN_LIMIT = 200_000
_clean: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class RedactedVersion:
    snapshot: str  # the local snapshot whose copy it is
    path: str
    kinds: list[str]
    whole: bool

    def to_json(self) -> dict[str, Any]:
        return {"snapshot": self.snapshot, "path": self.path, "kinds": self.kinds, "whole": self.whole}


@dataclass
class MirrorChain:
    source: str  # the local snapshot copied last (the head when the push started)
    head: str  # its copy: what is pushed
    copied: int = 0  # snapshots looked at this time
    rebuilt: bool = False  # copied from the start of the chain
    redacted: list[RedactedVersion] = field(default_factory=list)
    messages: int = 0  # messages that held a secret
    still_redacted: list[str] = field(default_factory=list)  # paths whose copy in head is a redacted one


class _Redactor:
    """The edit for ContentRewrite: a version with a secret gets its redacted copy, one per (path, blob)."""

    def __init__(self, repo: ShadowRepo) -> None:
        self.repo = repo
        self.made: dict[tuple[str, str], Entry] = {}  # (path, blob) -> its copy
        self.by_copy: dict[tuple[str, str], Redaction] = {}  # (path, copy's blob) -> what was taken out
        self.messages = 0

    def __call__(self, path: str, entry: Entry) -> Entry | None:
        key = (path, entry.oid)
        if key in _clean or entry.is_link:
            return entry
        if key in self.made:
            return self.made[key]
        redaction = self._redaction(path, entry)
        if redaction is None:
            if len(_clean) >= _CLEAN_LIMIT:
                _clean.clear()
            _clean.add(key)
            return entry
        new = Entry(self.repo.write_blob(redaction.data), entry.mode)
        self.made[key] = new
        self.by_copy[(path, new.oid)] = Redaction(b"", redaction.kinds, redaction.whole)
        return new

    def _redaction(self, path: str, entry: Entry) -> Redaction | None:
        if self.repo.blob_size(entry.oid) > MIRROR_SCAN_MAX_BYTES:
            return whole_redaction(path, ["secret file name"]) if is_secret_name(path) else None
        try:
            return redacted(path, self.repo.read_blob(entry.oid), MIRROR_SCAN_MAX_BYTES)
        except Exception as exc:  # noqa: BLE001 - fail closed: what could not be scanned does not leave
            log.warning("could not scan %s (%s) for secrets, so it is not pushed: %s", path, entry.oid[:12], exc)
            return whole_redaction(path, ["unscanned: the secret scanner failed"])

    def message(self, message: str) -> str:
        # Snapshot ids in trailers are hex that reads as high entropy: they are left out of the scan.
        text = "\n".join(line for line in message.split("\n") if not line.startswith(_ID_TRAILERS))
        try:
            found = find_secrets(_MESSAGE_NAME, text.encode("utf-8"))
        except Exception as exc:  # noqa: BLE001 - fail closed, as for content
            log.warning("could not scan a snapshot message for secrets, so it is replaced: %s", exc)
            self.messages += 1
            return f"{MIRROR_MARK} (this snapshot's message could not be scanned for secrets)\n"
        edited = message
        for finding in found:
            if finding.value:
                edited = edited.replace(finding.value, MIRROR_MARK)
        if edited != message:
            self.messages += 1
        return edited

    def trailers(self, edited: dict[str, Entry | None]) -> list[str]:
        lines: list[str] = []
        for path, entry in sorted(edited.items()):
            redaction = self.redaction_of(path, entry)
            kinds = ", ".join(redaction.kinds) if redaction is not None else ""
            lines.append(f"{TRAILER_REDACTED}: {json.dumps(path)} {kinds}".rstrip())
        return lines

    def redaction_of(self, path: str, new: Entry | None) -> Redaction | None:
        return self.by_copy.get((path, new.oid)) if new is not None else None


def _state_path(project: Project) -> Path:
    return project.paths.store / STATE_NAME


def _read_state(project: Project) -> dict[str, Any]:
    try:
        raw = json.loads(_state_path(project).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


def _write_state(project: Project, rewrite: ContentRewrite, source: str) -> None:
    overrides = {p: [e.oid, e.mode] for p, e in rewrite.overrides.items() if e is not None}
    state = {"source": source, "copy": rewrite.parent, "rewriting": rewrite.rewriting, "overrides": overrides}
    try:
        atomic_write_file(_state_path(project), (json.dumps(state, indent=1, sort_keys=True) + "\n").encode())
    except OSError as exc:
        log.warning("cannot record the mirror chain: %s", exc)


def _resume(repo: ShadowRepo, state: dict[str, Any], head: str, rewrite: ContentRewrite) -> list[str] | None:
    """The snapshots to copy after the last push's copy, with rewrite set to go on from it; None to start over."""
    source, copy, overrides = state.get("source"), state.get("copy"), state.get("overrides")
    if not isinstance(source, str) or not isinstance(copy, str) or not isinstance(overrides, dict):
        return None
    try:
        entries = {str(p): Entry(str(v[0]), int(v[1])) for p, v in overrides.items()}
        present = all(repo.has_object(oid) for oid in (source, copy, *(e.oid for e in entries.values())))
        if not present or not repo.is_ancestor(source, head):
            return None  # gc or forget rewrote the chain, or gc pruned the copies
    except (ValueError, TypeError, IndexError, KeyError):
        return None
    rewrite.parent = copy
    rewrite.rewriting = bool(state.get("rewriting"))
    rewrite.overrides = dict(entries)
    return commits_since(repo, source, head) if source != head else []


def mirror_chain(
    project: Project, repo: ShadowRepo, head: str, progress: Callable[[int], None] | None = None
) -> MirrorChain:
    """The chain to push for head, copied where it holds secrets (see the module doc).  Hold the maintenance lock."""
    redactor = _Redactor(repo)
    rewrite = ContentRewrite(repo, redactor, set(), redactor.message, redactor.trailers)
    commits = _resume(repo, _read_state(project), head, rewrite)
    rebuilt = commits is None
    if commits is None:
        rewrite = ContentRewrite(repo, redactor, set(), redactor.message, redactor.trailers)
        commits = chain_of(repo, head)
    rewrite.copy(commits, progress)
    assert rewrite.parent is not None
    _write_state(project, rewrite, head)
    chain = MirrorChain(head, rewrite.parent, len(commits), rebuilt, messages=redactor.messages)
    chain.still_redacted = sorted(rewrite.overrides)
    for commit_id, path, entry in rewrite.touched:
        redaction = redactor.redaction_of(path, entry)
        kinds = redaction.kinds if redaction is not None else []
        chain.redacted.append(RedactedVersion(commit_id, path, kinds, redaction is not None and redaction.whole))
    return chain
