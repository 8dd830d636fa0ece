"""Gitlinks (mode 160000) in a mirror's snapshot: skipped with a note, never taken for a damaged store.

guardian never writes a gitlink, but a mirror anyone can push to may hold one, and its commit is
never in the store.  The mirror here is real: a guardian store's snapshot rewritten with
`git mktree` to hold a gitlink at the top and one in a subdirectory, pushed to a bare repository.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from guardian.project import Project
from guardian.store.repo import ShadowRepo
from tests.conftest import fsck, git, run_cli

SUBMODULE_COMMIT = "1234567890abcdef1234567890abcdef12345678"  # in no store anywhere
SKIPPED = "a gitlink (a submodule's commit): the mirror holds none of its files"


def _store_git(store: Path, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        ["git", "--git-dir", str(store), *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _mktree(store: Path, lines: list[str]) -> str:
    return _store_git(store, "mktree", stdin="".join(lines))


def _commit(
    store: Path, tree: str, parent: str | None, message: str = "watch: 1 changed\n\nGuardian-Trigger: watch\n"
) -> str:
    return _store_git(store, "commit-tree", tree, *(["-p", parent] if parent else []), stdin=message)


def add_gitlinks(project: Project) -> str:
    """A new head snapshot: the old head's tree plus gitlinks at 'sub' and 'vendor/lib'.  Returns its id."""
    store = project.paths.repo
    head = _store_git(store, "rev-parse", "refs/heads/snapshots")
    top = [line + "\n" for line in _store_git(store, "ls-tree", f"{head}^{{tree}}").splitlines()]
    vendor = _mktree(store, [f"160000 commit {SUBMODULE_COMMIT}\tlib\n"])
    tree = _mktree(store, [*top, f"160000 commit {SUBMODULE_COMMIT}\tsub\n", f"040000 tree {vendor}\tvendor\n"])
    commit = _commit(store, tree, head, _store_git(store, "log", "-1", "--format=%B", head) + "\n")
    _store_git(store, "update-ref", "refs/heads/snapshots", commit, head)
    return commit


@pytest.fixture
def mirror_with_gitlinks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """A bare mirror whose latest snapshot holds two gitlinks; returns (mirror, that snapshot's id)."""
    monkeypatch.setenv("GUARDIAN_HOME", str(tmp_path / "home-a"))
    source = tmp_path / "a" / "proj"
    (source / "src").mkdir(parents=True)
    (source / "src" / "app.py").write_text("print('v1')\n")
    (source / "notes.txt").write_text("notes\n")
    assert run_cli("init", cwd=source).exit_code == 0
    (source / "src" / "app.py").write_text("print('v2')\n")
    assert run_cli("snapshot", cwd=source).exit_code == 0
    head = add_gitlinks(Project.find(source))
    mirror = tmp_path / "mirror.git"
    git("init", "--bare", "--quiet", str(mirror), cwd=tmp_path)
    assert run_cli("remote", "add", "origin", str(mirror), cwd=source).exit_code == 0
    r = run_cli("push", cwd=source)
    assert r.exit_code == 0, r.stderr
    monkeypatch.setenv("GUARDIAN_HOME", str(tmp_path / "home-b"))  # a new machine from here on
    return mirror, head


def test_init_from_skips_gitlinks_with_a_note_and_the_store_stays_healthy(
    tmp_path: Path, mirror_with_gitlinks: tuple[Path, str]
) -> None:
    mirror, head = mirror_with_gitlinks
    fresh = tmp_path / "b" / "proj"
    fresh.mkdir(parents=True)
    r = run_cli("init", "--from", str(mirror), "--json", cwd=fresh)
    assert r.exit_code == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["head"] == head
    assert sorted(report["restored"]) == ["guardian.yaml", "notes.txt", "src/app.py"]
    assert report["skipped"] == [{"path": "sub", "reason": SKIPPED}, {"path": "vendor/lib", "reason": SKIPPED}]
    assert report["refused"] == []
    assert not (fresh / "sub").exists() and not (fresh / "vendor").exists()
    project = Project.find(fresh)
    [skip] = [e for e in project.events.read() if e.event == "skip"]
    assert (skip.paths, skip.snapshot, skip.trigger) == (["sub", "vendor/lib"], head, "init")
    assert skip.details["reason"] == SKIPPED
    [init] = [e for e in project.events.read() if e.event == "init"]
    assert init.details["skipped"] == ["sub", "vendor/lib"]

    # Every command works on the store: the gitlink's absent commit is not a missing object.
    for args in (("verify",), ("status",), ("log",), ("history", "app.py"), ("snapshot",)):
        r = run_cli(*args, cwd=fresh)
        assert r.exit_code == 0, (args, r.stdout, r.stderr)
    assert project.open_repo().integrity_problems(deep=True) == []
    fsck(project.paths.repo)

    # restore, gc, verify again, and push the history (gitlinks and all) to this machine's own ref.
    (fresh / "src" / "app.py").write_text("")
    r = run_cli("restore", "app.py", cwd=fresh)
    assert r.exit_code == 0, r.stderr
    assert (fresh / "src" / "app.py").read_text() == "print('v2')\n"
    r = run_cli("gc", cwd=fresh)
    assert r.exit_code == 0, r.stderr
    assert run_cli("verify", cwd=fresh).exit_code == 0
    fsck(project.paths.repo)
    assert run_cli("push", cwd=fresh).exit_code == 0


