"""``guardian restore DIR`` and worktrees (seed 002: a recovery playbook with worktree corruption).

A directory is restored file by file from one snapshot, in one restore under one policy
decision.  A linked worktree's ``.git`` pointer file is captured and restored, and guardian
says how to re-attach the worktree; with real ``git worktree``, a commit made there after
``git worktree repair`` lands on the worktree's branch, not on the main repository's.
The hostile side: a pointer that leads outside git's own admin area, a ``.git`` symlink,
a crafted ``.git/config`` entry, a ``.git`` directory in the way; none is ever written.
"""

from __future__ import annotations

import base64
import shutil
import time
from pathlib import Path

import pytest

from guardian.errors import OperationFailed, PathRefused
from guardian.ops.initialize import init_project
from guardian.project import Project, ProjectPaths
from guardian.util.fs import write_user_file
from tests.conftest import git, run_cli
from tests.reliability.harness import head, store_git


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def _init(root: Path, files: dict[str, str], policy: str | None = None) -> str:
    """guardian init (the library call: no git hooks) over files; the first snapshot's id."""
    root.mkdir(parents=True, exist_ok=True)
    if policy is not None:
        (root / "guardian.yaml").write_text(policy)
    _write(root, files)
    init_project(root)
    return _head(root)


def _head(root: Path) -> str:
    found = head(ProjectPaths.for_root(root.resolve()))
    assert found is not None
    return found


def _tree(root: Path) -> set[str]:
    return {path for path, _entry in Project.find(root).open_repo().iter_tree(_head(root))}


def _snapshot(root: Path) -> str:
    r = run_cli("snapshot", cwd=root)
    assert r.exit_code == 0, r.stderr
    return _head(root)


TOOLS = {"tools/a.py": "A = 1\n", "tools/b.txt": "b\n", "tools/deep/c.txt": "c\n"}


# --------------------------------------------------------------------------- directories


def test_a_directory_that_is_gone_comes_back_whole(project: Path) -> None:
    _init(project, {**TOOLS, "other.txt": "o\n"})
    shutil.rmtree(project / "tools")
    r = run_cli("restore", "tools", cwd=project)
    assert r.exit_code == 0, r.stderr
    for rel, text in TOOLS.items():
        assert (project / rel).read_text() == text
    assert [line.split(" from ")[0] for line in r.stdout.splitlines()[:3]] == [
        "restored tools/a.py",
        "restored tools/b.txt",
        "restored tools/deep/c.txt",
    ]
    events = [e for e in Project.find(project).events.read() if e.event == "restore"]
    assert events[-1].paths == sorted(TOOLS)
    again = run_cli("restore", "tools/", cwd=project)
    assert again.exit_code == 0
    assert "nothing to restore: tools/a.py already has that content" in again.stdout


def test_by_default_the_files_deleted_before_the_directory_went_stay_gone(project: Path) -> None:
    first = _init(project, TOOLS)
    (project / "tools" / "b.txt").unlink()
    _snapshot(project)
    (project / "tools" / "a.py").write_text("A = 2\n")
    _snapshot(project)
    shutil.rmtree(project / "tools")
    _snapshot(project)  # the deletion on record, as the watcher would have it
    r = run_cli("restore", "tools", cwd=project)
    assert r.exit_code == 0, r.stderr
    assert (project / "tools" / "a.py").read_text() == "A = 2\n"
    assert (project / "tools" / "deep" / "c.txt").read_text() == "c\n"
    assert not (project / "tools" / "b.txt").exists()
    assert (
        "1 file(s) under tools/ were deleted before the last snapshot that held them and are not restored "
        "(tools/b.txt); pick an earlier snapshot with --at or --before to bring them back"
    ) in r.stdout.splitlines()
    r = run_cli("restore", "--at", first, "tools", cwd=project)
    assert r.exit_code == 0, r.stderr
    for rel, text in TOOLS.items():
        assert (project / rel).read_text() == text


