"""Which processes hold files open for writing, read from Linux's /proc.

A file that another process still has open for writing may be half-written: what a
capture reads now is not a settled version.  /proc/PID/fd lists each process's open
files as symlinks to their paths, and /proc/PID/fdinfo/FD gives the open flags.  One
look at /proc serves a whole capture: every descriptor's link is read once and only
those pointing under the project root have their flags read.  Processes of other users
are unreadable without privileges and so are not seen; without /proc (macOS, Windows)
nothing is.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

PROC = Path("/proc")
# O_ACCMODE and the two access modes that can write, as fdinfo prints the flags (octal).
_ACCESS_MODE = 0o3
_WRITE_MODES = (os.O_WRONLY, os.O_RDWR)
# An appender (a log) never rewrites what is already there: its file is not half-written.
_APPEND = getattr(os, "O_APPEND", 0o2000)
_COMMAND_CHARS = 60


class OpenWriters:
    """The processes holding files under ``root`` open for writing, looked up once, on first use.

    Make a new one for each capture: the answer is a moment's picture of /proc.  Files open
    only for appending are left out.
    """

    def __init__(self, root: Path, proc: Path = PROC) -> None:
        self._root = os.path.realpath(root)
        self._proc = proc
        self._by_path: dict[str, list[int]] | None = None

    def describe(self, rel: str) -> str | None:
        """ "pid N (command)" for the process(es) writing root/rel, or None when none is seen."""
        if self._by_path is None:
            self._by_path = self._scan()
        pids = self._by_path.get(os.path.join(self._root, rel))
        if not pids:
            return None
        first = f"pid {pids[0]} ({_command(self._proc, pids[0])})"
        others = len(pids) - 1
        return first if not others else f"{first} and {others} other process{'es' if others > 1 else ''}"

    def _scan(self) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        prefix = self._root.rstrip("/") + "/"
        try:
            entries = os.listdir(self._proc)
        except OSError:
            return found
        for entry in entries:
            if not entry.isdigit():
                continue
            fd_dir = f"{self._proc}/{entry}/fd"
            try:
                fds = os.listdir(fd_dir)
            except OSError:  # gone, or another user's process
                continue
            for fd in fds:
                try:
                    target = os.readlink(f"{fd_dir}/{fd}")
                except OSError:
                    continue
                if target.startswith(prefix) and _writable(self._proc, entry, fd):
                    pids = found.setdefault(target, [])
                    if int(entry) not in pids:
                        pids.append(int(entry))
        return found


def _writable(proc: Path, pid: str, fd: str) -> bool:
    try:
        with open(f"{proc}/{pid}/fdinfo/{fd}", "rb") as fh:
            info = fh.read(4096)
    except OSError:
        return False
    for line in info.splitlines():
        if line.startswith(b"flags:"):
            try:
                flags = int(line.split()[1], 8)
                return (flags & _ACCESS_MODE) in _WRITE_MODES and not flags & _APPEND
            except (IndexError, ValueError):
                return False
    return False


def _command(proc: Path, pid: int) -> str:
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        raw = b""
    argv = [os.fsdecode(part) for part in raw.split(b"\0") if part]
    if not argv:
        try:
            argv = [(proc / str(pid) / "comm").read_text(errors="replace").strip()]
        except OSError:
            return "?"
    text = " ".join(shlex.join(argv).split())  # one line: it ends up in a verdict's reason
    return text if len(text) <= _COMMAND_CHARS else text[: _COMMAND_CHARS - 3] + "..."
