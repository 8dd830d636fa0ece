"""guardian's hooks next to real hook managers: husky 9 and pre-commit 4, in either install order.

husky (``npm install husky@9``) and pre-commit (``pip install pre-commit``) are
installed once per session into a temp directory; where that cannot be done (no
npm, no network) the tests skip and say why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.gates.githooks.gitrepo import A, commit_all, g, hook_events, last, make_repo, ok, read, snapshot, write

MANAGED = ("post-checkout", "pre-rebase", "post-merge", "post-rewrite")


def _install(command: list[str], cwd: Path, what: str, home: Path) -> None:
    env = {**os.environ, "HOME": str(home), "PIP_DISABLE_PIP_VERSION_CHECK": "1", "npm_config_cache": str(home / "npm")}
    try:
        proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"{what} could not be installed: {exc}")
    if proc.returncode != 0:
        pytest.skip(f"{what} could not be installed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")


@pytest.fixture(scope="session")
def husky(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The husky 9 package directory (its bin.js is what a project's `prepare` script runs)."""
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip("npm and node are needed to install husky")
    where = tmp_path_factory.mktemp("husky")
    _install(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(where), "husky@9"], where, "husky", where)
    package = where / "node_modules" / "husky"
    if not (package / "bin.js").is_file():
        pytest.skip("npm installed husky without its bin.js")
    return package


