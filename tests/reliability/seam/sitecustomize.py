"""Fault injection at the I/O seam, loaded into a guardian child through PYTHONPATH.

This file is never imported by the test process itself.  The reliability tests
put this directory on a child's PYTHONPATH, so Python imports it at start-up
(``sitecustomize``), before guardian runs.  It does nothing unless told to.

GUARDIAN_FAULT="<seam>:<n>:<errno>[:once]" makes the n-th matching call fail
with that errno (and every later one too, unless ``once``: a full disk stays
full, an I/O error may be transient).  A call matches when guardian itself
issues it: the innermost Python frame is a module of the guardian package.
Writes to stdout and stderr (made from click), Python's own .pyc writes and the
test harness are never counted, so guardian can always report the error.

Seams:
  py-write, py-fsync, py-pwrite
                        wrap os.write / os.fsync / os.pwrite (pure Python, works everywhere)
  fiu-write, fiu-pwrite, fiu-fsync, fiu-fdatasync, fiu-open
                        libc-level failures through libfiu's POSIX preload
                        (the child must run under ``fiu-run -x``); these reach
                        inside libgit2 and SQLite, which Python wrappers cannot.

GUARDIAN_FAULT_LOG=<path> receives one JSON line at exit: matching calls seen
and faults fired.
"""

from __future__ import annotations

import atexit
import ctypes
import errno
import json
import os
import sys
from typing import Any

_SPEC = os.environ.get("GUARDIAN_FAULT", "")
_LOG = os.environ.get("GUARDIAN_FAULT_LOG", "")
_GUARDIAN_DIR = os.sep + "guardian" + os.sep
_FIU_POINTS = {
    "fiu-write": b"posix/io/rw/write",
    "fiu-pwrite": b"posix/io/rw/pwrite",
    "fiu-fsync": b"posix/io/sync/fsync",
    "fiu-fdatasync": b"posix/io/sync/fdatasync",
    "fiu-open": b"posix/io/oc/open",
}


class _State:
    seam = ""
    nth = 0
    code = 0
    once = False
    calls = 0
    fired = 0
    busy = False
    where: list[str] = []  # noqa: RUF012 - a module-level singleton


def _from_guardian(frame: Any) -> str | None:
    """The guardian module that issued the call, if the innermost Python frame is guardian's."""
    if frame is None:
        return None
    name = frame.f_code.co_filename
    # guardian.cli.output writes only stdout and stderr, which a full disk does not fail.
    if name.endswith(os.path.join("cli", "output.py")):
        return None
    if _GUARDIAN_DIR in name and (os.sep + "tests" + os.sep) not in name:
        return f"{os.path.basename(name)}:{frame.f_lineno}"
    return None


def _should_fail(frame: Any) -> bool:
    if _State.busy:
        return False
    where = _from_guardian(frame)
    if where is None:
        return False
    _State.calls += 1
    if _State.calls == _State.nth or (_State.calls > _State.nth and not _State.once):
        _State.fired += 1
        if len(_State.where) < 20:
            _State.where.append(where)
        return True
    return False


def _report() -> None:
    if not _LOG:
        return
    _State.busy = True
    if _State.seam.startswith("fiu-") and _fiu is not None:
        _fiu.fiu_disable(_FIU_POINTS[_State.seam])
    data = {"seam": _State.seam, "nth": _State.nth, "calls": _State.calls, "fired": _State.fired, "where": _State.where}
    with open(_LOG, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(data) + "\n")


def _install_python(seam: str) -> None:
    name = {"py-write": "write", "py-fsync": "fsync", "py-pwrite": "pwrite"}[seam]
    real = getattr(os, name)

    def faulty(*args: Any, **kwargs: Any) -> Any:
        if _should_fail(sys._getframe(1)):
            raise OSError(_State.code, os.strerror(_State.code))
        return real(*args, **kwargs)

    setattr(os, name, faulty)


_fiu: Any = None
_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int,
    ctypes.c_char_p,
    ctypes.POINTER(ctypes.c_int),
    ctypes.POINTER(ctypes.c_void_p),
    ctypes.POINTER(ctypes.c_uint),
)
_callbacks: list[Any] = []


def _install_fiu(seam: str) -> None:
    global _fiu
    try:
        _fiu = ctypes.CDLL("libfiu.so.1", mode=ctypes.RTLD_GLOBAL)
    except OSError:
        for candidate in ("/usr/lib/libfiu.so.1.1", "/usr/lib/x86_64-linux-gnu/libfiu.so.1", "/usr/lib/libfiu.so"):
            try:
                _fiu = ctypes.CDLL(candidate, mode=ctypes.RTLD_GLOBAL)
                break
            except OSError:
                continue
    if _fiu is None:
        sys.stderr.write("seam: libfiu is not loadable; run under 'fiu-run -x'\n")
        return

    def decide(_name: bytes, failnum: Any, failinfo: Any, _flags: Any) -> int:
        # A write on a thread with no Python frame under this callback (a C library's own
        # thread) has no guardian caller to blame: sys._getframe(1) raises there.
        caller = sys._getframe(0).f_back
        if not _should_fail(caller):
            return 0
        failnum[0] = 1
        failinfo[0] = _State.code  # the POSIX preload uses failinfo as errno
        return 1

    callback = _CALLBACK(decide)
    _callbacks.append(callback)  # keep it alive for the life of the process
    _fiu.fiu_enable_external.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, _CALLBACK]
    _fiu.fiu_disable.argtypes = [ctypes.c_char_p]
    if _fiu.fiu_enable_external(_FIU_POINTS[seam], 1, None, 0, callback) != 0:
        sys.stderr.write(f"seam: cannot enable {_FIU_POINTS[seam]!r}\n")


def _setup() -> None:
    if not _SPEC:
        return
    parts = _SPEC.split(":")
    _State.seam, _State.nth = parts[0], int(parts[1])
    _State.code = getattr(errno, parts[2])
    _State.once = len(parts) > 3 and parts[3] == "once"
    atexit.register(_report)
    if _State.seam.startswith("py-"):
        _install_python(_State.seam)
    else:
        _install_fiu(_State.seam)


_setup()
