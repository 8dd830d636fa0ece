"""guardian.util.fs on a real file system: atomic writes, the no-follow walk, reads, temp names.

The ordering checks wrap os.replace and os.fsync with spies that call the real
functions, so the files on disk are the real result of every write.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from guardian.errors import OperationFailed, PathRefused
from guardian.util.fs import (
    TEMP_PREFIX,
    atomic_write_file,
    clear_stale_temps,
    is_stale_temp,
    lstat_at,
    open_parent,
    read_state,
    remove_user_file,
    temp_name,
    write_user_file,
    write_user_symlink,
)


def _dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory outside the project root that no write may reach."""
    other = tmp_path / "outside"
    other.mkdir()
    (other / "f.txt").write_bytes(b"outside\n")
    return other


# --------------------------------------------------------------------------- atomic_write_file


def test_atomic_write_goes_through_a_synced_temp_file_in_the_same_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "state.json"
    target.write_bytes(b"old")
    order: list[str] = []
    renames: list[tuple[Path, bytes, int, Path]] = []
    synced: list[tuple[str, int]] = []
    real_replace, real_fsync = os.replace, os.fsync

    def spy_replace(src: str | Path, dst: str | Path) -> None:
        source = Path(src)
        order.append("replace")
        renames.append((source, source.read_bytes(), _mode(source), Path(dst)))
        real_replace(src, dst)

    def spy_fsync(fd: int) -> None:
        st = os.fstat(fd)
        order.append("fsync")
        synced.append(("dir" if stat.S_ISDIR(st.st_mode) else "file", st.st_ino))
        real_fsync(fd)

    monkeypatch.setattr(os, "replace", spy_replace)
    monkeypatch.setattr(os, "fsync", spy_fsync)
    atomic_write_file(target, b"new contents", 0o640)
    monkeypatch.undo()

    assert order == ["fsync", "replace", "fsync"]
    ((temp, data_at_rename, mode_at_rename, dst),) = renames
    assert temp.parent == tmp_path
    assert temp.name.startswith(f"{TEMP_PREFIX}{os.getpid()}-state.json.")
    assert dst == target
    assert data_at_rename == b"new contents" and mode_at_rename == 0o640
    # The file is synced before the rename publishes it, its directory after.
    assert synced == [("file", target.stat().st_ino), ("dir", tmp_path.stat().st_ino)]
    assert target.read_bytes() == b"new contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_atomic_write_sets_the_requested_mode_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        atomic_write_file(tmp_path / "a", b"x", 0o644)
        atomic_write_file(tmp_path / "b", b"x")
        existing = tmp_path / "c"
        existing.write_bytes(b"old")
        existing.chmod(0o666)
        atomic_write_file(existing, b"new", 0o600)
    finally:
        os.umask(old)
    assert _mode(tmp_path / "a") == 0o644
    assert _mode(tmp_path / "b") == 0o600  # the default: guardian's state files are private
    assert _mode(existing) == 0o600 and existing.read_bytes() == b"new"


def test_atomic_write_that_cannot_rename_leaves_no_temp_file(tmp_path: Path) -> None:
    blocker = tmp_path / "target"
    blocker.mkdir()
    (blocker / "keep").write_bytes(b"k")
    with pytest.raises(IsADirectoryError):
        atomic_write_file(blocker, b"data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"]
    assert (blocker / "keep").read_bytes() == b"k"


# --------------------------------------------------------------------------- temp names


def test_temp_name_carries_this_pid_and_random_hex() -> None:
    first, second = temp_name(), temp_name()
    prefix = f"{TEMP_PREFIX}{os.getpid()}-"
    assert first.startswith(prefix) and second.startswith(prefix)
    tail = first[len(prefix) :]
    assert len(tail) == 12 and int(tail, 16) >= 0
    assert first != second


