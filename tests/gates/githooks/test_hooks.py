"""Git hooks against real git: each row of docs/git-hooks.md's table is asserted here.

Every test builds a repository whose guardian.yaml protects agents/wo_executor/,
runs `guardian init` and `guardian hooks install`, then runs real git commands.
The hooks git starts inherit this process's environment, so they use the test's
GUARDIAN_HOME.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from guardian.gates.githooks import context, processes, shim
from tests.conftest import run_cli
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
    snapshot,
    write,
)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = make_repo(tmp_path / "repo")
    guard(root)
    return root


# --------------------------------------------------------------------------- installation


def test_install_writes_marked_shims_that_call_an_absolute_interpreter(repo: Path) -> None:
    hooks_dir = repo / ".git" / "hooks"
    for name in context.HOOK_NAMES:
        text = (hooks_dir / name).read_text()
        assert shim.SHIM_MARKER in text.splitlines()[1]
        assert f"python={sys.executable}" in text or f"python='{sys.executable}'" in text
        assert os.access(hooks_dir / name, os.X_OK)
    r = run_cli("hooks", "status", cwd=repo)
    assert r.exit_code == 0
    assert f"hooks dir: {hooks_dir}" in r.stdout
    assert f"project:   {repo.resolve()}" in r.stdout
    assert r.stdout.count(" guardian\n") == len(context.HOOK_NAMES)


def test_status_names_a_shim_an_older_guardian_wrote(repo: Path) -> None:
    hooks_dir = repo / ".git" / "hooks"
    r = run_cli("hooks", "status", cwd=repo)
    assert "another guardian version" not in r.stdout  # just installed: current
    old = hooks_dir / "post-checkout"
    text = old.read_text()
    old.write_text(text.replace("# Does guardian have anything to do?", "# (an older template)"))
    r = run_cli("hooks", "status", cwd=repo)
    assert r.exit_code == 0
    line = next(x for x in r.stdout.splitlines() if x.strip().startswith("post-checkout"))
    assert "guardian" in line and "written by another guardian version: rerun 'guardian hooks install'" in line
    assert '"outdated": true' in run_cli("hooks", "status", "--json", cwd=repo).stdout
    assert run_cli("hooks", "install", cwd=repo).exit_code == 0
    assert "another guardian version" not in run_cli("hooks", "status", cwd=repo).stdout


def test_status_reports_core_hooks_path(repo: Path, tmp_path: Path) -> None:
    shared = tmp_path / "shared-hooks"
    ok(g(repo, "config", "core.hooksPath", str(shared)))
    r = run_cli("hooks", "status", "--json", cwd=repo)
    assert f'"core_hooks_path": "{shared}"' in r.stdout
    assert f'"hooks_dir": "{shared}"' in r.stdout
    r = run_cli("hooks", "install", cwd=repo)
    assert f"core.hooksPath is set ({shared})" in r.stdout
    assert shim.is_guardian_shim(shared / "reference-transaction")


@pytest.mark.parametrize("tracked", [True, False], ids=["tracked", "untracked"])
def test_hooks_path_inside_the_work_tree_is_refused_with_what_to_do(repo: Path, tracked: bool) -> None:
    hooks = repo / ".githooks"
    hooks.mkdir()
    (hooks / "post-checkout").write_text("#!/bin/sh\nexit 0\n")
    (hooks / "post-checkout").chmod(0o755)
    if tracked:
        commit_all(repo, "team hooks")
    ok(g(repo, "config", "core.hooksPath", ".githooks"))
    r = run_cli("hooks", "install", cwd=repo)
    assert r.exit_code == 1
    assert "core.hooksPath (.githooks) is" in r.stderr and "inside the work tree and not ignored by git" in r.stderr
    assert "git config --unset core.hooksPath" in r.stderr
    assert sorted(p.name for p in hooks.iterdir()) == ["post-checkout"]  # nothing written, nothing renamed

    # An ignored directory (husky's .husky/_ ignores itself) is no part of the repository: fine.
    if not tracked:
        (repo / ".git" / "info" / "exclude").write_text(".githooks/\n")
        r = run_cli("hooks", "install", cwd=repo)
        assert r.exit_code == 0, r.stderr
        assert shim.is_guardian_shim(hooks / "post-checkout")
        assert (hooks / "post-checkout.guardian-chained").read_text() == "#!/bin/sh\nexit 0\n"


def test_existing_hook_is_chained_with_stdin_replayed_and_restored_byte_for_byte(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    log = tmp_path / "legacy.log"
    hooks_dir = root / ".git" / "hooks"
    # No trailing newline on purpose: uninstall must give back these exact bytes.
    ref_tx = f'#!/bin/sh\n# my own hook\nprintf "%s %s\\n" "$1" "$(cat | tr "\\n" "|")" >> {log}\nexit 0'
    (hooks_dir / "reference-transaction").write_text(ref_tx)
    (hooks_dir / "reference-transaction").chmod(0o750)
    (hooks_dir / "pre-rebase").write_text(f"#!/bin/sh\necho legacy-pre-rebase >> {log}\nexit 3\n")
    (hooks_dir / "pre-rebase").chmod(0o755)
    guard(root)
    assert (hooks_dir / "reference-transaction.guardian-chained").read_text() == ref_tx
    assert "runs reference-transaction.guardian-chained first" in run_cli("hooks", "status", cwd=root).stdout

    old = rev(root)
    write(root, "other.txt", "o3\n")
    new = commit_all(root, "c3")
    lines = log.read_text().splitlines()
    # The chained hook got git's stdin, byte for byte, for both states.
    assert f"prepared {old} {new} HEAD|{old} {new} refs/heads/main|" in lines
    assert f"committed {old} {new} HEAD|{old} {new} refs/heads/main|" in lines

    # A refusing legacy pre-rebase stops the chain with its own verdict; guardian adds nothing.
    ok(g(root, "checkout", "-q", "-b", "side", "HEAD~1"))
    r = g(root, "rebase", "main")
    assert r.returncode != 0 and "pre-rebase hook refused" in r.stderr
    assert "legacy-pre-rebase" in log.read_text()
    assert not hook_events(root, "block")

    removed = run_cli("hooks", "uninstall", cwd=root)
    assert removed.exit_code == 0 and "restored reference-transaction" in removed.stdout
    assert (hooks_dir / "reference-transaction").read_bytes() == ref_tx.encode()
    assert oct((hooks_dir / "reference-transaction").stat().st_mode & 0o777) == oct(0o750)
    assert (hooks_dir / "pre-rebase").read_text() == f"#!/bin/sh\necho legacy-pre-rebase >> {log}\nexit 3\n"
    assert not (hooks_dir / "post-checkout").exists()
    assert not list(hooks_dir.glob("*.guardian-chained"))
    assert not (hooks_dir / ".guardian-chained").exists()


def test_install_refuses_when_a_legacy_file_is_in_the_way(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    hooks_dir = root / ".git" / "hooks"
    (hooks_dir / "post-merge").write_text("#!/bin/sh\nexit 0\n")
    (hooks_dir / "post-merge.guardian-chained").write_text("#!/bin/sh\nexit 1\n")
    r = run_cli("hooks", "install", cwd=root)
    assert r.exit_code == 1
    assert "post-merge.guardian-chained already exists" in r.stderr
    assert not (hooks_dir / "reference-transaction").exists()  # checked before anything was written


def test_not_a_git_repository_is_a_usage_error(tmp_path: Path) -> None:
    r = run_cli("hooks", "status", cwd=tmp_path)
    assert r.exit_code == 2
    assert "not inside a git work tree" in r.stderr


# --------------------------------------------------------------------------- reset and checkout of a commit


@pytest.mark.parametrize("mode", ["--hard", "--merge", "--keep"])
def test_reset_that_rewinds_protected_files_is_undone_and_aborted(repo: Path, mode: str) -> None:
    write(repo, A, "x = 3\n")  # uncommitted work that only guardian's snapshot holds
    snapshot(repo)
    ok(g(repo, "checkout", "-q", "--", A, extra={"GUARDIAN_FORCE": "1"}))  # clean tree, so --keep/--merge run
    before = rev(repo)
    r = g(repo, "reset", mode, "HEAD~1")
    assert r.returncode == 128, r.stderr
    assert "fatal: ref updates aborted by hook" in r.stderr
    assert f"refused: `git reset {mode} 'HEAD~1'` rolled back protected paths" in r.stderr
    assert f"{B}  deleted  -> restored from snapshot" in r.stderr
    # The documented post-abort state: HEAD where it was; protected paths as guardian last saw
    # them and nothing about them staged; every other file as git left it, staged.
    assert rev(repo) == before
    assert ok(g(repo, "symbolic-ref", "HEAD")).strip() == "refs/heads/main"
    assert read(repo, A) == "x = 2\n"
    assert read(repo, B) == "y = 1\n"
    assert read(repo, "other.txt") == "o1\n"
    assert ok(g(repo, "diff", "--cached", "--name-only")).split() == ["other.txt"]
    assert ok(g(repo, "diff", "--name-only")).split() == []
    event = last(repo, "block")
    assert event.details["hook"] == "reference-transaction"
    assert event.details["git_command"] == f"git reset {mode} 'HEAD~1'"
    assert set(event.paths) == {A, B}
    assert event.details["old"] == before and event.details["pre_snapshot"]
    assert event.details["decision"]["outcome"] == "block"
    # "git reset --hard HEAD", as the message suggests, takes back the rest.
    ok(g(repo, "reset", "-q", "--hard", "HEAD"))
    assert ok(g(repo, "status", "--porcelain", "--untracked-files=no")) == ""


def test_reset_keeps_uncommitted_protected_work_from_the_latest_snapshot(repo: Path) -> None:
    write(repo, A, "x = 3\n")
    snapshot(repo)
    r = g(repo, "reset", "--hard", "HEAD~1")
    assert r.returncode == 128
    assert read(repo, A) == "x = 3\n"  # the snapshot's content, not the committed "x = 2"
    assert read(repo, B) == "y = 1\n"
    assert ok(g(repo, "diff", "--name-only")).split() == [A]  # unstaged, as before the reset
    assert ok(g(repo, "diff", "--cached", "--name-only")).split() == ["other.txt"]


def test_reset_hard_without_moving_head_is_undone(repo: Path) -> None:
    write(repo, A, "x = 3\n")
    snapshot(repo)
    r = g(repo, "reset", "--hard")
    assert r.returncode == 128, r.stderr
    assert read(repo, A) == "x = 3\n"
    assert last(repo, "block").paths == [A]


def test_force_lets_a_reset_through_and_is_recorded(repo: Path) -> None:
    write(repo, A, "x = 3\n")
    c3 = commit_all(repo, "c3: only a protected modification")
    r = g(repo, "reset", "--hard", "HEAD~1", force=True)
    assert r.returncode == 0, r.stderr
    assert f"GUARDIAN_FORCE=1: letting git reset --hard 'HEAD~1' roll back: {A}" in r.stderr
    assert rev(repo) == rev(repo, "HEAD@{1}~1") and rev(repo) != c3
    assert read(repo, A) == "x = 2\n"
    event = last(repo, "force")
    assert event.paths == [A] and event.details["force"] is True
    assert event.details["git_command"] == "git reset --hard 'HEAD~1'"


def test_force_does_not_override_a_block_rule(repo: Path) -> None:
    r = g(repo, "reset", "--hard", "HEAD~1", force=True)  # deletes b.py, and the policy says delete: block
    assert r.returncode == 128
    assert f"{B}  deleted  -> restored" in r.stderr
    assert "delete is blocked by policy" in r.stderr
    assert "no flag overrides it" in r.stderr
    assert read(repo, B) == "y = 1\n"


def test_a_detached_checkout_of_an_older_commit_passes_and_checkout_minus_brings_it_back(repo: Path) -> None:
    before = rev(repo)
    r = g(repo, "checkout", "-q", "HEAD~1")  # HEAD moves; no branch rewinds; git keeps uncommitted work
    assert r.returncode == 0, r.stderr
    assert g(repo, "symbolic-ref", "-q", "HEAD").returncode != 0  # detached
    assert rev(repo, "main") == before
    assert read(repo, A) == "x = 1\n" and not (repo / B).exists()
    event = last(repo, "hook")
    assert event.details["git_command"] == "git checkout -q 'HEAD~1'" and event.details["old"] == before
    assert hook_events(repo, "block") == []
    ok(g(repo, "checkout", "-q", "-"))
    assert ok(g(repo, "symbolic-ref", "HEAD")).strip() == "refs/heads/main" and rev(repo) == before
    assert (read(repo, A), read(repo, B)) == ("x = 2\n", "y = 1\n")


def test_switch_detach_and_bisect_steps_pass(repo: Path) -> None:
    for text in ("x = 3\n", "x = 4\n"):
        write(repo, A, text)
        commit_all(repo, text.strip())
    tip = rev(repo)
    ok(g(repo, "switch", "-q", "--detach", "HEAD~2"))
    assert read(repo, A) == "x = 2\n"
    ok(g(repo, "switch", "-q", "main"))
    r = g(repo, "bisect", "start", "main", "main~3")  # git bisect checks out a commit in between
    assert r.returncode == 0, r.stderr
    assert read(repo, A) in ("x = 2\n", "x = 3\n") and rev(repo) != tip
    r = g(repo, "bisect", "good")
    assert r.returncode == 0, r.stderr
    ok(g(repo, "bisect", "reset"))
    assert rev(repo) == tip and read(repo, A) == "x = 4\n"
    assert hook_events(repo, "block") == []


def test_a_forced_detached_checkout_over_a_protected_edit_is_undone(repo: Path) -> None:
    write(repo, A, "x = 3\n")
    snapshot(repo)
    before = rev(repo)
    r = g(repo, "checkout", "-f", "HEAD~1")  # git discards the uncommitted edit when forced
    assert r.returncode == 128, r.stderr
    assert f"{A}  modified -> restored from snapshot" in r.stderr
    assert ok(g(repo, "symbolic-ref", "HEAD")).strip() == "refs/heads/main" and rev(repo) == before
    assert read(repo, A) == "x = 3\n"


def test_a_reset_of_a_detached_head_to_an_older_commit_is_still_undone(repo: Path) -> None:
    ok(g(repo, "checkout", "-q", "--detach"))
    r = g(repo, "reset", "--hard", "HEAD~1")  # reset is how work is thrown away, detached or not
    assert r.returncode == 128, r.stderr
    assert (read(repo, A), read(repo, B)) == ("x = 2\n", "y = 1\n")
    assert last(repo, "block").details["git_command"] == "git reset --hard 'HEAD~1'"


# --------------------------------------------------------------------------- file checkouts (post-checkout)


@pytest.mark.parametrize(
    "command",
    [
        ["checkout", "--", "."],
        ["checkout", "."],
        ["restore", A],
        ["checkout", "HEAD~1", "--", "agents"],
        ["restore", "--source=HEAD~1", "--staged", "--worktree", "agents"],
    ],
    ids=["checkout -- .", "checkout .", "restore", "checkout REV -- dir", "restore --source"],
)
def test_file_checkout_that_reverts_protected_files_is_undone_and_fails(repo: Path, command: list[str]) -> None:
    write(repo, A, "x = 3\n")
    write(repo, "other.txt", "o3\n")
    snapshot(repo)
    r = g(repo, *command)
    assert r.returncode == 1, r.stderr
    assert f"{A}  modified -> restored from snapshot" in r.stderr
    assert "The command fails." in r.stderr
    assert read(repo, A) == "x = 3\n"
    assert read(repo, B) == "y = 1\n"
    # Nothing protected is left staged; other files are as git left them.
    assert A not in ok(g(repo, "diff", "--cached", "--name-only")).split()
    event = last(repo, "block")
    assert event.details["hook"] == "post-checkout" and event.details["args"][2] == "0"


def test_force_lets_a_file_checkout_through(repo: Path) -> None:
    write(repo, A, "x = 3\n")
    snapshot(repo)
    r = g(repo, "checkout", "--", ".", force=True)
    assert r.returncode == 0, r.stderr
    assert read(repo, A) == "x = 2\n"
    assert last(repo, "force").details["git_command"] == "git checkout -- ."


def test_checkout_of_an_unprotected_file_passes_silently(repo: Path) -> None:
    write(repo, "other.txt", "scratch\n")
    r = g(repo, "checkout", "--", "other.txt")
    assert r.returncode == 0 and r.stderr == ""
    assert read(repo, "other.txt") == "o2\n"


def test_checkout_force_discarding_protected_edits_is_undone(repo: Path) -> None:
    write(repo, A, "x = 3\n")
    snapshot(repo)
    r = g(repo, "checkout", "-f")
    assert r.returncode == 1, r.stderr
    assert read(repo, A) == "x = 3\n"


def test_switching_branches_keeps_committed_work_on_the_branch_left(repo: Path) -> None:
    ok(g(repo, "checkout", "-q", "-b", "feature"))
    write(repo, C, "z = 1\n")
    commit_all(repo, "feature adds a protected file")
    snapshot(repo)
    r = g(repo, "checkout", "main")  # c.py leaves the work tree, but stays on `feature`
    assert r.returncode == 0, r.stderr
    assert not (repo / C).exists()
    ok(g(repo, "switch", "-q", "feature"))
    assert read(repo, C) == "z = 1\n"


# --------------------------------------------------------------------------- rebase


def test_rebase_onto_an_upstream_that_moved_a_protected_file_back_is_blocked_before_and_forced_through(
    repo: Path,
) -> None:
    ok(g(repo, "checkout", "-q", "-b", "feature"))
    write(repo, C, "z = 1\n")
    feature = commit_all(repo, "feature adds a protected file")
    ok(g(repo, "checkout", "-q", "main"))
    write(repo, A, "x = 1\n")  # main takes a.py back to its first version
    write(repo, "other.txt", "o3\n")
    commit_all(repo, "main moves a.py back")
    ok(g(repo, "checkout", "-q", "feature"))

    r = g(repo, "rebase", "main")
    assert r.returncode != 0
    assert "refused: this rebase would move protected paths back to older versions" in r.stderr
    assert f"  {A}  (WO pipeline; needs GUARDIAN_FORCE=1)" in r.stderr
    assert C not in r.stderr  # the feature's own file is replayed as it is: nothing moves back
    assert "The pre-rebase hook refused to rebase" in r.stderr
    assert rev(repo) == feature and not (repo / ".git" / "rebase-merge").exists()
    assert last(repo, "block").details["hook"] == "pre-rebase"

    r = g(repo, "rebase", "main", force=True)
    assert r.returncode == 0, r.stderr
    assert rev(repo) != feature and read(repo, C) == "z = 1\n" and read(repo, A) == "x = 1\n"
    forced = last(repo, "force")
    assert forced.details["git_command"] == "git rebase main" and forced.paths == [A]
    assert forced.details["grants"]  # the watcher lets the forced rollback stand
    # post-rewrite: a snapshot, then the guardrail check.
    after = last(repo, "hook")
    assert after.details["hook"] == "post-rewrite" and after.snapshot is not None
    assert after.details["rewritten"] == 1


def test_rebase_touching_nothing_protected_passes(repo: Path) -> None:
    ok(g(repo, "checkout", "-q", "-b", "feature"))
    write(repo, "notes.txt", "n\n")
    commit_all(repo, "feature")
    ok(g(repo, "checkout", "-q", "main"))
    write(repo, "other.txt", "o3\n")
    commit_all(repo, "main moves on")
    ok(g(repo, "checkout", "-q", "feature"))
    ok(g(repo, "rebase", "-q", "main"))


# --------------------------------------------------------------------------- stash


def test_stash_keeps_protected_work_and_dropping_it_is_blocked(repo: Path) -> None:
    write(repo, A, "x = 3\n")
    snapshot(repo)
    r = g(repo, "stash")  # saves x = 3, then resets the work tree: allowed, since the stash holds it
    assert r.returncode == 0, r.stderr
    assert read(repo, A) == "x = 2\n"
    kept = last(repo, "hook")
    assert kept.details["kept_in_stash"] == [A] and kept.details["git_parent_command"] == "git stash"

    r = g(repo, "stash", "drop")
    assert r.returncode != 0
    assert "would discard protected content held only in the stash" in r.stderr
    assert f"  {A}  in stash@{{0}}" in r.stderr
    assert len(ok(g(repo, "stash", "list")).splitlines()) == 1  # the entry, and its list line, survive
    assert last(repo, "block").details["git_command"] == "git stash drop"

    r = g(repo, "stash", "drop", force=True)
    assert r.returncode == 0, r.stderr
    assert ok(g(repo, "stash", "list")) == ""
    assert last(repo, "force").paths == [A]


def test_stash_clear_is_blocked_and_pop_is_allowed(repo: Path) -> None:
    write(repo, A, "x = 3\n")
    ok(g(repo, "stash"))
    write(repo, "other.txt", "o3\n")
    ok(g(repo, "stash"))
    r = g(repo, "stash", "clear")
    assert r.returncode != 0 and "held only in the stash" in r.stderr
    assert len(ok(g(repo, "stash", "list")).splitlines()) == 2
    ok(g(repo, "stash", "drop", "-q"))  # the other.txt entry; a drop that leaves entries is not seen anyway
    r = g(repo, "stash", "pop")  # applies x = 3, so dropping the entry loses nothing
    assert r.returncode == 0, r.stderr
    assert read(repo, A) == "x = 3\n" and ok(g(repo, "stash", "list")) == ""


def test_stash_drop_while_other_entries_remain_is_not_seen_by_any_hook(repo: Path) -> None:
    write(repo, A, "x = 3\n")
    ok(g(repo, "stash"))
    write(repo, "other.txt", "o3\n")
    ok(g(repo, "stash"))
    r = g(repo, "stash", "drop", "stash@{1}")  # git rewrites the reflog without a ref transaction
    assert r.returncode == 0
    assert not hook_events(repo, "block")


# --------------------------------------------------------------------------- branches


def test_deleting_a_branch_that_alone_holds_protected_commits_is_blocked(repo: Path) -> None:
    ok(g(repo, "checkout", "-q", "-b", "feature"))
    write(repo, C, "z = 1\n")
    commit_all(repo, "feature adds a protected file")
    ok(g(repo, "checkout", "-q", "main"))
    for args in (["branch", "-D", "feature"], ["branch", "-f", "feature", "main"]):
        r = g(repo, *args)
        assert r.returncode != 0, args
        assert f"  {C}  in feature" in r.stderr
    assert last(repo, "block").details["git_command"] == "git branch -f feature main"
    ok(g(repo, "tag", "keep/feature", "feature"))  # once another ref holds it, nothing is lost
    ok(g(repo, "branch", "-D", "feature"))
    ok(g(repo, "branch", "feature2", "keep/feature"))
    ok(g(repo, "tag", "-d", "keep/feature"))
    r = g(repo, "branch", "-D", "feature2", force=True)
    assert r.returncode == 0, r.stderr
    assert last(repo, "force").paths == [C]


# --------------------------------------------------------------------------- commits, merges


def test_commit_and_amend_of_protected_files_pass(repo: Path) -> None:
    write(repo, A, "x = 3\n")
    commit_all(repo, "c3")
    write(repo, A, "x = 4\n")
    ok(g(repo, "commit", "-q", "-a", "--amend", "-m", "c3b"))
    ok(g(repo, "reset", "-q", "--soft", "HEAD~1"))  # the work tree is not touched
    assert read(repo, A) == "x = 4\n"
    assert not hook_events(repo, "block")


def test_revert_makes_new_work_and_is_left_to_the_watcher(repo: Path) -> None:
    write(repo, A, "x = 3\n")
    commit_all(repo, "c3")
    r = g(repo, "revert", "--no-edit", "HEAD")  # rolls a.py back to "x = 2", as a new commit
    assert r.returncode == 0, r.stderr
    assert read(repo, A) == "x = 2\n"
    assert not hook_events(repo, "block")


def test_git_clean_is_not_seen_by_any_hook(repo: Path) -> None:
    write(repo, C, "z = 1\n")  # untracked, protected
    snapshot(repo)
    r = g(repo, "clean", "-f", "-q", "agents")
    assert r.returncode == 0 and not (repo / C).exists()
    assert run_cli("restore", C, cwd=repo).exit_code == 0  # the snapshot is the way back
    assert read(repo, C) == "z = 1\n"


def test_merge_is_snapshotted_and_checked_afterwards(repo: Path) -> None:
    ok(g(repo, "checkout", "-q", "-b", "feature"))
    ok(g(repo, "rm", "-q", B))
    commit_all(repo, "feature deletes a protected file")
    ok(g(repo, "checkout", "-q", "main"))
    r = g(repo, "merge", "-q", "--no-ff", "-m", "merge", "feature")
    assert r.returncode == 0, r.stderr
    assert not (repo / B).exists()  # not undone: merges are only snapshotted and alerted
    assert f"guardian: after post-merge: {B} (protected) is missing" in r.stderr
    event = last(repo, "hook")
    assert event.details["hook"] == "post-merge" and event.snapshot is not None
    assert [d["path"] for d in event.details["drift"]] == [B]


# --------------------------------------------------------------------------- degraded and unusual setups


def test_hooks_do_nothing_in_a_repository_without_a_guardian_project(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    root.mkdir()
    ok(g(root, "init", "-q", "-b", "main"))
    write(root, "a.txt", "1\n")
    commit_all(root, "one")
    write(root, "a.txt", "2\n")
    commit_all(root, "two")
    assert run_cli("hooks", "install", cwd=root).exit_code == 0
    for args in (["reset", "-q", "--hard", "HEAD~1"], ["checkout", "-q", "--", "."], ["branch", "-f", "x", "HEAD"]):
        r = g(root, *args)
        assert (r.returncode, r.stderr) == (0, ""), args
    assert not (Path(os.environ["GUARDIAN_HOME"])).exists()


def test_a_broken_interpreter_is_reported_never_silent(repo: Path, tmp_path: Path) -> None:
    shim = repo / ".git" / "hooks" / "reference-transaction"
    copy = tmp_path / "shim-copy"
    shutil.copy2(shim, copy)
    broken = shim.read_text().replace(f"python={sys.executable}", f"python={tmp_path}/gone/python")
    assert broken != shim.read_text()
    shim.write_text(broken)
    r = g(repo, "reset", "--hard", "HEAD~1")
    assert r.returncode == 0  # git goes on: failing closed would break every commit
    assert f"guardian is not runnable ({tmp_path}/gone/python is missing or not executable)" in r.stderr
    assert "protected paths are NOT being checked" in r.stderr
    assert "BROKEN" in run_cli("hooks", "status", cwd=repo).stdout


def test_guardian_failing_inside_a_hook_is_reported(repo: Path) -> None:
    write(repo, "guardian.yaml", "protect: [unclosed\n")
    r = g(repo, "checkout", "--", "other.txt")
    assert r.returncode == 0
    assert "guardian hook post-checkout: guardian failed (exit 2" in r.stderr
    assert "protected paths were NOT checked" in r.stderr


def test_hooks_path_dev_null_bypasses_every_hook(repo: Path) -> None:
    r = g(repo, "-c", "core.hooksPath=/dev/null", "reset", "-q", "--hard", "HEAD~1")
    assert r.returncode == 0 and not (repo / B).exists()  # only the watcher's snapshots remain
    assert run_cli("restore", B, cwd=repo).exit_code == 0
    assert read(repo, B) == "y = 1\n"


def test_linked_worktrees_share_the_hooks_but_are_separate_projects(repo: Path, tmp_path: Path) -> None:
    wt = tmp_path / "wt"
    ok(g(repo, "worktree", "add", "-q", str(wt), "-b", "wt-branch"))
    assert run_cli("init", cwd=wt).exit_code == 0
    assert run_cli("hooks", "status", cwd=wt).stdout.startswith(f"hooks dir: {repo / '.git' / 'hooks'}")
    write(wt, A, "x = 7\n")
    commit_all(wt, "wt change")
    snapshot(wt)

    r = g(wt, "reset", "--hard", "HEAD~1")
    assert r.returncode == 128, r.stderr
    assert read(wt, A) == "x = 7\n" and read(repo, A) == "x = 2\n"
    assert last(wt, "block").details["work_tree"] == str(wt)
    assert not hook_events(repo, "block")  # the main work tree's store saw nothing

    r = g(repo, "reset", "--hard", "HEAD~1")
    assert r.returncode == 128
    assert last(repo, "block").details["work_tree"] == str(repo)
    assert len(hook_events(wt, "block")) == 1


# --------------------------------------------------------------------------- speed


def test_hooks_work_in_a_repository_whose_path_has_a_newline(tmp_path: Path) -> None:
    # `git rev-parse --show-toplevel --git-dir` prints one path per line, so a newline in the
    # work tree's path used to split it in two and the hook guarded nothing.
    root = make_repo(tmp_path / "odd\nname" / "repo")
    guard(root)
    write(root, A, "x = 3\n")
    snapshot(root)
    ok(g(root, "checkout", "-q", "--", A, extra={"GUARDIAN_FORCE": "1"}))
    r = g(root, "reset", "--hard", "HEAD~1")
    assert r.returncode == 128, r.stderr
    assert "refused: `git reset --hard 'HEAD~1'` rolled back protected paths" in r.stderr
    assert read(root, B) == "y = 1\n"


def test_the_fast_path_does_not_import_pygit2(repo: Path) -> None:
    write(repo, "other.txt", "scratch\n")
    r = g(repo, "checkout", "--", "other.txt", extra={"PYTHONPROFILEIMPORTTIME": "1"})
    assert r.returncode == 0
    assert "guardian.gates.githooks.hook" in r.stderr  # the hook ran Python...
    assert "pygit2" not in r.stderr  # ...without the store's library
    started = time.monotonic()
    ok(g(repo, "commit", "-q", "--allow-empty", "-m", "empty"))
    # Generous: the measured figure (docs/git-hooks.md, scripts/bench_hooks.py) is ~120 ms.
    assert time.monotonic() - started < 1.5


# --------------------------------------------------------------------------- units


def test_parse_updates_and_etime() -> None:
    data = b"0000 1111 HEAD\n1111 2222 refs/heads/a b\n\nbroken\n"
    assert context.parse_updates(data) == [
        context.RefUpdate("0000", "1111", "HEAD"),
        context.RefUpdate("1111", "2222", "refs/heads/a b"),
    ]
    assert processes._parse_etime("05:03") == 303.0
    assert processes._parse_etime("1-02:00:01") == 86400 + 7201
    assert processes._parse_etime("") is None


def test_process_start_time_is_close_to_the_truth() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        spawned = time.time()
        started = processes.process_start_time(proc.pid)
        assert started is not None and abs(started - spawned) < 1.0
    finally:
        proc.kill()
        proc.wait()


def test_the_shim_looks_for_the_policy_file_by_its_name() -> None:
    from guardian.paths import POLICY_FILENAME

    # The shell shim cannot import guardian.paths: it spells the name out, and must spell it the same.
    template = (shim.shims_dir() / shim.TEMPLATE_NAME).read_text(encoding="utf-8")
    assert f'"$root/{POLICY_FILENAME}"' in template


def test_render_shim_quotes_the_interpreter() -> None:
    text = shim.render_shim("post-merge", "/opt/my python/bin/python")
    assert "python='/opt/my python/bin/python'" in text
    assert "hook=post-merge" in text
