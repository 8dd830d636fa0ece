"""The watcher enforces the policy against every route that rolls a protected file back (issue 11).

Real git (no hooks), real rsync, real processes, the real watcher.  Each route ends with
the newest protected content back and an ``enforce`` event within 1 s of the capture of
the change; the moves git explains (a switch, a merge, a rebase onto main, a pull
--rebase, a stash) stand.  Set GUARDIAN_ENFORCE_LATENCY_LOG=FILE to collect the timings.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from guardian.gates.enforce import MERGE_MEMORY_FILE
from guardian.trust.grants import add_grant
from tests.conftest import run_cli
from tests.gates.enforce_repo import (
    FIX,
    FROZEN,
    OLD,
    WAIT,
    A,
    Repo,
    g,
    make_repo,
    record_latency,
    settle,
    wait_stands,
    wait_undone,
    write,
)
from tests.watch.test_watcher import FAST, running, wait_captured, wait_until

pytestmark = [
    pytest.mark.filterwarnings(r"ignore:Callback with id .* already exists:RuntimeWarning"),
    pytest.mark.timeout(300),
]


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return make_repo(tmp_path)


def _edit(repo: Repo, text: str) -> str:
    """A person's uncommitted edit of A, captured by the watcher before the next step."""
    repo.write(A, text)
    wait_captured(repo.project, A, text, WAIT)
    return text


# --------------------------------------------------------------------------- git routes


def test_reset_hard_moving_head_is_undone(repo: Repo, watcher_log: list[str]) -> None:
    with running(repo.project, FAST):
        after = repo.mark()
        repo.git("reset", "-q", "--hard", "HEAD~1")
        event = wait_undone(repo, after, FIX, route="reset --hard HEAD~1")
    summary = event.details["summary"]
    assert summary.startswith(f"undid the rollback of {A} to the version of ")
    assert f"enforce: {summary}" in watcher_log  # one line in the watcher log
    status = run_cli("status", cwd=repo.root)
    assert any(line.startswith("enforced:") and line.endswith(summary) for line in status.stdout.splitlines())
    assert event.details["change"] == "rollback"
    assert event.details["outcome"] == "force"
    assert event.details["process"] == "git reset: moving to HEAD~1"
    assert event.details["rule"] == {"paths": ["agents/"], "reason": "WO pipeline"}
    assert event.details["undo_hint"].startswith(f"guardian restore --at {event.details['captured'][:12]} {A}")
    assert event.trigger == "enforce" and event.snapshot is not None


def test_reset_hard_without_moving_head_puts_the_edit_back(repo: Repo) -> None:
    with running(repo.project, FAST):
        edit = _edit(repo, FIX + "# wip\n")
        after = repo.mark()
        repo.git("reset", "-q", "--hard")
        event = wait_undone(repo, after, edit, route="reset --hard")
    assert event.details["process"] == "git reset: moving to HEAD"


def test_checkout_dot_is_undone(repo: Repo) -> None:
    with running(repo.project, FAST):
        edit = _edit(repo, FIX + "# wip\n")
        after = repo.mark()
        repo.git("checkout", "--", ".")
        wait_undone(repo, after, edit, route="checkout -- .")


def test_reset_then_checkout_dot_as_in_the_issue(repo: Repo) -> None:
    with running(repo.project, FAST):
        after = repo.mark()
        subprocess.run(f"git reset -q --hard {repo.base}; git checkout .", shell=True, cwd=repo.root, check=True)
        wait_undone(repo, after, FIX, route="reset --hard BASE; checkout .")


def test_restore_source_is_undone(repo: Repo) -> None:
    with running(repo.project, FAST):
        after = repo.mark()
        repo.git("restore", "--source", "HEAD~1", "--", A)
        wait_undone(repo, after, FIX, route="restore --source")


def test_apply_reverse_is_undone(repo: Repo, tmp_path: Path) -> None:
    patch = tmp_path / "fix.patch"
    patch.write_text(repo.git("diff", repo.base, repo.fix, "--", A))
    with running(repo.project, FAST):
        after = repo.mark()
        repo.git("apply", "-R", str(patch))
        wait_undone(repo, after, FIX, route="apply -R")


