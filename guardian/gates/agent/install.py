"""Installing the agent hook into Claude Code's settings.json, and taking it out again.

The merge keeps every other setting and every other hook: only entries whose
command ends in ``guardian ... agent-hook`` or ``guardian-agent-hook`` are ours, an up-to-date entry is left
exactly as it is, and a settings file that is not valid JSON is reported and never
rewritten.  The file is replaced atomically, with its mode kept.
"""

from __future__ import annotations

import json
import shlex
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from guardian.errors import ConfigError
from guardian.paths import find_project_root

HOOK_MATCHER = "Bash|Write|Edit|MultiEdit|NotebookEdit"
HOOK_SCRIPT = "guardian-agent-hook"  # the console script of pyproject.toml's [project.scripts]


@dataclass(frozen=True)
class InstallReport:
    path: Path
    action: Literal["installed", "updated", "unchanged", "removed", "absent"]
    command: str

    @property
    def changed(self) -> bool:
        return self.action in ("installed", "updated", "removed")


def hook_command() -> str:
    """The command Claude Code runs, tied to this installation so it works without guardian on PATH.

    The ``guardian-agent-hook`` console script next to this interpreter when there is one (it starts
    a few ms sooner than ``-m``, on every agent command), else this interpreter with ``-P -m guardian agent-hook``
    (-P: the agent runs it in the project, whose own guardian/ package, if any, ``-m`` alone would run).
    """
    script = Path(sys.executable).parent / HOOK_SCRIPT
    if script.is_file():
        return shlex.quote(str(script))
    return f"{shlex.quote(sys.executable)} -P -m guardian agent-hook"


def claude_settings_path(scope: Literal["project", "user"], cwd: Path) -> Path:
    if scope == "user":
        return Path.home() / ".claude" / "settings.json"
    return find_project_root(cwd).resolve() / ".claude" / "settings.json"


def _is_ours(hook: object) -> bool:
    if not isinstance(hook, dict) or not isinstance(hook.get("command"), str):
        return False
    words = hook["command"].split()
    if words and words[-1].rsplit("/", 1)[-1].strip("'\"") == HOOK_SCRIPT:
        return True
    return len(words) >= 2 and words[-1] == "agent-hook" and "guardian" in words[-2]


def _read_settings(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); fix it, guardian left it unchanged") from None
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg}); fix the file and rerun, "
            "guardian left it unchanged"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object at the top level, found {type(data).__name__}; "
                          "guardian left it unchanged")
    return data


def _pre_tool_use(path: Path, data: dict[str, Any]) -> list[Any]:
    hooks = data.setdefault("hooks", {})
    if not isinstance(hooks, dict):
        raise ConfigError(f"{path}: 'hooks' must be an object, found {type(hooks).__name__}; "
                          "guardian left the file unchanged")
    entries = hooks.setdefault("PreToolUse", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: 'hooks.PreToolUse' must be a list, found {type(entries).__name__}; "
                          "guardian left the file unchanged")
    return entries


def _without_ours(entries: list[Any], keep: dict[str, Any] | None) -> list[Any]:
    """Every entry minus our hooks, except the one entry ``keep`` (identity) left as it is."""
    out: list[Any] = []
    for entry in entries:
        if entry is keep or not isinstance(entry, dict) or not isinstance(entry.get("hooks"), list):
            out.append(entry)
            continue
        others = [h for h in entry["hooks"] if not _is_ours(h)]
        if len(others) == len(entry["hooks"]):
            out.append(entry)
        elif others:
            out.append({**entry, "hooks": others})
    return out


def _write_settings(path: Path, data: dict[str, Any]) -> None:
    from guardian.util.fs import atomic_write_file

    target = path.resolve() if path.is_symlink() else path  # keep a symlinked settings file a symlink
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = 0o644
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_file(target, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"), mode)


def install_claude_hook(path: Path, command: str | None = None) -> InstallReport:
    """Merge our PreToolUse hook into a Claude Code settings file, keeping everything else."""
    command = command or hook_command()
    data = _read_settings(path)
    existed = path.exists()
    entries = _pre_tool_use(path, data)
    canonical = next(
        (e for e in entries
         if isinstance(e, dict) and e.get("matcher") == HOOK_MATCHER and isinstance(e.get("hooks"), list)
         and [h.get("command") for h in e["hooks"] if _is_ours(h)] == [command]),
        None,
    )
    had_ours = any(_is_ours(h) for e in entries if isinstance(e, dict) and isinstance(e.get("hooks"), list)
                   for h in e["hooks"])
    new_entries = _without_ours(entries, canonical)
    if canonical is None:
        new_entries.append({"matcher": HOOK_MATCHER, "hooks": [{"type": "command", "command": command}]})
    if existed and new_entries == entries:
        return InstallReport(path, "unchanged", command)
    data["hooks"]["PreToolUse"] = new_entries
    _write_settings(path, data)
    return InstallReport(path, "updated" if had_ours else "installed", command)


def uninstall_claude_hook(path: Path) -> InstallReport:
    """Remove only guardian's hook; drop containers that only held it."""
    data = _read_settings(path)
    hooks = data.get("hooks")
    entries = hooks.get("PreToolUse") if isinstance(hooks, dict) else None
    if not isinstance(hooks, dict) or not isinstance(entries, list):
        return InstallReport(path, "absent", hook_command())
    new_entries = _without_ours(entries, None)
    if new_entries == entries:
        return InstallReport(path, "absent", hook_command())
    if new_entries:
        hooks["PreToolUse"] = new_entries
    else:
        del hooks["PreToolUse"]
        if not hooks:
            del data["hooks"]
    _write_settings(path, data)
    return InstallReport(path, "removed", hook_command())