def test_stale_temp_detection() -> None:
    dead = _dead_pid()
    assert is_stale_temp(f"{TEMP_PREFIX}{dead}-0123456789ab")
    assert not is_stale_temp(temp_name())  # ours: this process is still writing it
    assert not is_stale_temp(f"{TEMP_PREFIX}1-0123456789ab")  # pid 1 is alive
    # The old form without a pid was only written under the writer lock: stale.
    assert is_stale_temp(f"{TEMP_PREFIX}0123456789ab")
    assert not is_stale_temp(f"{TEMP_PREFIX}0123456789a")
    assert not is_stale_temp(f"{TEMP_PREFIX}0123456789AB")
    assert not is_stale_temp(f"{TEMP_PREFIX}x{dead}-0123456789ab")
    assert not is_stale_temp(f".other-tmp-{dead}-0123456789ab")
    assert not is_stale_temp("notes.txt")


def test_clear_stale_temps_removes_only_dead_writers_files(tmp_path: Path) -> None:
    dead = _dead_pid()
    stale_file = f"{TEMP_PREFIX}{dead}-aaaaaaaaaaaa"
    legacy = f"{TEMP_PREFIX}bbbbbbbbbbbb"
    live = temp_name()
    stale_dir = f"{TEMP_PREFIX}{dead}-cccccccccccc"
    for name in (stale_file, legacy, live, "user.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / stale_dir).mkdir()
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        removed = clear_stale_temps(fd)
    finally:
        os.close(fd)
    assert sorted(removed) == sorted([stale_file, legacy])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live, stale_dir, "user.txt"])


# --------------------------------------------------------------------------- the no-follow walk


def test_open_parent_creates_missing_directories(tmp_path: Path) -> None:
    with open_parent(tmp_path, "a/b/c.txt", create=True) as (dir_fd, leaf):
        assert leaf == "c.txt"
        assert os.fstat(dir_fd).st_ino == (tmp_path / "a" / "b").stat().st_ino
    assert (tmp_path / "a" / "b").is_dir()
    with pytest.raises(FileNotFoundError), open_parent(tmp_path, "x/y.txt"):
        pass
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("rel", "message"),
    [
        ("../escape.txt", "refusing path '../escape.txt': '..' components are not allowed"),
        ("a/./b", "refusing path 'a/./b': '.' components are not allowed"),
        ("a//b", "refusing path 'a//b': '//' components are not allowed"),
        ("/etc/passwd", "refusing path '/etc/passwd': it must be relative to the project root"),
        (".git/config", "refusing path '.git/config': guardian never reads or writes inside a .git directory"),
        ("sub/.GIT/HEAD", "refusing path 'sub/.GIT/HEAD': guardian never reads or writes inside a .git directory"),
        ("", "refusing path '': empty or contains a NUL byte"),
        ("a\x00b", "refusing path 'a\\x00b': empty or contains a NUL byte"),
    ],
)
def test_open_parent_refuses_paths_that_leave_the_root(tmp_path: Path, rel: str, message: str) -> None:
    with pytest.raises(PathRefused) as info, open_parent(tmp_path, rel, create=True):
        pass
    assert str(info.value) == message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("rel", "walked"), [("link/f.txt", "link"), ("a/link/f.txt", "a/link")])
def test_a_symlinked_parent_is_refused_for_writes(tmp_path: Path, outside: Path, rel: str, walked: str) -> None:
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "link").symlink_to(outside)
    (root / "a" / "link").symlink_to(outside)
    with pytest.raises(PathRefused) as info:
        write_user_file(root, rel, b"pwned\n")
    assert str(info.value) == (
        f"refusing path '{rel}': '{walked}' is a symlink or not a directory; guardian never follows symlinks in a path"
    )
    with pytest.raises(PathRefused):
        write_user_symlink(root, rel, b"/etc/passwd")
    with pytest.raises(PathRefused):
        remove_user_file(root, rel)
    assert sorted(p.name for p in outside.iterdir()) == ["f.txt"]
    assert (outside / "f.txt").read_bytes() == b"outside\n"