def test_at_brings_back_files_deleted_since_and_leaves_files_added_since(project: Path) -> None:
    first = _init(project, TOOLS)
    (project / "tools" / "a.py").write_text("A = 2\n")
    (project / "tools" / "b.txt").unlink()
    (project / "tools" / "new.txt").write_text("added since\n")
    _snapshot(project)
    r = run_cli("restore", "--at", first[:12], "tools", cwd=project)
    assert r.exit_code == 0, r.stderr
    for rel, text in TOOLS.items():
        assert (project / rel).read_text() == text
    assert (project / "tools" / "new.txt").read_text() == "added since\n"
    assert (
        f"1 file(s) under tools/ are not in snapshot {first[:12]} and are left as they are (tools/new.txt); "
        "'guardian rollback tools --to SNAPSHOT' would remove them"
    ) in r.stdout.splitlines()


def test_before_takes_the_last_snapshot_before_the_time(project: Path) -> None:
    _init(project, TOOLS)
    time.sleep(1.1)  # snapshot times are whole seconds
    (project / "tools" / "a.py").write_text("A = 2\n")
    (project / "tools" / "new.txt").write_text("n\n")
    second = _snapshot(project)
    catalog = Project.find(project).open_catalog()
    try:
        row = catalog.snapshot(second)
    finally:
        catalog.close()
    assert row is not None
    shutil.rmtree(project / "tools")
    r = run_cli("restore", "--before", f"@{row.ts}", "tools", cwd=project)
    assert r.exit_code == 0, r.stderr
    for rel, text in TOOLS.items():
        assert (project / rel).read_text() == text
    assert not (project / "tools" / "new.txt").exists()
    r = run_cli("restore", "--before", "@1", "tools", cwd=project)
    assert r.exit_code == 1
    assert "--before: no snapshot was taken before" in r.stderr


def test_the_policy_decides_once_over_the_whole_directory(project: Path) -> None:
    policy = (
        "version: 1\nprotect:\n  - paths: [tools/deep/]\n    restore: force\n    reason: deep tools\n"
        "  - paths: [frozen/x.txt]\n    restore: block\n    reason: frozen\n"
    )
    _init(project, {**TOOLS, "frozen/x.txt": "x\n", "frozen/y.txt": "y\n"}, policy)
    shutil.rmtree(project / "tools")
    r = run_cli("restore", "tools", cwd=project)
    assert r.exit_code == 3
    assert r.stderr.strip() == "guardian: error: restore of 'tools/deep/c.txt' needs --force (protected: deep tools)"
    assert not (project / "tools").exists()  # one decision: nothing was written
    r = run_cli("restore", "--force", "tools", cwd=project)
    assert r.exit_code == 0, r.stderr
    for rel, text in TOOLS.items():
        assert (project / rel).read_text() == text
    shutil.rmtree(project / "frozen")
    r = run_cli("restore", "--force", "frozen", cwd=project)
    assert r.exit_code == 4
    assert r.stderr.strip() == "guardian: error: restore of 'frozen/x.txt' is blocked by policy (frozen)"
    assert not (project / "frozen").exists()


def test_a_file_with_no_valid_version_is_named_and_the_rest_restored(project: Path) -> None:
    _init(project, {"conf/good.json": "{}\n", "conf/bad.json": "{broken\n"})
    shutil.rmtree(project / "conf")
    r = run_cli("restore", "conf", cwd=project)
    assert r.exit_code == 0, r.stderr
    assert (project / "conf" / "good.json").read_text() == "{}\n"
    assert not (project / "conf" / "bad.json").exists()
    assert "not restoring conf/bad.json: no valid version; see 'guardian history PATH'" in r.stdout.splitlines()


def test_a_directory_that_never_existed_keeps_the_message(project: Path) -> None:
    _init(project, TOOLS)
    r = run_cli("restore", ".worktrees/agent-2-ws-22", cwd=project)
    assert r.exit_code == 1
    assert r.stderr.strip() == (
        "guardian: error: '.worktrees/agent-2-ws-22' never existed in any snapshot; "
        "check the name with 'guardian log' or 'guardian history'"
    )


