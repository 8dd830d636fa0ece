"""Judging: the policy's answer for every path a tool call would touch, and the one-line message.

:func:`judge_intents` resolves each intent (:mod:`guardian.gates.agent.resolve`),
asks :class:`~guardian.policy.PolicyEngine` about the paths per operation, fails
closed where a command cannot be read and the user's protected paths exist where
it runs, and says which paths to snapshot first.  It reads git and the disk and
writes nothing, so ``guardian agent check`` can show a decision safely.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from guardian.gates.agent.payload import EXIT_ALLOW, EXIT_BLOCK, read_git_aliases, shell_environ
from guardian.gates.agent.resolve import resolve_intent
from guardian.gates.agent.resolver import Resolver, Touch, Unknown
from guardian.shell.parse import Intent, parse_command

if TYPE_CHECKING:
    # The policy engine (pathspec) is loaded only once a command is destructive.
    from guardian.config import Policy
    from guardian.policy import ChangeKind, Operation, Outcome, PathDecision, PolicyEngine

FORCE_ADVICE = "ask the user, who can run it with GUARDIAN_FORCE=1 or use 'guardian rollback --force'"
BLOCK_ADVICE = "the policy blocks this even with GUARDIAN_FORCE=1; ask the user"
# Kinds whose snapshot is the whole tree: git operations on the whole repository, and constructs
# guardian cannot see into (inline code, eval, a computed command), which could touch anything.
_WHOLE_TREE_KINDS = frozenset({"git-reset", "git-checkout-rev", "git-rebase", "git-pick", "git-apply", "opaque",
                               "unknown-dynamic"})
_ANY_OPERATION: tuple[Operation, ...] = ("delete", "rollback", "modify")

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


def _strictest(engine: PolicyEngine, path: str, operation: Operation | None) -> tuple[Outcome, str] | None:
    """What the rules say about an unknown change to ``path``: the strictest answer, at least "force".

    With the operation known (``rm "$X"`` deletes) the rule's action for it decides; with nothing known
    the strictest of its actions does.  Either way a ``block`` stays a block: not knowing what a command
    does must never make it easier to get past a rule than doing it plainly would.
    """
    from guardian.policy import rule_outcome, stricter

    best: tuple[Outcome, str] | None = None
    for op in (operation,) if operation else _ANY_OPERATION:
        change: ChangeKind = "modify" if op == "modify" else "delete"
        rule = engine.rule_for(path, op, change)
        if rule is None:
            continue
        outcome = stricter(rule_outcome(rule, op, change), "force")
        if best is None or stricter(outcome, best[0]) != best[0]:
            best = (outcome, rule.reason)
    return best


def _unknown_problems(
    resolver: Resolver, policy: Policy, engine: PolicyEngine, unknown: Sequence[Unknown],
    displays: Sequence[str], force: bool,
) -> list[Problem]:
    user_engine = _user_engine(policy)
    problems: list[Problem] = []
    walks: dict[str, tuple[list[str], bool]] = {}
    for item in unknown:
        if item.exact:
            # A path named outright by a tool guardian cannot read: the full engine, guardian.yaml included.
            found = _strictest(engine, item.scope, item.operation)
            if found is not None:
                problems.append(Problem(displays[item.source], "touch", item.scope, found[0], found[1],
                                        found[0] == "force" and force, item.reason))
            continue
        if not user_engine.rules:
            continue
        if item.scope not in walks:
            walks[item.scope] = resolver.protected_under(item.scope, user_engine)
        protected, partial = walks[item.scope]
        best: tuple[Outcome, str, str] | None = None
        for path in protected or ([item.scope] if partial else []):
            found = _strictest(user_engine, path, item.operation) or ("force", "protected")
            if best is None or stricter_outcome(found[0], best[0]):
                best = (found[0], found[1], path)
        if best is not None:  # a walk that gave up cannot vouch for the rest: fail closed
            problems.append(Problem(displays[item.source], "touch", best[2], best[0], best[1],
                                    best[0] == "force" and force, item.reason))
    return problems


def stricter_outcome(new: Outcome, old: Outcome) -> bool:
    """Whether ``new`` is strictly stricter than ``old``."""
    return _OUTCOME_RANK[new] > _OUTCOME_RANK[old]


_OUTCOME_RANK = {"allow": 0, "force": 1, "block": 2}


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
    # protected paths exist where it runs (or, for a path named outright, when that path is protected).
    problems += _unknown_problems(resolver, policy, engine, unknown, displays, force)
    whole_tree = any(not u.exact for u in unknown) or any(i.kind in _WHOLE_TREE_KINDS for i in intents) or any(
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
    elif not touches and all(i.kind == "unknown-command" for i in intents):
        # A tool guardian does not know, naming nothing protected: as benign as before it was looked at.
        verdict.action = "benign"
        verdict.snapshot_paths = ()
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
    intents = parse_command(command, aliases, shell_environ(os.environ))
    verdict = judge_intents(project_root, policy, intents, cwd.resolve(), command, force=force)
    return verdict


def judge_file_write(
    project_root: Path, policy: Policy, tool: str, file_path: str, cwd: Path, *, force: bool = False
) -> Verdict:
    """Write/Edit/MultiEdit onto ``file_path``: a ``modify`` of that file when it exists (see module doc)."""
    intent = Intent("tool-write", (tool, file_path), None, (file_path,), {"tool": tool})
    return judge_intents(project_root, policy, [intent], cwd.resolve(), f"{tool} {file_path}", force=force)


def malformed_verdict(project_root: Path, policy: Policy, named: Sequence[Path], error: str, force: bool) -> str | None:
    """The block line for a malformed hook input that names a protected existing path, or None.

    A call guardian cannot read must not be a way around the policy: if it names a
    protected file, it is stopped as a change of unknown kind to that file.
    """
    from guardian.policy import PolicyEngine

    engine = PolicyEngine.from_policy(policy)
    resolver = Resolver(project_root, project_root, engine)
    for path in named:
        if not os.path.lexists(path):
            continue
        rel = resolver.rel(resolver.real_target(Path(os.path.abspath(path))))
        if rel is None or rel == ".":
            continue
        found = _strictest(engine, rel, None)
        if found is None or (found[0] == "force" and force):
            continue
        advice = BLOCK_ADVICE if found[0] == "block" else FORCE_ADVICE
        return (f"guardian: blocked: cannot read this tool call ({' '.join(error.split())}) and it names {rel}, "
                f"which is protected: {found[1]}; {advice}")
    return None
