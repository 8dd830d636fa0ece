"""Table-driven tests for guardian.policy, the pure decision engine."""

from __future__ import annotations

import pytest

from guardian.config import POLICY_FILE_RULE, Policy, ProtectRule
from guardian.errors import EXIT_BLOCKED, EXIT_NEEDS_FORCE, EXIT_OK, ConfigError
from guardian.policy import (
    ChangeKind,
    Decision,
    Operation,
    Outcome,
    PathChange,
    PathDecision,
    PolicyEngine,
    rule_outcome,
    stricter,
)

EXECUTOR = ProtectRule(
    paths=("agents/wo_executor/",), rollback="block", delete="block", restore="force", reason="the WO executor"
)
POOL = ProtectRule(paths=("worker_pool.py",), rollback="force", delete="block", restore="allow", reason="pool")
SQL = ProtectRule(paths=("*.sql",), rollback="allow", delete="force", restore="allow", reason="schema")
CONFIGS = ProtectRule(paths=("config/*.yaml", "!config/local.yaml"), reason="configs")
TOP_ONLY = ProtectRule(paths=("/setup.py",), rollback="block", delete="block", reason="top-level setup")
DEEP = ProtectRule(paths=("services/**/secrets/",), rollback="block", delete="block", reason="secrets")
# A broad, lenient rule listed after the strict ones: it must not weaken them.
LENIENT = ProtectRule(paths=("**",), rollback="allow", delete="allow", restore="allow", reason="everything")

ENGINE = PolicyEngine(Policy(protect=(EXECUTOR, POOL, SQL, CONFIGS, TOP_ONLY, DEEP, LENIENT)).protect_rules)


@pytest.mark.parametrize(
    ("operation", "path", "change", "outcome", "reason"),
    [
        # a directory rule covers everything under it, at any depth
        ("rollback", "agents/wo_executor/run.py", "modify", "block", "the WO executor"),
        ("rollback", "agents/wo_executor/lib/deep/x.py", "modify", "block", "the WO executor"),
        ("restore", "agents/wo_executor/run.py", "modify", "force", "the WO executor"),
        ("delete", "agents/wo_executor/run.py", "delete", "block", "the WO executor"),
        # ... and the directory itself, with or without the trailing slash
        ("delete", "agents/wo_executor", "delete", "block", "the WO executor"),
        ("delete", "agents/wo_executor/", "delete", "block", "the WO executor"),
        ("delete", "./agents//wo_executor/", "delete", "block", "the WO executor"),
        # a directory that contains a protected one is protected too
        ("delete", "agents", "delete", "block", "the WO executor"),
        ("rollback", "agents/", "modify", "block", "the WO executor"),
        # siblings and look-alikes are not
        ("rollback", "agents/other/run.py", "modify", "allow", "everything"),
        ("rollback", "agents/wo_executor_old/run.py", "modify", "allow", "everything"),
        ("rollback", "x/agents/wo_executor/run.py", "modify", "allow", "everything"),
        # a pattern without a slash matches at any depth
        ("rollback", "worker_pool.py", "modify", "force", "pool"),
        ("rollback", "pkg/worker_pool.py", "modify", "force", "pool"),
        ("delete", "worker_pool.py", "modify", "block", "pool"),
        ("restore", "worker_pool.py", "modify", "allow", "pool"),
        # globs
        ("delete", "db/schema.sql", "delete", "force", "schema"),
        ("rollback", "db/schema.sql", "modify", "allow", "schema"),
        ("rollback", "config/prod.yaml", "modify", "force", "configs"),
        ("rollback", "config/local.yaml", "modify", "allow", "everything"),  # negated inside the rule
        ("rollback", "config/sub/prod.yaml", "modify", "allow", "everything"),  # * does not cross "/"
        ("rollback", "services/api/secrets/key.pem", "modify", "block", "secrets"),
        ("rollback", "services/a/b/secrets/key.pem", "modify", "block", "secrets"),
        ("delete", "services", "delete", "block", "secrets"),  # "**" may put secrets anywhere below
        # an anchored pattern matches only at the top
        ("rollback", "setup.py", "modify", "block", "top-level setup"),
        ("rollback", "pkg/setup.py", "modify", "allow", "everything"),
        # a rollback that deletes the file is held to the delete action too
        ("rollback", "worker_pool.py", "delete", "block", "pool"),
        ("rollback", "db/schema.sql", "delete", "force", "schema"),
        ("restore", "db/schema.sql", "delete", "force", "schema"),
        ("rollback", "db/schema.sql", "add", "allow", "schema"),
        # the implicit rule for the policy file
        ("rollback", "guardian.yaml", "modify", "force", "the guardian policy file"),
        ("delete", "guardian.yaml", "delete", "force", "the guardian policy file"),
        ("restore", "guardian.yaml", "modify", "allow", "everything"),  # a tie: the user's rule comes first
        # the project root contains every protected path
        ("delete", ".", "delete", "block", "the WO executor"),
        ("delete", "", "delete", "block", "the WO executor"),
    ],
)
def test_path_outcomes(operation: Operation, path: str, change: ChangeKind, outcome: Outcome, reason: str) -> None:
    decision = ENGINE.decide(operation, [PathChange(path, change)])
    (verdict,) = decision.paths
    assert (verdict.outcome, verdict.reason) == (outcome, reason)
    assert verdict.path == path and verdict.change == change


