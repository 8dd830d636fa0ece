"""Decided by content, not by the command's name: only protected content moving back to an older version counts.

A branch switch or a forward move is not a rollback; a ref that rewinds is one, unless
the content it brings is newer (a reset that undoes a revert).  Rebases are judged
before they start by their new base, and after they finish by what they kept of the
branch's own commits.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gates.githooks.gitrepo import (
    A,
    B,
    C,
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


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = make_repo(tmp_path / "repo")
    guard(root)
    return root


def _feature_and_a_fixed_main(repo: Path) -> None:
    """feature (from c2) adds c.py; main then fixes a.py."""
    ok(g(repo, "checkout", "-q", "-b", "feature"))
    write(repo, C, "z = 1\n")
    commit_all(repo, "feature adds a protected file")
    ok(g(repo, "checkout", "-q", "main"))
    write(repo, A, "x = 3  # the fix\n")
    commit_all(repo, "main fixes a.py")
    ok(g(repo, "checkout", "-q", "feature"))


def test_rebase_onto_a_main_that_fixed_a_protected_file_passes(repo: Path) -> None:
    _feature_and_a_fixed_main(repo)
    r = g(repo, "rebase", "main")
    assert r.returncode == 0, r.stderr
    assert read(repo, A) == "x = 3  # the fix\n" and read(repo, C) == "z = 1\n"
    assert not hook_events(repo, "block") and not hook_events(repo, "force")


def test_merging_main_into_a_feature_branch_passes(repo: Path) -> None:
    _feature_and_a_fixed_main(repo)
    r = g(repo, "merge", "-q", "--no-edit", "main")
    assert r.returncode == 0, r.stderr
    assert read(repo, A) == "x = 3  # the fix\n" and read(repo, C) == "z = 1\n"
    # A fast-forward too: a branch that is behind main catches up.
    ok(g(repo, "checkout", "-q", "-b", "behind", "main~1"))
    r = g(repo, "merge", "-q", "--ff-only", "main")
    assert r.returncode == 0, r.stderr
    assert not hook_events(repo, "block")


def test_pull_rebase_over_the_users_own_newer_commits_passes(tmp_path: Path) -> None:
    upstream = make_repo(tmp_path / "upstream")
    ok(g(tmp_path, "clone", "-q", str(upstream), "clone"))
    clone = tmp_path / "clone"
    (clone / ".git" / "info" / "exclude").write_text(".guardian-id\n")
    guard(clone)
    write(clone, A, "x = 3  # my own newer work\n")
    commit_all(clone, "mine")
    write(upstream, "other.txt", "o3\n")
    write(upstream, B, "y = 2  # upstream's fix\n")
    commit_all(upstream, "theirs")
    r = g(clone, "pull", "-q", "--rebase")
    assert r.returncode == 0, r.stderr
    assert read(clone, A) == "x = 3  # my own newer work\n"
    assert read(clone, B) == "y = 2  # upstream's fix\n"
    assert not hook_events(clone, "block")


def test_reset_that_undoes_a_revert_of_a_fix_passes(repo: Path) -> None:
    write(repo, A, "x = 3  # the fix\n")
    commit_all(repo, "fix")
    ok(g(repo, "revert", "--no-edit", "HEAD"))  # a.py back to x = 2, as a new commit
    assert read(repo, A) == "x = 2\n"
    r = g(repo, "reset", "--hard", "HEAD~1")  # the ref rewinds, but the fix moves forward again
    assert r.returncode == 0, r.stderr
    assert read(repo, A) == "x = 3  # the fix\n"
    assert not hook_events(repo, "block")


def test_a_reset_that_rewinds_the_content_is_still_refused(repo: Path) -> None:
    write(repo, A, "x = 3  # the fix\n")
    commit_all(repo, "fix")
    r = g(repo, "reset", "--hard", "HEAD~1")
    assert r.returncode == 128, r.stderr
    assert read(repo, A) == "x = 3  # the fix\n"


def test_switching_to_an_older_branch_passes(repo: Path) -> None:
    ok(g(repo, "branch", "old", "HEAD~1"))
    write(repo, A, "x = 3\n")
    commit_all(repo, "newer on main")
    r = g(repo, "switch", "old")
    assert r.returncode == 0, r.stderr
    assert read(repo, A) == "x = 1\n" and not (repo / B).exists()
    ok(g(repo, "switch", "main"))
    assert read(repo, A) == "x = 3\n"
    assert not hook_events(repo, "block")


def test_rebase_onto_an_older_base_is_refused_before_it_starts(repo: Path) -> None:
    write(repo, "notes.txt", "n\n")
    tip = commit_all(repo, "c3")
    c1 = rev(repo, "HEAD~2")
    r = g(repo, "rebase", "--onto", c1, "HEAD~1")  # replays c3 onto c1: a.py back to x = 1, b.py gone
    assert r.returncode != 0
    assert "refused: this rebase would move protected paths back to older versions" in r.stderr
    assert f"  {B}  (WO pipeline; delete is blocked by policy)" in r.stderr
    assert rev(repo) == tip and read(repo, A) == "x = 2\n"
    assert last(repo, "block").details["onto"] == c1


def test_interactive_rebase_dropping_a_protected_change_puts_it_back(repo: Path) -> None:
    write(repo, A, "x = 3  # the fix\n")
    commit_all(repo, "fix")
    write(repo, "notes.txt", "n\n")
    commit_all(repo, "notes")
    drop_first = {"GIT_SEQUENCE_EDITOR": "sed -i '1s/^pick/drop/'"}
    r = g(repo, "rebase", "-q", "-i", "HEAD~2", extra=drop_first)
    assert "the rebase dropped protected changes" in r.stderr, r.stderr
    assert f"  {A}  -> restored from commit" in r.stderr
    assert read(repo, A) == "x = 3  # the fix\n"  # back, as an uncommitted change
    assert ok(g(repo, "show", f"HEAD:{A}")) == "x = 2\n"
    assert ok(g(repo, "diff", "--name-only")).split() == [A]
    assert last(repo, "block").details["hook"] == "post-rewrite"


def test_interactive_rebase_dropping_a_protected_change_with_force_leaves_a_grant(repo: Path) -> None:
    write(repo, A, "x = 3  # the fix\n")
    commit_all(repo, "fix")
    write(repo, "notes.txt", "n\n")
    commit_all(repo, "notes")
    drop_first = {"GIT_SEQUENCE_EDITOR": "sed -i '1s/^pick/drop/'"}
    r = g(repo, "rebase", "-q", "-i", "HEAD~2", extra=drop_first, force=True)
    assert r.returncode == 0, r.stderr
    assert read(repo, A) == "x = 2\n"
    assert last(repo, "force").details["grants"]


def _stopped_rebase(repo: Path) -> None:
    """A rebase stopped on a conflict in other.txt, with a.py's fix already replayed."""
    ok(g(repo, "checkout", "-q", "-b", "feature"))
    write(repo, A, "x = 3  # the fix\n")
    commit_all(repo, "fix")
    write(repo, "other.txt", "feature\n")
    commit_all(repo, "other on feature")
    ok(g(repo, "checkout", "-q", "main"))
    write(repo, "other.txt", "main\n")
    commit_all(repo, "other on main")
    ok(g(repo, "checkout", "-q", "feature"))
    r = g(repo, "rebase", "main")
    assert r.returncode != 0 and "CONFLICT" in (r.stdout + r.stderr)
    assert (repo / ".git" / "rebase-merge").is_dir()
    assert read(repo, A) == "x = 3  # the fix\n"


def test_a_reset_while_a_rebase_is_stopped_is_judged(repo: Path) -> None:
    _stopped_rebase(repo)
    r = g(repo, "reset", "--hard", "HEAD~1")  # the person, not the rebase: a.py would go back to x = 2
    assert r.returncode == 128, r.stderr
    assert read(repo, A) == "x = 3  # the fix\n"
    assert last(repo, "block").details["git_command"] == "git reset --hard 'HEAD~1'"


def test_a_stopped_rebase_can_be_aborted_and_continued(repo: Path) -> None:
    _stopped_rebase(repo)
    r = g(repo, "rebase", "--abort")
    assert r.returncode == 0, r.stderr
    assert read(repo, "other.txt") == "feature\n" and read(repo, A) == "x = 3  # the fix\n"
    r = g(repo, "rebase", "main")
    assert r.returncode != 0
    write(repo, "other.txt", "resolved\n")
    ok(g(repo, "add", "other.txt"))
    r = g(repo, "-c", "core.editor=true", "rebase", "--continue")
    assert r.returncode == 0, r.stderr
    assert read(repo, A) == "x = 3  # the fix\n"
    assert not hook_events(repo, "block")
