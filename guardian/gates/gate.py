"""``guardian gate``: ask the policy about an operation that a user's own script is about to run.

A rollback script, an rsync wrapper or a ``git reset`` alias calls the gate
first, and the gate's exit code (0 allow, 3 needs --force, 4 blocked) tells it
whether to go ahead.  Each answer is appended to the event log with who asked
and from where, so a later "who reverted the pipeline?" has an answer.

The gate is on the hot path of such scripts, so it reads only guardian.yaml and
the event log: it never opens the shadow store, which keeps pygit2 (about
100 ms to import) out of the process.  ``--from-git`` asks the git CLI, not
pygit2, for the same reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guardian.errors import PathRefused, UsageError
from guardian.events import MAX_EVENT_PATHS
from guardian.paths import ROOT, relative_or_root, to_relative
from guardian.policy import OPERATIONS, ChangeKind, Decision, Operation, PathChange, PolicyEngine, decision_record
from guardian.project import Project
from guardian.util.fs import lstat_at
from guardian.util.git import GitError, GitMissing, GitTimeout, NameStatus, parse_name_status, run_git
from guardian.util.proc import caller_details

_GIT_TIMEOUT = 60.0


@dataclass(frozen=True)
class GateResult:
    """The policy's answer, and where the list of paths came from."""

    decision: Decision
    source: str  # "paths", or "git diff --name-status HEAD <rev>"
    outside: tuple[str, ...] = ()  # paths git listed outside the project root; the policy does not govern them

    @property
    def exit_code(self) -> int:
        return self.decision.exit_code

    def to_json(self) -> dict[str, Any]:
        return {**self.decision.to_json(), "source": self.source, "outside": list(self.outside)}


# --------------------------------------------------------------------------- who is asking


# --------------------------------------------------------------------------- paths


def changes_for_paths(root: Path, operation: Operation, typed: Iterable[str], cwd: Path | None) -> list[PathChange]:
    """What each named path would undergo, judged from what is on disk now.

    For ``delete`` every path is a deletion (even one already gone: the script
    means to delete it, and the policy's delete rule is what applies).  For
    ``rollback``, ``restore`` and ``modify`` (a script about to edit files in
    place) an existing path is modified and a missing one is added back.
    """
    changes: dict[str, ChangeKind] = {}
    for text in typed:
        rel = relative_or_root(root, text, cwd)
        if operation == "delete":
            kind: ChangeKind = "delete"
        elif rel == ROOT or lstat_at(root, rel) is not None:
            kind = "modify"
        else:
            kind = "add"
        changes.setdefault(rel, kind)
    return [PathChange(path, kind) for path, kind in changes.items()]


class _GitFailed(Exception):
    """git ran and refused; the caller turns this into a message about what the user typed."""


def _git(cwd: Path, *args: str) -> bytes:
    # util.git's settings (literal pathspecs, no colour, no relative diff) and the --no-* options
    # below make the output independent of the user's git config.
    try:
        result = run_git(args, cwd=cwd, timeout=_GIT_TIMEOUT, check=False)
    except GitMissing:
        raise UsageError("--from-git needs the git command, and it is not on PATH") from None
    except GitTimeout:
        raise UsageError(f"--from-git: 'git {args[0]}' took more than {int(_GIT_TIMEOUT)}s; try again") from None
    except GitError as exc:  # git could not start here (e.g. no such directory): as if it had refused
        raise _GitFailed(str(exc)) from None
    if not result.ok:
        message = os.fsdecode(result.stderr).strip().splitlines()
        raise _GitFailed(message[-1] if message else f"git {args[0]} exited with {result.returncode}")
    return result.stdout


def _change_kinds(records: Iterable[NameStatus]) -> list[tuple[str, ChangeKind]]:
    """Moving from HEAD to REV adds (A), deletes (D) or modifies each path of ``git diff --name-status``.

    Renames and copies only appear if a user's config forces rename detection
    past --no-renames; a rename is the deletion of the old path plus the
    addition of the new one, and a copy is an addition.
    """
    out: list[tuple[str, ChangeKind]] = []
    for record in records:
        if record.status == "R" and record.old_path is not None:
            out.append((record.old_path, "delete"))
        kind: ChangeKind = "add" if record.status in "ACR" else "delete" if record.status == "D" else "modify"
        out.append((record.path, kind))
    return out


