"""The decision engine: given protect rules, may this rollback, edit, delete or restore touch these paths?

This module is pure: no file system, no git, no clock.  Callers (the CLI, the
agent hooks, the daemon) work out *which* paths an operation would change and
*how* (modify, delete, add), and ask :class:`PolicyEngine` for a
:class:`Decision`.  Keeping I/O out makes every rule testable as a table and
lets the hooks call it on paths that do not exist yet.

Matching follows ``.gitignore`` syntax (compiled once by :mod:`guardian.util.globs`,
which matches in time linear in the path whatever the pattern), so a
policy reads like the ignore files users already know: ``agents/wo_executor/``
covers everything under that directory, ``*.sql`` any SQL file at any depth,
``/setup.py`` only the top-level one, and ``!pattern`` carves an exception out
of the same rule.

The operations: ``rollback`` replaces a file's content with another version
(guardian rollback, git reset/checkout/restore/rebase, rsync), ``modify`` is an
in-place edit of an existing file (an agent's Write/Edit, ``sed -i``, ``>``),
``delete`` removes it and ``restore`` brings back a snapshot's version.  A rule
without ``modify`` judges edits by its ``rollback`` action.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

from guardian.config import Policy, ProtectRule
from guardian.errors import EXIT_BLOCKED, EXIT_NEEDS_FORCE, EXIT_OK, ConfigError
from guardian.util.globs import GlobSpec

Operation = Literal["rollback", "delete", "restore", "modify"]
ChangeKind = Literal["modify", "delete", "add"]
Outcome = Literal["allow", "force", "block"]  # "force" means: allowed only with --force

OPERATIONS: tuple[Operation, ...] = ("rollback", "delete", "restore", "modify")
_RANK: dict[str, int] = {"allow": 0, "force": 1, "block": 2}
_GLOB_CHARS = frozenset("*?[\\")


def stricter(a: Outcome, b: Outcome) -> Outcome:
    """The stricter of two outcomes: block > force > allow."""
    return a if _RANK[a] >= _RANK[b] else b


def rule_outcome(rule: ProtectRule, operation: Operation, change: ChangeKind = "modify") -> Outcome:
    """What one rule says about one change.

    A change that would *delete* the file is held to the rule's ``delete``
    action too, whatever the operation: a rollback (or restore) to a snapshot
    in which a protected file did not exist removes it just as ``rm`` would, so
    it must not slip through a lenient ``rollback: allow``.

    ``modify`` uses :attr:`ProtectRule.modify_action`: the rule's ``modify``, or
    its ``rollback`` when it does not set one.
    """
    action: Outcome = rule.modify_action if operation == "modify" else getattr(rule, operation)
    if change == "delete" and operation != "delete":
        action = stricter(action, rule.delete)
    return action


class PathChange(NamedTuple):
    """One path an operation would change; ``path`` is POSIX and relative to the project root.

    A NamedTuple, not a frozen dataclass: the same fields, equality, hash, repr and
    immutability, without ~1 ms of generated methods on every import (history, restore
    and every git hook read the policy).
    """

    path: str
    change: ChangeKind


class PathDecision(NamedTuple):
    """The verdict for one path (a NamedTuple, as PathChange is).

    ``outcome`` is what the policy says; ``forced`` is True when the outcome is
    "force" and ``--force`` was given, i.e. the change goes ahead anyway.
    ``reason`` and ``rule_paths`` come from the deciding rule ("" and () when no
    rule matched).
    """

    path: str
    change: ChangeKind
    outcome: Outcome
    reason: str
    rule_paths: tuple[str, ...]
    forced: bool

    @property
    def permitted(self) -> bool:
        """True when this change may go ahead (allowed outright, or forced)."""
        return self.outcome == "allow" or self.forced

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "change": self.change,
            "outcome": self.outcome,
            "reason": self.reason,
            "rule_paths": list(self.rule_paths),
            "forced": self.forced,
            "permitted": self.permitted,
        }


class Decision(NamedTuple):
    """The verdict for a whole operation: one :class:`PathDecision` per change (a NamedTuple, as PathChange is)."""

    operation: Operation
    force: bool
    paths: tuple[PathDecision, ...]

    @property
    def overall(self) -> Outcome:
        # A block wins even over --force: "block" exists precisely so that no flag can override it.
        if any(p.outcome == "block" for p in self.paths):
            return "block"
        if any(p.outcome == "force" and not p.forced for p in self.paths):
            return "force"
        return "allow"

    @property
    def allowed(self) -> tuple[PathDecision, ...]:
        return tuple(p for p in self.paths if p.permitted)

    @property
    def skipped(self) -> tuple[PathDecision, ...]:
        """Changes that must not be made: blocked, or needing --force that was not given."""
        return tuple(p for p in self.paths if not p.permitted)

    @property
    def exit_code(self) -> int:
        return {"allow": EXIT_OK, "force": EXIT_NEEDS_FORCE, "block": EXIT_BLOCKED}[self.overall]

    def to_json(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "force": self.force,
            "outcome": self.overall,
            "exit_code": self.exit_code,
            "allowed": len(self.allowed),
            "skipped": len(self.skipped),
            "paths": [p.to_json() for p in self.paths],
        }


def normalize_path(path: str) -> str:
    """'./a//b/' -> 'a/b'; the project root is '.'.  Trailing slashes are dropped (see _rules_matching)."""
    return posixpath.normpath(path) if path else "."


def _is_outside(norm: str) -> bool:
    # The policy governs the project tree only.  The matcher would happily strip a
    # leading "/" or "../" and match "../agents/x" against "agents/", which would
    # make a path outside the project look protected (or, worse, make callers
    # trust that outside paths were checked).  Callers refuse such paths earlier.
    return norm.startswith(("/", "../")) or norm == ".."


class _CompiledRule:
    """A protect rule with its patterns compiled.

    A plain class, not a dataclass: it is never compared, hashed or printed, and a frozen
    dataclass costs ~1 ms to create on every import of this module (history's path among them).
    """

    __slots__ = ("anchored", "index", "rule", "spec")

    def __init__(self, index: int, rule: ProtectRule, spec: GlobSpec, anchored: tuple[tuple[str, ...], ...]) -> None:
        self.index = index
        self.rule = rule
        self.spec = spec
        # Each positive pattern that names a fixed place in the tree (it has a "/"
        # before its last character), split into components.  Used to notice that a
        # directory *contains* protected paths; see _contains.
        self.anchored = anchored


def _anchored_parts(pattern: str) -> tuple[str, ...] | None:
    if not pattern or pattern.startswith(("!", "#")):
        return None
    body = pattern.rstrip("/")
    if "/" not in body:
        # "guardian.yaml" or "*.py" may match at any depth, so it cannot tell
        # which directories hold a match without listing them.
        return None
    return tuple(part for part in body.strip("/").split("/") if part)


def _contains(directory: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    """Could a path matching ``parts`` lie strictly inside ``directory``?"""
    for i, component in enumerate(directory):
        if i >= len(parts):
            return False
        if parts[i] == "**":
            return True
        if not fnmatch.fnmatchcase(component, parts[i]):
            return False
    return len(directory) < len(parts)


class PolicyEngine:
    """Compiled protect rules.  Build once per policy; every method is pure."""

    def __init__(self, rules: Sequence[ProtectRule]) -> None:
        compiled: list[_CompiledRule] = []
        for index, rule in enumerate(rules):
            try:
                spec = GlobSpec.from_lines(rule.paths)
            except (ValueError, re.error) as exc:  # an unreadable pattern, or a bad bracket range
                raise ConfigError(
                    f"protect rule {index + 1}: bad path pattern in {list(rule.paths)!r}: {exc}; "
                    "write gitignore-style patterns such as 'dir/', '*.py' or '/top.txt'"
                ) from None
            anchored = tuple(p for p in (_anchored_parts(pat) for pat in rule.paths) if p is not None)
            compiled.append(_CompiledRule(index, rule, spec, anchored))
        self._rules = tuple(compiled)

    @classmethod
    def from_policy(cls, policy: Policy) -> PolicyEngine:
        """The engine for a loaded policy, including the built-in guardian.yaml rule."""
        return cls(policy.protect_rules)

    @property
    def rules(self) -> tuple[ProtectRule, ...]:
        return tuple(c.rule for c in self._rules)

    def _rules_matching(self, path: str) -> list[_CompiledRule]:
        """Every rule that governs ``path``, in policy order.

        A rule governs a path when one of its patterns matches the path itself,
        or the path taken as a directory (we cannot stat, and a trailing "/" is
        often dropped: "agents/wo_executor" must hit "agents/wo_executor/"), or
        when the path is a directory that contains what an anchored pattern
        names (deleting "agents" deletes "agents/wo_executor/").  The project
        root contains everything.
        """
        norm = normalize_path(path)
        if _is_outside(norm):
            return []
        if norm == ".":
            return list(self._rules)
        components = tuple(norm.split("/"))
        matching: list[_CompiledRule] = []
        for compiled in self._rules:
            if (
                compiled.spec.match(norm)
                or compiled.spec.match(norm + "/")
                or any(_contains(components, parts) for parts in compiled.anchored)
            ):
                matching.append(compiled)
        return matching

    def rules_for(self, path: str) -> tuple[ProtectRule, ...]:
        """All rules that govern ``path``, in policy order."""
        return tuple(c.rule for c in self._rules_matching(path))

    def rule_for(
        self, path: str, operation: Operation | None = None, change: ChangeKind = "modify"
    ) -> ProtectRule | None:
        """The deciding rule for ``path``: the STRICTEST one that matches.

        Not gitignore's "last match wins": with that, appending a broad, lenient
        rule (say ``paths: ["**"], rollback: allow``) would silently unprotect a
        component listed earlier, and reordering a policy would change what it
        protects.  Strictest-wins is order-independent and fails safe: adding a
        rule can only ever protect more.  Ties go to the earliest rule, so a
        user's own reason is preferred over the built-in one.

        With no ``operation``, rules are ranked by their strictest action over
        all operations (then by the sum of the actions the rule sets), which
        suits "why is this protected?".
        """
        best: ProtectRule | None = None
        best_key: tuple[int, int] = (-1, -1)
        for compiled in self._rules_matching(path):
            rule = compiled.rule
            if operation is None:
                # A 'modify' the rule does not set only repeats its rollback action: it is left
                # out of the sum, so rules written before 'modify' existed rank as they did.
                ops = [op for op in OPERATIONS if op != "modify" or rule.modify is not None]
                ranks = [_RANK[rule_outcome(rule, op, change)] for op in ops]
                key = (max(ranks), sum(ranks))
            else:
                key = (_RANK[rule_outcome(rule, operation, change)], 0)
            if key > best_key:
                best, best_key = rule, key
        return best

    def is_protected(self, path: str) -> bool:
        """True when any rule governs ``path`` (even one that allows everything)."""
        return bool(self._rules_matching(path))

    def governed_from(self, path: str) -> int | None:
        """How many leading components of ``path`` name the first place a rule covers it from.

        "a/b/c" under a rule for "a/" gives 1, under one for "*.c" 3.  None when no rule's
        patterns cover the path itself (holding a protected path inside does not count here;
        see :meth:`leads_to`).  The capture filter uses it to tell a protected directory from
        an ignored one inside it.
        """
        norm = normalize_path(path)
        if _is_outside(norm) or norm == ".":
            return None
        if not any(c.spec.match(norm) or c.spec.match(norm + "/") for c in self._rules):
            return None
        parts = norm.split("/")
        for depth in range(1, len(parts)):
            prefix = "/".join(parts[:depth]) + "/"
            if any(c.spec.match(prefix) for c in self._rules):
                return depth
        return len(parts)

    def leads_to(self, directory: str) -> bool:
        """Whether a place a rule names by its full path ("g/state/") lies strictly inside ``directory``."""
        norm = normalize_path(directory)
        if _is_outside(norm) or norm == ".":
            return bool(self._rules)
        components = tuple(norm.split("/"))
        return any(_contains(components, parts) for c in self._rules for parts in c.anchored)

    def decide_path(self, operation: Operation, change: PathChange, force: bool = False) -> PathDecision:
        rule = self.rule_for(change.path, operation, change.change)
        if rule is None:
            return PathDecision(change.path, change.change, "allow", "", (), False)
        outcome = rule_outcome(rule, operation, change.change)
        return PathDecision(
            path=change.path,
            change=change.change,
            outcome=outcome,
            reason=rule.reason,
            rule_paths=rule.paths,
            forced=outcome == "force" and force,
        )

    def decide(self, operation: Operation, changes: Sequence[PathChange], force: bool = False) -> Decision:
        """Judge every change; the caller applies ``Decision.allowed`` and reports ``skipped``."""
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}")
        return Decision(
            operation=operation,
            force=force,
            paths=tuple(self.decide_path(operation, change, force) for change in changes),
        )


def decision_record(decision: Decision) -> dict[str, Any]:
    """The decision for an event line: every path a rule governs in full, the rest only counted.

    A rollback of a whole tree can touch 100k unprotected paths; listing them all
    would make one multi-megabyte log line that says nothing an auditor needs.
    """
    record = decision.to_json()
    governed = [p for p in decision.paths if p.rule_paths]
    record["paths"] = [p.to_json() for p in governed]
    record["unprotected"] = len(decision.paths) - len(governed)
    return record
