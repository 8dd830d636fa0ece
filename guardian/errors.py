"""The one error family guardian raises, and the exit codes scripts rely on.

Every error a user can hit is a ``GuardianError`` subclass that carries its exit
code.  ``guardian.cli`` maps them to a one-line message in a single place; any
other exception is a bug and exits with ``EXIT_BUG``.
"""

from __future__ import annotations

from pathlib import Path

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NEEDS_FORCE = 3
EXIT_BLOCKED = 4
EXIT_STORE_DAMAGED = 5
EXIT_BUG = 70  # EX_SOFTWARE: an unexpected exception, i.e. a guardian bug
EXIT_INTERRUPTED = 130


class GuardianError(Exception):
    """Base class: a one-line, actionable message plus an exit code."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class OperationFailed(GuardianError):
    """The operation could not be completed (exit 1)."""

    exit_code = EXIT_FAILED


class WatcherRunning(OperationFailed):
    """A second watcher for the same project (exit 1)."""

    def __init__(self, root: Path, pid: int | None) -> None:
        holder = f"pid {pid}" if pid else "another process"
        super().__init__(f"a watcher is already running for {root} ({holder}); stop it with 'guardian stop'")
        self.pid = pid


class WatcherNotRunning(OperationFailed):
    """``guardian stop`` with nothing to stop (exit 1)."""

    def __init__(self, root: Path) -> None:
        super().__init__(f"no watcher is running for {root}; start one with 'guardian start'")


class UsageError(GuardianError):
    """Bad arguments or a bad path given on the command line (exit 2)."""

    exit_code = EXIT_USAGE


class ConfigError(GuardianError):
    """The policy file is malformed or holds a bad value (exit 2)."""

    exit_code = EXIT_USAGE


class NotAProject(UsageError):
    """No guardian.yaml was found walking up from the working directory."""


class AmbiguousPath(UsageError):
    """A bare file name matched more than one snapshotted path."""

    def __init__(self, name: str, candidates: list[str]) -> None:
        listing = ", ".join(candidates[:20])
        more = f" (and {len(candidates) - 20} more)" if len(candidates) > 20 else ""
        super().__init__(
            f"'{name}' is ambiguous: it matches {len(candidates)} paths: {listing}{more}; "
            "give the path relative to the project root"
        )
        self.name = name
        self.candidates = candidates


class PathRefused(UsageError):
    """A path that points outside the project root, through a symlink, or into .git."""


class NeedsForce(GuardianError):
    """Policy requires --force (exit 3)."""

    exit_code = EXIT_NEEDS_FORCE


class Blocked(GuardianError):
    """Policy forbids the operation outright (exit 4)."""

    exit_code = EXIT_BLOCKED


class StoreDamaged(GuardianError):
    """The shadow store failed an integrity check: fail closed (exit 5)."""

    exit_code = EXIT_STORE_DAMAGED

    def __init__(self, message: str) -> None:
        if "guardian verify" not in message:
            message = f"{message}; run 'guardian verify' for details and 'guardian verify --repair' to fix"
        super().__init__(message)


class LockHeld(OperationFailed):
    """Another guardian process holds the store's writer lock."""

    def __init__(self, what: str, pid: int | None) -> None:
        holder = f"pid {pid}" if pid else "another process"
        super().__init__(f"{what} is locked by {holder}; wait for it to finish or stop it")
        self.pid = pid
