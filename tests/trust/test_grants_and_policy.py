"""Force grants and the trusted policy, driven through the real CLI."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from guardian.project import Project
from guardian.trust.grants import DEFAULT_GRANT_SECONDS, active_grants, add_grant, covering_grant, read_grants
from guardian.trust.policy import read_accepted
from tests.conftest import run_cli

POLICY = """\
version: 1
protect:
  - paths: ["agents/"]
    rollback: force
    delete: block
    reason: pipeline processors
"""
WEAKER = POLICY.replace("rollback: force", "rollback: allow")
STRONGER = POLICY.replace("    reason: pipeline processors\n", "    modify: force\n    reason: pipeline processors\n")


@pytest.fixture
def guarded(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "agents").mkdir(parents=True)
    (root / "guardian.yaml").write_text(POLICY)
    (root / "agents" / "run.py").write_text("print('v1')\n")
    assert run_cli("init", cwd=root).exit_code == 0
    return root


def _gate(root: Path, op: str, path: str) -> int:
    return run_cli("gate", op, path, cwd=root).exit_code


# --------------------------------------------------------------------------- grants


def test_allow_records_a_five_minute_grant_and_logs_who_made_it(guarded: Path) -> None:
    r = run_cli("allow", "rollback", "agents/run.py", cwd=guarded)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith("granted rollback of agents/run.py until ")
    store = Project.find(guarded).paths.store
    (grant,) = active_grants(store)
    assert grant.operation == "rollback" and grant.paths == ("agents/run.py",) and grant.by == "guardian allow"
    assert grant.expires - grant.created == pytest.approx(DEFAULT_GRANT_SECONDS)
    events = [json.loads(line) for line in (store / "events.jsonl").read_text().splitlines()]
    logged = [e for e in events if e["event"] == "grant"]
    assert logged and logged[-1]["details"]["grant"] == grant.id and logged[-1]["paths"] == ["agents/run.py"]


def test_a_grant_covers_paths_below_a_directory_and_only_its_operation(guarded: Path) -> None:
    assert run_cli("allow", "rollback", "agents", "--for", "1m", cwd=guarded).exit_code == 0
    store = Project.find(guarded).paths.store
    assert covering_grant(store, "rollback", "agents/run.py") is not None
    assert covering_grant(store, "rollback", "agentsX/run.py") is None
    assert covering_grant(store, "delete", "agents/run.py") is None


def test_a_block_rule_is_never_granted(guarded: Path) -> None:
    r = run_cli("allow", "delete", "agents/run.py", cwd=guarded)
    assert r.exit_code == 4
    assert r.stderr == (
        "guardian: error: delete of 'agents/run.py' is blocked by policy (pipeline processors); a grant "
        "cannot override a 'block' rule: change the rule in guardian.yaml if you must\n"
    )
    assert read_grants(Project.find(guarded).paths.store) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("allow", "rollback", "agents/run.py", "--for", "soon"), "--for: not a duration: 'soon'"),
        (("allow", "rollback", "agents/run.py", "--for", "0s"), "--for must be a positive duration"),
        (("allow", "rollback", "agents/run.py", "--for", "3d"), "--for is at most 24h"),
        (("allow", "rollback"), "name the path(s) to allow, e.g. 'guardian allow rollback agents/processor.py'"),
        (("allow", "rollback", "../elsewhere.py"), "outside the project root"),
    ],
)
def test_allow_refuses_bad_input_with_one_line(guarded: Path, args: tuple[str, ...], message: str) -> None:
    r = run_cli(*args, cwd=guarded)
    assert r.exit_code == 2
    assert message in r.stderr and r.stderr.count("\n") == 1


def test_expired_grants_cover_nothing_and_are_dropped_on_the_next_write(guarded: Path) -> None:
    store = Project.find(guarded).paths.store
    old = add_grant(store, "rollback", ["agents/run.py"], by="test", seconds=1, now=time.time() - 10)
    assert covering_grant(store, "rollback", "agents/run.py") is None
    add_grant(store, "modify", ["agents/run.py"], by="test")
    assert old.id not in {g.id for g in read_grants(store)}


def test_grants_lists_and_revokes(guarded: Path) -> None:
    assert run_cli("allow", "rollback", "agents/run.py", cwd=guarded).exit_code == 0
    listed = run_cli("grants", cwd=guarded)
    assert listed.exit_code == 0 and " rollback agents/run.py  until " in listed.stdout
    data = json.loads(run_cli("grants", "--json", cwd=guarded).stdout)
    (grant,) = data["grants"]
    r = run_cli("grants", "--revoke", grant["id"], cwd=guarded)
    assert r.stdout == "revoked 1 grant(s)\n"
    assert run_cli("grants", cwd=guarded).stdout == "no grants in effect\n"


def test_a_damaged_grant_file_reads_as_no_grants(guarded: Path) -> None:
    store = Project.find(guarded).paths.store
    (store / "grants.json").write_text("{not json")
    assert read_grants(store) == []
    assert run_cli("grants", cwd=guarded).stdout == "no grants in effect\n"


# --------------------------------------------------------------------------- the trusted policy


def test_init_accepts_the_policy_it_was_made_with(guarded: Path) -> None:
    assert read_accepted(Project.find(guarded).paths.store) == POLICY


def test_a_weakening_edit_on_disk_changes_nothing_until_accepted(guarded: Path) -> None:
    assert _gate(guarded, "rollback", "agents/run.py") == 3
    (guarded / "guardian.yaml").write_text(WEAKER)
    assert _gate(guarded, "rollback", "agents/run.py") == 3, "a weaker guardian.yaml on disk took effect"
    status = run_cli("status", cwd=guarded)
    assert "policy:    the accepted copy (see warning)" in status.stdout
    assert (
        "differs from the policy in force and would weaken it "
        "(agents/: rollback force -> allow; agents/: modify force -> allow)" in status.stderr
    )
    assert "run 'guardian policy accept' to put it in force" in status.stderr
    accepted = run_cli("policy", "accept", cwd=guarded)
    assert accepted.exit_code == 0
    assert accepted.stdout == (
        "accepted guardian.yaml: it is now the policy in force\n  gives up: agents/: rollback force -> allow\n"
        "  gives up: agents/: modify force -> allow\n"
    )
    assert _gate(guarded, "rollback", "agents/run.py") == 0


def test_an_emptied_policy_changes_nothing_until_accepted(guarded: Path) -> None:
    (guarded / "guardian.yaml").write_text("version: 1\n")
    assert _gate(guarded, "rollback", "agents/run.py") == 3
    assert json.loads(run_cli("status", "--json", cwd=guarded).stdout)["policy"]["in_force"] == "accepted"


def test_a_stricter_edit_takes_effect_at_once(guarded: Path) -> None:
    assert _gate(guarded, "modify", "agents/run.py") == 3  # modify follows rollback: force
    (guarded / "guardian.yaml").write_text(STRONGER.replace("rollback: force", "rollback: block"))
    assert _gate(guarded, "rollback", "agents/run.py") == 4
    store = Project.find(guarded).paths.store
    assert read_accepted(store) == (guarded / "guardian.yaml").read_text()
    assert run_cli("policy", "accept", cwd=guarded).stdout == "guardian.yaml is already the policy in force\n"


def test_a_grant_on_guardian_yaml_lets_a_weakening_edit_take_effect(guarded: Path) -> None:
    assert run_cli("allow", "modify", "guardian.yaml", cwd=guarded).exit_code == 0
    (guarded / "guardian.yaml").write_text(WEAKER)
    assert _gate(guarded, "rollback", "agents/run.py") == 0


def test_a_deleted_policy_keeps_the_accepted_one_in_force(guarded: Path) -> None:
    (guarded / "guardian.yaml").unlink()
    r = run_cli("gate", "rollback", "agents/run.py", cwd=guarded)
    assert r.exit_code == 3
    assert "guardian.yaml is missing (removed by a tool such as 'git clean -fdx'?); using the accepted policy" in (
        r.stderr
    )


def test_a_broken_policy_on_disk_is_an_error_not_a_silent_guess(guarded: Path) -> None:
    (guarded / "guardian.yaml").write_text("version: 1\nprotect: [\n")
    r = run_cli("policy", "accept", cwd=guarded)
    assert r.exit_code == 2
    assert r.stderr.startswith("guardian: error: ") and "guardian.yaml" in r.stderr
    assert read_accepted(_store(guarded)) == POLICY


def _store(root: Path) -> Path:
    from guardian.project import ProjectPaths

    return ProjectPaths.for_root(root.resolve()).store
