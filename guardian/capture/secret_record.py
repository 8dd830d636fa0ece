"""The store's record of secrets found in captured versions, and the ``secret`` events.

``<store>/secrets.json`` holds, for each path, the blobs found holding a secret with their
kinds, line numbers, snapshot and time: never the secret itself.  ``guardian status`` reads
it; ``guardian forget`` keeps it true.  The capture engine calls :func:`secret_events` once
a snapshot is committed, under the writer lock, and logs what it returns with the snapshot.

Only what a snapshot added or changed is scanned (guardian.capture.secrets), and only an
explicit ``guardian snapshot`` (trigger ``manual``) scans at once: it also scans everything
queued before.  Every other capture (``guardian init``, a restore, a git hook's, an agent's)
appends its versions to ``<store>/secrets-pending.jsonl`` (guardian.capture.pending_log) and
loads nothing: the scan is most of a short command's CPU (about 0.2 s of imports, then 1-3 ms
a file: minutes on a large first snapshot).  The watcher loads the library on a thread of
its own; once it is loaded, each of its captures, and a thread of its store session between
them (:func:`scan_queued`), scans the queue oldest first for at most
:data:`WATCH_SCAN_BUDGET` seconds at a time, so a change is never held up behind a long scan.
A queued version's ``secret`` event carries its own snapshot and trigger.  Nothing is ever
dropped from the queue unscanned.  A push never relies on this record: it scans again what
it sends.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from guardian.capture import pending_log
from guardian.capture.filters import SCAN_MAX_BYTES
from guardian.capture.pending_log import PENDING_NAME as PENDING_NAME
from guardian.capture.pending_log import Queue
from guardian.store.tree import MODE_LINK
from guardian.util.fs import atomic_write_file

if TYPE_CHECKING:
    import logging
    from typing import Protocol

    from guardian.capture.secrets import Finding
    from guardian.events import Event
    from guardian.project import Project
    from guardian.store.repo import ShadowRepo

    # Typing only: a Protocol class costs ~10 ms to create, on the hooks' snapshot path.
    class _Version(Protocol):
        """What is read of a captured file (the engine's CapturedFile)."""

        @property
        def path(self) -> str: ...
        @property
        def change(self) -> str: ...
        @property
        def size(self) -> int | None: ...
        @property
        def blob(self) -> str | None: ...
        @property
        def mode(self) -> int | None: ...

    class _Snapshot(Protocol):
        """What is read of a snapshot (the engine's SnapshotResult)."""

        @property
        def snapshot(self) -> str | None: ...
        @property
        def time(self) -> float: ...
        @property
        def trigger(self) -> str: ...
        @property
        def files(self) -> Sequence[_Version]: ...


def _log() -> logging.Logger:
    """This module's logger.  logging loads on first use: a git hook's capture never logs (~5 ms of imports)."""
    import logging

    return logging.getLogger("guardian.capture.secret_record")


INDEX_NAME = "secrets.json"
# An explicit `guardian snapshot`: scans its versions and the whole queue at once.
SCAN_NOW_TRIGGERS = frozenset({"manual"})
# The watcher's captures: scan the queue once the library is loaded, a bounded slice at a time.
WATCH_TRIGGER = "watch"
# Seconds of scanning per watcher capture or queue slice (the version being scanned finishes).
WATCH_SCAN_BUDGET = 0.05


def detector_ready() -> bool:
    """Whether detect-secrets is loaded in this process (guardian.capture.secrets.detector_ready).

    The scanner module loads only where a scan may run (a watcher, ``guardian snapshot``): every
    other capture (the git hooks', a restore's) only queues, and skips its regexes and imports.
    """
    from guardian.capture.secrets import detector_ready as loaded

    return loaded()


def warm_up() -> None:
    """Load detect-secrets on a thread of its own (guardian.capture.secrets.warm_up)."""
    from guardian.capture.secrets import warm_up as load

    load()


def index_path(store: Path) -> Path:
    return store / INDEX_NAME


def read_index(store: Path) -> dict[str, dict[str, Any]]:
    """path -> {blob -> {"kinds", "lines", "snapshot", "ts"}} for every version found holding a secret."""
    files = _read_json(index_path(store)).get("files")
    return {p: b for p, b in files.items() if isinstance(b, dict)} if isinstance(files, dict) else {}


def write_index(store: Path, files: dict[str, dict[str, Any]]) -> None:
    """Replace the record (the caller holds the writer lock)."""
    payload = {"version": 1, "files": {p: b for p, b in sorted(files.items()) if b}}
    atomic_write_file(index_path(store), (json.dumps(payload, indent=1, sort_keys=True) + "\n").encode())


def _read_json(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


def secret_events(project: Project, repo: ShadowRepo, result: _Snapshot, base: dict[str, Any]) -> list[Event]:
    """Scan what a snapshot added or changed; record each secret found and return its ``secret`` events.

    A failure to scan is logged, never raised: the snapshot already exists and must stand.
    """

    todo = [
        {"path": f.path, "blob": f.blob, "snapshot": result.snapshot, "ts": result.time, "trigger": result.trigger}
        for f in result.files
        if f.change in ("add", "modify")
        and f.blob is not None
        and f.mode != MODE_LINK
        and f.size is not None
        and f.size <= SCAN_MAX_BYTES
    ]
    store = project.paths.store
    waiting = pending_log.waiting(store)
    if not todo and not waiting:
        return []
    if result.trigger in SCAN_NOW_TRIGGERS:
        budget: float | None = None
    elif result.trigger == WATCH_TRIGGER and detector_ready():
        budget = WATCH_SCAN_BUDGET
    else:
        if result.trigger == WATCH_TRIGGER:
            warm_up()
        queue_versions(store, todo)
        return []
    queued = _read_queue(store) if waiting else Queue(None, [])
    return _scan_and_record(store, repo, queued, todo, base, budget)


def queue_versions(store: Path, versions: list[dict[str, Any]]) -> None:
    """Append versions to the queue: O(versions), whatever its length (the caller holds the writer lock)."""
    try:
        pending_log.append(store, versions)
    except OSError as exc:
        # Info, not warning: in a command a warning would be a second line on stderr next to
        # the command's own one-line error about the same full disk; the watcher's log keeps it.
        # The versions stay unscanned until a push, which scans what it sends.
        _log().info("could not queue versions for the secret scan in %s: %s", pending_log.log_path(store), exc)


def queue_waiting(store: Path) -> bool:
    """Whether a queue file exists: the watcher's queue thread looks for one every second."""
    return pending_log.waiting(store)


def _read_queue(store: Path) -> Queue:
    """The queue, for the drain (under the writer lock): an old-format file takes the log's name first."""
    pending_log.adopt_legacy(store)
    return pending_log.read(store)


def scan_queued(project: Project, repo: ShadowRepo, budget: float = WATCH_SCAN_BUDGET) -> list[Event]:
    """One slice of the watcher's queue scan: the oldest queued versions, for about ``budget`` seconds.

    Nothing happens until the library is loaded (by the watcher's warm-up thread); at least one
    version is scanned per call.  The caller holds the writer lock and logs the events returned.
    """
    store = project.paths.store
    if not detector_ready() or not pending_log.waiting(store):
        return []
    from guardian.events import current_user

    base = {"user": current_user(), "pid": os.getpid()}
    return _scan_and_record(store, repo, _read_queue(store), [], base, budget)


# How often a long queue's file is rewritten while the watcher drains it clean (seconds).
# Rewriting it after every 50 ms slice cost more than the scan itself (19 ms per rewrite at
# 5,000 versions); between rewrites the versions scanned clean are remembered here instead.
QUEUE_REWRITE_EVERY = 2.0


class _Drained:
    """How many of the queue's leading versions this process scanned clean but left in the file.

    Only versions with nothing found wait here: a version holding a secret leaves the file
    at once, with its record, so its ``secret`` event is never logged twice.  A crash forgets
    this, and those versions are scanned again: nothing is lost, only time.  Appends leave
    the count true; a file replaced or removed elsewhere has another identity, and counts 0.
    """

    identity: pending_log.Identity | None = None  # the log file the count is about
    done = 0
    rewritten = 0.0  # time.monotonic() of the last rewrite

    @classmethod
    def count(cls, queue: Queue) -> int:
        """How many of the queue's leading versions were scanned already (0 if the file was drained elsewhere)."""
        same = queue.identity is not None and queue.identity == cls.identity and len(queue.versions) >= cls.done
        return cls.done if same else 0

    @classmethod
    def remember(cls, identity: pending_log.Identity | None, done: int) -> None:
        cls.identity, cls.done = identity, done

    @classmethod
    def forget(cls) -> None:
        cls.identity, cls.done = None, 0


def _scan_and_record(
    store: Path,
    repo: ShadowRepo,
    queue: Queue,
    todo: list[dict[str, Any]],
    base: dict[str, Any],
    budget: float | None,
) -> list[Event]:
    """Scan the queue, then ``todo``, oldest first (within budget seconds); record what was found, queue the rest.

    The caller holds the writer lock, as every capture that appends does: no version is
    appended between the read of the queue and its replacement here.
    """
    queued = queue.versions
    versions = [*queued, *todo]
    skip = _Drained.count(queue)
    scanned, found = _scan(repo, versions[skip:], budget)
    events, recorded = _record(store, found, base)
    # Only once what was found is recorded do the scanned versions leave the queue: a crash in
    # between, or a record that could not be written, has them scanned again, never lost.
    done = skip + scanned if recorded else skip
    rest = versions[done:]
    now = time.monotonic()
    if not rest:
        pending_log.remove(store)
        _Drained.forget()
    elif done >= len(queued) or found or queue.identity is None or now - _Drained.rewritten >= QUEUE_REWRITE_EVERY:
        # Only this capture's versions left (a short file), a secret's version to take out, a
        # file in the old format to replace, or time to save the progress.
        _replace_queue(store, queue, done, todo)
        _Drained.forget()
        _Drained.rewritten = now
    else:
        # Clean versions of the file, remembered and left in it; this capture's own go at its end.
        _Drained.remember(queue.identity, done)
        queue_versions(store, todo)
    return events


def _replace_queue(store: Path, queue: Queue, done: int, todo: list[dict[str, Any]]) -> None:
    """Leave in the queue what follows its first ``done`` versions (of the queue's, then of ``todo``)."""
    queued = len(queue.versions)
    try:
        pending_log.replace_after(store, queue, min(done, queued), todo[max(0, done - queued) :])
    except OSError as exc:
        _log().info("could not queue versions for the secret scan in %s: %s", pending_log.log_path(store), exc)


def _record(
    store: Path, found: list[tuple[dict[str, Any], list[Finding]]], base: dict[str, Any]
) -> tuple[list[Event], bool]:
    """Write what was found to the record: the ``secret`` events to log, and whether it was written."""
    if not found:
        return [], True
    from guardian.capture.secrets import kinds_of
    from guardian.events import Event, now_iso

    index = read_index(store)
    events: list[Event] = []
    for version, findings in found:
        record = {
            "kinds": kinds_of(findings),
            "lines": sorted({f.line for f in findings if f.line}),
            "snapshot": version.get("snapshot"),
            "ts": version.get("ts"),
        }
        index.setdefault(version["path"], {})[version["blob"]] = record
        details = {**base, "kinds": record["kinds"], "lines": record["lines"], "pushed": "redacted"}
        paths = [version["path"]]
        events.append(Event(now_iso(), "secret", paths, version.get("snapshot"), version.get("trigger"), details))
    try:
        write_index(store, index)
    except OSError as exc:
        _log().warning("could not record secrets in %s: %s", index_path(store), exc)
        return events, False
    return events, True


def _scan(
    repo: ShadowRepo, versions: list[dict[str, Any]], budget: float | None
) -> tuple[int, list[tuple[dict[str, Any], list[Finding]]]]:
    """How many versions were scanned (all, or as many as budget seconds allowed), and what they hold."""
    from guardian.capture.secrets import findings_for

    found: list[tuple[dict[str, Any], list[Finding]]] = []
    started = time.perf_counter()
    deadline = None if budget is None else started + budget
    scanned = 0
    for version in versions:
        if deadline is not None and scanned and time.perf_counter() >= deadline:
            break
        scanned += 1
        try:
            findings = findings_for(str(version["path"]), repo.read_blob(str(version["blob"])))
        except Exception as exc:  # noqa: BLE001 - a library bug (or a pruned blob) must not fail a capture
            _log().warning("could not scan %s for secrets: %s: %s", version.get("path"), type(exc).__name__, exc)
            continue
        if findings:
            found.append((version, findings))
    _log().debug("scanned %d version(s) for secrets in %.1f ms", scanned, (time.perf_counter() - started) * 1000)
    return scanned, found


class SecretFile(NamedTuple):
    """A path with stored versions that hold a secret, for ``guardian status``.

    A NamedTuple, not a frozen dataclass: the same fields, equality, repr and immutability,
    without ~1 ms of generated methods on every import (each capture's path).
    """

    path: str
    kinds: list[str]
    versions: int

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "kinds": self.kinds, "versions": self.versions}


def secret_files(store: Path, stored: Callable[[str], set[str]] | None = None) -> list[SecretFile]:
    """The recorded files holding a secret; with stored (path -> its blobs still in history), only those."""
    out: list[SecretFile] = []
    for rel, blobs in sorted(read_index(store).items()):
        still = stored(rel) if stored is not None else set(blobs)
        kept = {b: r for b, r in blobs.items() if b in still}
        if kept:
            kinds = sorted({k for r in kept.values() for k in r.get("kinds", [])})
            out.append(SecretFile(rel, kinds, len(kept)))
    return out


def pending_scans(store: Path) -> int:
    """Versions captured but not scanned for secrets yet (queued for the watcher or ``guardian snapshot``).

    Read from another process, the file may still count what the watcher scanned in the last
    ``QUEUE_REWRITE_EVERY`` seconds.
    """
    queue = pending_log.read(store)
    return len(queue.versions) - _Drained.count(queue)
