"""The shims' fast path, against real git: no Python when nothing protected moves, Python whenever it cannot prove it.

The shim says what it decided when GUARDIAN_HOOK_TRACE=1 (``guardian hook trace:
shim: ...``); hook-impl's own trace lines (``... rewritten [...]``) show that Python
ran.  A protected file written less than a second before a git command counts as
written by it (the shim's margin), so the tests wait that long after writing one.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from pathlib import Path

import pytest

from guardian.config import parse_policy
from guardian.policy import PolicyEngine
from guardian.project import Project
from guardian.trust.hook_pathspec import EVERYTHING, pathspec_path, pattern_pathspecs, protected_pathspecs
from tests.conftest import run_cli
from tests.gates.githooks.gitrepo import A, B, chain_hook, commit_all, g, guard, make_repo, ok, read, rev, write

TRACE = {"GUARDIAN_HOOK_TRACE": "1"}
FAST = "guardian hook trace: shim: fast path"
PYTHON_RAN = "rewritten ["  # hook-impl's trace of the files it counts as written


def settle() -> None:
    """Let the shim's one-second margin pass, so files written so far are not taken for the command's."""
    time.sleep(1.2)


def two_branches(root: Path) -> Path:
    """main (c2) and ``other``: main plus changes to 20 unprotected files."""
    repo = make_repo(root)
    guard(repo)
    ok(g(repo, "checkout", "-q", "-b", "other"))
    for i in range(20):
        write(repo, f"plain/f{i}.txt", f"other {i}\n")
    commit_all(repo, "other")
    ok(g(repo, "checkout", "-q", "main"))
    settle()
    return repo


def spec_file(repo: Path) -> Path:
    return pathspec_path(Project.find(repo).paths.store)


def test_a_branch_switch_that_touches_nothing_protected_starts_no_python(tmp_path: Path) -> None:
    repo = two_branches(tmp_path / "r")
    for branch in ("other", "main", "other"):
        r = g(repo, "checkout", branch, extra=TRACE)
        ok(r)
        assert FAST in r.stderr and PYTHON_RAN not in r.stderr, r.stderr
    assert read(repo, "plain/f3.txt") == "other 3\n"


def test_a_commit_of_unprotected_files_starts_no_python(tmp_path: Path) -> None:
    repo = two_branches(tmp_path / "r")
    write(repo, "plain/new.txt", "n\n")
    ok(g(repo, "add", "plain/new.txt"))
    r = g(repo, "commit", "-q", "-m", "plain", extra=TRACE)
    ok(r)
    assert FAST in r.stderr and PYTHON_RAN not in r.stderr, r.stderr


def test_a_switch_across_a_protected_difference_runs_python(tmp_path: Path) -> None:
    repo = two_branches(tmp_path / "r")
    ok(g(repo, "checkout", "-q", "other"))
    write(repo, A, "x = 3\n")
    commit_all(repo, "protected change")
    ok(g(repo, "checkout", "-q", "main"))
    settle()
    r = g(repo, "checkout", "other", extra=TRACE)
    ok(r)
    assert f"may have written the protected file {A}" in r.stderr and PYTHON_RAN in r.stderr, r.stderr


def test_a_forced_switch_that_discards_a_protected_edit_runs_python(tmp_path: Path) -> None:
    repo = two_branches(tmp_path / "r")
    write(repo, A, "x = 99\n")  # uncommitted; the branches agree on a.py
    assert run_cli("snapshot", cwd=repo).exit_code == 0
    settle()
    r = g(repo, "checkout", "-f", "other", extra=TRACE)
    assert "may have written the protected file" in r.stderr and PYTHON_RAN in r.stderr, r.stderr
    assert r.returncode == 1, r.stderr  # hook-impl put the edit back and failed the command
    assert read(repo, A) == "x = 99\n"


def test_an_uncommitted_protected_edit_carried_over_by_a_switch_takes_the_fast_path(tmp_path: Path) -> None:
    repo = two_branches(tmp_path / "r")
    write(repo, A, "x = 99\n")
    settle()
    r = g(repo, "checkout", "other", extra=TRACE)
    ok(r)
    assert FAST in r.stderr, r.stderr
    assert read(repo, A) == "x = 99\n"


@pytest.mark.parametrize(
    "damage", ["missing", "stale stamp", "bad header", "empty", "cut short", "policy on disk differs"]
)
def test_a_missing_stale_or_corrupt_pathspec_file_runs_python(tmp_path: Path, damage: str) -> None:
    repo = two_branches(tmp_path / "r")
    path = spec_file(repo)
    text = path.read_text()
    if damage == "missing":
        path.unlink()
    elif damage == "stale stamp":
        lines = text.splitlines(keepends=True)
        lines[1] = "stamp " + "0" * 64 + "\n"
        path.write_text("".join(lines))
    elif damage == "bad header":
        path.write_text("# something else\n" + text.split("\n", 1)[1])
    elif damage == "empty":
        path.write_text("")
    elif damage == "cut short":
        path.write_text(text.rsplit("\n", 3)[0] + "\n")  # the last pathspec and the count are gone
    else:
        ok(g(repo, "checkout", "-q", "other"))
        # A laxer policy on disk (not in force, so not accepted): the shim cannot know which applies.
        write(repo, "guardian.yaml", read(repo, "guardian.yaml").replace("delete: block", "delete: allow"))
        settle()
    r = g(repo, "checkout", "main" if damage == "policy on disk differs" else "other", extra=TRACE)
    ok(r)
    assert FAST not in r.stderr and PYTHON_RAN in r.stderr, r.stderr


def test_policy_accept_rewrites_the_pathspec_file(tmp_path: Path) -> None:
    repo = two_branches(tmp_path / "r")
    before = spec_file(repo).read_text()
    write(repo, "guardian.yaml", read(repo, "guardian.yaml") + '  - paths: ["plain/f3.txt"]\n    rollback: block\n')
    accepted = run_cli("policy", "accept", cwd=repo)
    assert accepted.exit_code == 0, accepted.stderr
    after = spec_file(repo).read_text()
    assert after != before
    stamp = hashlib.sha256((repo / "guardian.yaml").read_bytes()).hexdigest()
    assert f"stamp {stamp}\n" in after and ":(top,glob)plain/f3.txt\n" in after
    commit_all(repo, "protect f3")
    settle()
    # f3 (and guardian.yaml) differ between the branches and are protected now: the switch goes to Python.
    r = g(repo, "checkout", "other", extra=TRACE)
    assert FAST not in r.stderr and PYTHON_RAN in r.stderr, r.stderr


def test_hooks_install_writes_a_missing_pathspec_file(tmp_path: Path) -> None:
    repo = two_branches(tmp_path / "r")
    spec_file(repo).unlink()
    assert run_cli("hooks", "install", cwd=repo).exit_code == 0
    assert spec_file(repo).read_text().startswith("# guardian protected pathspec v1\n")


SPECIAL_POLICY = """\
version: 1
protect:
  - paths: ["my dir/", "lock[12].txt", "*.key", "/top only.txt", "deep/**/x.cfg", "esc\\\\*.txt"]
    rollback: block
