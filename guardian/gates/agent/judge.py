"""Judging: the policy's answer for every path a tool call would touch, and the one-line message.

:func:`judge_intents` resolves each intent (:mod:`guardian.gates.agent.resolve`),
asks :class:`~guardian.policy.PolicyEngine` about the paths per operation, fails
closed where a command cannot be read and the user's protected paths exist where
it runs, and says which paths to snapshot first.  It reads git and the disk and
writes nothing, so ``guardian agent check`` can show a decision safely.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from guardian.gates.agent.payload import EXIT_ALLOW, EXIT_BLOCK, read_git_aliases
from guardian.gates.agent.resolve import resolve_intent
from guardian.gates.agent.resolver import Resolver, Touch, Unknown
from guardian.shell.parse import Intent, parse_command

if TYPE_CHECKING:
    # The policy engine (pathspec) is loaded only once a command is destructive.
    from guardian.config import Policy
    from guardian.policy import Operation, Outcome, PathDecision, PolicyEngine

FORCE_ADVICE = "ask the user, who can run it with GUARDIAN_FORCE=1 or use 'guardian rollback --force'"
BLOCK_ADVICE = "the policy blocks this even with GUARDIAN_FORCE=1; ask the user"
_GIT_TREE_KINDS = frozenset({"git-reset", "git-checkout-rev", "git-rebase"})

Action = Literal["benign", "allow", "forced", "block"]


@dataclass(frozen=True)
class Problem:
    """One reason to stop the call: a protected path it would change, or one it might."""

    display: str  # the (part of the) command that would do it
    verb: str
    path: str
    outcome: Outcome  # "force" or "block"
    reason: str  # the rule's reason
    forced: bool  # GUARDIAN_FORCE=1 lets it through
    unknown: str = ""  # why guardian cannot tell, for fail-closed problems

    def to_json(self) -> dict[str, Any]:
        return {"command": self.display, "verb": self.verb, "path": self.path, "outcome": self.outcome,
                "reason": self.reason, "forced": self.forced, "unknown": self.unknown}


@dataclass
class Verdict:
    """The gate's answer for one tool call.  ``snapshot_paths`` None means the whole tree."""

    action: Action
    command: str
    message: str = ""
    intents: tuple[Intent, ...] = ()
    touches: tuple[Touch, ...] = ()
    decisions: tuple[PathDecision, ...] = ()
    unknown: tuple[Unknown, ...] = ()
    problems: tuple[Problem, ...] = ()
    snapshot_paths: tuple[str, ...] | None = ()
    notes: list[str] = field(default_factory=list)

    @property
    def blocked(self) -> bool:
        return self.action == "block"

    @property
    def exit_code(self) -> int:
        return EXIT_BLOCK if self.blocked else EXIT_ALLOW

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "command": self.command[:4000],
            "message": self.message,
            "intents": [{"kind": i.kind, "argv": list(i.argv)[:50], "cwd": i.cwd} for i in self.intents[:50]],
            "touched": len(self.touches),
            "protected": [
                {"path": d.path, "operation": t.operation, "change": d.change, "outcome": d.outcome,
                 "reason": d.reason, "forced": d.forced}
                for t, d in zip(self.touches, self.decisions, strict=True)
                if d.rule_paths
            ][:200],
            "unknown": [{"reason": u.reason, "scope": u.scope} for u in self.unknown][:50],
            "problems": [p.to_json() for p in self.problems][:50],
            "notes": self.notes[:50],
        }


_PLAIN_WORD = re.compile(r"^[\w@%+=:,./~^{}-]+$")


def _quote(word: str) -> str:
    # Quote only what needs it: "HEAD~1" reads better than shlex's "'HEAD~1'".
    return word if _PLAIN_WORD.match(word) else shlex.quote(word)


def _display(intent: Intent) -> str:
    if intent.kind == "tool-write":
        return intent.argv[0]
    text = " ".join(_quote(w) for w in intent.argv)
    if intent.kind == "redirect" and "op" in intent.detail:
        text = f"{text} {intent.detail['op']} {_quote(intent.targets[0])}".strip()
    text = " ".join(text.split())  # one line, whatever newlines the command held
    return text if len(text) <= 120 else text[:117] + "..."


def _user_engine(policy: Policy) -> PolicyEngine:
    from guardian.policy import PolicyEngine

    # Fail-closed scope checks look at the user's own rules only: with the built-in guardian.yaml rule,
    # every guarded project would count as holding protected paths and every `$CMD` would be blocked.
    return PolicyEngine(policy.protect)


def _problems(
    touches: Sequence[Touch], decisions: Sequence[PathDecision], displays: Sequence[str]
) -> list[Problem]:
    problems: list[Problem] = []
    for touch, decision in zip(touches, decisions, strict=True):
        if decision.outcome == "allow":
            continue
        display = displays[touch.source]
        problems.append(Problem(display, touch.verb, touch.path, decision.outcome, decision.reason,
                                decision.forced))
    return problems


