"""guardian.project: finding a project and its store, sweeping a killed writer's leftovers, reading."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from guardian.errors import LockHeld, NotAProject, OperationFailed, StoreDamaged
from guardian.ops.initialize import init_project
from guardian.project import Project, ProjectPaths
from guardian.store.trailers import format_message
from guardian.store.tree import Entry

POLICY = """\
version: 1
watch:
  max_file_size: 1MB
protect:
  - paths: [db/]
    delete: block
"""


@pytest.fixture
def initialised(project: Path) -> Path:
    """A project with its own guardian.yaml (1 MB file limit) and a store, and a nested directory."""
    (project / "guardian.yaml").write_text(POLICY)
    (project / "a" / "b" / "c").mkdir(parents=True)
    (project / "a" / "f.txt").write_text("f\n")
    init_project(project)
    return project.resolve()


def _expected_store(root: Path) -> Path:
    digest = hashlib.sha256(os.fsencode(root)).hexdigest()[:12]
    return Path(os.environ["GUARDIAN_HOME"]) / f"{root.name}-{digest}"


# --------------------------------------------------------------------------- finding


def test_find_walks_up_to_the_nearest_policy(initialised: Path) -> None:
    found = Project.find(initialised / "a" / "b" / "c")
    assert found.root == initialised
    assert found.paths.store == _expected_store(initialised)
    assert found.paths.repo.is_dir()
    assert found.policy.watch.max_file_size == 1024 * 1024
    assert json.loads(found.paths.meta.read_text())["root"] == str(initialised)


def test_a_nested_project_is_its_own(initialised: Path) -> None:
    inner = initialised / "a" / "b"
    (inner / "guardian.yaml").write_text("version: 1\n")
    assert Project.find(inner / "c").root == inner
    assert Project.find(initialised / "a").root == initialised


def test_the_root_is_the_real_directory(initialised: Path, tmp_path: Path) -> None:
    alias = tmp_path / "alias"
    alias.symlink_to(initialised)
    found = Project.find(alias / "a")
    assert found.root == initialised
    assert found.paths.store == _expected_store(initialised)


def test_the_store_follows_guardian_home(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (project / "guardian.yaml").write_text("version: 1\n")
    other_home = tmp_path / "elsewhere"
    monkeypatch.setenv("GUARDIAN_HOME", str(other_home))
    found = Project.find(project)
    root = project.resolve()
    assert found.paths.store == other_home / f"{root.name}-{hashlib.sha256(os.fsencode(root)).hexdigest()[:12]}"
    assert not other_home.exists()  # finding a project creates nothing
    with pytest.raises(OperationFailed) as info:
        found.require_store()
    assert str(info.value) == f"no store for {root} at {found.paths.store}; run 'guardian init' in {root}"


def test_no_project_above(tmp_path: Path) -> None:
    start = tmp_path / "plain"
    start.mkdir()
    with pytest.raises(NotAProject) as info:
        Project.find(start)
    assert str(info.value) == (
        f"no guardian.yaml found in {start} or any parent; run 'guardian init' there, or pass -C DIR"
    )
    assert info.value.exit_code == 2


def test_a_deleted_policy_file_is_found_through_the_store(
    initialised: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (initialised / "guardian.yaml").unlink()
    capsys.readouterr()
    found = Project.find(initialised / "a" / "b")
    assert found.root == initialised
    assert found.paths.store == _expected_store(initialised)
    # The policy in force is still the project's own, not the defaults.
    assert found.policy.watch.max_file_size == 1024 * 1024
    assert [(rule.paths, rule.delete) for rule in found.policy.protect] == [(("db/",), "block")]
    warning = capsys.readouterr().err
    assert warning.startswith(
        f"guardian: warning: {initialised / 'guardian.yaml'} is missing (removed by a tool such as 'git clean -fdx'?); "
        "using "
    )
    assert warning.endswith("; bring it back with 'guardian restore guardian.yaml'\n")
    assert warning.count("\n") == 1


def test_a_deleted_policy_file_without_a_store_is_no_project(project: Path) -> None:
    (project / "guardian.yaml").write_text("version: 1\n")
    (project / "guardian.yaml").unlink()
    with pytest.raises(NotAProject):
        Project.find(project)


# --------------------------------------------------------------------------- locks and sweeping


def test_the_writer_lock_names_the_store_and_holder(initialised: Path) -> None:
    found = Project.find(initialised)
    with found.writer_lock(), pytest.raises(LockHeld) as info:
        found.writer_lock(timeout=0.1).acquire()
    assert str(info.value) == (
        f"the store {found.paths.store} is locked by pid {os.getpid()}; wait for it to finish or stop it"
    )
    assert found.paths.writer_lock == found.paths.store / "writer.lock"


def _repair_events(found: Project) -> list[dict[str, object]]:
    return [e.to_json() for e in found.events.read() if e.event == "repair"]


def test_sweep_store_clears_a_dead_writers_leftovers_and_logs_them(initialised: Path) -> None:
    found = Project.find(initialised)
    git_dir = found.paths.repo
    ref_lock = git_dir / "refs" / "heads" / "snapshots.lock"
    ref_lock.write_text("0" * 40 + "\n")
    temp_object = git_dir / "objects" / "tmp_object_git2_aBcDeF"
    temp_object.write_bytes(b"half an object")
    pack_dir = git_dir / "objects" / ".guardian-tmp-999999-0123456789ab"
    pack_dir.mkdir()
    (pack_dir / "pack-1.pack").write_bytes(b"half a pack")
    deep_temp = git_dir / "objects" / "ab" / "tmp_object_git2_deep"
    deep_temp.parent.mkdir(exist_ok=True)
    deep_temp.write_bytes(b"x")
    before = len(_repair_events(found))

    with found.writer_lock():
        cleared = found.sweep_store(found.open_repo(), "manual")
    assert sorted(cleared) == sorted([str(ref_lock), str(temp_object), str(pack_dir)])
    assert not ref_lock.exists() and not temp_object.exists() and not pack_dir.exists()
    assert deep_temp.exists()  # the fan-out directories are only looked at in a deep sweep
    repairs = _repair_events(found)
    assert len(repairs) == before + 1
    event = repairs[-1]
    assert (event["paths"], event["snapshot"], event["trigger"]) == ([], None, "manual")
    details = event["details"]
    assert isinstance(details, dict)
    assert details["cleared_locks"] == [str(ref_lock)]
    assert sorted(details["cleared_temp"]) == sorted([str(temp_object), str(pack_dir)])

    with found.writer_lock():
        assert found.sweep_store(found.open_repo(), "watch", deep=True) == [str(deep_temp)]
        assert found.sweep_store(found.open_repo(), "watch", deep=True) == []
    assert len(_repair_events(found)) == before + 2  # a sweep that finds nothing logs nothing


@pytest.fixture
def lock_kept_open(initialised: Path) -> Iterator[Path]:
    """refs/heads/snapshots.lock, held open by a second live process (a git still writing)."""
    lock = ProjectPaths.for_root(initialised).repo / "refs" / "heads" / "snapshots.lock"
    lock.write_text("in progress\n")
    script = "import sys; f = open(sys.argv[1]); print('open', flush=True); sys.stdin.read()"
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(lock)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "open\n"
        yield lock
    finally:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        proc.wait(timeout=30)
        proc.stdout.close()


def test_sweep_store_leaves_a_lock_a_live_process_holds(initialised: Path, lock_kept_open: Path) -> None:
    found = Project.find(initialised)
    before = len(_repair_events(found))
    with found.writer_lock():
        assert found.sweep_store(found.open_repo(), "manual") == []
    assert lock_kept_open.read_text() == "in progress\n"
    assert len(_repair_events(found)) == before


# --------------------------------------------------------------------------- reading


def test_reader_answers_from_a_catalog_that_agrees_with_the_repo(initialised: Path) -> None:
    found = Project.find(initialised)
    with found.reader() as (repo, catalog):
        head = repo.head()
        assert head is not None and catalog.indexed_head == head
        assert catalog.known_path("a/f.txt")
    snapshot_events = [e for e in found.events.read() if e.event == "snapshot"]

    # A snapshot the catalog and the event log never heard of (a writer killed after the ref moved).
    with found.writer_lock():
        repo = found.open_repo()
        blob = repo.write_blob(b"late\n")
        late = repo.commit({"late.txt": Entry(blob, 0o100644)}, format_message("manual: 1 added", "manual", {}), head)

    with found.reader() as (repo, catalog):
        assert catalog.indexed_head == late == repo.head()
        assert [v.path for v in catalog.versions_of("late.txt")] == ["late.txt"]
    recovered = [e for e in found.events.read() if e.event == "snapshot"][len(snapshot_events) :]
    assert [(e.snapshot, e.paths, e.trigger, e.details["recovered"]) for e in recovered] == [
        (late, ["late.txt"], "manual", True)
    ]

    with found.reader() as (_repo, catalog):  # caught up: nothing more is logged
        assert catalog.indexed_head == late
    assert len([e for e in found.events.read() if e.event == "snapshot"]) == len(snapshot_events) + 1


def test_reader_needs_a_store(project: Path) -> None:
    (project / "guardian.yaml").write_text("version: 1\n")
    found = Project.find(project)
    with pytest.raises(OperationFailed) as info, found.reader():
        pass
    assert str(info.value).startswith(f"no store for {found.root} at ")


def test_an_unreadable_catalog_is_store_damage(initialised: Path) -> None:
    found = Project.find(initialised)
    found.paths.catalog.write_bytes(b"this is not sqlite" * 100)
    for suffix in ("-wal", "-shm"):
        Path(str(found.paths.catalog) + suffix).unlink(missing_ok=True)
    with pytest.raises(StoreDamaged) as info:
        found.open_catalog()
    assert str(info.value) == (
        f"the catalog {found.paths.catalog} is unreadable: file is not a database; "
        "run 'guardian verify' for details and 'guardian verify --repair' to fix"
    )
    assert info.value.exit_code == 5