"""

SPECIAL_NAMES = [
    "my dir/a b.txt",
    "nested/my dir/z.txt",
    "lock1.txt",
    "lock3.txt",
    "a/lock2.txt",
    "k.key",
    "sub dir/k 2.key",
    "top only.txt",
    "sub/top only.txt",
    "deep/x.cfg",
    "deep/1/2/x.cfg",
    "x.cfg",
    "esc*.txt",
    "escX.txt",
    "plain [1].txt",
    "plain*star.txt",
    "plain\\back.txt",
]


def test_the_pathspecs_cover_every_protected_path_git_lists(tmp_path: Path) -> None:
    """Against real git: every path the policy engine protects is matched by the pathspecs."""
    repo = tmp_path / "specials"
    repo.mkdir()
    ok(g(repo, "init", "-q"))
    for name in SPECIAL_NAMES:
        write(repo, name, "x\n")
    write(repo, "guardian.yaml", SPECIAL_POLICY)
    ok(g(repo, "add", "-A"))
    specs = protected_pathspecs(p for rule in parse_policy(SPECIAL_POLICY).protect_rules for p in rule.paths)
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--", *specs], cwd=repo, capture_output=True, check=True
    ).stdout.decode()
    matched = set(listed.split("\0")) - {""}
    engine = PolicyEngine.from_policy(parse_policy(SPECIAL_POLICY))
    protected = {n for n in [*SPECIAL_NAMES, "guardian.yaml"] if engine.is_protected(n)}
    assert protected >= {"my dir/a b.txt", "lock1.txt", "k.key", "top only.txt", "deep/1/2/x.cfg", "esc*.txt"}
    assert protected <= matched, protected - matched
    # Not everything: an unprotected plain file stays out, so a change to it takes the fast path.
    assert "plain [1].txt" not in matched and "sub/top only.txt" not in matched


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("agents/", [":(top,glob)**/agents", ":(top,glob)**/agents/**"]),
        ("/a/b.py", [":(top,glob)a/b.py", ":(top,glob)a/b.py/**", ":(top,glob)[a]"]),
        ("lock[!x].txt", [":(top,glob)**/lock?.txt", ":(top,glob)**/lock?.txt/**"]),
        ("a\\[b", [":(top,glob)**/a?b", ":(top,glob)**/a?b/**"]),
        ("!keep.txt", []),
        ("# comment", []),
        ("**", [EVERYTHING]),
        ("a//b", [EVERYTHING]),
        ("bad[", [EVERYTHING]),
        ("a/**/c/d", [":(top,glob)a/**/c/d", ":(top,glob)a/**/c/d/**", ":(top,glob)[a]", ":(top,glob)a/**"]),
    ],
)
def test_pattern_pathspecs(pattern: str, expected: list[str]) -> None:
    assert pattern_pathspecs(pattern) == expected


def test_a_protected_path_with_spaces_is_seen_by_the_shim(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r", policy=SPECIAL_POLICY)
    write(repo, "my dir/a b.txt", "1\n")
    write(repo, "plain [1].txt", "1\n")
    commit_all(repo, "specials")
    guard(repo)
    ok(g(repo, "checkout", "-q", "-b", "other"))
    write(repo, "plain [1].txt", "2\n")
    unprotected = commit_all(repo, "plain")
    write(repo, "my dir/a b.txt", "2\n")
    commit_all(repo, "protected")
    ok(g(repo, "checkout", "-q", "main"))
    settle()
    r = g(repo, "checkout", unprotected, extra=TRACE)  # detaches HEAD: reference-transaction, then post-checkout
    ok(r)
    assert FAST in r.stderr and PYTHON_RAN not in r.stderr, r.stderr
    r = g(repo, "checkout", "other", extra=TRACE)
    ok(r)
    assert "may have written the protected file my dir/a b.txt" in r.stderr and PYTHON_RAN in r.stderr, r.stderr
    assert rev(repo) == rev(repo, "other")


def test_a_shim_another_tool_wrote_over_sends_ref_updates_to_hook_impl_which_warns(tmp_path: Path) -> None:
    repo = two_branches(tmp_path / "r")
    (repo / ".git" / "hooks" / "post-merge").write_text("#!/bin/sh\nexit 0\n")  # as husky's prepare step does
    r = g(repo, "commit", "-q", "--allow-empty", "-m", "empty", extra=TRACE)
    ok(r)
    assert FAST not in r.stderr and "no longer run guardian" in r.stderr, r.stderr


@pytest.mark.parametrize(
    "command", [("checkout", "--", "plain/f1.txt"), ("restore", "plain/f1.txt"), ("reset", "-q", "--hard")]
)
def test_a_command_that_keeps_head_and_rewrites_only_unprotected_files_starts_no_python(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    repo = two_branches(tmp_path / "r")
    ok(g(repo, "checkout", "-q", "other"))
    write(repo, "plain/f1.txt", "edited\n")
    r = g(repo, *command, extra=TRACE)
    ok(r)
    assert FAST in r.stderr and PYTHON_RAN not in r.stderr, r.stderr
    assert read(repo, "plain/f1.txt") == "other 1\n"


def test_a_file_checkout_that_discards_a_protected_edit_runs_python(tmp_path: Path) -> None:
    repo = two_branches(tmp_path / "r")
    write(repo, A, "x = 99\n")
    assert run_cli("snapshot", cwd=repo).exit_code == 0
    settle()
    r = g(repo, "checkout", "--", A, extra=TRACE)
    assert "may have written the protected file agents/" in r.stderr and PYTHON_RAN in r.stderr, r.stderr
    assert r.returncode == 1 and read(repo, A) == "x = 99\n", r.stderr


def test_a_reset_after_a_soft_rewind_of_protected_commits_runs_python(tmp_path: Path) -> None:
    """hook-impl counts what HEAD's previous tip held; the shim must not skip it."""
    repo = two_branches(tmp_path / "r")
    write(repo, A, "x = 3\n")
    commit_all(repo, "c3")
    ok(g(repo, "reset", "-q", "--soft", "HEAD~1"))
    settle()
    r = g(repo, "reset", "-q", "--hard", extra=TRACE)
    assert "may have written the protected file agents/" in r.stderr and PYTHON_RAN in r.stderr, r.stderr


