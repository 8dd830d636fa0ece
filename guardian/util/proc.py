"""Who is asking: process command lines for the audit trail (gate, rollback, hooks)."""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def process_argv(pid: int) -> list[str] | None:
    """The command line of ``pid``: /proc on Linux, ``ps -o args=`` elsewhere (there split on spaces)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        parts = [os.fsdecode(p) for p in raw.split(b"\0") if p]
        if parts:
            return parts
    except OSError:
        pass
    try:
        out = subprocess.run(["ps", "-o", "args=", "-p", str(pid)], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.split() or None


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
