"""Which git process ran a hook, when it started, and which git command the user typed.

The start time is what tells the hooks which files *this* git command wrote (their
ctime is newer), and the command line is what a refusal quotes back.  ``git stash``
runs ``git reset --hard`` as a child, so the hook also looks one process up for the
command the user actually typed.  Read from ``/proc`` on Linux, from ``ps`` elsewhere.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from guardian.util.proc import process_argv


def process_start_time(pid: int) -> float | None:
    """Wall-clock start of process ``pid``: 10 ms resolution on Linux, a second elsewhere."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        # The command name (field 2) may hold spaces and parentheses: split after the last ")".
        fields = raw[raw.rindex(")") + 2 :].split()
        started_ticks = int(fields[19])  # field 22, starttime, in clock ticks since boot
        since_boot = started_ticks / os.sysconf("SC_CLK_TCK")
        return time.time() - (time.clock_gettime(time.CLOCK_BOOTTIME) - since_boot)
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    try:
        out = subprocess.run(["ps", "-o", "etime=", "-p", str(pid)], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    elapsed = _parse_etime(out.strip())
    # etime counts whole seconds: widen by one so nothing the command wrote is missed.
    return None if elapsed is None else time.time() - elapsed - 1.0


def _parse_etime(text: str) -> float | None:
    """ps's elapsed time, ``[[dd-]hh:]mm:ss``, in seconds."""
    days, _, clock = text.strip().rpartition("-")
    try:
        seconds = 0
        for part in clock.split(":"):
            seconds = seconds * 60 + int(part)
        return float(int(days or 0) * 86400 + seconds)
    except ValueError:
        return None


def _parent_pid(pid: int) -> int | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        return int(raw[raw.rindex(")") + 2 :].split()[1])
    except (OSError, ValueError, IndexError):
        pass
    try:
        out = subprocess.run(["ps", "-o", "ppid=", "-p", str(pid)], capture_output=True, text=True, timeout=10).stdout
        return int(out.strip())
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


def _is_git(argv: Sequence[str] | None) -> bool:
    return argv is not None and len(argv) > 0 and os.path.basename(argv[0]) in ("git", "git.exe")


class GitProcess(NamedTuple):
    """A git process: the one that ran the hook, or the git command that ran that one."""

    pid: int
    argv: list[str] | None
    started: float | None

    @property
    def text(self) -> str:
        return shlex.join(self.argv) if self.argv else f"git (pid {self.pid})"


def nearest_git(pid: int, depth: int = 3) -> int:
    """``pid`` if it is a git process, else its nearest git ancestor within ``depth`` steps (else ``pid``)."""
    here: int | None = pid
    for _ in range(depth + 1):
        if here is None or here <= 1:
            break
        if _is_git(process_argv(here)):
            return here
        here = _parent_pid(here)
    return pid


def parent_argv(pid: int) -> list[str] | None:
    """The command line of the process that started ``pid``, git or not."""
    parent = _parent_pid(pid)
    return None if parent is None or parent <= 1 else process_argv(parent)


def outer_git(pid: int) -> GitProcess | None:
    """The git process that started git process ``pid``, if there is one.

    ``git stash`` runs ``git reset --hard`` as a child: the hook fires in the
    child, but the user typed ``git stash``.
    """
    parent = _parent_pid(pid)
    if parent is None or parent <= 1:
        return None
    argv = process_argv(parent)
    return GitProcess(parent, argv, process_start_time(parent)) if _is_git(argv) else None


# git's own options that come before the command; those listed here take a value as the next word.
_GIT_OPTIONS_WITH_VALUE = frozenset(
    {"-c", "-C", "--git-dir", "--work-tree", "--namespace", "--config-env", "--exec-path"}
)


def git_subcommand(argv: Sequence[str] | None) -> tuple[str, list[str]] | None:
    """(the git command, its arguments) of a git command line, past git's own options; None if not git."""
    if not _is_git(argv) or argv is None:
        return None
    words = list(argv[1:])
    while words and words[0].startswith("-"):
        option = words.pop(0)
        if option in _GIT_OPTIONS_WITH_VALUE and words:
            words.pop(0)
    return (words[0], words[1:]) if words else None