def test_a_file_where_a_directory_should_be_is_refused(tmp_path: Path) -> None:
    (tmp_path / "plain").write_bytes(b"x")
    with pytest.raises(PathRefused) as info:
        write_user_file(tmp_path, "plain/inner.txt", b"y")
    assert str(info.value) == (
        "refusing path 'plain/inner.txt': 'plain' is a symlink or not a directory; "
        "guardian never follows symlinks in a path"
    )


def test_reads_through_a_symlinked_parent_see_nothing(tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside)
    assert (root / "link" / "f.txt").read_bytes() == b"outside\n"  # the OS would follow it
    assert read_state(root, "link/f.txt").kind == "missing"
    assert lstat_at(root, "link/f.txt") is None


# --------------------------------------------------------------------------- read_state and lstat_at


def test_read_state_of_each_kind(tmp_path: Path) -> None:
    (tmp_path / "f.bin").write_bytes(b"\x00\x01data")
    (tmp_path / "f.bin").chmod(0o640)
    (tmp_path / "ln").symlink_to("f.bin")
    (tmp_path / "dangling").symlink_to("nowhere/at/all")
    (tmp_path / "dir").mkdir()
    os.mkfifo(tmp_path / "fifo")

    state = read_state(tmp_path, "f.bin")
    assert (state.kind, state.data, stat.S_IMODE(state.mode)) == ("file", b"\x00\x01data", 0o640)
    assert state.st is not None and state.st.st_size == 6

    link = read_state(tmp_path, "ln")
    assert (link.kind, link.data) == ("symlink", b"f.bin")
    assert stat.S_ISLNK(link.mode)
    assert read_state(tmp_path, "dangling").data == b"nowhere/at/all"

    assert read_state(tmp_path, "dir").kind == "other"
    assert read_state(tmp_path, "fifo").kind == "other"  # never opened: a fifo read would block
    missing = read_state(tmp_path, "nope.txt")
    assert (missing.kind, missing.data, missing.st) == ("missing", b"", None)
    assert read_state(tmp_path, "f.bin/under").kind == "missing"


def test_read_state_past_max_size_reads_no_data(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"x" * 100)
    over = read_state(tmp_path, "big", max_size=99)
    assert (over.kind, over.data) == ("file", b"")
    assert over.st is not None and over.st.st_size == 100
    assert read_state(tmp_path, "big", max_size=100).data == b"x" * 100