def changes_from_git(
    root: Path, rev: str, typed: Sequence[str], cwd: Path | None
) -> tuple[list[PathChange], tuple[str, ...]]:
    """The paths that moving the work tree from HEAD to REV would change: ``git diff --name-status HEAD REV``.

    Returns (changes inside the project, paths outside it).  PATHs, when given,
    narrow the diff like a pathspec.
    """
    where = (cwd or Path.cwd()).absolute()
    if not rev or rev.startswith("-"):
        raise UsageError(f"--from-git: '{rev}' is not a revision; give a branch, tag or commit id")
    try:
        top = Path(os.fsdecode(_git(where, "rev-parse", "--show-toplevel").strip()))
    except _GitFailed:
        raise UsageError(f"--from-git: {where} is not inside a git repository") from None
    try:
        commit = os.fsdecode(
            _git(where, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")
        ).strip()
    except _GitFailed:
        raise UsageError(f"--from-git: '{rev}' is not a commit in {top}; give a branch, tag or commit id") from None
    specs = [str(root / rel) if rel != ROOT else str(root) for rel in (relative_or_root(root, t, cwd) for t in typed)]
    try:
        output = _git(
            where,
            "diff",
            "--name-status",
            "-z",
            "--no-renames",
            "--no-relative",
            "--no-ext-diff",
            "--no-textconv",
            "HEAD",
            commit,
            "--",
            *specs,
        )
    except _GitFailed as exc:
        raise UsageError(f"--from-git: git cannot diff HEAD against '{rev}': {exc}") from None
    changes: dict[str, ChangeKind] = {}
    outside: list[str] = []
    for path, kind in _change_kinds(parse_name_status(output)):
        try:
            rel = to_relative(root, str(top / path))
        except PathRefused:
            outside.append(path)
            continue
        # A rename onto a path that is also deleted elsewhere cannot happen in one diff; first wins.
        changes.setdefault(rel, kind)
    return [PathChange(p, k) for p, k in changes.items()], tuple(outside)


# --------------------------------------------------------------------------- the gate


def summary_line(result: GateResult) -> str:
    """One line for people and for the event log: the operation, the verdict and the exit code."""
    d = result.decision
    protected = [p for p in d.paths if p.outcome != "allow"]
    if d.overall == "block":
        blocked = sum(1 for p in d.paths if p.outcome == "block")
        return f"gate {d.operation}: blocked (exit {d.exit_code}): {blocked} path(s) blocked by policy"
    if d.overall == "force":
        waiting = sum(1 for p in d.paths if p.outcome == "force" and not p.forced)
        return f"gate {d.operation}: needs --force (exit {d.exit_code}): {waiting} protected path(s)"
    if protected:
        return f"gate {d.operation}: allow with --force (exit {d.exit_code}): {len(protected)} protected path(s) forced"
    return f"gate {d.operation}: allow (exit {d.exit_code}): {len(d.paths)} path(s)"


def run_gate(
    project: Project,
    operation: str,
    typed_paths: Sequence[str],
    *,
    cwd: Path | None,
    force: bool,
    from_git: str | None,
    argv: Sequence[str],
) -> GateResult:
    """Decide, record the decision as a ``gate`` event, and return it; the caller exits with its code."""
    if operation not in OPERATIONS:
        raise UsageError(f"unknown operation '{operation}'; use one of {', '.join(OPERATIONS)}")
    if not typed_paths and from_git is None:
        raise UsageError("gate: name the PATHs the operation would change, or give --from-git REV")
    # Checked first: a decision that cannot be put on the record must not be handed out.
    project.require_store()
    root = project.root
    if from_git is not None:
        changes, outside = changes_from_git(root, from_git, typed_paths, cwd)
        source = f"git diff --name-status HEAD {from_git}"
    else:
        changes, outside = changes_for_paths(root, operation, typed_paths, cwd), ()
        source = "paths"
    decision = PolicyEngine.from_policy(project.policy).decide(operation, changes, force)
    result = GateResult(decision, source, outside)
    _record(project, result, argv)
    return result


def _record(project: Project, result: GateResult, argv: Sequence[str]) -> None:
    d = result.decision
    # The trigger says whether guardian said no, so `events --kind block` lists refusals
    # from gates next to those from hooks; `--kind force` finds forced ones via details.force.
    trigger = "allow" if d.overall == "allow" else "block"
    details: dict[str, Any] = {
        **caller_details(argv),
        "operation": d.operation,
        "force": d.force,
        "forced": [p.path for p in d.paths if p.forced],
        "outcome": d.overall,
        "exit_code": d.exit_code,
        "source": result.source,
        "summary": summary_line(result),
        "decision": decision_record(d),
    }
    if result.outside:
        details["outside"] = len(result.outside)
    project.events.append("gate", [p.path for p in d.paths][:MAX_EVENT_PATHS], None, trigger, details)


__all__ = [
    "ROOT",
    "GateResult",
    "changes_for_paths",
    "changes_from_git",
    "decision_record",
    "relative_or_root",
    "run_gate",
    "summary_line",
]
