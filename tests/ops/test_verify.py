"""verify fails closed on damage (exit 5) and --repair returns to the last good snapshot."""

from __future__ import annotations

import subprocess
from pathlib import Path

from guardian.project import ProjectPaths
from tests.conftest import fsck, run_cli


def _init_with_history(root: Path) -> ProjectPaths:
    (root / "a.txt").write_text("one\n")
    assert run_cli("init", cwd=root).exit_code == 0
    (root / "b.txt").write_text("two\n")
    assert run_cli("snapshot", cwd=root).exit_code == 0
    return ProjectPaths.for_root(root.resolve())


def _object_path(paths: ProjectPaths, rev: str) -> Path:
    oid = subprocess.run(
        ["git", "--git-dir", str(paths.repo), "rev-parse", rev], capture_output=True, text=True, check=True
    ).stdout.strip()
    return paths.repo / "objects" / oid[:2] / oid[2:]


def test_verify_clean(project: Path) -> None:
    _init_with_history(project)
    r = run_cli("verify", cwd=project)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.strip() == "store ok: 2 snapshot(s), test restore of 3 file(s)"


def test_zeroed_blob_fails_closed_and_repair_goes_back(project: Path) -> None:
    paths = _init_with_history(project)
    target = _object_path(paths, "HEAD:b.txt")
    target.chmod(0o644)
    target.write_bytes(b"\0" * target.stat().st_size)
    r = run_cli("verify", cwd=project)
    assert r.exit_code == 5
    assert "DAMAGE: blob " in r.stderr and "(b.txt) is missing or unreadable" in r.stderr
    assert r.stderr.strip().endswith("guardian: error: the store is damaged; run 'guardian verify --repair'")
    r = run_cli("verify", "--repair", cwd=project)
    assert r.exit_code == 0, r.stderr
    assert "returned the snapshot ref to the last good snapshot" in r.stdout
    r = run_cli("log", "--json", cwd=project)
    assert r.exit_code == 0
    assert run_cli("verify", cwd=project).exit_code == 0


def test_zeroed_ref_fails_closed_and_repairs(project: Path) -> None:
    paths = _init_with_history(project)
    ref = paths.repo / "refs" / "heads" / "snapshots"
    ref.write_bytes(b"\0" * 41)
    r = run_cli("verify", cwd=project)
    assert r.exit_code == 5
    assert "the snapshot ref" in r.stderr and "is corrupt" in r.stderr
    r = run_cli("log", cwd=project)
    assert r.exit_code == 5
    assert "run 'guardian verify' for details and 'guardian verify --repair' to fix" in r.stderr
    r = run_cli("verify", "--repair", cwd=project)
    assert r.exit_code == 0, r.stderr
    fsck(paths.repo)
    assert run_cli("restore", "--dry-run", "b.txt", cwd=project).exit_code == 0


def test_damaged_catalog_is_rebuilt(project: Path) -> None:
    paths = _init_with_history(project)
    paths.catalog.write_bytes(b"not a database at all" * 100)
    r = run_cli("log", cwd=project)
    assert r.exit_code == 5
    assert "the catalog" in r.stderr and "is unreadable" in r.stderr
    r = run_cli("verify", "--repair", cwd=project)
    assert r.exit_code == 0, r.stderr
    assert "rebuilt the catalog from git" in r.stdout
    assert len(run_cli("log", cwd=project).stdout.splitlines()) == 2


def test_stale_git_lock_reported_and_repaired(project: Path) -> None:
    paths = _init_with_history(project)
    (paths.repo / "packed-refs.lock").write_text("")
    r = run_cli("verify", cwd=project)
    assert r.exit_code == 0
    assert "packed-refs.lock exists" in r.stdout
    r = run_cli("verify", "--repair", cwd=project)
    assert "removed stale lock" in r.stdout
    assert not (paths.repo / "packed-refs.lock").exists()
