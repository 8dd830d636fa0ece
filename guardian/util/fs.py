"""Durable, symlink-safe file operations.

Every write guardian makes goes through here: a temp file in the same directory,
fsync, rename over the target, fsync the directory.  User files are reached by
walking from the project root one component at a time with O_NOFOLLOW, so a
symlinked parent can never redirect a write (or a read) outside the root.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from guardian.errors import OperationFailed, PathRefused
from guardian.paths import check_relative
from guardian.util.crash import crash_point
from guardian.util.gitfile import POINTER_NAME, pointer_refusal
from guardian.util.lock import pid_alive

TEMP_PREFIX = ".guardian-tmp-"
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)


def fsync_dir(path_or_fd: Path | int) -> None:
    if isinstance(path_or_fd, int):
        os.fsync(path_or_fd)
        return
    fd = os.open(path_or_fd, _DIR_FLAGS)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def temp_name() -> str:
    """``.guardian-tmp-<pid>-<hex>``: the pid tells a later command whether the writer is gone."""
    return f"{TEMP_PREFIX}{os.getpid()}-{os.urandom(6).hex()}"


def is_stale_temp(name: str) -> bool:
    """A ``.guardian-tmp-*`` name left by a writer that is no longer running.

    ``<pid>-...`` names are stale once that pid is dead; the older ``<12 hex>``
    form (no pid) was only ever written by a user-file write under the writer
    lock, so it is stale too.  Anything else is not ours to remove.
    """
    if not name.startswith(TEMP_PREFIX):
        return False
    rest = name[len(TEMP_PREFIX) :]
    pid, sep, _tail = rest.partition("-")
    if sep and pid.isdigit():
        return int(pid) != os.getpid() and not pid_alive(int(pid))
    return len(rest) == 12 and all(c in "0123456789abcdef" for c in rest)


def clear_stale_temps(dir_fd: int) -> list[str]:
    """Unlink the stale ``.guardian-tmp-*`` files (a killed restore's copies) in one directory."""
    removed: list[str] = []
    try:
        names = os.listdir(dir_fd)
    except OSError:
        return removed
    for name in names:
        if not is_stale_temp(name):
            continue
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                continue
            os.unlink(name, dir_fd=dir_fd)
        except OSError:
            continue  # gone already, or not ours to remove: the write itself goes on
        removed.append(name)
    return removed


def atomic_write_file(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Atomically replace one of guardian's own state files."""
    directory = path.parent
    tmp = directory / f"{TEMP_PREFIX}{os.getpid()}-{path.name}.{os.urandom(4).hex()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        try:
            os.fchmod(fd, mode)
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(directory)


DirMode = Callable[[str], int | None]  # a directory's root-relative path -> its recorded bits, if known


def make_dir_mode(recorded: int) -> int:
    """The bits a recreated directory gets from its recorded ones.

    Never more open than recorded; but always rwx for its owner (so the restore can write
    into it, and a 0500 directory does not lock out the files restored under it), and
    without setuid/setgid: it belongs to whoever restores it.
    """
    return (recorded & 0o1777 & ~0o6000) | 0o700


@contextmanager
def open_parent(
    root: Path, rel: str, *, create: bool = False, dir_mode: DirMode | None = None
) -> Iterator[tuple[int, str]]:
    """Yield (fd of rel's parent directory, leaf name), reached without following symlinks.

    With create=True, missing parent directories are made (and their parents fsynced).
    Refuses (PathRefused) an empty, ".", ".." or ".git" component and a NUL byte, so no
    caller can be steered outside the root or into a .git directory.  A subdirectory's
    own ``.git`` may be the leaf (a worktree pointer file): only its parent is opened here.
    ``dir_mode`` gives the recorded bits of a directory this has to make (see make_dir_mode).
    """
    check_relative(rel)
    parts = rel.split("/")
    leaf = parts.pop()
    fd = os.open(root, _DIR_FLAGS)
    try:
        walked: list[str] = []
        for part in parts:
            walked.append(part)
            made = False
            if create:
                try:
                    os.mkdir(part, 0o777, dir_fd=fd)
                    os.fsync(fd)
                    made = True
                except FileExistsError:
                    pass
            try:
                next_fd = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                    raise PathRefused(
                        f"refusing path '{rel}': '{'/'.join(walked)}' is a symlink or not a directory; "
                        "guardian never follows symlinks in a path"
                    ) from None
                raise
            os.close(fd)
            fd = next_fd
            bits = dir_mode("/".join(walked)) if made and dir_mode is not None else None
            if bits is not None:
                os.fchmod(fd, make_dir_mode(bits))
        yield fd, leaf
    finally:
        os.close(fd)


class FileState(NamedTuple):
    """What is at a path right now, read without following symlinks.

    A NamedTuple, not a frozen dataclass: the same fields, equality, hash, repr and
    immutability, without ~1 ms of generated methods on every command that reads a file.
    """

    kind: str  # "file", "symlink", "missing", "other"
    data: bytes = b""
    mode: int = 0
    st: os.stat_result | None = None


def lstat_at(root: Path, rel: str) -> os.stat_result | None:
    try:
        with open_parent(root, rel) as (dir_fd, leaf):
            return os.stat(leaf, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    except PathRefused:
        return None
    except NotADirectoryError:
        return None


def read_state(root: Path, rel: str, max_size: int | None = None) -> FileState:
    """Read a file or symlink under root.  Symlinks are returned as their target text."""
    try:
        with open_parent(root, rel) as (dir_fd, leaf):
            st = os.stat(leaf, dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                target = os.readlink(leaf, dir_fd=dir_fd)
                return FileState("symlink", os.fsencode(target), st.st_mode, st)
            if not stat.S_ISREG(st.st_mode):
                return FileState("other", b"", st.st_mode, st)
            if max_size is not None and st.st_size > max_size:
                return FileState("file", b"", st.st_mode, st)
            fd = os.open(leaf, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            try:
                st = os.fstat(fd)
                chunks: list[bytes] = []
                while chunk := os.read(fd, 1 << 20):
                    chunks.append(chunk)
                return FileState("file", b"".join(chunks), st.st_mode, st)
            finally:
                os.close(fd)
    except (FileNotFoundError, NotADirectoryError):
        return FileState("missing")
    except PathRefused:
        # A path whose parent became a symlink is, for capture purposes, gone from the tree.
        return FileState("missing")


def _target_mode(existing: os.stat_result | None, executable: bool, perm: int | None = None) -> int:
    if existing is not None and stat.S_ISREG(existing.st_mode):
        mode = stat.S_IMODE(existing.st_mode)
    elif perm is not None:
        # A file that is gone comes back with the bits it was captured with (0600 stays private),
        # less setuid/setgid: the new file belongs to whoever restores it, not to its old owner.
        mode = perm & 0o7777 & ~0o6000
    else:
        umask = os.umask(0)
        os.umask(umask)
        return (0o777 if executable else 0o666) & ~umask
    read_bits = (mode & 0o444) >> 2
    # Keep the user's permission bits (0640 stays 0640); only the exec bit follows the snapshot.
    return (mode | read_bits) if executable else (mode & ~0o111)


def write_user_file(
    root: Path,
    rel: str,
    data: bytes,
    *,
    executable: bool = False,
    perm: int | None = None,
    dir_mode: DirMode | None = None,
) -> None:
    """Atomically replace root/rel with data, keeping the existing file's mode and owner.

    perm: the permission bits to give the file if none is there now (its recorded bits);
    without it a new file gets the umask's default.  A ``.git`` file is written only as a
    worktree pointer that guardian.util.gitfile accepts (PathRefused otherwise).
    """
    if rel.rsplit("/", 1)[-1] == POINTER_NAME:
        why = pointer_refusal(root, rel, data)
        if why is not None:
            raise PathRefused(f"refusing to write '{rel}': {why}")
    with open_parent(root, rel, create=True, dir_mode=dir_mode) as (dir_fd, leaf):
        try:
            existing: os.stat_result | None = os.stat(leaf, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        if existing is not None and stat.S_ISDIR(existing.st_mode):
            raise OperationFailed(f"cannot restore '{rel}': a directory is in the way; move it aside first")
        mode = _target_mode(existing, executable, perm)
        clear_stale_temps(dir_fd)  # a killed restore's copy of this (or a sibling) file
        tmp = temp_name()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
        try:
            try:
                _write_all(fd, data)
                # chown first: the kernel clears setuid/setgid on chown, so fchmod must come after.
                if existing is not None and os.geteuid() == 0 and existing.st_uid != 0:
                    os.fchown(fd, existing.st_uid, existing.st_gid)
                os.fchmod(fd, mode)
                os.fsync(fd)
            finally:
                os.close(fd)
            crash_point("restore-after-temp")
            os.rename(tmp, leaf, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            _unlink_quietly(tmp, dir_fd)
            raise
        crash_point("restore-after-rename")
        os.fsync(dir_fd)


def write_user_symlink(root: Path, rel: str, target: bytes, *, dir_mode: DirMode | None = None) -> None:
    """Atomically make root/rel a symlink to target (the link itself; nothing is followed)."""
    if rel.rsplit("/", 1)[-1].lower() == POINTER_NAME:
        raise PathRefused(f"refusing to write '{rel}' as a symlink: git would follow it anywhere")
    with open_parent(root, rel, create=True, dir_mode=dir_mode) as (dir_fd, leaf):
        clear_stale_temps(dir_fd)
        tmp = temp_name()
        os.symlink(os.fsdecode(target), tmp, dir_fd=dir_fd)
        try:
            os.rename(tmp, leaf, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            _unlink_quietly(tmp, dir_fd)
            raise
        os.fsync(dir_fd)


def remove_user_file(root: Path, rel: str) -> bool:
    """Remove root/rel (a file or symlink, never a directory tree).  Returns False if already gone."""
    try:
        with open_parent(root, rel) as (dir_fd, leaf):
            st = os.stat(leaf, dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                raise OperationFailed(f"cannot remove '{rel}': it is a directory now")
            os.unlink(leaf, dir_fd=dir_fd)
            os.fsync(dir_fd)
            return True
    except (FileNotFoundError, NotADirectoryError):
        return False


def _unlink_quietly(name: str, dir_fd: int) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
