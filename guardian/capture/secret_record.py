"""The store's record of secrets found in captured versions, and the ``secret`` events.

``<store>/secrets.json`` holds, for each path, the blobs found holding a secret with their
kinds, line numbers, snapshot and time: never the secret itself.  ``guardian status`` reads
it; ``guardian forget`` keeps it true.  The capture engine calls :func:`secret_events` once
a snapshot is committed, under the writer lock, and logs what it returns with the snapshot.

Only what a snapshot added or changed is scanned (guardian.capture.secrets).  The first scan
in a process loads detect-secrets (about 0.2 s of imports): a manual capture waits for it, but
the watcher's never does.  For a ``watch`` capture made before the library is loaded, the
versions to scan go to ``<store>/secrets-pending.json``, the library loads on a thread of
its own, and the next capture scans them first (with their own snapshot and trigger), even
one that finds nothing changed.  A git hook's capture queues its versions the same way but
loads nothing: the hook's process ends right after, and would pay the whole load for it.
A push never relies on this record: it scans again what it sends.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guardian.capture.secrets import (
    SCAN_MAX_BYTES,
    Finding,
    detector_ready,
    findings_for,
    kinds_of,
    warm_up,
)
from guardian.store.tree import MODE_LINK
from guardian.util.fs import atomic_write_file

if TYPE_CHECKING:
    from typing import Protocol

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


log = logging.getLogger("guardian.capture.secret_record")

INDEX_NAME = "secrets.json"
PENDING_NAME = "secrets-pending.json"
# Captures that must never wait for the library to load: the watcher's, and a git hook's (a
# short process that would pay the whole load for one scan: the next capture scans them).
DEFERRED_TRIGGERS = frozenset({"watch", "hook"})
# Of those, the ones whose process lives on to scan the queue: it loads the library meanwhile.
WARMED_TRIGGERS = frozenset({"watch"})


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
    from guardian.events import Event, now_iso

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
    pending_path = store / PENDING_NAME
    waiting = pending_path.exists()
    if not todo and not waiting:
        return []
    pending = _read_json(pending_path).get("versions", []) if waiting else []
    if result.trigger in DEFERRED_TRIGGERS and not detector_ready():
        if result.trigger in WARMED_TRIGGERS:
            warm_up()
        if todo:
            _write_pending(pending_path, [*pending, *todo])
        return []
    found = _scan(repo, [v for v in [*pending, *todo] if isinstance(v, dict)], store)
    if waiting:
        pending_path.unlink(missing_ok=True)
    if not found:
        return []
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
        log.warning("could not record secrets in %s: %s", index_path(store), exc)
    return events


def _scan(repo: ShadowRepo, versions: list[dict[str, Any]], store: Path) -> list[tuple[dict[str, Any], list[Finding]]]:
    found: list[tuple[dict[str, Any], list[Finding]]] = []
    started = time.perf_counter()
    for version in versions:
        try:
            findings = findings_for(str(version["path"]), repo.read_blob(str(version["blob"])))
        except Exception as exc:  # noqa: BLE001 - a library bug (or a pruned blob) must not fail a capture
            log.warning("could not scan %s for secrets: %s: %s", version.get("path"), type(exc).__name__, exc)
            continue
        if findings:
            found.append((version, findings))
    log.debug("scanned %d version(s) for secrets in %.1f ms", len(versions), (time.perf_counter() - started) * 1000)
    return found


def _write_pending(path: Path, versions: list[Any]) -> None:
    try:
        atomic_write_file(path, (json.dumps({"versions": versions[-10_000:]}) + "\n").encode())
    except OSError as exc:
        log.warning("could not queue versions for the secret scan in %s: %s", path, exc)


@dataclass(frozen=True)
class SecretFile:
    """A path with stored versions that hold a secret, for ``guardian status``."""

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
    """Versions captured but not scanned yet (by a watcher capture made while the library loaded, or a hook's)."""
    versions = _read_json(store / PENDING_NAME).get("versions", [])
    return len(versions) if isinstance(versions, list) else 0