def test_a_file_checkout_right_after_a_protected_commit_starts_no_python(tmp_path: Path) -> None:
    """The branch's previous tip differs in a protected path, but nothing protected is rewritten."""
    repo = two_branches(tmp_path / "r")
    write(repo, A, "x = 3\n")
    commit_all(repo, "c3")
    settle()
    write(repo, "other.txt", "edited\n")
    r = g(repo, "checkout", "--", "other.txt", extra=TRACE)
    ok(r)
    assert FAST in r.stderr and PYTHON_RAN not in r.stderr, r.stderr


def test_a_protected_file_missing_from_the_work_tree_runs_python(tmp_path: Path) -> None:
    repo = two_branches(tmp_path / "r")
    (repo / A).unlink()
    settle()  # deleted well before the command: hook-impl does not take it for the command's
    write(repo, "other.txt", "edited\n")
    r = g(repo, "checkout", "--", "other.txt", extra=TRACE)
    ok(r)
    assert "is missing from the work tree" in r.stderr and PYTHON_RAN in r.stderr, r.stderr


def test_a_protected_file_touched_while_the_command_runs_sends_it_to_python(tmp_path: Path) -> None:
    """The ctime window starts when the git process did: a write after that is the command's, as far as anyone knows."""
    repo = two_branches(tmp_path / "r")
    chain_hook(repo, "post-checkout", f'touch "{A}"')  # runs after git wrote the files, before guardian's part
    r = g(repo, "checkout", "other", extra=TRACE)
    ok(r)
    assert f"may have written the protected file {A}" in r.stderr and PYTHON_RAN in r.stderr, r.stderr


def test_a_soft_rewind_across_a_protected_change_runs_python(tmp_path: Path) -> None:
    """No file is written, but hook-impl snapshots what the rewound commits held."""
    repo = two_branches(tmp_path / "r")
    r = g(repo, "reset", "-q", "--soft", "HEAD~1", extra=TRACE)
    ok(r)
    assert "changes a protected path" in r.stderr and PYTHON_RAN in r.stderr, r.stderr


def test_a_switch_that_deletes_a_protected_file_runs_python(tmp_path: Path) -> None:
    repo = two_branches(tmp_path / "r")
    ok(g(repo, "checkout", "-q", "other"))
    ok(g(repo, "rm", "-q", B))
    commit_all(repo, "drop b.py")
    ok(g(repo, "checkout", "-q", "main"))
    settle()
    r = g(repo, "checkout", "other", extra=TRACE)
    assert "is missing from the work tree" in r.stderr and PYTHON_RAN in r.stderr, r.stderr
