"""``guardian hooks install|uninstall|status``: hook files that are shims, chained to the user's own hooks.

Each shim (see guardian.gates.githooks.shim) carries a marker and runs ``python -m
guardian hook-impl``.  A hook the user already had is renamed to
``<name>.guardian-chained`` and run first, under its own name; uninstall puts it
back byte for byte.  Everything is checked before anything is changed, so a refusal
leaves the hooks directory as it was.

Hook managers get along with it:

- pre-commit keeps the hook it replaced as ``<name>.legacy`` and runs it first.
  Installed after guardian, it runs guardian's shim that way, which counts as
  installed; installed before, its script is chained like any other hook (under a
  name pre-commit does not look for, so it never finds itself in "migration mode").
- husky 9 points core.hooksPath at ``.husky/_`` (ignored by git) and dispatches on
  the hook's file name, which the shim keeps.  Its prepare step later writes its
  wrapper over guardian's shims: ``status`` says so, and ``install`` chains again.
- core.hooksPath inside the work tree and not ignored (a tracked ``.githooks/``)
  would make the shims files of the repository: ``install`` refuses and says what
  to do instead.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guardian.errors import GuardianError, NotAProject, OperationFailed, UsageError
from guardian.gates.githooks.context import HOOK_NAMES
from guardian.gates.githooks.gitcli import Git
from guardian.gates.githooks.shim import (
    CHAIN_LINKS,
    CHAIN_SUFFIX,
    PRE_COMMIT_LEGACY_SUFFIX,
    V1_LEGACY_SUFFIX,
    exists,
    is_guardian_shim,
    manager_of,
    render_shim,
    same_bytes,
    shim_outdated,
    shim_projects,
    shim_python,
)
from guardian.paths import find_project_root, store_dir_for
from guardian.trust.hook_pathspec import refresh_pathspec_file
from guardian.trust.policy import accepted_path
from guardian.util.git import run_git


class HooksPathInWorkTree(OperationFailed):
    """core.hooksPath points at a directory of the work tree that git does not ignore."""


@dataclass(frozen=True)
class HookFile:
    name: str
    path: Path
    # "guardian": the shim is the hook; "via-pre-commit": pre-commit's script runs guardian's
    # shim as its <name>.legacy; "replaced": another tool wrote over guardian's shim (its
    # chained hook is still there); "other": a hook guardian did not write; "absent".
    state: str
    chained: Path | None  # the hook guardian's shim runs first, when there is one
    python: str | None  # the interpreter a guardian shim calls
    python_ok: bool
    manager: str | None = None  # "husky" or "pre-commit", when the hook file is theirs
    # The shim is not what this guardian writes (an older template, without the shell's fast
    # path for instance): it still guards, and 'guardian hooks install' rewrites it.
    outdated: bool = False

    @property
    def guarded(self) -> bool:
        return self.state in ("guardian", "via-pre-commit") and self.python_ok

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "state": self.state,
            "chained": str(self.chained) if self.chained else None,
            "manager": self.manager,
            "python": self.python,
            "python_ok": self.python_ok,
            "outdated": self.outdated,
        }


@dataclass
class HooksStatus:
    hooks_dir: Path
    hooks_path: str | None  # core.hooksPath as configured; None when unset
    project_root: Path | None
    hooks: list[HookFile]

    @property
    def installed(self) -> bool:
        return all(h.guarded for h in self.hooks)

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
    chained: list[str] = field(default_factory=list)  # an existing hook was moved to <name>.guardian-chained
    updated: list[str] = field(default_factory=list)  # a guardian shim was rewritten
    via_pre_commit: list[str] = field(default_factory=list)  # the shim is pre-commit's <name>.legacy

    def to_json(self) -> dict[str, Any]:
        return {
            "hooks_dir": str(self.hooks_dir),
            "core_hooks_path": self.hooks_path,
            "python": self.python,
            "project_root": str(self.project_root) if self.project_root else None,
            "written": self.written,
            "chained": self.chained,
            "updated": self.updated,
            "via_pre_commit": self.via_pre_commit,
        }


@dataclass
class UninstallReport:
    hooks_dir: Path
    removed: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)  # <name>.guardian-chained put back as <name>
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


def _top(cwd: Path) -> Path:
    return Path(os.fsdecode(Git(cwd).run("rev-parse", "--show-toplevel").rstrip(b"\n")))


def _project_root(cwd: Path) -> Path | None:
    """The guardian project the work tree around ``cwd`` belongs to (the one rule in guardian.paths), or None."""
    try:
        return find_project_root(_top(cwd))
    except NotAProject:
        return None


def _check_not_in_work_tree(cwd: Path, directory: Path, configured: str | None) -> None:
    """Refuse a hooks directory that git would see as part of the repository."""
    if configured is None:
        return
    top = _top(cwd)
    try:
        rel = directory.resolve().relative_to(top.resolve())
    except ValueError:
        return  # outside the work tree
    probe = (rel / HOOK_NAMES[0]).as_posix()
    git = Git(top)
    tracked = bool(git.run("ls-files", "-z", "--", rel.as_posix() or ".", check=False).strip(b"\0"))
    # check-ignore refuses git's --literal-pathspecs, which every other call here uses.
    ignored = run_git(
        ["check-ignore", "-q", "--no-index", "--", probe], cwd=top, check=False, literal_pathspecs=False
    ).ok
    if ignored and not tracked:
        return  # e.g. husky's .husky/_, which ignores itself
    default = Path(os.path.abspath(top / os.fsdecode(git.run("rev-parse", "--git-common-dir").rstrip(b"\n")))) / "hooks"
    raise HooksPathInWorkTree(
        f"core.hooksPath ({configured}) is {directory}, inside the work tree and not ignored by git: guardian's "
        "shims would become files of your repository, so nothing was written. Instead: run "
        f"'git config --unset core.hooksPath', link or copy each of your hooks from {directory} into {default}, "
        "then rerun 'guardian hooks install' (it chains the hooks it finds there)"
    )


def _known_projects(directory: Path, current: Path | None) -> list[tuple[Path, Path]]:
    """The projects the shims will know: those the existing shims knew (store still there), plus this one."""
    pairs: dict[Path, Path] = {}
    for name in HOOK_NAMES:
        for candidate in (directory / name, directory / (name + PRE_COMMIT_LEGACY_SUFFIX)):
            if is_guardian_shim(candidate):
                for root, store in shim_projects(candidate):
                    if (store / "repo.git").is_dir():
                        pairs.setdefault(root, store)
    if current is not None:
        root = current.resolve()
        pairs[root] = store_dir_for(root)
    return sorted(pairs.items())


@dataclass(frozen=True)
class _Plan:
    name: str
    target: Path  # where the shim goes
    chain_from: Path | None  # a hook to move to <name>.guardian-chained first
    kind: str  # "written", "updated", "chained", "via-pre-commit"


def _plan(directory: Path, name: str) -> _Plan:
    path = directory / name
    legacy = directory / (name + V1_LEGACY_SUFFIX)
    if is_guardian_shim(path):
        # A shim of guardian before v2 kept the replaced hook as <name>.legacy: it moves to the new name.
        return _Plan(name, path, legacy if exists(legacy) and not is_guardian_shim(legacy) else None, "updated")
    if manager_of(path) == "pre-commit" and is_guardian_shim(directory / (name + PRE_COMMIT_LEGACY_SUFFIX)):
        return _Plan(name, directory / (name + PRE_COMMIT_LEGACY_SUFFIX), None, "via-pre-commit")
    if exists(path):
        return _Plan(name, path, path, "chained")
    return _Plan(name, path, None, "written")


def install(cwd: Path, python: str | None = None) -> InstallReport:
    """Write a shim for every hook; an existing hook is moved to <name>.guardian-chained and chained."""
    directory, configured = hooks_dir(cwd)
    _check_not_in_work_tree(cwd, directory, configured)
    interpreter = os.path.abspath(python or sys.executable)
    current = _project_root(cwd)
    report = InstallReport(directory, configured, interpreter, current)
    plans = [_plan(directory, name) for name in HOOK_NAMES]
    # Check everything before changing anything, so a refusal leaves the directory as it was.
    for plan in plans:
        chained = directory / (plan.name + CHAIN_SUFFIX)
        if plan.chain_from is not None and exists(chained) and not same_bytes(plan.chain_from, chained):
            raise OperationFailed(
                f"{plan.chain_from} is not guardian's hook and {chained} already exists, so the hook cannot be "
                "chained; move one of them away, then rerun 'guardian hooks install'"
            )
    projects = _known_projects(directory, current)
    directory.mkdir(parents=True, exist_ok=True)
    for plan in plans:
        if plan.chain_from is not None:
            # A rename keeps the original byte for byte, with its mode (or as the same symlink).  A
            # chained copy with the same bytes is the manager's wrapper written again (husky's prepare).
            os.replace(plan.chain_from, directory / (plan.name + CHAIN_SUFFIX))
        _link_chained(directory, plan.name)
        getattr(report, plan.kind.replace("-", "_")).append(plan.name)
        _write_shim(plan.target, render_shim(plan.name, interpreter, projects))
    for _root, store in projects:
        # A store whose policy was accepted before the shims had a fast path gets its pathspec file now.
        refresh_pathspec_file(store, accepted_path(store))
    return report


def install_for_init(cwd: Path) -> tuple[InstallReport | None, str | None]:
    """What ``guardian init`` does about hooks: install them in a git work tree, else nothing.

    Returns (the report, None), or (None, why not) when they could not be installed;
    (None, None) outside git.
    """
    git = Git(cwd)
    if not git.ok("rev-parse", "--is-inside-work-tree"):
        return None, None
    try:
        return install(cwd), None
    except GuardianError as exc:
        return None, str(exc)


def _link_chained(directory: Path, name: str) -> None:
    """``.guardian-chained/<name>`` -> ``../<name>.guardian-chained``: runs a chained non-shell hook under its name."""
    links = directory / CHAIN_LINKS
    link = links / name
    if not exists(directory / (name + CHAIN_SUFFIX)):
        if link.is_symlink():
            link.unlink()
        return
    links.mkdir(exist_ok=True)
    if not link.is_symlink():
        os.symlink(os.path.join("..", name + CHAIN_SUFFIX), link)


def _write_shim(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.guardian-tmp")
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)


def uninstall(cwd: Path) -> UninstallReport:
    """Remove guardian's shims and put back the hooks they replaced."""
    directory, _configured = hooks_dir(cwd)
    report = UninstallReport(directory)
    for name in HOOK_NAMES:
        path, chained = directory / name, directory / (name + CHAIN_SUFFIX)
        legacy = directory / (name + V1_LEGACY_SUFFIX)
        if is_guardian_shim(path):
            path.unlink()
            report.removed.append(name)
            back = chained if exists(chained) else legacy if exists(legacy) else None
            if back is not None:
                os.rename(back, path)
                report.restored.append(name)
        elif manager_of(path) == "pre-commit" and is_guardian_shim(legacy):
            # pre-commit runs guardian's shim as its legacy hook: what guardian had chained becomes pre-commit's.
            legacy.unlink()
            report.removed.append(name)
            if exists(chained) and manager_of(chained) == "pre-commit":
                chained.unlink()  # pre-commit's own script again: as its legacy hook it would run itself
            elif exists(chained):
                os.rename(chained, legacy)
                report.restored.append(name)
        elif exists(chained):
            report.left.append((name, f"{path} is not guardian's shim; {chained} left in place"))
        link = directory / CHAIN_LINKS / name
        if link.is_symlink():
            link.unlink()
    try:
        (directory / CHAIN_LINKS).rmdir()
    except OSError:
        pass  # absent, or holds something guardian did not put there
    return report


