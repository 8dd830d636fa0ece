"""Moved, re-created and copied projects, through the real CLI; and the small honesty fixes of init and snapshot."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from guardian.paths import store_dir_for
from guardian.util.identity import ID_ATTRIBUTE
from tests.conftest import run_cli


def _init(root: Path) -> None:
    root.mkdir(exist_ok=True)
    (root / "a.txt").write_text("a\n")
    r = run_cli("init", cwd=root)
    assert r.exit_code == 0, r.stderr


def _id(root: Path) -> str:
    return os.getxattr(root, ID_ATTRIBUTE).decode()


pytestmark = pytest.mark.skipif(not hasattr(os, "setxattr"), reason="the project id lives in an extended attribute")


def test_the_id_is_kept_in_the_project_and_the_store_and_never_captured(tmp_path: Path) -> None:
    root = tmp_path / "p1"
    _init(root)
    pid = _id(root)
    assert re.fullmatch(r"[0-9a-f]{32}", pid)
    meta = json.loads((store_dir_for(root.resolve()) / "project.json").read_text())
    assert (meta["id"], meta["root"]) == (pid, str(root.resolve()))
    assert meta["id_on_root"] is True
    assert sorted(p.name for p in root.iterdir()) == ["a.txt", "guardian.yaml"]  # nothing in the tree


def test_a_store_made_before_ids_gets_one(project: Path) -> None:
    _init(project)
    meta_file = store_dir_for(project.resolve()) / "project.json"
    meta = json.loads(meta_file.read_text())
    meta_file.write_text(json.dumps({"root": meta["root"], "version": 1}))
    os.removexattr(project, ID_ATTRIBUTE)
    assert run_cli("status", cwd=project).exit_code == 0
    assert json.loads(meta_file.read_text())["id"] == _id(project)


def test_git_clean_keeps_the_project(tmp_path: Path) -> None:
    root = tmp_path / "p1"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    _init(root)
    pid = _id(root)
    subprocess.run(["git", "clean", "-fdxq"], cwd=root, check=True)
    assert not (root / "guardian.yaml").exists()
    r = run_cli("log", "--json", cwd=root)
    assert r.exit_code == 0, r.stderr
    assert _id(root) == pid


def test_a_moved_project_keeps_its_history(tmp_path: Path) -> None:
    old, new = tmp_path / "p1", tmp_path / "p2"
    _init(old)
    old.rename(new)
    r = run_cli("log", "--json", cwd=new)
    assert r.exit_code == 0, r.stderr
    assert len(json.loads(r.stdout)["snapshots"]) == 1
    store = store_dir_for(new.resolve())
    assert r.stderr == (
        f"guardian: note: this project moved from {old.resolve()}; its history moved with it to {store}\n"
    )
    assert not store_dir_for(old.resolve()).exists()
    r = run_cli("projects", cwd=tmp_path)
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"{new.resolve()}  1 snapshot(s), last ")
    assert re.fullmatch(rf"  moved from {re.escape(str(old.resolve()))} \(.+\)", lines[1])
    data = json.loads(run_cli("projects", "--json", cwd=tmp_path).stdout)
    assert [m["root"] for m in data[0]["moved_from"]] == [str(old.resolve())]
    events = json.loads(run_cli("events", "--kind", "move", "--json", cwd=new).stdout)
    assert events[0]["details"]["from"] == str(old.resolve())


def test_a_new_project_at_an_old_path_gets_a_new_store(tmp_path: Path) -> None:
    root = tmp_path / "p1"
    _init(root)
    old_id = _id(root)
    shutil.rmtree(root)
    root.mkdir()
    (root / "b.txt").write_text("b\n")
    (root / "guardian.yaml").write_text("version: 1\n")
    store = store_dir_for(root.resolve())
    r = run_cli("log", cwd=root)
    assert r.exit_code == 1
    assert r.stderr == (
        f"guardian: error: {root.resolve()} is not the project the store {store} was made for: the directory was "
        "re-created or replaced since; run 'guardian init' to give it a store of its own (the old history is kept)\n"
    )
    r = run_cli("init", cwd=root)
    assert r.exit_code == 0, r.stderr
    note = re.fullmatch(
        rf"guardian: note: the store {re.escape(str(store))} belonged to an earlier project at this path \(the "
        r"directory was re-created since\); it is kept as (\S+), and this project gets a new store\n",
        r.stderr,
    )
    assert note is not None, r.stderr
    assert Path(note.group(1)).is_dir()
    assert _id(root) != old_id
    snaps = json.loads(run_cli("log", "--json", cwd=root).stdout)["snapshots"]
    assert len(snaps) == 1 and sorted(p["path"] for p in snaps[0]["paths"]) == ["b.txt", "guardian.yaml"]
    r = run_cli("projects", cwd=tmp_path)
    assert "(a new project took that path " in r.stdout


def test_a_copy_gets_a_store_of_its_own(tmp_path: Path) -> None:
    original, copy = tmp_path / "p1", tmp_path / "p3"
    _init(original)
    subprocess.run(["cp", "-a", str(original), str(copy)], check=True)  # -a copies the id attribute too
    r = run_cli("status", cwd=copy)
    assert r.exit_code == 1
    note = f"guardian: note: {copy.resolve()} carries the id of the project at {original.resolve()}"
    assert r.stderr.startswith(note)
    r = run_cli("init", cwd=copy)
    assert r.exit_code == 0, r.stderr
    assert "it gets an id and a store of its own" in r.stderr
    assert _id(copy) != _id(original)
    assert run_cli("status", cwd=original).exit_code == 0
    plain = tmp_path / "p4"
    subprocess.run(["cp", "-r", str(original), str(plain)], check=True)  # no attributes: simply a new project
    r = run_cli("status", cwd=plain)
    store = store_dir_for(plain.resolve())
    assert r.exit_code == 1
    where = plain.resolve()
    assert r.stderr == f"guardian: error: no store for {where} at {store}; run 'guardian init' in {where}\n"


def test_snapshot_of_a_path_that_does_not_exist(project: Path) -> None:
    _init(project)
    r = run_cli("snapshot", "typo.txt", cwd=project)
    assert r.exit_code == 2
    assert r.stderr == (
        f"guardian: error: 'typo.txt' does not exist ({project.resolve() / 'typo.txt'}) and never did in any snapshot; "
        "check the path\n"
    )
    (project / "a.txt").unlink()  # gone now, but known: the snapshot records the deletion
    r = run_cli("snapshot", "a.txt", cwd=project)
    assert r.exit_code == 0, r.stderr
    assert "delete  a.txt" in r.stdout


def test_init_says_when_the_preset_is_not_used(project: Path) -> None:
    _init(project)
    r = run_cli("init", "--preset", "python", cwd=project)
    assert r.exit_code == 0
    assert r.stderr == (
        f"guardian: note: {project.resolve() / 'guardian.yaml'} already exists, so --preset python was not used; "
        "edit it, or remove it and run 'guardian init --preset python' again\n"
    )
    r = run_cli("init", "--preset", "pyhton", cwd=project)
    assert r.exit_code == 2
    assert r.stderr.startswith("guardian: error: unknown preset 'pyhton'; choose one of: ")


def test_init_inside_a_guarded_project_says_so(project: Path) -> None:
    _init(project)
    inner = project / "sub"
    inner.mkdir()
    r = run_cli("init", cwd=inner)
    assert r.exit_code == 2
    outer = project.resolve()
    assert r.stderr == (
        f"guardian: error: {inner.resolve()} is inside the guarded project {outer}, whose snapshots already capture "
        f"it; run guardian there (or with -C {outer}), or 'guardian init --nested' to guard "
        f"{inner.resolve()} on its own\n"
    )
    assert not (inner / "guardian.yaml").exists()
    r = run_cli("init", "--nested", cwd=inner)
    assert r.exit_code == 0, r.stderr
    assert (inner / "guardian.yaml").is_file()