@pytest.mark.parametrize(
    ("path", "protected"),
    [
        ("agents/wo_executor/run.py", True),
        ("agents/wo_executor", True),
        ("agents", True),
        ("guardian.yaml", True),
        ("README.md", False),
        ("agents/other.py", False),
        ("../agents/wo_executor/run.py", False),  # outside the project: not the policy's business
        ("/abs/agents/wo_executor/run.py", False),
    ],
)
def test_is_protected(path: str, protected: bool) -> None:
    engine = PolicyEngine(Policy(protect=(EXECUTOR,)).protect_rules)
    assert engine.is_protected(path) is protected


def test_no_rules_allows_everything() -> None:
    engine = PolicyEngine([])
    decision = engine.decide("delete", [PathChange("anything.py", "delete"), PathChange(".", "delete")])
    assert decision.overall == "allow"
    assert decision.exit_code == EXIT_OK
    assert all(p.reason == "" and p.rule_paths == () and not p.forced for p in decision.paths)
    assert engine.rule_for("anything.py") is None
    assert not engine.is_protected("anything.py")


def test_default_policy_protects_only_the_policy_file() -> None:
    engine = PolicyEngine.from_policy(Policy())
    assert engine.rules == (POLICY_FILE_RULE,)
    assert engine.decide("rollback", [PathChange("src/app.py", "modify")]).overall == "allow"
    assert engine.decide("rollback", [PathChange("guardian.yaml", "modify")]).overall == "force"


# --------------------------------------------------------------------------- strictest rule wins


@pytest.mark.parametrize("order", ["strict-first", "lenient-first"])
def test_strictest_rule_wins_regardless_of_order(order: str) -> None:
    strict = ProtectRule(paths=("src/core/",), rollback="block", reason="core")
    lenient = ProtectRule(paths=("src/",), rollback="allow", delete="allow", reason="src")
    rules = [strict, lenient] if order == "strict-first" else [lenient, strict]
    engine = PolicyEngine(rules)
    verdict = engine.decide("rollback", [PathChange("src/core/x.py", "modify")]).paths[0]
    assert (verdict.outcome, verdict.reason, verdict.rule_paths) == ("block", "core", ("src/core/",))
    assert engine.rule_for("src/core/x.py", "rollback") is strict
    # For an operation where the lenient rule is the stricter one, it decides instead.
    assert engine.rule_for("src/core/x.py", "delete") is strict  # force (default) beats allow
    assert engine.rule_for("src/other.py", "rollback") is lenient


def test_ties_go_to_the_first_rule() -> None:
    first = ProtectRule(paths=("a/",), reason="first")
    second = ProtectRule(paths=("a/x.py",), reason="second")
    assert PolicyEngine([first, second]).rule_for("a/x.py", "rollback") is first
    assert PolicyEngine([second, first]).rule_for("a/x.py", "rollback") is second


def test_rule_for_without_operation_ranks_by_strictest_action() -> None:
    only_restore = ProtectRule(paths=("a/",), rollback="allow", delete="allow", restore="block", reason="r")
    default = ProtectRule(paths=("a/",), reason="d")
    assert PolicyEngine([default, only_restore]).rule_for("a/x") is only_restore
    assert PolicyEngine([default, only_restore]).rules_for("a/x") == (default, only_restore)


# --------------------------------------------------------------------------- force and overall outcome