def status(cwd: Path) -> HooksStatus:
    directory, configured = hooks_dir(cwd)
    found = [_hook_file(directory, name) for name in HOOK_NAMES]
    return HooksStatus(directory, configured, _project_root(cwd), found)


def _hook_file(directory: Path, name: str) -> HookFile:
    path, chained_path = directory / name, directory / (name + CHAIN_SUFFIX)
    legacy = directory / (name + V1_LEGACY_SUFFIX)
    manager = manager_of(path) if exists(path) else None
    if is_guardian_shim(path):
        chained = chained_path if exists(chained_path) else legacy if exists(legacy) else None
        python = shim_python(path)
        return HookFile(name, path, "guardian", chained, python, _runnable(python), outdated=shim_outdated(name, path))
    if manager == "pre-commit" and is_guardian_shim(legacy):
        python = shim_python(legacy)
        chained = chained_path if exists(chained_path) else None
        outdated = shim_outdated(name, legacy)
        return HookFile(name, path, "via-pre-commit", chained, python, _runnable(python), manager, outdated)
    if exists(path):
        state = "replaced" if exists(chained_path) else "other"
        return HookFile(name, path, state, chained_path if state == "replaced" else None, None, False, manager)
    return HookFile(name, path, "absent", None, None, False)


def _runnable(python: str | None) -> bool:
    return bool(python) and os.access(python or "", os.X_OK)


def replaced_shims(hooks_directory: Path) -> list[HookFile]:
    """Hooks whose guardian shim another tool wrote over since install (husky's prepare step, typically)."""
    return [h for h in (_hook_file(hooks_directory, n) for n in HOOK_NAMES) if h.state == "replaced"]