def test_dry_run_writes_nothing(project: Path) -> None:
    _init(project, TOOLS)
    shutil.rmtree(project / "tools")
    r = run_cli("restore", "--dry-run", "tools", cwd=project)
    assert r.exit_code == 0, r.stderr
    assert "would restore tools/a.py from snapshot" in r.stdout
    assert not (project / "tools").exists()


# --------------------------------------------------------------------------- worktrees, with real git


def _main_repo(tmp_path: Path) -> Path:
    root = tmp_path / "main"
    root.mkdir()
    git("init", "-q", "-b", "main", cwd=root)
    (root / "a.txt").write_text("main\n")
    git("add", "a.txt", cwd=root)
    git("commit", "-qm", "init", cwd=root)
    return root


def _add_worktree(root: Path, name: str, branch: str) -> Path:
    git("worktree", "add", "-q", "-b", branch, f".worktrees/{name}", cwd=root)
    worktree = root / ".worktrees" / name
    (worktree / "work.py").write_text(f"# {name}: uncommitted agent work\n")
    return worktree


def _commit_lands_on(root: Path, worktree: Path, branch: str) -> None:
    main_before = git("rev-parse", "main", cwd=root).stdout
    git("add", "work.py", cwd=worktree)
    git("commit", "-qm", "agent work", cwd=worktree)
    assert git("rev-parse", "HEAD", cwd=worktree).stdout == git("rev-parse", branch, cwd=root).stdout
    assert git("rev-parse", "main", cwd=root).stdout == main_before
    assert git("log", "-1", "--format=%s", branch, cwd=root).stdout.strip() == "agent work"


def test_a_restored_worktree_has_its_pointer_and_commits_land_on_its_branch(tmp_path: Path) -> None:
    root = _main_repo(tmp_path)
    worktree = _add_worktree(root, "agent-2-ws-22", "ws/22/agent-2")
    pointer = (worktree / ".git").read_bytes()
    _init(root, {})
    shutil.rmtree(worktree)
    r = run_cli("restore", ".worktrees/agent-2-ws-22", cwd=root)
    assert r.exit_code == 0, r.stderr
    assert (worktree / ".git").read_bytes() == pointer
    assert (worktree / "work.py").read_text() == "# agent-2-ws-22: uncommitted agent work\n"
    real = root.resolve()
    assert (
        f"worktree .worktrees/agent-2-ws-22: its .git pointer is back; re-attach it with "
        f"'git worktree repair {real}/.worktrees/agent-2-ws-22', run in the main work tree {real}"
    ) in r.stdout.splitlines()
    git("worktree", "repair", str(worktree), cwd=root)
    _commit_lands_on(root, worktree, "ws/22/agent-2")


def test_rollback_recreates_worktrees_with_their_pointers(tmp_path: Path) -> None:
    root = _main_repo(tmp_path)
    first = _add_worktree(root, "agent-1-ws-15", "ws/15/agent-1")
    second = _add_worktree(root, "agent-2-ws-22", "ws/22/agent-2")
    target = _init(root, {})
    shutil.rmtree(root / ".worktrees")
    _snapshot(root)
    r = run_cli("rollback", "--to", target, cwd=root)
    assert r.exit_code == 0, r.stderr
    real = root.resolve()
    for worktree in (first, second):
        name = worktree.name
        assert (worktree / ".git").read_text() == f"gitdir: {real}/.git/worktrees/{name}\n"
        assert (
            f"worktree .worktrees/{name}: its .git pointer is back; re-attach it with "
            f"'git worktree repair {real}/.worktrees/{name}', run in the main work tree {real}"
        ) in r.stdout.splitlines()
    git("worktree", "repair", str(first), str(second), cwd=root)
    _commit_lands_on(root, first, "ws/15/agent-1")
    _commit_lands_on(root, second, "ws/22/agent-2")


