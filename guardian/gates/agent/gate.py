"""The agent command gate's full path: judge a tool call the quick look could not wave through.

Claude Code runs ``guardian agent-hook`` before every Bash, Write, Edit,
MultiEdit and NotebookEdit call and pipes it a PreToolUse JSON document.
:mod:`guardian.gates.agent.hook` answers plainly benign commands itself and
hands everything else to :func:`run_full`:

1. reads the document (:mod:`~guardian.gates.agent.payload`) and finds the
   guardian project from the call's ``cwd`` (no project: exit 0, not ours);
2. reads a Bash command with :func:`guardian.shell.parse.parse_command` (git
   aliases included) into destructive :class:`~guardian.shell.parse.Intent` s;
   a command with none is benign and passes at once, without loading the judge,
   the policy engine or pygit2;
3. works out the paths each intent would touch (:mod:`~guardian.gates.agent.resolve`),
   asking the tools themselves where they can answer without changing anything;
4. asks :class:`~guardian.policy.PolicyEngine` about each path
   (:mod:`~guardian.gates.agent.judge`);
5. blocks (exit 2, one line on stderr, which Claude Code shows the model) when a
   protected path needs force or is blocked, or when it cannot tell what the
   command touches and protected paths exist where it runs; otherwise it takes a
   snapshot (trigger ``agent``) and allows.

Mapping to the policy's operations (see docs/agents.md for the full table):
deleting (``rm``, ``find -delete``, ``git clean``, the sources of ``mv``) is
``delete``; what replaces a file's content with another version from git or
elsewhere (``git reset/checkout/restore/rebase``, ``stash drop``, ``branch -D``,
``rsync``) is ``rollback``; an in-place edit of an existing file (``>``, ``tee``,
``dd of=``, ``truncate``, ``sed -i``/``perl -i``, ``cp``/``mv``/``ln -sf`` onto
it, and the Write/Edit tools) is ``modify``.  A rule that does not set
``modify`` judges edits by its ``rollback`` action (an agent overwriting a
protected file is, for the file, the same loss as a rollback of it), so a rule
can let agents edit a component (``modify: allow``) while rollbacks of it stay
gated.  Creating a file where none exists loses nothing and is not gated.

Everything that writes (snapshots, events) happens here; judging only reads.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guardian.errors import ConfigError, GuardianError, NotAProject
from guardian.events import EventLog
from guardian.gates.agent.payload import (
    EXIT_ALLOW,
    EXIT_BLOCK,
    BadHookInput,
    HookRequest,
    force_requested,
    named_in_payload,
    parse_hook_input,
    read_git_aliases,
    shell_environ,
)
from guardian.gates.agent.result import HookResult
from guardian.paths import check_relative, find_project_root
from guardian.shell.parse import Intent, parse_command

if TYPE_CHECKING:
    from guardian.gates.agent.judge import Verdict
    from guardian.project import Project

SNAPSHOT_LOCK_TIMEOUT = 20.0


def _find_root(start: Path) -> Path | None:
    try:
        return find_project_root(start)
    except NotAProject:
        return None


def _events_for(root: Path) -> EventLog:
    from guardian.project import ProjectPaths

    return EventLog(ProjectPaths.for_root(root.resolve()).events)


def _record(log: EventLog, kind: str, paths: Sequence[str], snapshot: str | None, details: dict[str, Any]) -> str:
    """Append an event; a missing store (no `guardian init`) must not turn into a blocked call."""
    try:
        log.append(kind, list(paths)[:1000], snapshot, "agent", details)
    except OSError as exc:
        return f"guardian: warning: cannot record the {kind} event in {log.path}: {exc.strerror or exc}\n"
    return ""


def _request_details(request: HookRequest) -> dict[str, Any]:
    return {"tool": request.tool_name, "command": request.display[:4000], "cwd": str(request.cwd),
            "session_id": request.session_id, "tool_use_id": request.tool_use_id}


def _snapshot(project: Project, verdict: Verdict) -> tuple[str | None, str]:
    """Capture what the command is about to change; a failure warns but does not block."""
    paths = verdict.snapshot_paths
    if paths is not None and not paths:
        return None, ""
    from guardian.ops.snapshot import take_snapshot  # imports pygit2: only on this slow path

    safe: list[str] | None = None
    if paths is not None:
        safe = []
        for rel in paths:
            try:  # the snapshot engine refuses .git and odd paths
                safe.append(check_relative(rel))
            except GuardianError:
                continue
        if not safe:
            return None, ""
    try:
        result = take_snapshot(project, safe, "agent", command=verdict.command[:4000],
                               lock_timeout=SNAPSHOT_LOCK_TIMEOUT)
    except (GuardianError, OSError) as exc:
        return None, f"guardian: warning: no snapshot before this command: {exc}\n"
    return result.snapshot, ""


def _named_paths(intents: list[Intent], cwd: Path) -> list[Intent]:
    """Drop the unknown tools that name no existing path: nothing of the user's is at stake there."""
    kept: list[Intent] = []
    for intent in intents:
        if intent.kind != "unknown-command":
            kept.append(intent)
            continue
        base = cwd / intent.cwd if intent.cwd and not intent.cwd.startswith(("$", "~")) else cwd
        if (intent.cwd and intent.cwd.startswith(("$", "~"))) or any(
                "$" in t or "*" in t or "?" in t or "[" in t or os.path.lexists(base / t) for t in intent.targets):
            kept.append(intent)
    return kept


