"""`guardian check` without a watcher: a protected file rolled back to older content is drift.

A real git repository (no hooks, no watcher): ``base`` holds the old agents/run.py and
frozen/release.txt, ``fix`` the new ones, and guardian captured both (see enforce_repo).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from guardian.project import Project
from tests.conftest import run_cli
from tests.gates.enforce_repo import FIX, FROZEN, OLD, A, Repo, make_repo

DRIFT_HINT = "run 'guardian check --repair' to restore them"


def _snapshot_of(project: Project, rel: str, text: str) -> str:
    from guardian.store.repo import hash_blob

    with project.reader() as (_repo, catalog):
        return next(v.snapshot for v in catalog.versions_of(rel) if v.blob == hash_blob(text.encode()))


def _newest(project: Project, rel: str) -> str:
    with project.reader() as (_repo, catalog):
        valid = catalog.latest_valid(rel)
    assert valid is not None
    return valid.snapshot


def _rollback_lines(repo: Repo, stdout: str) -> dict[str, str]:
    return {line.split()[1]: line for line in stdout.splitlines() if line.startswith("drift:")}


def test_a_reset_to_an_old_commit_is_drift_and_repair_brings_the_fix_back(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    old, fix = _snapshot_of(repo.project, A, OLD), _newest(repo.project, A)
    repo.git("reset", "-q", "--hard", "HEAD~1")
    assert repo.read(A) == OLD
    r = run_cli("check", cwd=repo.root)
    assert r.exit_code == 1, r.stdout + r.stderr
    lines = _rollback_lines(repo, r.stdout)
    assert set(lines) == {A, FROZEN}  # other.txt is unprotected and unchanged
    assert lines[A].startswith(f"drift: {A} (protected): rolled back to the version of ")
    assert (
        f"(snapshot {old[:12]}), by git reset: moving to HEAD~1; newest valid version is snapshot {fix[:12]}"
        in (lines[A])
    )
    assert r.stderr == f"guardian: 2 file(s) drifted from their latest valid snapshot; {DRIFT_HINT}\n"
    data = json.loads(run_cli("check", "--json", A, cwd=repo.root).stdout)
    [drift] = data["drift"]
    assert (drift["problem"], drift["protected"], drift["last_valid_snapshot"]) == ("rolled-back", True, fix)

    r = run_cli("check", "--repair", cwd=repo.root)
    assert r.exit_code == 0, r.stdout + r.stderr
    assert f"repaired: {A} from snapshot {fix[:12]}" in r.stdout
    assert repo.read(A) == FIX and repo.read(FROZEN) == "release 2\n"
    r = run_cli("check", cwd=repo.root)
    assert (r.exit_code, r.stdout.startswith("no drift: ")) == (0, True), r.stdout


def test_a_copy_of_an_old_version_is_drift_but_an_edit_is_not(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    saved = tmp_path / "run.py.orig"
    repo.write(A, OLD)
    shutil.copy(repo.root / A, saved)
    repo.write(A, FIX)
    r = run_cli("check", cwd=repo.root)
    assert r.exit_code == 0, r.stdout
    shutil.copy(saved, repo.root / A)  # cp of an old copy: no git command, no snapshot
    r = run_cli("check", A, cwd=repo.root)
    assert r.exit_code == 1
    assert "rolled back to the version of " in r.stdout and "by git" not in r.stdout
    repo.write(A, "v = 'a new edit'\n")  # an edit is new content: not a rollback
    repo.write("other.txt", "o0\n")
    assert run_cli("check", cwd=repo.root).exit_code == 0


def test_content_only_git_knew_and_a_captured_rollback_are_drift(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, capture_old=False)  # guardian never saw the old content
    repo.git("reset", "-q", "--hard", repo.base)
    r = run_cli("check", A, cwd=repo.root)
    assert r.exit_code == 1
    assert "rolled back to the version of " in r.stdout and f"(commit {repo.base[:12]})" in r.stdout
    assert run_cli("snapshot", cwd=repo.root).exit_code == 0  # the rollback is captured now: still drift
    assert run_cli("check", A, cwd=repo.root).exit_code == 1
    assert run_cli("check", "--repair", A, cwd=repo.root).exit_code == 0
    assert repo.read(A) == FIX


def test_a_grant_or_a_git_switch_lets_the_old_content_stand(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    repo.git("branch", "old", repo.base)
    repo.git("switch", "-q", "old")  # a switch explains the move: nothing was lost
    assert repo.read(A) == OLD
    r = run_cli("check", A, cwd=repo.root)
    assert r.exit_code == 0, r.stdout
    repo.git("switch", "-q", "main")
    assert run_cli("allow", "rollback", "agents", "frozen", cwd=repo.root).exit_code == 4  # frozen: block
    assert run_cli("allow", "rollback", "agents", cwd=repo.root).exit_code == 0
    repo.git("reset", "-q", "--hard", "HEAD~1")
    r = run_cli("check", cwd=repo.root)
    assert r.exit_code == 1
    assert set(_rollback_lines(repo, r.stdout)) == {FROZEN}  # a grant never covers a 'block' rule
    run_cli("grants", "--revoke-all", cwd=repo.root)
    # The grant is gone, but the log shows it covered the moment of the reset: still intended.
    assert set(_rollback_lines(repo, run_cli("check", cwd=repo.root).stdout)) == {FROZEN}
    r = run_cli("check", "--repair", cwd=repo.root)
    assert r.exit_code == 0
    assert repo.read(A) == OLD and repo.read(FROZEN) == "release 2\n"
