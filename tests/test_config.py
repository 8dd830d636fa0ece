"""The policy file: exact error messages, exit code 2, and every preset loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from guardian.config import list_presets, parse_policy, parse_size, preset_text
from guardian.errors import ConfigError
from tests.conftest import run_cli


def _write_policy(root: Path, text: str) -> None:
    (root / "guardian.yaml").write_text(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 1\nprotcet: []\n", "guardian.yaml:2:1: protcet: unknown key 'protcet'; did you mean 'protect'?"),
        (
            "version: 1\nwatch:\n  max_file_size: lots\n",
            "guardian.yaml:3:18: watch.max_file_size: not a size: 'lots' (use e.g. 512, 50MB, 2GB); write e.g. 50MB",
        ),
        (
            "version: 1\nwatch: [\n",
            "guardian.yaml:3:1: invalid YAML: expected the node content, but found '<stream end>'; "
            "fix the syntax at that line",
        ),
        (
            "version: 1\nprotect:\n  - paths: [a/]\n    rollback: maybe\n",
            "guardian.yaml:4:15: protect[0].rollback: expected one of allow, force, block, got 'maybe'; "
            "write allow, force or block",
        ),
        (
            "version: 1\nprotect:\n  - paths: [a/]\n    rollback: force\n    modify: maybe\n",
            "guardian.yaml:5:13: protect[0].modify: expected one of allow, force, block, got 'maybe'; "
            "write allow, force or block",
        ),
        (
            "version: 1\nprotect:\n  - paths: [a/]\n    modfy: allow\n",
            "guardian.yaml:4:5: protect[0].modfy: unknown key 'modfy'; did you mean 'modify'?",
        ),
        (
            "version: 1\nprotect:\n  - rollback: force\n",
            "guardian.yaml:3:5: protect[0]: missing 'paths'; add 'paths: [dir/, file]' to this rule",
        ),
        ("version: 2\n", "guardian.yaml:1:10: version: unsupported version 2; this guardian reads version 1"),
        ("watch: {}\n", "guardian.yaml:1:1: version: missing 'version'; add 'version: 1' at the top"),
        (
            "version: 1\nvalidate:\n  - paths: ['*.sh']\n    checks: [shellz]\n",
            "guardian.yaml:4:14: validate[0].checks[0]: unknown check 'shellz'; did you mean 'shell'?",
        ),
        (
            "version: 1\nsuspect:\n  shrink_ratio: 2\n",
            "guardian.yaml:3:17: suspect.shrink_ratio: expected a number between 0 and 1, got 2; "
            "write a number such as 0.5",
        ),
        (
            "version: 1\nguardrail:\n  repair: yes please\n",
            "guardian.yaml:3:11: guardrail.repair: expected true or false, got 'yes please'; write true or false",
        ),
        (
            "version: 1\nvalidate:\n  - paths: ['*.py']\n    checks: [{command: 'ruff {path}'}]\n",
            "guardian.yaml:4:24: validate[0].checks[0].command: a command must be a list of arguments (no shell); "
            'write ["prog", "--flag", "{path}"]',
        ),
        ("", "guardian.yaml: the policy file is empty; write at least 'version: 1'"),
        (
            "version: 1\nwatch: &w {gitignore: true}\nstore: *w\n",
            "guardian.yaml:2:8: YAML anchors and aliases are not allowed in a policy file; "
            "write the values out in full",
        ),
    ],
)
def test_bad_policy_exact_message_and_exit_2(project: Path, text: str, message: str) -> None:
    _write_policy(project, text)
    r = run_cli("status", cwd=project)
    assert r.exit_code == 2
    assert r.stderr.strip() == f"guardian: error: {project}/{message}"
    assert "Traceback" not in r.stderr


def test_billion_laughs_is_refused_quickly() -> None:
    lines = ['a0: &a0 ["lol"]'] + [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 12)]
    with pytest.raises(ConfigError, match="anchors and aliases are not allowed"):
        parse_policy("version: 1\n" + "\n".join(lines) + "\n")


def test_huge_policy_is_refused(project: Path) -> None:
    _write_policy(project, "version: 1\n" + "# padding\n" * 40000)
    r = run_cli("status", cwd=project)
    assert r.exit_code == 2
    assert "more than 256 KB; a policy should be a short list of rules" in r.stderr


def test_wrong_types_are_named() -> None:
    with pytest.raises(ConfigError, match=r"watch: expected a mapping, got a list"):
        parse_policy("version: 1\nwatch: [1, 2]\n")
    with pytest.raises(ConfigError, match=r"protect: expected a list of rules, got a mapping"):
        parse_policy("version: 1\nprotect: {paths: [a]}\n")
    with pytest.raises(ConfigError, match=r"watch.include\[0\]: expected a non-empty pattern, got 3"):
        parse_policy("version: 1\nwatch: {include: [3]}\n")


def test_policy_not_utf8(project: Path) -> None:
    (project / "guardian.yaml").write_bytes(b"version: 1\n# \xff\xfe\n")
    r = run_cli("status", cwd=project)
    assert r.exit_code == 2
    assert "not UTF-8 text (byte 13); save the policy file as UTF-8" in r.stderr


@pytest.mark.parametrize("name", ["default", "python", "agent-pipeline"])
def test_every_preset_loads(name: str) -> None:
    assert name in list_presets()
    policy = parse_policy(preset_text(name), name)
    assert policy.version == 1
    assert any(rule.paths == ("guardian.yaml",) for rule in policy.protect_rules)


def test_agent_pipeline_preset_protects_the_processors() -> None:
    policy = parse_policy(preset_text("agent-pipeline"))
    protected = {p for rule in policy.protect for p in rule.paths}
    assert {
        "agents/apply_patch_processor/",
        "agents/json_wo_processor/",
        "agents/wo_executor/",
        "tools/followup_tracker_update.zsh",
        "g/followup/state/",
    } <= protected


def test_modify_is_optional_and_follows_rollback() -> None:
    policy = parse_policy(
        "version: 1\nprotect:\n"
        "  - {paths: [old/], rollback: block}\n"
        "  - {paths: [new/], rollback: force, modify: allow}\n"
    )
    old, new = policy.protect
    assert (old.modify, old.modify_action) == (None, "block")
    assert (new.rollback, new.modify, new.modify_action) == ("force", "allow", "allow")


def test_presets_keep_their_behaviour_for_edits() -> None:
    # The presets predate 'modify': none sets it, so edits stay gated by each rule's rollback action.
    for name in list_presets():
        for rule in parse_policy(preset_text(name), name).protect:
            assert rule.modify is None and rule.modify_action == rule.rollback, (name, rule)
    # The commented example is valid once uncommented, and does what it says.
    text = preset_text("agent-pipeline")
    assert text.count("    # modify: allow") == 1
    first = parse_policy(text.replace("    # modify: allow", "    modify: allow")).protect[0]
    assert (first.rollback, first.modify_action, first.delete) == ("force", "allow", "block")


def test_unknown_preset(project: Path) -> None:
    r = run_cli("init", "--preset", "nope", cwd=project)
    assert r.exit_code == 2
    assert r.stderr.strip() == "guardian: error: unknown preset 'nope'; choose one of: agent-pipeline, default, python"


def test_sizes_and_defaults() -> None:
    assert parse_size("50MB") == 50 * 1024**2
    assert parse_size("2GB") == 2 * 1024**3
    assert parse_size("512") == 512
    policy = parse_policy("version: 1\n")
    assert policy.watch.max_file_size == 50 * 1024**2
    assert policy.suspect.shrink_ratio == 0.5
    assert policy.guardrail.interval == 300.0
    assert policy.retention.keep_all == 48 * 3600
    assert policy.store.max_size == 2 * 1024**3


# --------------------------------------------------------------------------- bounded settings (issue 13)

_TWO_CHECKS = (
    "version: 1\nvalidate:\n  - paths: ['*.sh']\n    checks: [shell, {{command: [sh, -n, '{{path}}'], timeout: {t}}}]\n"
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            _TWO_CHECKS.format(t="100000s"),
            "guardian.yaml:4:60: validate[0].checks[1].timeout: 100000s is more than the 60s a check may take; "
            "a snapshot holds the store lock while checks run",
        ),
        (
            _TWO_CHECKS.format(t="2h"),
            "guardian.yaml:4:60: validate[0].checks[1].timeout: 2h is more than the 60s a check may take; "
            "a snapshot holds the store lock while checks run",
        ),
        (
            _TWO_CHECKS.format(t="61"),
            "guardian.yaml:4:60: validate[0].checks[1].timeout: 61s is more than the 60s a check may take; "
            "a snapshot holds the store lock while checks run",
        ),
        (
            _TWO_CHECKS.format(t="0s"),
            "guardian.yaml:4:60: validate[0].checks[1].timeout: 0s is less than the 0.1s a check needs to start; "
            "write e.g. 10s",
        ),
        (
            "version: 1\nguardrail:\n  interval: 0.001s\n",
            "guardian.yaml:3:13: guardrail.interval: 0.001s is less than the 1s between rescans that guardian allows; "
            "each rescan reads the whole tree: write e.g. 300s, or 0 to turn the rescans off",
        ),
        (
            "version: 1\nguardrail:\n  interval: 0.5\n",
            "guardian.yaml:3:13: guardrail.interval: 0.5s is less than the 1s between rescans that guardian allows; "
            "each rescan reads the whole tree: write e.g. 300s, or 0 to turn the rescans off",
        ),
        (
            "version: 1\nmirror:\n  interval: 5s\n",
            "guardian.yaml:3:13: mirror.interval: 5s is less than the 60s between pushes that guardian allows; "
            "each push runs git and connects to the mirror: write e.g. 15m, or 0 to turn it off",
        ),
    ],
)
def test_unbounded_settings_are_refused_by_name_and_exit_2(project: Path, text: str, message: str) -> None:
    _write_policy(project, text)
    for command in ("status", "snapshot"):
        r = run_cli(command, cwd=project)
        assert r.exit_code == 2
        assert r.stderr.strip() == f"guardian: error: {project}/{message}"


def test_settings_at_their_bounds_are_accepted() -> None:
    policy = parse_policy(_TWO_CHECKS.format(t="60s") + "guardrail:\n  interval: 1s\nmirror:\n  interval: 1m\n")
    assert policy.validate[0].checks[1].timeout == 60.0
    assert (policy.guardrail.interval, policy.mirror.interval) == (1.0, 60.0)
    assert parse_policy(_TWO_CHECKS.format(t="100ms")).validate[0].checks[1].timeout == 0.1
    # 0 still turns the periodic work off.
    off = parse_policy("version: 1\nguardrail:\n  interval: 0\nmirror:\n  interval: 0s\n")
    assert (off.guardrail.interval, off.mirror.interval) == (0.0, 0.0)
    assert parse_policy("version: 1\n").retention.keep_last == 200