@pytest.mark.parametrize(
    ("changes", "force", "overall", "exit_code", "allowed", "skipped"),
    [
        ([], False, "allow", EXIT_OK, [], []),
        ([("README.md", "modify")], False, "allow", EXIT_OK, ["README.md"], []),
        ([("worker_pool.py", "modify")], False, "force", EXIT_NEEDS_FORCE, [], ["worker_pool.py"]),
        ([("worker_pool.py", "modify")], True, "allow", EXIT_OK, ["worker_pool.py"], []),
        ([("agents/wo_executor/a.py", "modify")], False, "block", EXIT_BLOCKED, [], ["agents/wo_executor/a.py"]),
        # block can never be forced
        ([("agents/wo_executor/a.py", "modify")], True, "block", EXIT_BLOCKED, [], ["agents/wo_executor/a.py"]),
        # mixed: the free path still goes ahead, the others are reported
        (
            [("README.md", "modify"), ("worker_pool.py", "modify"), ("agents/wo_executor/a.py", "modify")],
            False, "block", EXIT_BLOCKED, ["README.md"], ["worker_pool.py", "agents/wo_executor/a.py"],
        ),
        (
            [("README.md", "modify"), ("worker_pool.py", "modify"), ("agents/wo_executor/a.py", "modify")],
            True, "block", EXIT_BLOCKED, ["README.md", "worker_pool.py"], ["agents/wo_executor/a.py"],
        ),
        (
            [("README.md", "modify"), ("guardian.yaml", "modify")],
            False, "force", EXIT_NEEDS_FORCE, ["README.md"], ["guardian.yaml"],
        ),
    ],
)
def test_overall_and_exit_codes(
    changes: list[tuple[str, ChangeKind]],
    force: bool,
    overall: Outcome,
    exit_code: int,
    allowed: list[str],
    skipped: list[str],
) -> None:
    engine = PolicyEngine(Policy(protect=(EXECUTOR, POOL)).protect_rules)
    decision = engine.decide("rollback", [PathChange(p, c) for p, c in changes], force=force)
    assert decision.overall == overall
    assert decision.exit_code == exit_code
    assert [p.path for p in decision.allowed] == allowed
    assert [p.path for p in decision.skipped] == skipped


def test_forced_flag_only_on_force_outcomes() -> None:
    engine = PolicyEngine(Policy(protect=(EXECUTOR, POOL)).protect_rules)
    decision = engine.decide(
        "rollback",
        [PathChange("worker_pool.py", "modify"), PathChange("agents/wo_executor/a", "modify"), PathChange("x", "add")],
        force=True,
    )
    assert [(p.outcome, p.forced, p.permitted) for p in decision.paths] == [
        ("force", True, True),
        ("block", False, False),
        ("allow", False, True),
    ]


def test_delete_operation_always_uses_the_delete_action() -> None:
    rule = ProtectRule(paths=("f.py",), rollback="allow", delete="block", restore="allow")
    engine = PolicyEngine([rule])
    for change in ("modify", "delete", "add"):
        assert engine.decide("delete", [PathChange("f.py", change)]).overall == "block"


@pytest.mark.parametrize(
    ("operation", "change", "expected"),
    [
        ("rollback", "modify", "allow"),
        ("rollback", "add", "allow"),
        ("rollback", "delete", "force"),
        ("restore", "modify", "block"),
        ("restore", "delete", "block"),
        ("delete", "modify", "force"),
        ("delete", "delete", "force"),
    ],
)
def test_rule_outcome(operation: Operation, change: ChangeKind, expected: Outcome) -> None:
    rule = ProtectRule(paths=("x",), rollback="allow", delete="force", restore="block")
    assert rule_outcome(rule, operation, change) == expected


def test_stricter() -> None:
    assert stricter("allow", "force") == "force"
    assert stricter("block", "force") == "block"
    assert stricter("allow", "allow") == "allow"


# --------------------------------------------------------------------------- json and errors


def test_to_json() -> None:
    engine = PolicyEngine(Policy(protect=(POOL,)).protect_rules)
    decision = engine.decide("rollback", [PathChange("worker_pool.py", "modify"), PathChange("a.py", "add")])
    assert decision.to_json() == {
        "operation": "rollback",
        "force": False,
        "outcome": "force",
        "exit_code": EXIT_NEEDS_FORCE,
        "allowed": 1,
        "skipped": 1,
        "paths": [
            {"path": "worker_pool.py", "change": "modify", "outcome": "force", "reason": "pool",
             "rule_paths": ["worker_pool.py"], "forced": False, "permitted": False},
            {"path": "a.py", "change": "add", "outcome": "allow", "reason": "",
             "rule_paths": [], "forced": False, "permitted": True},
        ],
    }