def test_rollback_to_a_snapshot_with_a_gitlink_leaves_what_is_there_alone(
    tmp_path: Path, mirror_with_gitlinks: tuple[Path, str]
) -> None:
    mirror, head = mirror_with_gitlinks
    fresh = tmp_path / "b" / "proj"
    fresh.mkdir(parents=True)
    assert run_cli("init", "--from", str(mirror), cwd=fresh).exit_code == 0
    # The submodule checked out here by hand, and an edit since the mirror's snapshot.
    (fresh / "sub").mkdir()
    (fresh / "sub" / "lib.py").write_text("x = 1\n")
    (fresh / "notes.txt").write_text("edited\n")
    assert run_cli("snapshot", cwd=fresh).exit_code == 0
    r = run_cli("rollback", "--to", head[:12], "--json", cwd=fresh)
    assert r.exit_code == 0, r.stderr
    report = json.loads(r.stdout)
    assert [c["path"] for c in report["applied"]] == ["notes.txt"]
    assert (fresh / "notes.txt").read_text() == "notes\n"
    assert (fresh / "sub" / "lib.py").read_text() == "x = 1\n"  # under the target's gitlink: not deleted
    assert run_cli("verify", cwd=fresh).exit_code == 0


def test_restore_from_remote_reads_a_history_with_gitlinks(
    tmp_path: Path, mirror_with_gitlinks: tuple[Path, str]
) -> None:
    mirror, _head = mirror_with_gitlinks
    other = tmp_path / "c" / "proj"
    other.mkdir(parents=True)
    (other / "notes.txt").write_text("local\n")
    assert run_cli("init", cwd=other).exit_code == 0
    assert run_cli("remote", "add", "origin", str(mirror), cwd=other).exit_code == 0
    refs = git("ls-remote", str(mirror), cwd=tmp_path).stdout.split()
    ref = refs[1].removeprefix("refs/guardian/")
    r = run_cli("restore", "--from-remote", "--ref", ref, "app.py", cwd=other)
    assert r.exit_code == 0, r.stderr
    assert (other / "src" / "app.py").read_text() == "print('v2')\n"
    r = run_cli("restore", "--from-remote", "--ref", ref, "sub", cwd=other)
    assert r.exit_code == 1
    assert "'sub' never existed in any snapshot" in r.stderr
    assert run_cli("verify", cwd=other).exit_code == 0


def test_tree_reads_skip_gitlinks_and_a_file_replaced_by_one_reads_as_deleted(tmp_path: Path) -> None:
    store = tmp_path / "repo.git"
    repo = ShadowRepo.create(store)
    blob = repo.write_blob(b"a file\n")
    kept = repo.write_blob(b"kept\n")
    link = f"160000 commit {SUBMODULE_COMMIT}\tsub\n"
    file_tree = _mktree(store, [f"100644 blob {blob}\tsub\n", f"100644 blob {kept}\tkept.txt\n"])
    link_tree = _mktree(store, [link, f"100644 blob {kept}\tkept.txt\n"])
    first = _commit(store, file_tree, None)
    second = _commit(store, link_tree, first)
    third = _commit(store, file_tree, second)
    repo = ShadowRepo(store)
    assert [(c.path, c.old is not None, c.new is not None) for c in repo.changes(second)] == [("sub", True, False)]
    assert [(c.path, c.old is not None, c.new is not None) for c in repo.changes(third)] == [("sub", False, True)]
    assert [path for path, _ in repo.iter_tree(second)] == ["kept.txt"]
    assert repo.gitlinks(second) == ["sub"] and repo.gitlinks(first) == []
    assert repo.entry_at(second, "sub") is None
    # Nothing reachable counts the gitlink's absent commit as missing, and a pack of it leaves it out.
    repo.update_ref(third, None)
    assert repo.integrity_problems(deep=True) == []
    assert repo.commit_readable(second)
    objects = dict(repo.reachable_objects([second]))
    assert SUBMODULE_COMMIT not in objects and blob not in objects and kept in objects
