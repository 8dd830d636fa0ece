"""The hook's side of Claude Code's protocol: the PreToolUse document, the exit codes, GUARDIAN_FORCE.

Also the repository's git aliases, because a ``git`` word in a command means what
they say it means and they are read before the command is parsed.  This is all the
benign fast path needs besides the shell parser, so it stays small and imports
nothing heavier than json and the git runner.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from guardian.util.git import GitError, run_git

ENV_FORCE = "GUARDIAN_FORCE"
EXIT_ALLOW = 0
EXIT_BLOCK = 2  # Claude Code: "blocking error", the tool call is cancelled and stderr goes to the model
# The key holding the file each file-editing tool writes.  NotebookEdit names its notebook
# `notebook_path`; a `file_path` is read too, so a client that spells it so is not waved through.
FILE_TOOLS: dict[str, str] = {"Write": "file_path", "Edit": "file_path", "MultiEdit": "file_path",
                              "NotebookEdit": "notebook_path"}
_PATH_KEYS = ("file_path", "notebook_path", "path", "filePath", "notebookPath")
# What the parser may know of the agent's environment: `rm -rf "$TMPDIR/build"` is that path.
_ENVIRON_KEYS = ("HOME", "TMPDIR", "SHELL", "USER")
TOOL_TIMEOUT = 10.0  # seconds for each git/find/rsync query; Claude Code kills a hook after 60 s


class BadHookInput(ValueError):
    """The hook's stdin is not a PreToolUse document we can read."""


@dataclass(frozen=True)
class HookRequest:
    """What the gate needs from one PreToolUse document."""

    tool_name: str
    cwd: Path
    command: str | None = None  # Bash
    file_path: str | None = None  # Write, Edit, MultiEdit
    session_id: str | None = None
    tool_use_id: str | None = None
    event: str = ""  # hook_event_name

    @property
    def display(self) -> str:
        return self.command if self.command is not None else f"{self.tool_name} {self.file_path}"


def parse_hook_input(data: bytes | str, default_cwd: Path) -> HookRequest:
    """Read Claude Code's PreToolUse JSON; raises :class:`BadHookInput` with a one-line reason."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        raw = json.loads(text)
    except UnicodeDecodeError as exc:
        raise BadHookInput(f"not UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise BadHookInput(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(raw, dict):
        raise BadHookInput(f"expected a JSON object, got {type(raw).__name__}")
    tool = raw.get("tool_name")
    if not isinstance(tool, str) or not tool:
        raise BadHookInput("no 'tool_name'")
    tool_input = raw.get("tool_input")
    if not isinstance(tool_input, dict):
        raise BadHookInput("'tool_input' is not an object")
    cwd_raw = raw.get("cwd")
    cwd = Path(cwd_raw) if isinstance(cwd_raw, str) and cwd_raw else default_cwd
    session = raw.get("session_id") if isinstance(raw.get("session_id"), str) else None
    use_id = raw.get("tool_use_id") if isinstance(raw.get("tool_use_id"), str) else None
    command: str | None = None
    file_path: str | None = None
    if tool == "Bash":
        command = tool_input.get("command")
        if not isinstance(command, str):
            raise BadHookInput("Bash call without a 'tool_input.command' string")
    elif tool in FILE_TOOLS:
        file_path = tool_input.get(FILE_TOOLS[tool])
        if not (isinstance(file_path, str) and file_path) and tool == "NotebookEdit":
            file_path = tool_input.get("file_path")
        if not isinstance(file_path, str) or not file_path:
            raise BadHookInput(f"{tool} call without a 'tool_input.{FILE_TOOLS[tool]}' string")
    event = raw.get("hook_event_name")
    event = event if isinstance(event, str) else ""
    return HookRequest(tool, cwd, command, file_path, session, use_id, event)


def named_in_payload(data: bytes | str, default_cwd: Path) -> list[Path]:
    """The paths a hook input names under its path keys, even when it is malformed otherwise."""
    try:
        raw = json.loads(data.decode("utf-8", "replace") if isinstance(data, bytes) else data)
    except ValueError:
        return []
    if not isinstance(raw, dict):
        return []
    cwd_raw = raw.get("cwd")
    cwd = Path(cwd_raw) if isinstance(cwd_raw, str) and cwd_raw else default_cwd
    found: list[Path] = []
    for holder in (raw.get("tool_input"), raw):
        if not isinstance(holder, dict):
            continue
        for key in _PATH_KEYS:
            value = holder.get(key)
            if isinstance(value, str) and value:
                found.append(Path(value) if os.path.isabs(value) else cwd / value)
    return found


def shell_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables the parser may resolve.  An unset TMPDIR expands to "" in bash, and so it does here."""
    found = {k: environ[k] for k in _ENVIRON_KEYS if k in environ}
    found.setdefault("TMPDIR", "")
    return found


def force_requested(environ: Mapping[str, str]) -> bool:
    """Whether GUARDIAN_FORCE asks to let forceable problems through."""
    return (environ.get(ENV_FORCE) or "").strip().lower() in ("1", "true", "yes", "on")


def read_git_aliases(cwd: Path) -> dict[str, str]:
    """The git aliases in effect in ``cwd`` ({} without git or a repository: nothing to expand)."""
    try:
        result = run_git(["config", "-z", "--get-regexp", r"^alias\."], cwd=cwd, timeout=TOOL_TIMEOUT, check=False)
    except GitError:
        return {}
    aliases: dict[str, str] = {}
    for record in result.stdout.decode("utf-8", "surrogateescape").split("\0"):
        key, _, value = record.partition("\n")
        if key.lower().startswith("alias.") and value:
            aliases[key[len("alias."):]] = value
    return aliases