def test_decision_is_plain_data() -> None:
    verdict = PathDecision("a", "modify", "allow", "", (), False)
    assert Decision("restore", False, (verdict,)).allowed == (verdict,)


def test_bad_pattern_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="bad path pattern"):
        PolicyEngine([ProtectRule(paths=("!",))])


def test_unknown_operation_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown operation"):
        ENGINE.decide("destroy", [])  # type: ignore[arg-type]


# --------------------------------------------------------------------------- modify: in-place edits


@pytest.mark.parametrize("rollback", ["allow", "force", "block"])
def test_modify_defaults_to_the_rollback_action(rollback: Outcome) -> None:
    rule = ProtectRule(paths=("a/",), rollback=rollback, delete="allow", restore="allow")
    assert rule.modify is None
    assert rule.modify_action == rollback
    engine = PolicyEngine([rule])
    assert engine.decide("modify", [PathChange("a/x.py", "modify")]).paths[0].outcome == rollback
    assert rule_outcome(rule, "modify") == rule_outcome(rule, "rollback") == rollback


def test_modify_allow_leaves_rollbacks_gated() -> None:
    rule = ProtectRule(paths=("agents/wo_executor/",), rollback="force", delete="block", modify="allow", reason="WO")
    engine = PolicyEngine(Policy(protect=(rule,)).protect_rules)
    edit = engine.decide("modify", [PathChange("agents/wo_executor/run.py", "modify")])
    assert (edit.overall, edit.exit_code, edit.paths[0].reason) == ("allow", EXIT_OK, "WO")
    revert = engine.decide("rollback", [PathChange("agents/wo_executor/run.py", "modify")])
    assert (revert.overall, revert.exit_code) == ("force", EXIT_NEEDS_FORCE)
    # An edit that would remove the file is still held to the rule's delete action.
    gone = engine.decide("modify", [PathChange("agents/wo_executor/run.py", "delete")], force=True)
    assert gone.overall == "block"


def test_modify_block_cannot_be_forced() -> None:
    rule = ProtectRule(paths=("core/",), rollback="allow", delete="allow", modify="block", reason="frozen")
    engine = PolicyEngine([rule])
    edit = engine.decide("modify", [PathChange("core/x.py", "modify")], force=True)
    assert (edit.overall, edit.exit_code, edit.paths[0].forced) == ("block", EXIT_BLOCKED, False)
    assert engine.decide("rollback", [PathChange("core/x.py", "modify")]).overall == "allow"


def test_modify_strictest_rule_wins_and_the_policy_file_stays_forced() -> None:
    lenient = ProtectRule(paths=("**",), rollback="allow", delete="allow", modify="allow", reason="everything")
    strict = ProtectRule(paths=("src/core/",), reason="core")  # modify follows rollback: force
    engine = PolicyEngine(Policy(protect=(lenient, strict)).protect_rules)
    assert POLICY_FILE_RULE.modify == "force"
    verdicts = engine.decide("modify", [PathChange("guardian.yaml", "modify"), PathChange("src/core/x.py", "modify"),
                                        PathChange("src/other.py", "modify")]).paths
    assert [(v.outcome, v.reason) for v in verdicts] == [
        ("force", "the guardian policy file"),
        ("force", "core"),
        ("allow", "everything"),
    ]


def test_rule_for_without_operation_counts_only_a_modify_the_rule_sets() -> None:
    # Equal sums over rollback/delete/restore: the first rule wins the tie, as before 'modify' existed.
    a = ProtectRule(paths=("a/",), rollback="force", delete="allow", restore="allow", reason="a")
    b = ProtectRule(paths=("a/",), rollback="allow", delete="force", restore="allow", reason="b")
    assert PolicyEngine([b, a]).rule_for("a/x") is b
    assert PolicyEngine([a, b]).rule_for("a/x") is a
    # A modify the rule does set counts: it is stricter on one more operation.
    edits = ProtectRule(paths=("a/",), rollback="allow", delete="force", restore="allow", modify="force", reason="e")
    assert PolicyEngine([b, edits]).rule_for("a/x") is edits
    assert PolicyEngine([a, edits]).rule_for("a/x", "modify") is a  # force == force: ties go to the first
