"""``guardian allow`` and ``guardian policy accept``: the person's two ways to say "this change is mine".

``allow`` writes a force grant (see ``guardian.trust.grants``) after asking the policy:
a path that a ``block`` rule governs is refused, since no flag overrides a block.
``policy accept`` puts guardian.yaml as it is on disk in force (``guardian.trust.policy``).
Both are logged, with who asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guardian.config import load_policy
from guardian.errors import Blocked, UsageError
from guardian.events import current_user
from guardian.paths import POLICY_FILENAME, relative_or_root
from guardian.policy import Operation, PathChange, PolicyEngine
from guardian.project import Project, accept_disk_policy
from guardian.trust.grants import DEFAULT_GRANT_SECONDS, GRANT_OPERATIONS, Grant, add_grant
from guardian.trust.policy import read_accepted, weakenings


def allow(
    project: Project,
    operation: str,
    typed_paths: Sequence[str],
    *,
    cwd: Path | None = None,
    seconds: float = DEFAULT_GRANT_SECONDS,
    by: str = "guardian allow",
) -> Grant:
    """Grant ``operation`` on ``typed_paths`` for ``seconds``; refuse what a block rule governs."""
    if operation not in GRANT_OPERATIONS:
        raise UsageError(f"unknown operation '{operation}'; choose one of: {', '.join(GRANT_OPERATIONS)}")
    if not typed_paths:
        raise UsageError(f"name the path(s) to allow, e.g. 'guardian allow {operation} agents/processor.py'")
    rels = [relative_or_root(project.root, typed, cwd) for typed in typed_paths]
    op: Operation = operation  # type: ignore[assignment]  # checked against GRANT_OPERATIONS above
    engine = PolicyEngine(project.policy.protect_rules)
    for rel in rels:
        decided = engine.decide_path(op, PathChange(rel, "delete" if op == "delete" else "modify"))
        if decided.outcome == "block":
            raise Blocked(
                f"{operation} of '{rel}' is blocked by policy ({decided.reason}); a grant cannot override "
                f"a 'block' rule: change the rule in {POLICY_FILENAME} if you must"
            )
    grant = add_grant(project.paths.store, operation, rels, by=by, seconds=seconds)
    project.events.append(
        "grant",
        rels,
        None,
        "grant",
        {"grant": grant.id, "operation": operation, "by": by, "user": current_user(), "expires": grant.expires},
    )
    return grant


def grant_forced(project: Project, operation: str, rels: Sequence[str], by: str) -> Grant | None:
    """The grant that a ``--force`` which went ahead leaves behind, so no enforcer undoes what it did."""
    if not rels:
        return None
    grant = add_grant(project.paths.store, operation, rels, by=by)
    details = {"grant": grant.id, "operation": operation, "by": by}
    project.events.append("grant", list(rels)[:1000], None, "grant", details)
    return grant


@dataclass
class AcceptReport:
    changed: bool
    weakened: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"accepted": True, "changed": self.changed, "weakens": self.weakened}


def accept_policy(project: Project) -> AcceptReport:
    """Put guardian.yaml as it is on disk in force; say what protection it gives up, if any."""
    project.require_store()
    disk = load_policy(project.paths.policy_file)  # a broken file is never accepted: this raises
    before = read_accepted(project.paths.store)
    weakened: list[str] = []
    if before is not None:
        from guardian.config import parse_policy

        weakened = weakenings(parse_policy(before, "the accepted policy"), disk)
    text = accept_disk_policy(project.paths)
    changed = text != before
    if not changed:
        return AcceptReport(False, [])
    project.events.append(
        "policy",
        [POLICY_FILENAME],
        None,
        "policy",
        {"action": "accept", "why": "guardian policy accept", "user": current_user(), "weakens": weakened},
    )
    return AcceptReport(changed, weakened)