def test_read_tree_reset_is_undone(repo: Repo) -> None:
    with running(repo.project, FAST):
        after = repo.mark()
        repo.git("read-tree", "-u", "--reset", "HEAD~1")
        wait_undone(repo, after, FIX, route="read-tree -u --reset")
        wait_undone(repo, after, "release 2\n", FROZEN, route="read-tree -u --reset (block)")


def test_rebase_onto_that_drops_the_fix_is_undone(repo: Repo) -> None:
    repo.write("other.txt", "o2\n")
    g(repo.root, "commit", "-q", "-am", "other")
    with running(repo.project, FAST):
        after = repo.mark()
        repo.git("rebase", "-q", "--onto", "HEAD~2", "HEAD~1")  # drops "fix", keeps "other"
        event = wait_undone(repo, after, FIX, route="rebase --onto")
    assert str(event.details["process"]).startswith("git rebase")
    assert repo.read("other.txt") == "o2\n"


def test_reset_during_a_stopped_rebase_is_undone(repo: Repo) -> None:
    repo.write("other.txt", "o2\n")
    g(repo.root, "commit", "-q", "-am", "other")
    stop_at_each = {"GIT_SEQUENCE_EDITOR": "sed -i s/^pick/edit/"}
    with running(repo.project, FAST):
        repo.git("rebase", "-q", "-i", "HEAD~2", env=stop_at_each)  # stops at "fix"
        assert (repo.root / ".git" / "rebase-merge").is_dir()
        settle(repo)
        after = repo.mark()
        repo.git("reset", "-q", "--hard", "HEAD~1")
        wait_undone(repo, after, FIX, route="reset during a stopped rebase")
    repo.git("rebase", "--abort")


def test_old_content_known_only_to_git_is_a_rollback(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, capture_old=False)  # guardian never captured "old"
    with running(repo.project, FAST):
        after = repo.mark()
        repo.git("checkout", "HEAD~1", "--", A)
        event = wait_undone(repo, after, FIX, route="checkout REV -- PATH (old only in git)")
    assert event.details["to_version"]["commit"] == repo.base


def test_a_guardian_yaml_emptied_on_disk_does_not_switch_enforcement_off(repo: Repo) -> None:
    with running(repo.project, FAST):
        after = repo.mark()
        (repo.root / "guardian.yaml").write_text("version: 1\n")
        wait_stands(repo, after, "version: 1\n", "guardian.yaml")  # an edit of the policy file is not undone
        repo.write(A, OLD)
        wait_undone(repo, after, FIX, route="write old content after guardian.yaml was emptied")


