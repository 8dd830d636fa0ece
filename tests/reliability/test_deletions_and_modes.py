"""Cases 10 and 18: mass deletions by common tools, and restores onto files with odd modes and hard links.

10. ``git clean -fdx``, ``git checkout -- .``, ``rm -rf dir`` and ``rsync --delete``
    wipe or revert files; after the next snapshot every lost file (and every lost
    edit) is restorable byte-identical with its mode.
18. Restore and rollback onto a 0640 file that has a second hard link (and onto
    0600, 0444, 0750 and setgid files, and a file owned by someone else): the mode
    and owner are kept.  The documented hard-link policy: a restore *replaces*
    the file (a new inode, written atomically beside it), so the other links keep
    the old content; nothing is written through them.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import git, run_cli
from tests.reliability.harness import head, init_project, record

# path -> (content, mode); tracked by the user's git unless under untracked/
FILES: dict[str, tuple[bytes, int]] = {
    "src/app.py": (b"print('app')\n" * 50, 0o644),
    "src/run.sh": (b"#!/bin/sh\necho run\n", 0o755),
    "src/deep/er/mod.py": (b"X = 1\n" * 100, 0o644),
    "conf/private.conf": (b"secret-ish = 1\n", 0o600),
    "conf/group.conf": (b"group = 1\n", 0o640),
    "data/blob.bin": (bytes(range(256)) * 400, 0o644),
    "untracked/notes.md": (b"# notes never committed\n", 0o644),
    "untracked/tool.sh": (b"#!/bin/sh\necho tool\n", 0o750),
    "untracked/deep/state.json": (b'{"ok": true}\n', 0o600),
}
IGNORED = {"logs/today.log": b"ignored by .gitignore, so never captured\n"}


def _write(root: Path, files: dict[str, tuple[bytes, int]]) -> None:
    for rel, (data, mode) in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        target.chmod(mode)


def _setup(tmp_path: Path) -> tuple[Path, str]:
    root = tmp_path / "proj"
    root.mkdir()
    git("init", "-q", cwd=root)
    _write(root, FILES)
    (root / ".gitignore").write_text("logs/\n")
    (root / "logs").mkdir()
    (root / "logs" / "today.log").write_bytes(IGNORED["logs/today.log"])
    git("add", ".gitignore", "src", "conf", "data", cwd=root)
    git("commit", "-q", "-m", "base", cwd=root)
    # Uncommitted edits: the kind of work `git checkout -- .` throws away.
    (root / "src" / "app.py").write_bytes(b"print('edited, never committed')\n" * 60)
    (root / "conf" / "group.conf").write_bytes(b"group = 2  # edited\n")
    paths = init_project(root)
    snap = head(paths)
    assert snap is not None
    return root, snap


def _expected(root: Path) -> dict[str, tuple[bytes, int]]:
    state = {rel: ((root / rel).read_bytes(), stat.S_IMODE((root / rel).stat().st_mode)) for rel in FILES}
    state[".gitignore"] = ((root / ".gitignore").read_bytes(), 0o644)
    return state


def _rsync_delete(root: Path, tmp_path: Path) -> None:
    if shutil.which("rsync") is None:
        pytest.skip("rsync is not installed (apt-get install rsync)")
    old = tmp_path / "old-copy"
    (old / "src").mkdir(parents=True)
    (old / "src" / "app.py").write_bytes(b"print('an old copy')\n")  # overwrites the newer file
    subprocess.run(["rsync", "-a", "--delete", "--exclude", ".git", f"{old}/", f"{root}/"], check=True, timeout=60)


TOOLS = {
    "git-clean-fdx": lambda root, _tmp: git("clean", "-fdxq", cwd=root),
    "git-checkout-dot": lambda root, _tmp: git("checkout", "--", ".", cwd=root),
    "rm-rf-dir": lambda root, _tmp: shutil.rmtree(root / "src"),
    "rsync-delete": _rsync_delete,
}


def _recover_policy(root: Path) -> None:
    """`git clean -fdx` and `rsync --delete` also remove the untracked guardian.yaml.

    guardian finds its project by that file, so the documented way back is
    `guardian init` (which keeps the existing store) and then restoring the
    policy itself.  test_project_is_found_after_a_tool_deleted_guardian_yaml
    asks for better.
    """
    if (root / "guardian.yaml").exists():
        return
    r = run_cli("init", cwd=root)
    assert r.exit_code == 0, r.stderr
    assert "kept existing store" in r.stdout


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_everything_a_tool_wiped_comes_back(tmp_path: Path, tool: str) -> None:
    old_umask = os.umask(0o022)
    try:
        root, snap = _setup(tmp_path)
        expected = _expected(root)
        policy = (root / "guardian.yaml").read_bytes()
        TOOLS[tool](root, tmp_path)
        lost = {
            rel
            for rel, (data, mode) in expected.items()
            if not (root / rel).exists()
            or (root / rel).read_bytes() != data
            or stat.S_IMODE((root / rel).stat().st_mode) != mode
        }
        assert lost, f"{tool} changed nothing"
        # A file that still exists keeps its current permission bits (only the exec bit follows the
        # snapshot); a file that is gone must come back with the bits it had.
        want_mode = {
            rel: stat.S_IMODE((root / rel).stat().st_mode) if (root / rel).exists() else expected[rel][1]
            for rel in lost
        }
        _recover_policy(root)
        r = run_cli("snapshot", cwd=root)  # what the watcher would do next
        assert r.exit_code == 0, r.stderr
        r = run_cli("restore", "--at", snap, *sorted(lost), cwd=root)
        assert r.exit_code == 0, r.stderr
        if (root / "guardian.yaml").read_bytes() != policy:
            assert run_cli("restore", "--at", snap, "guardian.yaml", cwd=root).exit_code == 0
    finally:
        os.umask(old_umask)
    wrong_bytes = [rel for rel in lost if (root / rel).read_bytes() != expected[rel][0]]
    wrong_mode = {
        rel: oct(stat.S_IMODE((root / rel).stat().st_mode))
        for rel in lost
        if stat.S_IMODE((root / rel).stat().st_mode) != want_mode[rel]
    }
    record(
        "10",
        restores=len(lost),
        restores_identical=len(lost) - len(set(wrong_bytes) | set(wrong_mode)),
    )
    assert not wrong_bytes, f"not byte-identical after restore: {wrong_bytes}"
    assert (root / "guardian.yaml").read_bytes() == policy
    assert not wrong_mode, (
        f"mode not kept after restore (wanted { ({r: oct(want_mode[r]) for r in wrong_mode}) }): {wrong_mode}"
    )


def test_project_is_found_after_a_tool_deleted_guardian_yaml(tmp_path: Path) -> None:
    """`git clean -fdx` removes the untracked guardian.yaml; restoring must still work without re-initialising."""
    root, snap = _setup(tmp_path)
    git("clean", "-fdxq", cwd=root)
    assert not (root / "guardian.yaml").exists()
    r = run_cli("restore", "--at", snap, "guardian.yaml", "untracked/notes.md", cwd=root)
    assert r.exit_code == 0, r.stderr
    assert (root / "untracked" / "notes.md").read_bytes() == FILES["untracked/notes.md"][0]


def test_deleted_private_file_comes_back_with_its_permissions(tmp_path: Path) -> None:
    """A 0600 file that was deleted must not come back 0644 (readable by everyone) under umask 022."""
    old_umask = os.umask(0o022)
    try:
        root = tmp_path / "proj"
        root.mkdir()
        (root / "token.json").write_bytes(b'{"token": "private"}\n')
        (root / "token.json").chmod(0o600)
        (root / "group.conf").write_bytes(b"g\n")
        (root / "group.conf").chmod(0o640)
        init_project(root)
        (root / "token.json").unlink()
        (root / "group.conf").unlink()
        assert run_cli("snapshot", cwd=root).exit_code == 0
        r = run_cli("restore", "token.json", "group.conf", cwd=root)
        assert r.exit_code == 0, r.stderr
    finally:
        os.umask(old_umask)
    assert oct(stat.S_IMODE((root / "token.json").stat().st_mode)) == "0o600"
    assert oct(stat.S_IMODE((root / "group.conf").stat().st_mode)) == "0o640"


def test_deleted_files_come_back_by_bare_name_without_at(tmp_path: Path) -> None:
    """The everyday path: `guardian restore NAME` after `rm -rf`, no snapshot id needed."""
    root, _snap = _setup(tmp_path)
    expected = _expected(root)
    shutil.rmtree(root / "src")
    assert run_cli("snapshot", cwd=root).exit_code == 0
    for name, rel in (("run.sh", "src/run.sh"), ("mod.py", "src/deep/er/mod.py"), ("app.py", "src/app.py")):
        r = run_cli("restore", name, cwd=root)
        assert r.exit_code == 0, r.stderr
        assert (root / rel).read_bytes() == expected[rel][0]
        assert stat.S_IMODE((root / rel).stat().st_mode) == expected[rel][1]
    record("10", restores=3, restores_identical=3)


# --------------------------------------------------------------------------- 18: modes, owners, hard links


@pytest.mark.parametrize("mode", [0o640, 0o600, 0o444, 0o750, 0o2775], ids=oct)
@pytest.mark.parametrize("how", ["restore", "rollback"])
def test_restore_onto_a_hard_linked_file_keeps_mode_and_replaces_the_inode(tmp_path: Path, mode: int, how: str) -> None:
    root = tmp_path / "proj"
    good = b"the good version\n" * 100
    target = root / "data.txt"
    root.mkdir()
    target.write_bytes(good)
    target.chmod(mode)  # before the snapshot: the exec bit follows the snapshot, the rest stays the file's
    paths = init_project(root, {"other.txt": b"other\n"})
    snap = head(paths)
    assert snap is not None
    inside_link = root / "alias.txt"  # a second name inside the root
    outside_link = tmp_path / "outside-link.txt"  # and one outside it
    os.link(target, inside_link)
    os.link(target, outside_link)
    chowned = os.geteuid() == 0
    if chowned:
        os.chown(target, 65534, 65534)
        # Linux clears setgid on a group-executable file when it is chowned, even by root:
        # put the mode back so the test checks guardian, not chown(2).
        target.chmod(mode)
    with open(target, "r+b") as handle:  # clobber in place: every link sees it
        handle.write(b"CLOBBERED" * 10)
    clobbered = target.read_bytes()
    old_inode = target.stat().st_ino
    if how == "restore":
        r = run_cli("restore", "--at", snap, "data.txt", cwd=root)
    else:
        r = run_cli("rollback", "--to", snap, "--force", "data.txt", cwd=root)
    assert r.exit_code == 0, r.stderr
    st = target.stat()
    ok = target.read_bytes() == good and stat.S_IMODE(st.st_mode) == mode
    outside_changed = outside_link.read_bytes() != clobbered
    record("18", restores=1, restores_identical=int(ok), writes_outside_root=int(outside_changed))
    assert target.read_bytes() == good
    assert oct(stat.S_IMODE(st.st_mode)) == oct(mode)
    if chowned:
        assert (st.st_uid, st.st_gid) == (65534, 65534)
    # The documented policy: a new inode; the other links keep the old content and are not written through.
    assert st.st_ino != old_inode
    assert outside_link.read_bytes() == clobbered and outside_link.stat().st_ino == old_inode
    assert inside_link.read_bytes() == clobbered