def run_full(data: bytes | str, environ: Mapping[str, str], default_cwd: Path) -> HookResult:
    """The whole PreToolUse hook: parse, judge, snapshot or block, record."""
    try:
        request = parse_hook_input(data, default_cwd)
    except BadHookInput as exc:
        return _malformed(data, exc, environ, default_cwd)
    if request.command is None and request.file_path is None:
        return HookResult(EXIT_ALLOW)  # a tool the gate does not govern
    if request.event not in ("", "PreToolUse"):
        return HookResult(EXIT_ALLOW)  # registered for another event: too late (or too early) to gate
    cwd = request.cwd
    if request.file_path is not None:
        target = Path(request.file_path) if os.path.isabs(request.file_path) else cwd / request.file_path
        if not os.path.lexists(target):
            return HookResult(EXIT_ALLOW)  # a new file loses nothing
        start = target.parent
    else:
        start = cwd
    root = _find_root(start)
    if root is None:
        return HookResult(EXIT_ALLOW)  # not a guarded project: not ours
    force = force_requested(environ)
    intents: list[Intent] = []
    if request.command is not None:
        aliases = read_git_aliases(cwd) if "git" in request.command else {}
        intents = _named_paths(parse_command(request.command, aliases, shell_environ(environ)), cwd)
        if not intents:
            return HookResult(EXIT_ALLOW)  # benign: no pygit2, no event
    from guardian.gates.agent import judge  # resolution and the policy engine: destructive calls only
    from guardian.project import Project

    log = _events_for(root)
    try:
        project = Project.find(root)
    except ConfigError as exc:
        return _policy_unreadable(request, log, exc, force)
    try:
        if request.file_path is not None:
            verdict = judge.judge_file_write(
                project.root, project.policy, request.tool_name, request.file_path, cwd, force=force
            )
        else:
            verdict = judge.judge_intents(
                project.root, project.policy, intents, cwd.resolve(), request.command or "", force=force
            )
    except Exception as exc:  # noqa: BLE001 - a gate bug must not silently wave a command through
        return _internal_error(request, project, log, exc, force)
    if verdict.action == "benign":
        return HookResult(EXIT_ALLOW)  # unknown tools that name nothing protected
    return _act(project, request, verdict, log)


def _malformed(data: bytes | str, exc: BadHookInput, environ: Mapping[str, str], default_cwd: Path) -> HookResult:
    """A broken hook input must not stop the agent (fail open), unless it names a protected path."""
    root = _find_root(default_cwd)
    warning = f"guardian: warning: ignoring a malformed hook input: {exc}\n"
    if root is None:
        return HookResult(EXIT_ALLOW, warning)
    log = _events_for(root)
    warning += _record(log, "error", [], None, {"error": f"malformed hook input: {exc}"})
    named = named_in_payload(data, default_cwd)
    if not named:
        return HookResult(EXIT_ALLOW, warning)
    from guardian.gates.agent.judge import malformed_verdict
    from guardian.project import Project

    try:
        project = Project.find(root)
    except ConfigError:
        return HookResult(EXIT_ALLOW, warning)
    message = malformed_verdict(project.root, project.policy, named, str(exc), force_requested(environ))
    if message is None:
        return HookResult(EXIT_ALLOW, warning)
    _record(log, "block", [], None, {"error": f"malformed hook input: {exc}", "decision": "block"})
    return HookResult(EXIT_BLOCK, message + "\n")


def _act(project: Project, request: HookRequest, verdict: Verdict, log: EventLog) -> HookResult:
    details = {**_request_details(request), **verdict.to_json()}
    paths = sorted({t.path for t in verdict.touches})
    if verdict.blocked:
        blocked = [p.path for p in verdict.problems if not p.forced]
        # The model reads stderr as the reason: it stays the one line, even if the log is unwritable.
        _record(log, "agent", paths, None, {**details, "decision": "block"})
        _record(log, "block", blocked, None, {**details, "decision": "block"})
        return HookResult(EXIT_BLOCK, verdict.message + "\n")
    snapshot, stderr = _snapshot(project, verdict)
    decision = "force" if verdict.action == "forced" else "allow"
    stderr += _record(log, "agent", paths, snapshot, {**details, "decision": decision, "snapshot": snapshot})
    if verdict.action == "forced":
        forced = [p.path for p in verdict.problems]
        stderr += _record(log, "force", forced, snapshot, {**details, "decision": "force", "force": True})
    return HookResult(EXIT_ALLOW, stderr)


def _policy_unreadable(request: HookRequest, log: EventLog, exc: ConfigError, force: bool) -> HookResult:
    # Without a readable policy guardian cannot tell what is protected: fail closed for destructive calls.
    details = {**_request_details(request), "error": str(exc)}
    if force:
        return HookResult(EXIT_ALLOW, _record(log, "force", [], None, {**details, "decision": "force", "force": True}))
    message = (f"guardian: blocked: cannot read the guardian policy ({' '.join(str(exc).split())}); "
               "ask the user to fix guardian.yaml, or to run it with GUARDIAN_FORCE=1")
    _record(log, "block", [], None, {**details, "decision": "block"})
    return HookResult(EXIT_BLOCK, message + "\n")


def _internal_error(request: HookRequest, project: Project, log: EventLog, exc: Exception, force: bool) -> HookResult:
    import traceback  # only for a gate bug: keep it off the fast path

    from guardian.gates.agent.judge import FORCE_ADVICE

    tb = traceback.format_exc().strip().splitlines()[-6:]
    details = {**_request_details(request), "error": f"{type(exc).__name__}: {exc}", "traceback": tb}
    stderr = _record(log, "error", [], None, details)
    if force or not project.policy.protect:
        return HookResult(EXIT_ALLOW, stderr)  # nothing of the user's is protected: fail open
    message = (f"guardian: blocked: internal error while checking this command ({type(exc).__name__}: "
               f"{' '.join(str(exc).split())}); {FORCE_ADVICE}")
    return HookResult(EXIT_BLOCK, message + "\n")
