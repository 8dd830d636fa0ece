"""Routes around the hooks that used to roll protected files back with exit 0, and the ones no hook can see.

- ``git update-ref`` of the checked-out branch, then ``reset --hard``;
- a reset to a commit whose guardian.yaml is laxer, or has none: the hooks use the
  accepted policy kept in the store;
- ``git clean -fdx`` of an untracked guardian.yaml: the shim knows the project's
  root and store, so the next reset is still judged;
- ``git apply -R``, ``read-tree -u --reset``, ``checkout-index -f`` run no hook at
  all: only the watcher sees them (docs/git-hooks.md says so).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from guardian.project import Project
from guardian.trust.grants import covering_grant
from tests.gates.githooks.gitrepo import (
    POLICY,
    A,
    B,
    commit_all,
    g,
    guard,
    hook_events,
    last,
    make_repo,
    ok,
    read,
    rev,
    write,
)

LAX = textwrap.dedent(
    """\
    version: 1
    protect:
      - paths: ["agents/wo_executor/"]
        rollback: allow
        delete: allow
        reason: "WO pipeline"
    """
)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = make_repo(tmp_path / "repo")
    guard(root)
    return root


def test_update_ref_of_the_checked_out_branch_then_reset_hard_is_undone(repo: Path) -> None:
    before = rev(repo)
    r = g(repo, "update-ref", "refs/heads/main", "HEAD~1")  # moves the branch; the files stay
    assert r.returncode == 0, r.stderr
    assert read(repo, A) == "x = 2\n"
    r = g(repo, "reset", "--hard")  # HEAD stays (at the rewound commit); the files would follow it back
    assert r.returncode == 128, r.stderr
    assert read(repo, A) == "x = 2\n" and read(repo, B) == "y = 1\n"
    assert rev(repo, "HEAD@{1}") == before


@pytest.mark.parametrize("older", ["laxer", "absent"])
def test_a_reset_to_a_commit_with_a_laxer_or_no_policy_is_judged_by_the_accepted_one(
    tmp_path: Path, older: str
) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    ok(g(root, "init", "-q", "-b", "main"))
    (root / ".git" / "info" / "exclude").write_text(".guardian-id\n")
    if older == "laxer":
        write(root, "guardian.yaml", LAX)
    write(root, A, "x = 1\n")
    commit_all(root, "c1: a laxer policy, or none")
    write(root, "guardian.yaml", POLICY)
    write(root, A, "x = 2\n")
    commit_all(root, "c2: the policy in force")
    guard(root)
    r = g(root, "reset", "--hard", "HEAD~1")
    assert r.returncode == 128, r.stderr
    assert "refused: `git reset --hard 'HEAD~1'` rolled back protected paths" in r.stderr
    assert read(root, A) == "x = 2\n"
    assert read(root, "guardian.yaml") == POLICY  # the policy file is protected too: put back
    assert set(last(root, "block").paths) == {A, "guardian.yaml"}


def test_git_clean_of_an_untracked_policy_leaves_the_project_guarded(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    ok(g(root, "init", "-q", "-b", "main"))
    write(root, A, "x = 1\n")
    commit_all(root, "c1")
    write(root, A, "x = 2\n")
    commit_all(root, "c2")
    write(root, "guardian.yaml", POLICY)  # untracked, as guardian init leaves it
    guard(root)
    r = g(root, "clean", "-fdx")
    assert r.returncode == 0 and not (root / "guardian.yaml").exists()
    r = g(root, "reset", "--hard", "HEAD~1")
    assert r.returncode == 128, r.stderr
    assert read(root, A) == "x = 2\n"
    assert last(root, "block").paths == [A]


@pytest.mark.parametrize(
    "command",
    [
        ["apply", "-R", "last.patch"],
        ["read-tree", "-u", "--reset", "HEAD~1"],
        ["checkout-index", "-f", "--", A],
    ],
    ids=["apply -R", "read-tree -u --reset", "checkout-index -f"],
)
def test_plumbing_that_runs_no_hook_is_left_to_the_watcher(repo: Path, command: list[str]) -> None:
    write(repo, A, "x = 3\n")
    commit_all(repo, "c3")
    (repo / "last.patch").write_text(ok(g(repo, "diff", "HEAD~1", "HEAD")))
    if command[0] == "checkout-index":
        ok(g(repo, "read-tree", "HEAD~1"))  # an index that holds the older version
    r = g(repo, *command)
    assert r.returncode == 0, r.stderr
    assert read(repo, A) == "x = 2\n"  # rolled back, and no hook ran: the watcher's enforcement is what acts
    assert not hook_events(repo)


def test_force_leaves_a_grant_for_the_paths_it_let_through(repo: Path) -> None:
    write(repo, A, "x = 3\n")
    commit_all(repo, "c3: only a protected modification")
    r = g(repo, "reset", "--hard", "HEAD~1", force=True)
    assert r.returncode == 0, r.stderr
    project = Project.find(repo)
    grant = covering_grant(project.paths.store, "rollback", A)
    assert grant is not None and grant.by == "git hook (GUARDIAN_FORCE=1)"
    assert last(repo, "force").details["grants"] == [grant.id]
    grant_events = [e for e in project.events.read() if e.event == "grant"]
    assert grant_events[-1].paths == [A] and grant_events[-1].details["by"] == "git hook (GUARDIAN_FORCE=1)"


def test_force_of_a_deletion_grants_the_delete_too(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", policy=POLICY.replace("delete: block", "delete: force"))
    guard(root)
    r = g(root, "reset", "--hard", "HEAD~1", force=True)  # a.py back to x = 1, b.py deleted
    assert r.returncode == 0, r.stderr
    store = Project.find(root).paths.store
    assert covering_grant(store, "delete", B) is not None
    assert covering_grant(store, "rollback", A) is not None
    assert covering_grant(store, "delete", A) is None


def test_a_block_rule_is_never_let_through_and_leaves_no_grant(repo: Path) -> None:
    r = g(repo, "reset", "--hard", "HEAD~1", force=True)  # deletes b.py: delete: block
    assert r.returncode == 128
    assert read(repo, B) == "y = 1\n"
    store = Project.find(repo).paths.store
    assert covering_grant(store, "delete", B) is None and covering_grant(store, "rollback", B) is None