@pytest.fixture
def watcher_log() -> Iterator[list[str]]:
    """The watcher log's lines during the test (the daemon writes this logger to its log file)."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger = logging.getLogger("guardian.watch.watcher")
    handler, level = Collect(logging.INFO), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


# --------------------------------------------------------------------------- other processes


def _stale_copy(repo: Repo, where: Path) -> Path:
    """A copy of the tree as it was at base (rsync -a keeps the old mtimes, as a backup would)."""
    where.mkdir()
    subprocess.run(f"git archive {repo.base} | tar -x -C {where}", shell=True, cwd=repo.root, check=True)
    # Yesterday's backup: rsync's quick check (size and whole-second mtime) must not take the
    # old file for the new one of the same size written in the same second as the base commit.
    yesterday = time.time() - 86400
    for path in where.rglob("*"):
        os.utime(path, (yesterday, yesterday), follow_symlinks=False)
    return where


def test_rsync_from_a_stale_copy_is_undone(repo: Repo, tmp_path: Path) -> None:
    if shutil.which("rsync") is None:
        pytest.skip("rsync is not installed (scripts/system-deps installs it)")
    stale = _stale_copy(repo, tmp_path / "stale")
    repo.write("agents/new.py", "n = 1\n")  # the stale copy has no such file: --delete removes it
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "new")
    from guardian.ops.snapshot import take_snapshot

    take_snapshot(repo.project, None, "manual")
    with running(repo.project, FAST):
        after = repo.mark()
        subprocess.run(
            ["rsync", "-a", "--delete", "--exclude", ".git", "--exclude", ".guardian-id", f"{stale}/", f"{repo.root}/"],
            check=True,
            timeout=120,
        )
        wait_undone(repo, after, FIX, route="rsync -a --delete")
        event = wait_undone(repo, after, "n = 1\n", "agents/new.py", route="rsync --delete (delete)")
    assert event.details["change"] == "delete"


def test_cp_of_an_old_version_is_undone(repo: Repo, tmp_path: Path) -> None:
    stale = _stale_copy(repo, tmp_path / "stale")
    with running(repo.project, FAST):
        after = repo.mark()
        subprocess.run(["cp", str(stale / A), str(repo.root / A)], check=True)
        event = wait_undone(repo, after, FIX, route="cp")
    assert event.details["process"] is None  # no git command to name


def test_python_process_writing_old_content_is_undone(repo: Repo) -> None:
    with running(repo.project, FAST):
        after = repo.mark()
        code = f"open({str(repo.root / A)!r}, 'w').write({OLD!r})"
        subprocess.run([sys.executable, "-c", code], check=True)
        wait_undone(repo, after, FIX, route="python writes old content")


def test_rollback_outside_git_is_undone(tmp_path: Path) -> None:
    from guardian.ops.initialize import init_project
    from guardian.ops.snapshot import take_snapshot
    from guardian.project import Project
    from tests.gates.enforce_repo import POLICY

    root = tmp_path / "plain"
    write(root, "guardian.yaml", POLICY)
    write(root, A, OLD)
    init_project(root)
    write(root, A, FIX)
    project = Project.find(root)
    take_snapshot(project, None, "manual")
    plain = Repo(root, project, "", "")
    with running(project, FAST):
        after = plain.mark()
        write(root, A, OLD)
        wait_undone(plain, after, FIX, route="no git: write old content")


# --------------------------------------------------------------------------- the reset race


@pytest.mark.timeout(900)
def test_reset_right_after_an_edit_never_loses_it_20_times_in_a_row(repo: Repo) -> None:
    lost: list[tuple[int, str | None]] = []
    timings: list[float] = []
    with running(repo.project, FAST):
        for i in range(20):
            want = _edit(repo, FIX + f"# edit {i}\n")
            after = repo.mark()
            repo.git("reset", "-q", "--hard")
            try:
                wait_until(
                    lambda after=after, want=want: (
                        repo.read() == want  # type: ignore[misc]
                        and any(e.details.get("action") == "undone" for e in repo.enforce_events(after))
                    ),
                    f"edit {i} to come back",
                    WAIT,
                )
            except AssertionError:
                lost.append((i, repo.read()))
                repo.write(A, want)
                continue
            event = next(e for e in repo.enforce_events(after) if e.details.get("action") == "undone")
            timings.append(record_latency("reset race", event))
    assert lost == []
    assert max(timings) < 1.0, sorted(timings)


# --------------------------------------------------------------------------- grants and block


def test_a_grant_lets_the_rollback_stand_and_the_event_names_it(repo: Repo) -> None:
    allowed = run_cli("allow", "rollback", A, cwd=repo.root)
    assert allowed.exit_code == 0, allowed.stderr
    with running(repo.project, FAST):
        after = repo.mark()
        repo.git("reset", "-q", "--hard", "HEAD~1")
        wait_stands(repo, after, OLD)
        wait_undone(repo, after, "release 2\n", FROZEN, route="reset --hard HEAD~1 (block, beside a grant)")
    granted = [e for e in repo.enforce_events(after) if e.details.get("action") == "granted"]
    assert len(granted) == 1 and granted[0].paths == [A]
    grant = granted[0].details["grant"]
    assert grant["operation"] == "rollback" and grant["by"] == "guardian allow"
    assert grant["id"] in granted[0].details["summary"]


def test_a_block_path_is_restored_even_after_guardian_allow(repo: Repo) -> None:
    refused = run_cli("allow", "rollback", FROZEN, cwd=repo.root)
    assert refused.exit_code == 4, refused.stdout + refused.stderr  # a block is never granted
    add_grant(repo.project.paths.store, "rollback", [FROZEN, A], by="a grant written by hand")  # and even then
    with running(repo.project, FAST):
        after = repo.mark()
        repo.git("checkout", "HEAD~1", "--", "frozen")
        event = wait_undone(repo, after, "release 2\n", FROZEN, route="checkout REV -- PATH (block)")
    assert event.details["outcome"] == "block"


# --------------------------------------------------------------------------- what git explains stands


def test_switching_to_an_older_branch_is_not_undone(repo: Repo) -> None:
    repo.git("branch", "old", repo.base)
    with running(repo.project, FAST):
        after = repo.mark()
        repo.git("switch", "-q", "old")
        wait_stands(repo, after, OLD)
        repo.git("switch", "-q", "main")
        wait_stands(repo, after, FIX)


def test_merging_main_into_a_feature_branch_is_not_undone(repo: Repo) -> None:
    with running(repo.project, FAST):
        after = repo.mark()
        repo.git("switch", "-q", "-c", "feature", repo.base)
        wait_stands(repo, after, OLD)
        repo.write("other.txt", "feature\n")
        repo.git("commit", "-q", "-am", "feature work")
        repo.git("merge", "-q", "--no-edit", "main")
        wait_stands(repo, after, FIX)


def test_rebase_main_on_a_feature_branch_is_not_undone(repo: Repo) -> None:
    with running(repo.project, FAST):
        after = repo.mark()
        repo.git("switch", "-q", "-c", "feature", repo.base)
        wait_stands(repo, after, OLD)
        repo.write("other.txt", "feature\n")
        repo.git("commit", "-q", "-am", "feature work")
        repo.git("rebase", "-q", "main")
        wait_stands(repo, after, FIX)
    assert repo.read("other.txt") == "feature\n"


def test_pull_rebase_over_the_users_own_commits_is_not_undone(repo: Repo, tmp_path: Path) -> None:
    origin = tmp_path / "origin.git"
    g(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    repo.git("remote", "add", "origin", str(origin))
    repo.git("push", "-q", "origin", "main")
    upstream = tmp_path / "upstream"
    g(tmp_path, "clone", "-q", str(origin), str(upstream))
    write(upstream, "other.txt", "upstream\n")
    g(upstream, "commit", "-q", "-am", "upstream work")
    g(upstream, "push", "-q", "origin", "main")
    mine = "v = 'mine'\n"
    with running(repo.project, FAST):
        after = repo.mark()
        _edit(repo, mine)
        repo.git("commit", "-q", "-am", "my own newer commit")
        repo.git("pull", "-q", "--rebase", "origin", "main")
        wait_stands(repo, after, mine)
    assert repo.read("other.txt") == "upstream\n"


def test_merge_abort_of_a_conflicted_protected_file_is_not_undone(repo: Repo) -> None:
    with running(repo.project, FAST):
        after = repo.mark()
        mine = _conflicted_merge(repo, after, resolve=False)
        repo.git("merge", "--abort")
        wait_stands(repo, after, mine)


def _conflicted_merge(repo: Repo, after: int, resolve: bool = True) -> str:
    """On a feature branch with its own change of A, a merge of main that conflicts on A, resolved by hand.

    The resolution is valid content captured mid-merge: without the merge's memory, the
    abort that takes it out again would be a rollback to undo (conflict markers alone do
    not parse, so the undo would have nothing valid to put back).
    """
    mine = "v = 'feature'\n"
    repo.git("switch", "-q", "-c", "feature", repo.base)
    _edit(repo, mine)
    repo.git("commit", "-q", "-am", "feature's own change of the protected file")
    repo.git("merge", "main", check=False)  # conflicts on agents/run.py
    markers = repo.read()
    assert markers is not None and "<<<<<<<" in markers
    wait_stands(repo, after, markers)
    if resolve:
        _edit(repo, "v = 'feature and fix'\n")
    return mine


def test_merge_abort_after_the_watcher_restarted_mid_merge_is_not_undone(repo: Repo) -> None:
    memory = repo.project.paths.store / MERGE_MEMORY_FILE
    with running(repo.project, FAST):
        after = repo.mark()
        mine = _conflicted_merge(repo, after)
    assert memory.is_file()  # what the merge brought in outlives the watcher
    with running(repo.project, FAST):
        repo.git("merge", "--abort")
        wait_stands(repo, after, mine)
    assert not memory.exists()  # the merge has ended: nothing left to remember


def test_merge_aborted_while_the_watcher_was_stopped_is_not_undone(repo: Repo) -> None:
    with running(repo.project, FAST):
        after = repo.mark()
        mine = _conflicted_merge(repo, after)
    repo.git("merge", "--abort")
    with running(repo.project, FAST):  # its first scan captures the abort: no merge under way any more
        wait_stands(repo, after, mine)


def test_a_rollback_after_a_merge_was_aborted_is_still_undone(repo: Repo) -> None:
    """What a merge brought in excuses only its own abort: a rewind after it is judged as ever."""
    with running(repo.project, FAST):
        after = repo.mark()
        mine = _conflicted_merge(repo, after)
    with running(repo.project, FAST):
        repo.git("merge", "--abort")
        wait_stands(repo, after, mine)
        repo.git("reset", "-q", "--hard", "HEAD~1")  # the feature's own change of A, rewound
        wait_undone(repo, after, mine, route="reset --hard after a merge --abort")


def test_a_committed_merge_reset_away_is_undone(repo: Repo) -> None:
    """The merge's memory excuses its abort, not a reset that rewinds the merge commit once made."""
    memory = repo.project.paths.store / MERGE_MEMORY_FILE
    with running(repo.project, FAST):
        after = repo.mark()
        _conflicted_merge(repo, after)
        resolved = "v = 'feature and fix'\n"
        wait_stands(repo, after, resolved)
        repo.git("commit", "-q", "-am", "merge main, resolved by hand")
        assert memory.is_file()  # no capture since: the commit wrote no file
        repo.git("reset", "-q", "--hard", "HEAD~1")  # the merge commit, rewound
        wait_undone(repo, after, resolved, route="reset --hard of a committed merge")


