"""Who is asking: process command lines for the audit trail (gate, rollback, hooks)."""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def process_argv(pid: int) -> list[str] | None:
    """The command line of ``pid``, argument by argument: /proc on Linux, psutil elsewhere (macOS).

    ``ps -o args=`` prints one space-joined string, so an argument with a space in it
    could not be told from two; psutil asks the kernel for the argument vector.
    """
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        parts = [os.fsdecode(p) for p in raw.split(b"\0") if p]
        if parts:
            return parts
    except OSError:
        pass
    import psutil  # only where /proc is missing: it costs a few milliseconds to import

    try:
        return list(psutil.Process(pid).cmdline()) or None
    except (psutil.Error, OSError):
        return None


def caller_details(argv: Sequence[str]) -> dict[str, Any]:
    """Who ran this command and from where, for the audit trail (user and pid are added by EventLog)."""
    try:
        cwd: str | None = os.getcwd()
    except OSError:  # the directory was deleted under us; the record is still worth writing
        cwd = None
    ppid = os.getppid()
    details: dict[str, Any] = {"argv": list(argv), "cwd": cwd, "ppid": ppid}
    parent = process_argv(ppid)
    if parent:
        # The parent is usually the shell running the rollback script: that names the script.
        details["parent_cmdline"] = shlex.join(parent)
    return details
