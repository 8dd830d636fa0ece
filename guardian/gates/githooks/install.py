"""``guardian hooks install|uninstall|status``: hook files that are shims, chained to the user's own hooks.

Each shim (hooks/guardian-hook.sh, with the hook name and interpreter filled in)
carries a marker and runs ``python -m guardian hook-impl``.  A hook the user
already had is renamed to ``<name>.legacy`` and run first; uninstall puts it back
byte for byte.  Everything is checked before anything is changed, so a refusal
leaves the hooks directory as it was.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guardian.errors import NotAProject, OperationFailed, UsageError
from guardian.gates.githooks.context import HOOK_NAMES
from guardian.gates.githooks.gitcli import Git
from guardian.paths import find_project_root

SHIM_MARKER = "# guardian-hook-shim v1"
_MARKER_PREFIX = "# guardian-hook-shim"
LEGACY_SUFFIX = ".legacy"
TEMPLATE_NAME = "guardian-hook.sh"

_PACKAGE_DIR = Path(__file__).resolve().parents[2]  # guardian/
_SOURCE_SHIMS = _PACKAGE_DIR.parent / "hooks"
_PACKAGED_SHIMS = _PACKAGE_DIR / "hook_shims"


def shims_dir() -> Path:
    """The shim templates live in hooks/ in a source checkout and in guardian/hook_shims in the wheel."""
    return _SOURCE_SHIMS if (_SOURCE_SHIMS / TEMPLATE_NAME).is_file() else _PACKAGED_SHIMS


@dataclass(frozen=True)
class HookFile:
    name: str
    path: Path
    state: str  # "guardian", "other" (a hook guardian did not write), "absent"
    legacy: Path | None  # the chained original, when there is one
    python: str | None  # the interpreter a guardian shim calls
    python_ok: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "state": self.state,
            "legacy": str(self.legacy) if self.legacy else None,
            "python": self.python,
            "python_ok": self.python_ok,
        }


@dataclass
class HooksStatus:
    hooks_dir: Path
    hooks_path: str | None  # core.hooksPath as configured; None when unset
    project_root: Path | None
    hooks: list[HookFile]

    @property
    def installed(self) -> bool:
        return all(h.state == "guardian" for h in self.hooks)

    def to_json(self) -> dict[str, Any]:
        return {
            "hooks_dir": str(self.hooks_dir),
            "core_hooks_path": self.hooks_path,
            "project_root": str(self.project_root) if self.project_root else None,
            "installed": self.installed,
            "hooks": [h.to_json() for h in self.hooks],
        }


@dataclass
class InstallReport:
    hooks_dir: Path
    hooks_path: str | None
    python: str
    project_root: Path | None
    written: list[str] = field(default_factory=list)
    chained: list[str] = field(default_factory=list)  # an existing hook was moved to <name>.legacy
    updated: list[str] = field(default_factory=list)  # a guardian shim was rewritten

    def to_json(self) -> dict[str, Any]:
        return {
            "hooks_dir": str(self.hooks_dir),
            "core_hooks_path": self.hooks_path,
            "python": self.python,
            "project_root": str(self.project_root) if self.project_root else None,
            "written": self.written,
            "chained": self.chained,
            "updated": self.updated,
        }


@dataclass
class UninstallReport:
    hooks_dir: Path
    removed: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)  # <name>.legacy put back as <name>
    left: list[tuple[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "hooks_dir": str(self.hooks_dir),
            "removed": self.removed,
            "restored": self.restored,
            "left": [{"hook": n, "reason": r} for n, r in self.left],
        }


def hooks_dir(cwd: Path) -> tuple[Path, str | None]:
    """(the directory git runs this repository's hooks from, core.hooksPath when set).

    ``git rev-parse --git-path hooks`` applies core.hooksPath and, in a linked
    worktree, points at the common directory that every worktree shares.
    """
    git = Git(cwd)
    if not git.ok("rev-parse", "--is-inside-work-tree"):
        raise UsageError(f"{cwd} is not inside a git work tree; run 'guardian hooks' in a git repository")
    where = os.fsdecode(git.run("rev-parse", "--git-path", "hooks").rstrip(b"\n"))
    configured = os.fsdecode(git.run("config", "--get", "core.hooksPath", check=False).strip()) or None
    return Path(os.path.abspath(cwd / where)), configured


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def is_guardian_shim(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError:
        return False
    return _MARKER_PREFIX.encode() in head


def _shim_python(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("python="):
            try:
                words = shlex.split(line[len("python=") :])
            except ValueError:
                return None
            return words[0] if words else None
    return None


def render_shim(name: str, python: str) -> str:
    template = (shims_dir() / TEMPLATE_NAME).read_text(encoding="utf-8")
    return template.replace("@HOOK@", shlex.quote(name)).replace("@PYTHON@", shlex.quote(python))


def _write_shim(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.guardian-tmp")
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)


def _project_root(cwd: Path) -> Path | None:
    """The guardian project the work tree around ``cwd`` belongs to (the one rule in guardian.paths), or None."""
    top = Path(os.fsdecode(Git(cwd).run("rev-parse", "--show-toplevel").rstrip(b"\n")))
    try:
        return find_project_root(top)
    except NotAProject:
        return None


def install(cwd: Path, python: str | None = None) -> InstallReport:
    """Write a shim for every hook; an existing hook is moved to <name>.legacy and chained."""
    directory, configured = hooks_dir(cwd)
    interpreter = os.path.abspath(python or sys.executable)
    report = InstallReport(directory, configured, interpreter, _project_root(cwd))
    # Check everything before changing anything, so a refusal leaves the directory as it was.
    for name in HOOK_NAMES:
        path, legacy = directory / name, directory / (name + LEGACY_SUFFIX)
        if _exists(path) and not is_guardian_shim(path) and _exists(legacy):
            raise OperationFailed(
                f"{path} is not guardian's hook and {legacy} already exists, so the hook cannot be chained; "
                "move one of them away, then rerun 'guardian hooks install'"
            )
    directory.mkdir(parents=True, exist_ok=True)
    for name in HOOK_NAMES:
        path, legacy = directory / name, directory / (name + LEGACY_SUFFIX)
        if is_guardian_shim(path):
            report.updated.append(name)
        elif _exists(path):
            # A rename keeps the original byte for byte, with its mode (or as the same symlink).
            os.rename(path, legacy)
            report.chained.append(name)
        else:
            report.written.append(name)
        _write_shim(path, render_shim(name, interpreter))
    return report


def uninstall(cwd: Path) -> UninstallReport:
    """Remove guardian's shims and put back the hooks they replaced."""
    directory, _configured = hooks_dir(cwd)
    report = UninstallReport(directory)
    for name in HOOK_NAMES:
        path, legacy = directory / name, directory / (name + LEGACY_SUFFIX)
        if is_guardian_shim(path):
            path.unlink()
            report.removed.append(name)
        elif _exists(path):
            if _exists(legacy):
                report.left.append((name, f"{path} is not guardian's shim; {legacy} left in place"))
            continue
        if _exists(legacy):
            os.rename(legacy, path)
            report.restored.append(name)
    return report


def status(cwd: Path) -> HooksStatus:
    directory, configured = hooks_dir(cwd)
    found: list[HookFile] = []
    for name in HOOK_NAMES:
        path, legacy = directory / name, directory / (name + LEGACY_SUFFIX)
        chained = legacy if _exists(legacy) else None
        if is_guardian_shim(path):
            python = _shim_python(path)
            ok = bool(python) and os.access(python or "", os.X_OK)
            found.append(HookFile(name, path, "guardian", chained, python, ok))
        else:
            found.append(HookFile(name, path, "other" if _exists(path) else "absent", chained, None, False))
    return HooksStatus(directory, configured, _project_root(cwd), found)
