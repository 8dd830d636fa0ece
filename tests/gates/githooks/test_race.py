"""The hooks against a real watcher: what the watcher captured of git's own result is never "before".

Snapshot times are whole seconds, and the watcher captures what ``git reset --hard``
wrote within a tenth of a second.  The hooks order guardian's versions against the
git command by the store's head when the hook started (read by the shim), by the
ctime of the file a capture read, and by the millisecond time of a deletion's
snapshot event.  Each route is forced here: a user's own hook chained in front of
guardian's sleeps until the watcher has captured git's result.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from guardian.gates.githooks import shim
from guardian.gates.githooks.context import HOOK_NAMES
from guardian.project import Project
from tests.gates.githooks.gitrepo import A, B, chain_hook, g, guard, last, make_repo, read
from tests.watch.test_watcher import FAST, running, wait_captured, wait_until

pytestmark = pytest.mark.filterwarnings(r"ignore:Callback with id .* already exists:RuntimeWarning")


def _forget_stores(repo: Path) -> None:
    """Rewrite the shims without known projects: the shim then cannot read the store's head."""
    hooks = repo / ".git" / "hooks"
    for name in HOOK_NAMES:
        python = shim.shim_python(hooks / name)
        assert python is not None
        (hooks / name).write_text(shim.render_shim(name, python))


@pytest.mark.timeout(300)
def test_reset_right_after_an_edit_never_loses_it_20_times_in_a_row(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    guard(root)
    project = Project.find(root)
    lost = []
    with running(project, FAST):
        for i in range(20):
            with open(root / A, "a") as handle:
                handle.write(f"# edit {i}\n")
            want = read(root, A)
            wait_captured(project, A, want)  # the watcher has the edit: git starts in the same second
            r = g(root, "reset", "--hard")
            if read(root, A) != want or r.returncode != 128:
                lost.append((i, r.returncode, r.stderr))
                (root / A).write_text(want)
    assert lost == []


def _watcher_sees_git_first(repo: Path) -> None:
    # Runs before guardian's part of the hook: by the time guardian reads the store, the
    # watcher (quiet 0.05 s) has captured what git wrote.
    chain_hook(repo, "reference-transaction", 'case "$1" in prepared) sleep 0.8 ;; esac\ncat >/dev/null\nexit 0')
    _forget_stores(repo)


@pytest.mark.timeout(300)
def test_a_capture_of_what_git_wrote_is_recognised_by_the_file_ctime(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    guard(root)
    _watcher_sees_git_first(root)
    project = Project.find(root)
    with running(project, FAST):
        for i in range(3):
            with open(root / A, "a") as handle:
                handle.write(f"# edit {i}\n")
            want = read(root, A)
            wait_captured(project, A, want)
            r = g(root, "reset", "--hard", extra={"GUARDIAN_HOOK_TRACE": "1"})
            assert r.returncode == 128, r.stderr
            assert read(root, A) == want
            assert "captured what git wrote; not the state before it" in r.stderr
            wait_captured(project, A, want)


@pytest.mark.timeout(300)
def test_a_captured_deletion_by_git_is_recognised_by_its_event_time(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    guard(root)
    _watcher_sees_git_first(root)
    project = Project.find(root)
    with running(project, FAST):
        wait_captured(project, B, "y = 1\n")
        r = g(root, "reset", "--hard", "HEAD~1", extra={"GUARDIAN_HOOK_TRACE": "1"})
        assert r.returncode == 128, r.stderr
        assert f"{B}: snapshot" in r.stderr and "captured what git wrote" in r.stderr
        assert read(root, B) == "y = 1\n" and read(root, A) == "x = 2\n"
        assert last(root, "block").paths == [A, B]
        wait_until(lambda: (root / B).exists(), "b.py back")
