"""Merge conflicts on protected files: resolving one is never a rollback, and the other side is never dropped.

``git checkout --theirs/--ours`` picks a side of a conflict; ``merge --abort`` and
``reset --hard`` during a conflict go back to before the merge, which the other
branch still holds; conflict markers are no work to keep.  guardian never replaces a
conflicted path's index stages with HEAD's version.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.gates.githooks.gitrepo import (
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
    snapshot,
    write,
)

NOTES = "agents/wo_executor/notes.txt"


def _policy(rollback: str) -> str:
    return textwrap.dedent(
        f"""\
        version: 1
        protect:
          - paths: ["agents/wo_executor/"]
            rollback: {rollback}
            delete: block
            restore: allow
            reason: "WO pipeline"
        """
    )


def _conflicted(root: Path, rel: str, *, rollback: str = "force") -> Path:
    """main and feature both change ``rel``; main merges feature and stops on the conflict."""
    make_repo(root, policy=_policy(rollback))
    write(root, NOTES, "base\n")
    commit_all(root, "notes")
    guard(root)
    ok(g(root, "checkout", "-q", "-b", "feature"))
    write(root, rel, "theirs = 1\n")
    write(root, B, "y = 5  # feature's clean change\n")
    commit_all(root, "feature")
    ok(g(root, "checkout", "-q", "main"))
    write(root, rel, "ours = 1\n")
    commit_all(root, "main")
    r = g(root, "merge", "feature")
    assert r.returncode != 0 and "CONFLICT" in r.stdout
    assert "<<<<<<< " in read(root, rel)
    snapshot(root)  # what the watcher would do: the conflict markers are a captured version
    return root


def _unmerged(root: Path) -> set[str]:
    return {line.split("\t", 1)[1] for line in ok(g(root, "ls-files", "-u")).splitlines()}


@pytest.mark.parametrize("rel", [A, NOTES], ids=["py", "txt"])
@pytest.mark.parametrize("side", ["--theirs", "--ours"])
def test_checking_out_one_side_of_a_conflict_is_not_refused(tmp_path: Path, side: str, rel: str) -> None:
    root = _conflicted(tmp_path / "repo", rel)
    r = g(root, "checkout", side, "--", rel)
    assert r.returncode == 0, r.stderr
    assert read(root, rel) == ("theirs = 1\n" if side == "--theirs" else "ours = 1\n")
    assert _unmerged(root) == {rel}  # still the person's to resolve: the index keeps both sides
    ok(g(root, "add", rel))
    ok(g(root, "commit", "-q", "--no-edit"))
    assert not hook_events(root, "block")


@pytest.mark.parametrize("rel", [A, NOTES], ids=["py", "txt"])
@pytest.mark.parametrize("rollback", ["force", "block"])
def test_merge_abort_works_on_a_conflicted_protected_file(tmp_path: Path, rel: str, rollback: str) -> None:
    root = _conflicted(tmp_path / "repo", rel, rollback=rollback)
    r = g(root, "merge", "--abort")
    assert r.returncode == 0, r.stderr
    assert read(root, rel) == "ours = 1\n" and read(root, B) == "y = 1\n"
    assert not (root / ".git" / "MERGE_HEAD").exists()
    assert not hook_events(root, "block")


def test_reset_hard_during_a_conflict_goes_back_to_before_the_merge(tmp_path: Path) -> None:
    root = _conflicted(tmp_path / "repo", NOTES)
    r = g(root, "reset", "--hard")  # the feature's clean change to b.py goes too: the feature branch keeps it
    assert r.returncode == 0, r.stderr
    assert read(root, NOTES) == "ours = 1\n" and read(root, B) == "y = 1\n"
    assert not hook_events(root, "block")


def test_a_refusal_during_a_conflict_keeps_the_conflict_in_the_index(tmp_path: Path) -> None:
    root = _conflicted(tmp_path / "repo", NOTES)
    write(root, A, "x = 9  # uncommitted work\n")
    snapshot(root)
    r = g(root, "checkout", "--", A)  # throws away the uncommitted work: refused, and put back
    assert r.returncode == 1, r.stderr
    assert read(root, A) == "x = 9  # uncommitted work\n"
    assert last(root, "block").paths == [A]
    assert _unmerged(root) == {NOTES}  # the other side of the conflict is still there to resolve
