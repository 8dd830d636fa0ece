"""A mirror brings protection back with the files: ``init --from`` installs the git hooks, and
``restore --from-remote`` leaves a force grant so the running watcher lets the restore stand.

Real git, a real bare repository as the mirror (a plain path URL), the real watcher.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from guardian.lifecycle import mirror
from guardian.project import Project
from tests.conftest import git, run_cli
from tests.gates.enforce_repo import FIX, OLD, WAIT, A, make_repo, settle
from tests.watch.test_watcher import FAST, running, wait_captured

pytestmark = [
    pytest.mark.filterwarnings(r"ignore:Callback with id .* already exists:RuntimeWarning"),
    pytest.mark.timeout(300),
]


def _mirrored_project(tmp_path: Path) -> tuple[Project, Path]:
    """A guarded project pushed to a bare repository on disk."""
    source = tmp_path / "laptop"
    source.mkdir()
    (source / "guardian.yaml").write_text('version: 1\nprotect:\n  - paths: ["agents/"]\n    reason: "pipeline"\n')
    (source / "agents").mkdir()
    (source / "agents" / "run.py").write_text(FIX)
    assert run_cli("init", cwd=source).exit_code == 0
    remote = tmp_path / "mirror.git"
    git("init", "--bare", "--quiet", str(remote), cwd=tmp_path)
    project = Project.find(source)
    mirror.add_remote(project, "origin", str(remote))
    assert mirror.push(project).ok
    return project, remote


def _fresh_git_tree(path: Path) -> Path:
    path.mkdir(parents=True)
    git("init", "-q", "-b", "main", cwd=path)
    return path


def test_init_from_installs_the_git_hooks_as_plain_init_does(tmp_path: Path) -> None:
    _project, remote = _mirrored_project(tmp_path)
    fresh = _fresh_git_tree(tmp_path / "new-machine")
    r = run_cli("init", "--from", f"file://{remote}", cwd=fresh)
    assert r.exit_code == 0, r.stderr
    assert (fresh / "agents" / "run.py").read_text() == FIX
    hooks = fresh / ".git" / "hooks"
    assert f"git hooks: installed in {hooks}" in r.stdout.splitlines()
    assert "hook-impl" in (hooks / "post-checkout").read_text()
    # The hooks are guardian's own: 'guardian hooks status' finds them installed.
    status = run_cli("hooks", "status", cwd=fresh)
    assert status.exit_code == 0 and "post-checkout" in status.stdout


def test_init_from_honours_no_hooks(tmp_path: Path) -> None:
    _project, remote = _mirrored_project(tmp_path)
    fresh = _fresh_git_tree(tmp_path / "new-machine")
    r = run_cli("init", "--from", str(remote), "--no-hooks", "--json", cwd=fresh)
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["hooks"] == {"installed": False, "why": "--no-hooks"}
    assert not (fresh / ".git" / "hooks" / "post-checkout").exists()
    r = run_cli("init", "--from", str(remote), "--no-hooks", cwd=_fresh_git_tree(tmp_path / "third"))
    assert r.exit_code == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "git hooks: not installed (--no-hooks); 'guardian hooks install' adds them"


def test_restore_from_remote_of_an_older_version_stands_under_the_watcher(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)  # agents/run.py: OLD captured first, then FIX; no git hooks
    remote = tmp_path / "mirror.git"
    git("init", "--bare", "--quiet", str(remote), cwd=tmp_path)
    mirror.add_remote(repo.project, "origin", str(remote))
    assert mirror.push(repo.project).ok
    with repo.project.reader() as (_store, catalog):
        old_snapshot = next(v.snapshot for v in catalog.versions_of(A) if v.blob is not None and v.blob == _blob(OLD))
    with running(repo.project, FAST):
        after = repo.mark()
        r = run_cli("restore", "--from-remote", "--at", old_snapshot[:12], A, cwd=repo.root)
        assert r.exit_code == 0, r.stderr
        assert repo.read(A) == OLD
        wait_captured(repo.project, A, OLD, WAIT)
        settle(repo)
        assert repo.read(A) == OLD, "the watcher undid the restore from the mirror"
        undone = [e for e in repo.enforce_events(after) if e.details.get("action") == "undone"]
        assert undone == []
    grants = run_cli("grants", cwd=repo.root)
    assert grants.exit_code == 0
    [line] = [line for line in grants.stdout.splitlines() if f"rollback {A}" in line]
    assert line.endswith("(guardian restore)")
    [event] = [e for e in list(repo.project.events.read())[after:] if e.event == "grant"]
    assert event.paths == [A] and event.details["operation"] == "rollback"


def _blob(text: str) -> str:
    from guardian.store.repo import hash_blob

    return hash_blob(text.encode())