@pytest.fixture(scope="session")
def pre_commit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pre-commit 4 executable, in a venv of its own."""
    where = tmp_path_factory.mktemp("pre-commit")
    venv = where / "venv"
    _install([sys.executable, "-m", "venv", str(venv)], where, "a venv for pre-commit", where)
    _install(
        [str(venv / "bin" / "pip"), "install", "-q", "--no-cache-dir", "pre-commit>=4,<5"], where, "pre-commit", where
    )
    return venv / "bin" / "pre-commit"


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[Path]:
    yield make_repo(tmp_path / "repo")


def _husky_prepare(repo: Path, husky: Path) -> None:
    """What `npm install` runs in a project whose package.json has "prepare": "husky"."""
    proc = subprocess.run(["node", str(husky / "bin.js")], cwd=repo, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert ok(g(repo, "config", "core.hooksPath")).strip() == ".husky/_"


def _husky_user_hooks(repo: Path, log: Path) -> None:
    for name in ("post-checkout", "pre-rebase"):
        (repo / ".husky" / name).write_text(f'echo "{name} $*" >> {log}\n')


def _guardian_init(repo: Path) -> str:
    r = run_cli("init", cwd=repo)
    assert r.exit_code == 0, r.stderr
    return r.stdout


def _rollback_is_refused(repo: Path) -> None:
    write(repo, A, "x = 3  # uncommitted work\n")
    snapshot(repo)
    r = g(repo, "checkout", "--", A)
    assert r.returncode == 1, r.stderr
    assert "guardian: refused" in r.stderr
    assert read(repo, A) == "x = 3  # uncommitted work\n"


# --------------------------------------------------------------------------- husky


def test_husky_hooks_keep_running_under_guardian_and_a_rollback_is_still_refused(
    repo: Path, husky: Path, tmp_path: Path
) -> None:
    log = tmp_path / "husky.log"
    _husky_prepare(repo, husky)
    _husky_user_hooks(repo, log)
    out = _guardian_init(repo)
    assert "your post-checkout hook is kept as post-checkout.guardian-chained and runs first" in out
    hooks = repo / ".husky" / "_"
    assert ok(g(repo, "status", "--porcelain", "--", ".husky/_")) == ""  # nothing of guardian's in the repository

    ok(g(repo, "checkout", "-q", "--", "other.txt"))
    assert "post-checkout " in log.read_text()  # husky still dispatched on the hook's own name
    _rollback_is_refused(repo)
    assert last(repo, "block").details["hook"] == "post-checkout"
    assert (hooks / "reference-transaction").exists()


def test_husky_prepare_overwriting_the_shims_is_reported_and_install_chains_again(
    repo: Path, husky: Path, tmp_path: Path
) -> None:
    log = tmp_path / "husky.log"
    _husky_prepare(repo, husky)
    _husky_user_hooks(repo, log)
    _guardian_init(repo)
    _husky_prepare(repo, husky)  # `npm install` again: husky writes its wrapper over every hook it manages

    status = run_cli("hooks", "status", cwd=repo)
    for name in MANAGED:
        assert f"{name:<22} NOT GUARDED: husky's file replaced guardian's shim" in status.stdout
    assert '"installed": false' in run_cli("hooks", "status", "--json", cwd=repo).stdout
    r = g(repo, "commit", "-q", "--allow-empty", "-m", "empty")  # reference-transaction is left alone: it says so
    assert r.returncode == 0 and "no longer run guardian" in r.stderr and "husky" in r.stderr

    r2 = run_cli("hooks", "install", cwd=repo)
    assert r2.exit_code == 0, r2.stderr
    assert '"installed": true' in run_cli("hooks", "status", "--json", cwd=repo).stdout
    ok(g(repo, "checkout", "-q", "--", "other.txt"))
    assert log.read_text().count("post-checkout ") == 1
    _rollback_is_refused(repo)


# --------------------------------------------------------------------------- pre-commit


def _pre_commit_config(repo: Path, log: Path) -> None:
    (repo / ".pre-commit-config.yaml").write_text(
        "repos:\n"
        "  - repo: local\n"
        "    hooks:\n"
        "      - id: mark\n"
        "        name: mark\n"
        f"        entry: sh -c 'echo \"$0\" >> {log}' post-checkout\n"
        "        language: system\n"
        "        stages: [post-checkout]\n"
        "        always_run: true\n"
        "        pass_filenames: false\n"
    )
    commit_all(repo, "pre-commit config")


def _pre_commit_install(repo: Path, pre_commit: Path) -> None:
    args = [str(pre_commit), "install"] + [f"--hook-type={name}" for name in MANAGED]
    proc = subprocess.run(args, cwd=repo, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("first", ["pre-commit", "guardian"])
def test_pre_commit_and_guardian_work_in_either_install_order(
    repo: Path, pre_commit: Path, tmp_path: Path, first: str
) -> None:
    log = tmp_path / "pre-commit.log"
    _pre_commit_config(repo, log)
    if first == "pre-commit":
        _pre_commit_install(repo, pre_commit)
        _guardian_init(repo)
        expected = "guardian, runs post-checkout.guardian-chained first"
    else:
        _guardian_init(repo)
        _pre_commit_install(repo, pre_commit)  # moves guardian's shims to <hook>.legacy and runs them from there
        expected = "guardian, run by pre-commit as post-checkout.legacy"
    status = run_cli("hooks", "status", cwd=repo).stdout
    assert expected in status, status

    r = g(repo, "checkout", "--", "other.txt")
    assert r.returncode == 0, r.stdout + r.stderr  # no "migration mode" failure
    assert "migration mode" not in r.stdout + r.stderr
    assert log.read_text().splitlines() == ["post-checkout"]  # pre-commit's own hook ran, once
    _rollback_is_refused(repo)

    # Reinstalling either one keeps both working.
    assert run_cli("hooks", "install", cwd=repo).exit_code == 0
    _pre_commit_install(repo, pre_commit)
    r = g(repo, "checkout", "--", "other.txt")
    assert r.returncode == 0 and "migration mode" not in r.stdout + r.stderr, r.stdout + r.stderr
    assert log.read_text().splitlines() == ["post-checkout"] * 3
    assert not [e for e in hook_events(repo, "block") if e.details.get("hook") != "post-checkout"]


@pytest.mark.parametrize("first", ["pre-commit", "guardian"])
def test_uninstalling_guardian_leaves_pre_commit_working(
    repo: Path, pre_commit: Path, tmp_path: Path, first: str
) -> None:
    log = tmp_path / "pre-commit.log"
    _pre_commit_config(repo, log)
    if first == "pre-commit":
        _pre_commit_install(repo, pre_commit)
        _guardian_init(repo)
    else:
        _guardian_init(repo)
        _pre_commit_install(repo, pre_commit)
    r = run_cli("hooks", "uninstall", cwd=repo)
    assert r.exit_code == 0, r.stderr
    hooks = repo / ".git" / "hooks"
    assert not list(hooks.glob("*.guardian-chained")) and not (hooks / ".guardian-chained").exists()
    r2 = g(repo, "checkout", "--", "other.txt")
    assert r2.returncode == 0 and "migration mode" not in r2.stdout + r2.stderr, r2.stdout + r2.stderr
    assert log.read_text().splitlines() == ["post-checkout"]
