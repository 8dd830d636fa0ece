"""Asking the policy about the paths a git command would change, and wording the answer for a refusal.

Every hook judges a change as the ``rollback`` operation: whether a checkout puts
old content back, a rebase rewrites history or a stash drop discards work, it is
protected content going backwards.  The policy (and yaml with it) is loaded only
here, on the first question, never on the fast path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from guardian.gates.githooks.context import HookContext
    from guardian.policy import ChangeKind, Decision, PathDecision


def decision_facts(decision: Decision) -> dict[str, Any]:
    """The decision as an event records it: only paths a rule governs, at most 1000."""
    record = decision.to_json()
    record["paths"] = [p.to_json() for p in decision.paths if p.rule_paths][:1000]
    return record


def why(verdict: PathDecision) -> str:
    if verdict.outcome == "block":
        return f"{verdict.reason}; {verdict.change} is blocked by policy"
    return f"{verdict.reason}; needs GUARDIAN_FORCE=1"


def refusal_lines(decision: Decision) -> list[str]:
    return [f"  {p.path}  ({why(p)})" for p in decision.paths if p.outcome != "allow"]


def how_to_force(ctx: HookContext, decision: Decision) -> str:
    if decision.overall == "block":
        return (
            "A 'block' rule in guardian.yaml forbids this; no flag overrides it. "
            "Change the rule if the change is intended."
        )
    return f"To do it anyway: GUARDIAN_FORCE=1 {ctx.user_command_text()}"


def judge(ctx: HookContext, changes: Sequence[tuple[str, ChangeKind]]) -> Decision:
    from guardian.policy import PathChange  # loads yaml: only once there is something to judge

    return ctx.engine().decide("rollback", [PathChange(p, c) for p, c in changes], ctx.force)


def allowed_outright(decision: Decision) -> bool:
    """Every path is allowed without force.  (``Decision.overall`` is also "allow" once force was given.)"""
    return all(p.outcome == "allow" for p in decision.paths)


def forced_through(decision: Decision) -> bool:
    """GUARDIAN_FORCE=1 was given and covers every path that needed it; nothing is blocked."""
    return decision.overall == "allow" and any(p.forced for p in decision.paths)


FORCE_GRANT_BY = "git hook (GUARDIAN_FORCE=1)"


def grant_forced_paths(ctx: HookContext, decision: Decision) -> list[str]:
    """Leave a force grant for what GUARDIAN_FORCE=1 let through, so the watcher lets it stand.

    A deleted path is granted as a ``delete`` too: that is how the watcher sees it.
    Returns the grant ids.
    """
    from guardian.ops.grant import grant_forced  # writes: only once something was forced

    forced = [p for p in decision.paths if p.forced]
    ids: list[str] = []
    rollbacks = [p.path for p in forced]
    deletes = [p.path for p in forced if p.change == "delete"]
    for operation, paths in (("rollback", rollbacks), ("delete", deletes)):
        grant = grant_forced(ctx.project(), operation, paths, by=FORCE_GRANT_BY)
        if grant is not None:
            ids.append(grant.id)
    return ids