def test_a_worktree_restored_without_a_pointer_is_told_to_run_repair(tmp_path: Path) -> None:
    """Snapshots without the pointer (as before guardian kept it): git still lists the worktree, and repair
    rebuilds the file."""
    root = _main_repo(tmp_path)
    worktree = _add_worktree(root, "agent-3", "ws/3/agent-3")
    _init(root, {}, 'version: 1\nwatch:\n  exclude: [".worktrees/*/.git"]\n')
    assert ".worktrees/agent-3/.git" not in _tree(root)
    shutil.rmtree(worktree)
    r = run_cli("restore", ".worktrees/agent-3", cwd=root)
    assert r.exit_code == 0, r.stderr
    assert not (worktree / ".git").exists()
    assert (
        "worktree .worktrees/agent-3: its files are back without its .git pointer (not in that snapshot); "
        f"recreate it with 'git worktree repair', run in the main work tree {root.resolve()}"
    ) in r.stdout.splitlines()
    git("worktree", "repair", cwd=root)
    _commit_lands_on(root, worktree, "ws/3/agent-3")


def test_a_pointer_whose_worktree_entry_was_pruned_is_restored_and_says_so(tmp_path: Path) -> None:
    root = _main_repo(tmp_path)
    worktree = _add_worktree(root, "agent-4", "ws/4/agent-4")
    _init(root, {})
    shutil.rmtree(worktree)
    git("worktree", "prune", cwd=root)  # the playbook's step 1, before anyone thought of guardian
    r = run_cli("restore", ".worktrees/agent-4", cwd=root)
    assert r.exit_code == 0, r.stderr
    real = root.resolve()
    assert (
        f"worktree .worktrees/agent-4: its .git pointer is back, but git's entry for it "
        f"({real}/.git/worktrees/agent-4) is gone (pruned?); move its files aside, run "
        f"'git worktree add {real}/.worktrees/agent-4 BRANCH' in {real}, and copy them back"
    ) in r.stdout.splitlines()
    # The dangling pointer keeps git from walking up to the main repository: no commit lands on main.
    assert git("status", cwd=worktree, check=False).returncode != 0


# --------------------------------------------------------------------------- hostile pointers


def _evil_repo(at: Path) -> None:
    """A directory git would take for a repository, whose config runs a command on 'git status'."""
    (at / "objects").mkdir(parents=True)
    (at / "refs").mkdir()
    (at / "HEAD").write_text("ref: refs/heads/main\n")
    (at / "commondir").write_text(".\n")
    (at / "config").write_text(f"[core]\n\tfsmonitor = touch {at}/PWNED\n")


