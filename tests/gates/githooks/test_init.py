"""``guardian init`` guards a git repository fully: it installs the hooks, unless ``--no-hooks``."""

from __future__ import annotations

import json
from pathlib import Path

from guardian.gates.githooks import shim
from guardian.gates.githooks.context import HOOK_NAMES
from tests.conftest import run_cli
from tests.gates.githooks.gitrepo import g, make_repo, ok


def test_init_in_a_git_repository_installs_the_hooks(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    r = run_cli("init", cwd=root)
    assert r.exit_code == 0, r.stderr
    assert f"git hooks: installed in {root / '.git' / 'hooks'}" in r.stdout
    assert all(shim.is_guardian_shim(root / ".git" / "hooks" / name) for name in HOOK_NAMES)
    assert '"installed": true' in run_cli("hooks", "status", "--json", cwd=root).stdout
    # The shims know the project: its root and its store.
    projects = shim.shim_projects(root / ".git" / "hooks" / "post-checkout")
    assert [p for p, _store in projects] == [root.resolve()]


def test_init_no_hooks_leaves_the_hooks_directory_alone(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    r = run_cli("init", "--no-hooks", cwd=root)
    assert r.exit_code == 0, r.stderr
    assert "git hooks: not installed (--no-hooks); 'guardian hooks install' adds them" in r.stdout
    assert not any(shim.is_guardian_shim(root / ".git" / "hooks" / name) for name in HOOK_NAMES)


def test_init_json_reports_the_hooks(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    data = json.loads(run_cli("init", "--json", cwd=root).stdout)
    assert data["hooks"]["installed"] is True and data["hooks"]["hooks_dir"] == str(root / ".git" / "hooks")


def test_init_outside_git_changes_nothing_about_hooks(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    root.mkdir()
    r = run_cli("init", cwd=root)
    assert r.exit_code == 0, r.stderr
    assert "git hooks" not in r.stdout
    assert json.loads(run_cli("init", "--json", cwd=root).stdout)["hooks"] is None


def test_init_where_hooks_cannot_go_still_inits_and_says_why(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    ok(g(root, "config", "core.hooksPath", "tracked-hooks"))
    r = run_cli("init", cwd=root)
    assert r.exit_code == 0, r.stderr
    assert "git hooks: NOT installed: core.hooksPath (tracked-hooks)" in r.stdout
    assert (root / "guardian.yaml").exists()
