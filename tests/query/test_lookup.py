"""guardian.query.lookup on a real project: what a user types, turned into a path or a snapshot."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from guardian.catalog.db import Catalog, SnapshotRow
from guardian.errors import AmbiguousPath, OperationFailed, PathRefused, UsageError
from guardian.ops.initialize import init_project
from guardian.ops.snapshot import take_snapshot
from guardian.project import Project
from guardian.query.lookup import require_known, resolve_path, resolve_snapshot
from guardian.store.trailers import format_message


@pytest.fixture
def root(project: Path) -> Path:
    """A project whose history holds two config.yaml, 25 dup.txt and a deleted deep/dir/gone.txt."""
    for rel in ("a/config.yaml", "b/config.yaml", "src/main.py", "deep/dir/gone.txt"):
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text(f"{rel}\n")
    for i in range(25):
        (project / f"d{i:02d}").mkdir()
        (project / f"d{i:02d}" / "dup.txt").write_text("dup\n")
    init_project(project)
    shutil.rmtree(project / "deep")
    take_snapshot(Project.find(project), None, "manual")
    return project.resolve()


@pytest.fixture
def catalog(root: Path) -> Iterator[Catalog]:
    with Project.find(root).reader() as (_repo, opened):
        yield opened


@pytest.mark.parametrize(
    ("typed", "cwd", "expected"),
    [
        ("src/main.py", ".", "src/main.py"),
        ("main.py", "src", "src/main.py"),  # relative to where the user is
        ("../a/config.yaml", "src", "a/config.yaml"),
        ("main.py", ".", "src/main.py"),  # a bare name found anywhere in history
        ("gone.txt", ".", "deep/dir/gone.txt"),  # ... deleted files included
        ("gone.txt", "src", "deep/dir/gone.txt"),
        ("deep", ".", "deep"),  # a directory known only to history
        ("never.txt", ".", "never.txt"),  # unknown: left for the caller to report
        ("x/gone.txt", ".", "x/gone.txt"),  # a path with a slash is never searched by name
    ],
)
def test_resolve_path(root: Path, catalog: Catalog, typed: str, cwd: str, expected: str) -> None:
    assert resolve_path(root, catalog, typed, root / cwd) == expected


def test_a_file_on_disk_wins_over_a_name_in_history(root: Path, catalog: Catalog) -> None:
    (root / "main.py").write_text("new, never snapshotted\n")
    assert resolve_path(root, catalog, "main.py", root) == "main.py"


def test_an_absolute_path_inside_the_root(root: Path, catalog: Catalog, tmp_path: Path) -> None:
    assert resolve_path(root, catalog, str(root / "src" / "main.py"), tmp_path) == "src/main.py"


def test_an_ambiguous_name_lists_the_candidates(root: Path, catalog: Catalog) -> None:
    with pytest.raises(AmbiguousPath) as info:
        resolve_path(root, catalog, "config.yaml", root)
    assert str(info.value) == (
        "'config.yaml' is ambiguous: it matches 2 paths: a/config.yaml, b/config.yaml; "
        "give the path relative to the project root"
    )
    assert info.value.candidates == ["a/config.yaml", "b/config.yaml"]
    assert info.value.exit_code == 2


def test_a_long_ambiguity_is_cut_at_twenty(root: Path, catalog: Catalog) -> None:
    with pytest.raises(AmbiguousPath) as info:
        resolve_path(root, catalog, "dup.txt", root)
    listing = ", ".join(f"d{i:02d}/dup.txt" for i in range(20))
    assert str(info.value) == (
        f"'dup.txt' is ambiguous: it matches 25 paths: {listing} (and 5 more); "
        "give the path relative to the project root"
    )


def test_paths_outside_the_root_or_in_git_are_refused(root: Path, catalog: Catalog) -> None:
    with pytest.raises(PathRefused) as info:
        resolve_path(root, catalog, "../elsewhere.txt", root)
    assert str(info.value) == f"refusing path '../elsewhere.txt': it is outside the project root {root}"
    with pytest.raises(PathRefused) as info:
        resolve_path(root, catalog, ".git", root)
    assert str(info.value) == "refusing path '.git': guardian never reads or writes inside a .git directory"


def test_require_known(catalog: Catalog) -> None:
    require_known(catalog, "deep/dir/gone.txt", "gone.txt")
    with pytest.raises(OperationFailed) as info:
        require_known(catalog, "never.txt", "./never.txt")
    assert str(info.value) == (
        "'./never.txt' never existed in any snapshot; check the name with 'guardian log' or 'guardian history'"
    )


# --------------------------------------------------------------------------- snapshots


def test_resolve_snapshot_by_prefix(catalog: Catalog) -> None:
    rows = catalog.snapshots()
    assert len(rows) == 2
    for row in rows:
        assert resolve_snapshot(catalog, row.id[:12]) == row
        assert resolve_snapshot(catalog, f"  {row.id[:8].upper()} ") == row
        assert resolve_snapshot(catalog, row.id) == row


def _unused_prefix(catalog: Catalog) -> str:
    used = {row.id[0] for row in catalog.snapshots()}
    return next(c for c in "0123456789abcdef" if c not in used) * 8


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "--at: '' is not a snapshot id; use an id from 'guardian log' (at least 4 hex digits)"),
        ("HEAD~1", "--at: 'HEAD~1' is not a snapshot id; use an id from 'guardian log' (at least 4 hex digits)"),
        ("abc", "--at: 'abc' is too short; give at least 4 hex digits of a snapshot id"),
    ],
)
def test_resolve_snapshot_refuses_what_is_not_an_id(catalog: Catalog, typed: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        resolve_snapshot(catalog, typed)
    assert str(info.value) == message


def test_resolve_snapshot_names_the_option_and_an_unknown_id(catalog: Catalog) -> None:
    missing = _unused_prefix(catalog)
    with pytest.raises(UsageError) as info:
        resolve_snapshot(catalog, missing, option="--since")
    assert str(info.value) == f"--since: no snapshot '{missing}' in this store; list them with 'guardian log'"


def test_an_id_from_before_a_rewrite_is_found_by_its_original(root: Path) -> None:
    project = Project.find(root)
    old_id = "deadbeef" * 5
    with project.writer_lock():
        repo = project.open_repo()
        parent = repo.head()
        message = format_message("manual: 1 modified", "manual", {}) + f"Guardian-Original: {old_id}\n"
        rewritten = repo.commit({}, message, parent)
    with project.reader() as (_repo, catalog):
        row = resolve_snapshot(catalog, "deadbeef")
        assert row.id == rewritten


def test_an_ambiguous_prefix(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog.db")  # no repo.git beside it: nothing was rewritten
    try:
        for n, sid in enumerate(("abcd1" + "0" * 35, "abcd2" + "0" * 35)):
            catalog.record_snapshot(sid, 1000.0 + n, "manual", "manual: 0 changed", [])
        with pytest.raises(UsageError) as info:
            resolve_snapshot(catalog, "ABCD", option="--at")
        assert str(info.value) == "--at: 'ABCD' matches 2 snapshots; give more digits"
        assert resolve_snapshot(catalog, "abcd2") == SnapshotRow(
            2, "abcd2" + "0" * 35, 1001.0, "manual", "manual: 0 changed", 0, 0
        )
    finally:
        catalog.close()
