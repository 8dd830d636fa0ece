"""The agent command gate: judge a coding agent's tool call before it runs.

Claude Code runs ``guardian agent-hook`` before every Bash, Write, Edit,
MultiEdit and NotebookEdit call and pipes it a PreToolUse JSON document.  Most
calls are ``ls``, ``git status`` or ``pytest``, so :func:`run_hook` first takes
the quick look of :func:`guardian.shell.quick.plainly_benign`, which needs
nothing but ``json`` and ``os``: a plainly benign command exits 0 without
loading the bash grammar, the policy or pygit2.  Everything else goes to
:func:`guardian.gates.agent.gate.run_full`, which finds the project, parses the
command, judges it against the policy, and blocks (exit 2, one line on stderr)
or snapshots and allows.  See :mod:`guardian.gates.agent.gate` for the rules.

This module is on the path of every agent command: keep its imports light.
"""

from __future__ import annotations

import os

from guardian.gates.agent.result import HookResult

# Not typing.TYPE_CHECKING: importing typing costs more than deciding a benign command.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import PurePath

_GOVERNED = frozenset({"Bash", "Write", "Edit", "MultiEdit", "NotebookEdit"})


class _Decoding:
    """The settings ``json.JSONDecoder()`` hands its C scanner: plain dicts, floats and ints, NaN allowed."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float  # "NaN", "Infinity", "-Infinity": the values json's own table holds


def _loads(data: bytes | str) -> object:
    """``json.loads`` for UTF-8 input, without importing json (which brings re, enum and functools).

    The same C scanner json uses, with json's default settings, so what it accepts it
    reads the same way.  Anything else (a BOM, UTF-16, an error) raises ValueError and
    goes to the full path, which reads it with json itself.
    """
    try:
        from _json import make_scanner
    except ImportError:  # an interpreter without the C accelerator
        import json

        return json.loads(data)
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    blank = " \t\n\r"
    start = len(text) - len(text.lstrip(blank))
    try:
        # typeshed types the context as a scanner; json hands it its decoder, any object with these attributes.
        value, end = make_scanner(_Decoding)(text, start)  # type: ignore[arg-type]
    except StopIteration:
        raise ValueError("no JSON value") from None
    if text[end:].strip(blank):
        raise ValueError("extra data after the JSON value")
    return value


def _quick(data: bytes | str, default_cwd: str) -> HookResult | None:
    """Answer without the full gate when the call certainly changes nothing; None when unsure."""
    try:
        raw = _loads(data)
    except Exception:  # noqa: BLE001 - whatever the quick reader cannot read, the full path reports
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("tool_input"), dict):
        return None
    tool, event = raw.get("tool_name"), raw.get("hook_event_name")
    if isinstance(tool, str) and tool and tool not in _GOVERNED:
        return HookResult(0)
    if isinstance(event, str) and event not in ("", "PreToolUse"):
        return HookResult(0)
    command = raw["tool_input"].get("command")
    if tool != "Bash" or not isinstance(command, str):
        return None
    cwd = raw.get("cwd") if isinstance(raw.get("cwd"), str) and raw.get("cwd") else default_cwd
    from guardian.shell.quick import plainly_benign

    return HookResult(0) if plainly_benign(command, str(cwd)) else None


def run_hook(data: bytes | str, environ: Mapping[str, str], default_cwd: str | PurePath) -> HookResult:
    """The whole PreToolUse hook: the quick look, then (when needed) parse, judge, snapshot or block."""
    answer = _quick(data, os.fspath(default_cwd))
    if answer is not None:
        return answer
    from pathlib import Path

    from guardian.gates.agent.gate import run_full

    return run_full(data, environ, Path(default_cwd))


def main() -> int:
    """The ``guardian-agent-hook`` console script: the hook without ``python -m``.

    ``guardian agent install claude`` writes this script's path when it is installed: it
    skips runpy's module search and ``guardian/__main__``, a few ms on every agent command.
    """
    import sys

    result = run_hook(sys.stdin.buffer.read(), os.environ, os.getcwd())  # no pathlib: it is slow to import
    if result.stderr:
        sys.stderr.write(result.stderr)
    return result.exit_code