def test_a_pointer_leading_outside_git_is_captured_but_never_written(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    _evil_repo(root / "evil")
    _evil_repo(tmp_path / "elsewhere")  # outside the project, but no repository's worktree entry
    files = {"sub/a.txt": "a\n", "sub/.git": "gitdir: ../evil\n", "far/.git": f"gitdir: {tmp_path}/elsewhere\n"}
    first = _init(root, files)
    assert {"sub/.git", "far/.git"} <= _tree(root)  # captured: a gitdir line is a pointer, whatever it names
    shutil.rmtree(root / "sub")
    (root / "far" / ".git").unlink()
    r = run_cli("restore", "sub", "far", cwd=root)
    assert r.exit_code == 0, r.stderr
    assert (root / "sub" / "a.txt").read_text() == "a\n"
    assert not (root / "sub" / ".git").exists()
    assert not (root / "far" / ".git").exists()
    real = root.resolve()
    assert (
        f"not restoring sub/.git: it points at {real}/evil, which is neither inside a .git directory nor a "
        "bare repository's worktree entry; a crafted snapshot could make git read a config of its choosing there"
    ) in r.stdout.splitlines()
    assert any(line.startswith("not restoring far/.git: it points at ") for line in r.stdout.splitlines())
    # Named alone, and by rollback: refused the same way, at the write itself.
    r = run_cli("restore", "sub/.git", cwd=root)
    assert r.exit_code == 2
    assert r.stderr.startswith("guardian: error: refusing to write 'sub/.git': it points at ")
    r = run_cli("rollback", "--to", first, "--force", cwd=root)
    assert r.exit_code == 1
    assert "FAILED sub/.git: refusing to write 'sub/.git': it points at " in r.stdout + r.stderr
    assert not (root / "sub" / ".git").exists()
    git("status", cwd=root / "sub", check=False)
    assert not (root / "evil" / "PWNED").exists()


def test_rollback_reports_a_refused_pointer_as_failed(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    target = _init(root, {"sub/a.txt": "a\n", "sub/.git": "gitdir: ../.git\n"})  # the main git dir itself
    shutil.rmtree(root / "sub")
    _snapshot(root)
    r = run_cli("rollback", "--to", target, cwd=root)
    assert r.exit_code == 1
    assert (root / "sub" / "a.txt").read_text() == "a\n"
    assert not (root / "sub" / ".git").exists()
    assert any(
        line.startswith("FAILED sub/.git: refusing to write 'sub/.git': it points at ")
        and "a repository's own git directory" in line
        for line in r.stdout.splitlines() + r.stderr.splitlines()
    ), r.stdout + r.stderr


def test_a_git_symlink_or_directory_or_root_git_file_is_never_captured(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "link").mkdir()
    (root / "link" / ".git").symlink_to(tmp_path)
    (root / "nested" / ".git").mkdir(parents=True)
    (root / "nested" / ".git" / "config").write_text("[core]\n")
    (root / "notes" / ".git").parent.mkdir()
    (root / "notes" / ".git").write_text("not a pointer\n")
    (root / ".git").write_text("gitdir: /somewhere/.git/worktrees/x\n")  # the project's own: never touched
    _init(root, {"keep.txt": "k\n"})
    assert _tree(root) == {"guardian.yaml", "keep.txt"}


def test_the_write_itself_refuses_what_no_pointer_may_be(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    (root / "nested" / ".git").mkdir(parents=True)
    inside = b"gitdir: ../.git/worktrees/x\n"
    with pytest.raises(OperationFailed, match="a directory is in the way"):
        write_user_file(root, "nested/.git", inside)  # a repository's own .git directory stands there
    assert sorted(p.name for p in (root / "nested" / ".git").iterdir()) == []
    with pytest.raises(PathRefused, match="only as a worktree pointer"):
        write_user_file(root, "sub/.git", b"[core]\n\tfsmonitor = x\n")
    with pytest.raises(PathRefused, match=r"guardian never reads or writes inside a \.git directory"):
        write_user_file(root, ".git", inside)
    with pytest.raises(PathRefused, match=r"guardian never reads or writes inside a \.git directory"):
        write_user_file(root, "nested/.git/config", b"[core]\n")
    write_user_file(root, "sub/.git", inside)  # inside git's own admin area (even a missing entry): written
    assert (root / "sub" / ".git").read_bytes() == inside


# --------------------------------------------------------------------------- crafted snapshots


def _encoded(name: bytes) -> bytes:
    return b".guardian-bytes-" + base64.urlsafe_b64encode(name)


def _crafted(root: Path, top: bytes, entries: list[tuple[bytes, bytes, bytes]]) -> str:
    """A snapshot whose tree is the head's plus directory ``top`` holding (mode, name, content) entries."""
    paths = ProjectPaths.for_root(root.resolve())

    def obj(kind: str, data: bytes) -> str:
        args = ["hash-object", "-t", kind, "--literally", "-w", "--stdin"]
        return store_git(paths, *args, data=data).decode().strip()

    def tree_of(items: list[tuple[bytes, bytes, str]]) -> str:
        ordered = sorted(items, key=lambda item: item[1] + (b"/" if item[0] == b"40000" else b""))  # git's order
        return obj("tree", b"".join(m + b" " + n + b"\0" + bytes.fromhex(o) for m, n, o in ordered))

    parent = _head(root)
    base = []
    for item in store_git(paths, "ls-tree", "-z", parent).split(b"\0"):
        if item:
            meta, name = item.split(b"\t", 1)
            mode, _kind, oid = meta.split()
            base.append((mode, name, oid.decode()))
    inner: dict[bytes, list[tuple[bytes, bytes, str]]] = {}
    files: list[tuple[bytes, bytes, str]] = []
    for mode, name, data in entries:
        parts = name.split(b"/")
        blob = obj("blob", data)
        if len(parts) == 1:
            files.append((mode, name, blob))
        else:
            inner.setdefault(parts[0], []).append((mode, parts[1], blob))
    files += [(b"40000", name, tree_of(items)) for name, items in inner.items()]
    tree = tree_of([*base, (b"40000", top, tree_of(files))])
    message = "manual: crafted\n\nTrigger: manual\n"
    commit = store_git(paths, "commit-tree", tree, "-p", parent, "-m", message).decode().strip()
    store_git(paths, "update-ref", "refs/heads/snapshots", commit, parent)
    return commit


def test_crafted_pointer_symlink_and_dot_git_entries_are_never_written(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    _init(root, {"keep.txt": "k\n"})
    (root / "nested" / ".git").mkdir(parents=True)
    evil_config = b"[core]\n\tfsmonitor = touch PWNED\n"
    crafted = _crafted(
        root,
        b"crafted",
        [
            (b"100644", b"evil/HEAD", b"ref: refs/heads/main\n"),
            (b"100644", b"evil/config", evil_config),
            (b"100644", b"wt/" + _encoded(b".git"), b"gitdir: ../evil\n"),  # a pointer into what it writes
            (b"120000", b"ln/" + _encoded(b".git"), str(tmp_path).encode()),  # a .git symlink
            (b"100644", b"dir/" + b".git", b"literal .git name\n"),  # git itself would reject this entry
            (b"100644", _encoded(b".git"), b"gitdir: ../.git/worktrees/x\n"),  # crafted/.git: fine on its own
        ],
    )
    r = run_cli("rollback", "--to", crafted, "--force", cwd=root)
    assert r.exit_code == 1, r.stdout + r.stderr
    out = r.stdout + r.stderr
    assert "FAILED crafted/wt/.git: refusing to write 'crafted/wt/.git': it points at " in out
    assert "FAILED crafted/ln/.git: refusing to write 'crafted/ln/.git' as a symlink" in out
    assert (root / "crafted" / "evil" / "config").read_bytes() == evil_config  # a plain file: harmless
    assert not (root / "crafted" / "wt" / ".git").exists()
    assert not (root / "crafted" / "ln" / ".git").exists() and not (root / "crafted" / "ln" / ".git").is_symlink()
    assert not (root / "crafted" / "dir" / ".git").exists()
    assert (root / "crafted" / ".git").read_bytes() == b"gitdir: ../.git/worktrees/x\n"
    # And the directory restore refuses them with a note, writing the rest.
    shutil.rmtree(root / "crafted")
    r = run_cli("restore", "--at", crafted, "crafted", cwd=root)
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert any(line.startswith("not restoring crafted/wt/.git: it points at ") for line in lines), r.stdout
    assert (
        "not restoring crafted/ln/.git: a .git symlink could lead git anywhere; only a pointer file is restored"
    ) in lines
    assert not (root / "crafted" / "wt" / ".git").exists()
    assert list((root / "nested" / ".git").iterdir()) == []


def test_a_crafted_dot_git_directory_entry_is_never_entered(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    _init(root, {"keep.txt": "k\n"})
    (root / "repo" / ".git").mkdir(parents=True)
    (root / "repo" / ".git" / "config").write_text("[core]\n")
    crafted = _crafted(
        root,
        b"repo",
        [
            (b"100644", b".git/config", b"[core]\n\tfsmonitor = touch PWNED\n"),
            (b"100644", _encoded(b".git") + b"/hooks", b"#!/bin/sh\n"),
            (b"100644", b"ok.txt", b"ok\n"),
        ],
    )
    for args in (["rollback", "--to", crafted, "--force"], ["restore", "--at", crafted, "repo"]):
        run_cli(*args, cwd=root)
        assert (root / "repo" / ".git" / "config").read_text() == "[core]\n"
        assert sorted(p.name for p in (root / "repo" / ".git").iterdir()) == ["config"]
    assert (root / "repo" / "ok.txt").read_text() == "ok\n"
