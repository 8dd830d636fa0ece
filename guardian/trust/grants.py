"""Force grants: the one mechanism behind every ``--force``.

A grant names an operation (rollback, delete, modify, restore) and paths, and lasts
a few minutes (five by default: seed 001's guardrail window).  ``guardian allow``,
``rollback --force``, ``restore --force`` and ``GUARDIAN_FORCE=1`` in a git hook all
write one, and every enforcer asks the same question: does an unexpired grant cover
this change?  The watcher then lets a forced rollback stand instead of undoing it.

Grants live in ``<store>/grants.json`` (atomic writes under ``grants.lock``).  Expired
grants are dropped on the next write.  A ``block`` rule is never granted: callers ask
the policy first and refuse before a grant is made.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guardian.errors import UsageError
from guardian.util.fs import atomic_write_file
from guardian.util.lock import FileLock

GRANTS_FILE = "grants.json"
GRANTS_LOCK = "grants.lock"
DEFAULT_GRANT_SECONDS = 300.0
MAX_GRANT_SECONDS = 24 * 3600.0  # a grant is for one piece of work, not a standing exemption
GRANT_OPERATIONS = ("rollback", "delete", "modify", "restore")
_LOCK_TIMEOUT = 10.0


@dataclass(frozen=True)
class Grant:
    id: str
    operation: str
    paths: tuple[str, ...]  # root-relative; "." is the whole tree
    created: float
    expires: float
    by: str  # who made it: "guardian allow", "rollback --force", "git hook (GUARDIAN_FORCE=1)", ...
    pid: int | None = None

    def active(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) < self.expires

    def covers(self, operation: str, path: str) -> bool:
        if operation != self.operation:
            return False
        return any(_under(path, granted) for granted in self.paths)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "operation": self.operation,
            "paths": list(self.paths),
            "created": self.created,
            "expires": self.expires,
            "by": self.by,
            "pid": self.pid,
        }

    @classmethod
    def from_json(cls, raw: Any) -> Grant | None:
        try:
            return cls(
                str(raw["id"]),
                str(raw["operation"]),
                tuple(str(p) for p in raw["paths"]),
                float(raw["created"]),
                float(raw["expires"]),
                str(raw.get("by", "")),
                int(raw["pid"]) if raw.get("pid") is not None else None,
            )
        except (KeyError, TypeError, ValueError):
            return None


def _under(path: str, granted: str) -> bool:
    if granted in (".", ""):
        return True
    granted = granted.rstrip("/")
    return path == granted or path.startswith(granted + "/")


def read_grants(store: Path) -> list[Grant]:
    """Every grant on file, expired ones included.  A damaged file reads as no grants: fail closed."""
    try:
        raw = json.loads((store / GRANTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    items = raw.get("grants", []) if isinstance(raw, dict) else []
    return [g for g in (Grant.from_json(item) for item in items if isinstance(item, dict)) if g is not None]


def active_grants(store: Path, now: float | None = None) -> list[Grant]:
    moment = time.time() if now is None else now
    return [g for g in read_grants(store) if g.active(moment)]


def covering_grant(store: Path, operation: str, path: str, now: float | None = None) -> Grant | None:
    """The unexpired grant that covers ``operation`` on ``path``, if any."""
    return next((g for g in active_grants(store, now) if g.covers(operation, path)), None)


def check_duration(seconds: float) -> float:
    if seconds <= 0:
        raise UsageError("--for must be a positive duration, such as 5m or 1h")
    if seconds > MAX_GRANT_SECONDS:
        raise UsageError(f"--for is at most {MAX_GRANT_SECONDS / 3600:g}h: a grant covers one piece of work")
    return seconds


def add_grant(
    store: Path,
    operation: str,
    paths: Sequence[str],
    *,
    by: str,
    seconds: float = DEFAULT_GRANT_SECONDS,
    now: float | None = None,
) -> Grant:
    """Record a grant and return it.  The caller has already refused anything a ``block`` rule governs."""
    if operation not in GRANT_OPERATIONS:
        raise UsageError(f"unknown operation '{operation}'; choose one of: {', '.join(GRANT_OPERATIONS)}")
    if not paths:
        raise UsageError("name at least one path to allow")
    import secrets  # only to make a grant: every policy read imports this module (~4 ms)

    moment = time.time() if now is None else now
    grant = Grant(
        secrets.token_hex(4),
        operation,
        tuple(dict.fromkeys(paths)),
        moment,
        moment + check_duration(seconds),
        by,
        os.getppid(),
    )
    with FileLock(store / GRANTS_LOCK, "the grant list", _LOCK_TIMEOUT):
        kept = [g for g in read_grants(store) if g.active(moment)]
        _write(store, [*kept, grant])
    return grant


def revoke_grants(store: Path, ids: Iterable[str] | None = None) -> list[Grant]:
    """Drop the named grants (all of them with None); returns what was dropped."""
    wanted = None if ids is None else set(ids)
    with FileLock(store / GRANTS_LOCK, "the grant list", _LOCK_TIMEOUT):
        grants = read_grants(store)
        dropped = [g for g in grants if wanted is None or g.id in wanted]
        _write(store, [g for g in grants if g not in dropped and g.active()])
    return dropped


def _write(store: Path, grants: Sequence[Grant]) -> None:
    payload = {"grants": [g.to_json() for g in grants]}
    atomic_write_file(store / GRANTS_FILE, (json.dumps(payload, indent=1) + "\n").encode(), 0o600)
