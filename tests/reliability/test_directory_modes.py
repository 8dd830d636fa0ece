"""A private directory comes back private (issue 13).

Snapshots record the bits of the directories above the files they capture, where they
are not 0755 (``Guardian-DirPerm``).  A restore or rollback that has to recreate a
directory gives it those bits, never more open than recorded; a directory that still
exists is left alone.  gc's chain rewrite carries the record of the snapshots it folds.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from guardian.project import ProjectPaths
from tests.conftest import run_cli
from tests.reliability.harness import head, init_project, record, store_git


def bits(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def private_tree(tmp_path: Path) -> Path:
    root = tmp_path / "p"
    root.mkdir()
    (root / "keys" / "old").mkdir(parents=True)
    (root / "pub").mkdir()
    (root / "keys" / "old" / "id.txt").write_text("secret\n")
    (root / "keys" / "now.txt").write_text("secret 2\n")
    (root / "pub" / "readme.txt").write_text("hello\n")
    (root / "keys").chmod(0o700)
    (root / "keys" / "old").chmod(0o750)
    init_project(root, policy="version: 1\n")
    return root


def test_the_snapshot_records_directory_bits_that_are_not_0755(private_tree: Path) -> None:
    message = store_git(ProjectPaths.for_root(private_tree.resolve()), "log", "-1", "--format=%B").decode()
    lines = [line for line in message.splitlines() if line.startswith("Guardian-DirPerm")]
    assert lines == ['Guardian-DirPerm: 0700 "keys"', 'Guardian-DirPerm: 0750 "keys/old"']


@pytest.mark.parametrize("how", ["restore", "rollback"])
def test_a_recreated_private_directory_comes_back_private(private_tree: Path, how: str) -> None:
    paths = ProjectPaths.for_root(private_tree.resolve())
    first = head(paths)
    assert first is not None
    subprocess.run(["rm", "-rf", str(private_tree / "keys")], check=True)
    assert run_cli("snapshot", cwd=private_tree).exit_code == 0
    if how == "restore":
        r = run_cli("restore", "keys/old/id.txt", "keys/now.txt", cwd=private_tree)
    else:
        r = run_cli("rollback", "--to", first, "--force", cwd=private_tree)
    assert r.exit_code == 0, r.stderr
    assert (private_tree / "keys" / "old" / "id.txt").read_text() == "secret\n"
    modes = (bits(private_tree / "keys"), bits(private_tree / "keys" / "old"))
    record("24", dir_mode_restores=1, dir_mode_restores_wrong=int(modes != (0o700, 0o750)))
    assert modes == (0o700, 0o750), f"{how} recreated the directories {oct(modes[0])}, {oct(modes[1])}"


def test_an_existing_directory_keeps_its_current_bits(private_tree: Path) -> None:
    (private_tree / "keys").chmod(0o755)
    (private_tree / "keys" / "now.txt").unlink()
    assert run_cli("restore", "keys/now.txt", cwd=private_tree).exit_code == 0
    assert bits(private_tree / "keys") == 0o755


def test_recorded_bits_never_open_a_directory_beyond_them_nor_lock_out_its_owner() -> None:
    from guardian.util.fs import make_dir_mode

    assert make_dir_mode(0o700) == 0o700
    assert make_dir_mode(0o2750) == 0o750  # no setgid: the directory is the restorer's now
    assert make_dir_mode(0o500) == 0o700  # its owner can still write the files restored into it
    assert make_dir_mode(0o1777) == 0o1777


def test_gc_folding_the_capturing_snapshot_keeps_the_record(private_tree: Path) -> None:
    from guardian.lifecycle.retention import RetentionPlan, read_history
    from guardian.lifecycle.rewrite import rewrite_chain
    from guardian.project import Project
    from guardian.store.trailers import parse_message

    (private_tree / "pub" / "readme.txt").write_text("hello 2\n")
    assert run_cli("snapshot", cwd=private_tree).exit_code == 0
    project = Project.find(private_tree)
    repo = project.open_repo()
    history = read_history(repo, repo.head())
    assert len(history) == 2
    # Drop the first snapshot (it captured keys/...): its changes fold into the second.
    chain = rewrite_chain(repo, RetentionPlan(history, {history[1].id: ["head"]}), set())
    assert len(chain) == 1
    assert parse_message(repo.commit_record(chain[0]).message).dir_perms == {"keys": 0o700, "keys/old": 0o750}