def _message(problems: Sequence[Problem], containers: set[str]) -> str:
    """One line for the model: the first thing that stops the call, and what to do about it."""
    stopping = [p for p in problems if not p.forced]
    stopping.sort(key=lambda p: (p.outcome != "block", bool(p.unknown), p.path in containers, p.path))
    first = stopping[0]
    others = {p.path for p in stopping if p.path not in containers and not p.unknown} - {first.path}
    if not others:
        others = {p.path for p in stopping if not p.unknown} - {first.path}
    more = f" and {len(others)} more protected path{'s' if len(others) != 1 else ''}" if others else ""
    advice = BLOCK_ADVICE if first.outcome == "block" else FORCE_ADVICE
    if first.unknown:
        return (f"guardian: blocked: cannot tell what {first.display} would touch ({first.unknown}) and "
                f"{first.path} is protected: {first.reason}{more}; {advice}")
    return (f"guardian: blocked: {first.display} would {first.verb} {first.path} "
            f"(protected: {first.reason}){more}; {advice}")


def judge_intents(
    project_root: Path,
    policy: Policy,
    intents: Sequence[Intent],
    cwd: Path,
    command: str,
    *,
    force: bool = False,
) -> Verdict:
    """Judge parsed intents; reads git and the disk, writes nothing."""
    if not intents:
        return Verdict("benign", command)
    from guardian.policy import PathChange, PolicyEngine

    engine = PolicyEngine.from_policy(policy)
    resolver = Resolver(project_root, cwd, engine)
    touches: list[Touch] = []
    unknown: list[Unknown] = []
    for idx, intent in enumerate(intents):
        found, unsure = resolve_intent(resolver, intent, idx)
        touches += found
        unknown += unsure
    decisions_by_touch: list[PathDecision] = []
    operations: tuple[Operation, ...] = ("delete", "rollback", "modify")
    for operation in operations:
        group = [t for t in touches if t.operation == operation]
        if group:
            decision = engine.decide(operation, [PathChange(t.path, t.change) for t in group], force)
            decisions_by_touch += decision.paths
    ordered = [t for op in operations for t in touches if t.operation == op]
    displays = [_display(i) for i in intents]
    problems = _problems(ordered, decisions_by_touch, displays)
    # Fail closed only where it matters: a command we cannot read is a problem when the user's
    # protected paths exist where it runs.
    user_engine = _user_engine(policy)
    in_scope: dict[str, tuple[list[str], bool]] = {}
    for item in unknown:
        if not user_engine.rules:
            break
        if item.scope not in in_scope:
            in_scope[item.scope] = resolver.protected_under(item.scope, user_engine)
        protected, partial = in_scope[item.scope]
        if protected or partial:  # a walk that gave up cannot vouch for the rest: fail closed
            path = protected[0] if protected else item.scope
            rule = user_engine.rule_for(path)
            reason = rule.reason if rule else "protected"
            problems.append(Problem(displays[item.source], "touch", path, "force", reason, force, item.reason))
    whole_tree = bool(unknown) or any(i.kind in _GIT_TREE_KINDS for i in intents) or any(
        t.path == "." for t in touches)
    snapshot_paths = None if whole_tree else tuple(sorted({t.path for t in touches}))
    verdict = Verdict("allow", command, intents=tuple(intents), touches=tuple(ordered),
                      decisions=tuple(decisions_by_touch), unknown=tuple(unknown), problems=tuple(problems),
                      snapshot_paths=snapshot_paths, notes=resolver.notes)
    if any(not p.forced for p in problems):
        containers = {t.path for t in touches if t.container}
        verdict.action = "block"
        verdict.message = _message(problems, containers)
    elif problems:
        verdict.action = "forced"
    return verdict


def judge_command(
    project_root: Path,
    policy: Policy,
    command: str,
    cwd: Path,
    *,
    force: bool = False,
    aliases: Mapping[str, str] | None = None,
) -> Verdict:
    """Parse a shell command (with the repository's git aliases unless given) and judge it."""
    if aliases is None:
        aliases = read_git_aliases(cwd) if "git" in command else {}
    return judge_intents(project_root, policy, parse_command(command, aliases), cwd.resolve(), command,
                         force=force)


def judge_file_write(
    project_root: Path, policy: Policy, tool: str, file_path: str, cwd: Path, *, force: bool = False
) -> Verdict:
    """Write/Edit/MultiEdit onto ``file_path``: a ``modify`` of that file when it exists (see module doc)."""
    intent = Intent("tool-write", (tool, file_path), None, (file_path,), {"tool": tool})
    return judge_intents(project_root, policy, [intent], cwd.resolve(), f"{tool} {file_path}", force=force)