def test_git_rm_of_a_protected_file_is_undone(repo: Repo) -> None:
    with running(repo.project, FAST):
        after = repo.mark()
        repo.git("rm", "-q", A)
        event = wait_undone(repo, after, FIX, route="git rm")
    assert event.details["change"] == "delete" and event.details["operation"] == "delete"


def test_git_stash_is_not_undone(repo: Repo) -> None:
    with running(repo.project, FAST):
        edit = _edit(repo, FIX + "# wip\n")
        after = repo.mark()
        repo.git("stash", "-q")
        wait_stands(repo, after, FIX)
        repo.git("stash", "pop", "-q")
        wait_stands(repo, after, edit)


# --------------------------------------------------------------------------- guardian's own writes


def test_a_person_restoring_an_older_version_is_not_undone(repo: Repo) -> None:
    old_snapshot = next(v.snapshot for v in _versions(repo) if v.blob and repo_blob(OLD) == v.blob)
    with running(repo.project, FAST):
        after = repo.mark()
        restored = run_cli("restore", "--at", old_snapshot[:12], A, cwd=repo.root)
        assert restored.exit_code == 0, restored.stderr
        settle(repo)
        assert repo.read() == OLD
        assert repo.enforce_events(after) == []
    grants = [e for e in list(repo.project.events.read())[after:] if e.event == "grant"]
    assert grants and grants[-1].details["by"] == "guardian restore" and grants[-1].paths == [A]


def _versions(repo: Repo) -> list:  # type: ignore[type-arg]
    with repo.project.reader() as (_r, catalog):
        return catalog.versions_of(A)


def repo_blob(text: str) -> str:
    from guardian.store.repo import hash_blob

    return hash_blob(text.encode())