def test_read_state_of_a_refused_path_is_missing(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_bytes(b"[core]\n")
    assert read_state(tmp_path, ".git/config").kind == "missing"
    assert read_state(tmp_path, "../outside").kind == "missing"


def test_lstat_at_does_not_follow_the_leaf(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"abc")
    (tmp_path / "d" / "ln").symlink_to("f")
    st = lstat_at(tmp_path, "d/f")
    assert st is not None and stat.S_ISREG(st.st_mode) and st.st_size == 3
    link = lstat_at(tmp_path, "d/ln")
    assert link is not None and stat.S_ISLNK(link.st_mode)
    assert lstat_at(tmp_path, "d/missing") is None
    assert lstat_at(tmp_path, "nodir/f") is None
    assert lstat_at(tmp_path, "d/f/under") is None
    assert lstat_at(tmp_path, "../d") is None


# --------------------------------------------------------------------------- user-file writes


def test_rewrite_keeps_the_users_permission_bits(tmp_path: Path) -> None:
    target = tmp_path / "conf.ini"
    target.write_bytes(b"old")
    target.chmod(0o640)
    write_user_file(tmp_path, "conf.ini", b"new")
    assert (target.read_bytes(), _mode(target)) == (b"new", 0o640)
    write_user_file(tmp_path, "conf.ini", b"exec", executable=True)
    assert _mode(target) == 0o750  # the exec bit follows the read bits
    write_user_file(tmp_path, "conf.ini", b"plain", executable=False)
    assert _mode(target) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conf.ini"]


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_rewrite_as_root_keeps_the_owner_and_setuid_bit(tmp_path: Path) -> None:
    target = tmp_path / "tool"
    target.write_bytes(b"old")
    os.chown(target, 1234, 5678)
    target.chmod(0o4755)
    write_user_file(tmp_path, "tool", b"new", executable=True)
    st = target.stat()
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    assert stat.S_IMODE(st.st_mode) == 0o4755  # chown clears setuid: fchmod must come after it


@pytest.mark.usefixtures("umask_022")
@pytest.mark.parametrize(
    ("perm", "executable", "expected"),
    [
        (None, False, 0o644),
        (None, True, 0o755),
        (0o600, False, 0o600),
        (0o640, True, 0o750),
        (0o755, False, 0o644),
        (0o4755, True, 0o755),  # a restored file belongs to whoever restores it: no setuid
        (0o2750, False, 0o640),
    ],
)
def test_new_file_mode(tmp_path: Path, perm: int | None, executable: bool, expected: int) -> None:
    write_user_file(tmp_path, "sub/new.txt", b"data", executable=executable, perm=perm)
    target = tmp_path / "sub" / "new.txt"
    assert target.read_bytes() == b"data"
    assert _mode(target) == expected


def test_write_over_a_symlink_replaces_the_link_not_its_target(tmp_path: Path, outside: Path) -> None:
    (tmp_path / "ln").symlink_to(outside / "f.txt")
    write_user_file(tmp_path, "ln", b"mine")
    assert not (tmp_path / "ln").is_symlink()
    assert (tmp_path / "ln").read_bytes() == b"mine"
    assert (outside / "f.txt").read_bytes() == b"outside\n"


def test_write_refuses_a_directory_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "keep").write_bytes(b"k")
    with pytest.raises(OperationFailed) as info:
        write_user_file(tmp_path, "d", b"x")
    assert str(info.value) == "cannot restore 'd': a directory is in the way; move it aside first"
    assert (tmp_path / "d" / "keep").read_bytes() == b"k"


def test_write_clears_a_dead_writers_temp_in_the_same_directory(tmp_path: Path) -> None:
    dead = _dead_pid()
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / f"{TEMP_PREFIX}{dead}-aaaaaaaaaaaa").write_bytes(b"half")
    (tmp_path / f"{TEMP_PREFIX}{dead}-bbbbbbbbbbbb").write_bytes(b"other dir")
    write_user_file(tmp_path, "sub/f.txt", b"x")
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["f.txt"]
    assert (tmp_path / f"{TEMP_PREFIX}{dead}-bbbbbbbbbbbb").exists()  # only the written directory is swept


def test_a_writer_killed_before_the_rename_leaves_the_old_file_and_a_stale_temp(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_bytes(b"old\n")
    script = (
        "import sys; from pathlib import Path; from guardian.util.fs import write_user_file; "
        "write_user_file(Path(sys.argv[1]), 'f.txt', b'new\\n')"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        env={**os.environ, "GUARDIAN_CRASH_AT": "restore-after-temp"},
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == -9, proc.stderr
    assert (tmp_path / "f.txt").read_bytes() == b"old\n"
    leftovers = [p for p in tmp_path.iterdir() if p.name != "f.txt"]
    assert len(leftovers) == 1
    assert leftovers[0].read_bytes() == b"new\n"
    assert is_stale_temp(leftovers[0].name)
    write_user_file(tmp_path, "f.txt", b"newer\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]
    assert (tmp_path / "f.txt").read_bytes() == b"newer\n"


def test_symlink_write_and_remove(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"file")
    write_user_symlink(tmp_path, "f", b"../target")
    assert os.readlink(tmp_path / "f") == "../target"
    write_user_symlink(tmp_path, "new/link", b"x")
    assert os.readlink(tmp_path / "new" / "link") == "x"
    assert remove_user_file(tmp_path, "f") is True
    assert not os.path.lexists(tmp_path / "f")
    assert remove_user_file(tmp_path, "f") is False
    assert remove_user_file(tmp_path, "nodir/f") is False
    with pytest.raises(OperationFailed) as info:
        remove_user_file(tmp_path, "new")
    assert str(info.value) == "cannot remove 'new': it is a directory now"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new"]
