"""Hand a command to a running watcher's warm server, or say that this process must run it.

A ``guardian`` command spends most of its time importing (click, the policy engine, pygit2,
the capture stack) before it does ~10 ms of work.  A running watcher keeps a server with all
of that imported (guardian.warm.server); a command run while it is up connects to its Unix
socket, passes its stdin, stdout and stderr, its working directory, umask, arguments and
environment, and the server forks a worker that runs the command as this process would,
writing straight to this process's terminal or pipes.  This process waits, forwards ^C,
SIGTERM, SIGHUP and SIGQUIT to the worker, and exits with the worker's exit code.

:func:`run_warm` returns None whenever the command must run here instead: no server, a
server started under other code or settings, ``GUARDIAN_WARM=0``, a closed standard stream,
a command that must own its process.  Nothing has run then, so running it here is safe.
Builtin modules only: this runs before every command.
"""

from __future__ import annotations

import os
import sys

from guardian.warm.wire import (
    ENV_TRACE,
    ENV_WARM,
    HANDSHAKE_TIMEOUT,
    LIMITS,
    OWN_PROCESS_COMMANDS,
    Request,
    home_dir,
    run_dir,
    server_pid,
)

# Not typing.TYPE_CHECKING: importing typing (and collections.abc) costs ~10 ms here.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from _socket import socket
    from collections.abc import Sequence

FORWARDED_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")
# sockaddr_un's sun_path holds 108 bytes on Linux and 104 on macOS, its NUL included.
SUN_PATH_MAX = 103
LOST_WORKER = (
    "guardian: error: the watcher's warm server lost the worker running this command (pid {pid}) "
    "before it reported an exit code; check the result, and rerun with GUARDIAN_WARM=0 to run it in its own process"
)


def _trace(message: str) -> None:
    if os.environ.get(ENV_TRACE) == "1":
        os.write(2, f"guardian warm: {message}\n".encode(errors="backslashreplace"))


def _wanted(args: Sequence[str]) -> bool:
    if os.environ.get(ENV_WARM) == "0":
        return False
    options = args[: list(args).index("--")] if "--" in args else args
    if any(a in OWN_PROCESS_COMMANDS for a in options):
        return False
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            return False  # a closed standard stream cannot be handed over
    return sys.stdin is not None and sys.stdout is not None and sys.stderr is not None


def _request(entry: bytes, home: str, args: Sequence[str]) -> Request | None:
    try:
        cwd = os.getcwdb()
    except OSError:
        return None  # a deleted working directory: the command reports it itself
    mask = os.umask(0o22)
    os.umask(mask)
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    streams = (sys.stdin, sys.stdout, sys.stderr)
    import resource  # a builtin extension: no Python-level imports

    limits = {name: resource.getrlimit(getattr(resource, name)) for name in LIMITS if hasattr(resource, name)}
    return Request(
        entry=entry,
        home=os.fsencode(home),
        package=os.fsencode(package),
        executable=os.fsencode(sys.executable),
        cwd=cwd,
        umask=mask,
        encodings=(streams[0].encoding, streams[1].encoding, streams[2].encoding, sys.getfilesystemencoding()),
        errors=streams[1].errors or "strict",
        limits=limits,
        argv=[os.fsencode(a) for a in (sys.argv[0] if sys.argv else "guardian", *args)],
        env=dict(os.environb),
    )


class _Channel:
    """Newline-ended messages from the server, over the connected socket."""

    def __init__(self, sock: socket) -> None:
        self.sock = sock
        self.buffer = b""

    def read(self) -> bytes | None:
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(256)
            if not chunk:
                return None
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line


def _connect(directory: str, name: str) -> socket | None:
    import _socket

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    path = os.path.join(directory, name)
    try:
        if len(os.fsencode(path)) <= SUN_PATH_MAX:
            sock.connect(path)
        else:
            # Too long for sockaddr_un: connect by the short name from inside the directory.
            here = os.open(".", os.O_RDONLY)
            try:
                os.chdir(directory)
                sock.connect(name)
            finally:
                os.fchdir(here)
                os.close(here)
    except OSError:
        sock.close()
        return None
    return sock


def run_warm(args: Sequence[str], entry: bytes) -> int | None:
    """The exit code of ``args`` run by a warm server; None when this process must run it.

    ``entry`` says how this process was started, so the worker runs the same code:
    b"module" (``python -m guardian``, guardian.warm.dispatch) or b"console" (the ``guardian``
    script, guardian.cli.main).
    """
    if not _wanted(args):
        return None
    home = home_dir()
    if home is None:
        return None
    directory = run_dir(home)
    try:
        names = os.listdir(directory)
    except OSError:
        return None
    servers = sorted((pid, name) for name in names if (pid := server_pid(name)) is not None)
    if not servers:
        return None
    request = _request(entry, home, args)
    if request is None:
        return None
    try:
        frame = request.encode()
    except ValueError:
        return None
    for _pid, name in reversed(servers):  # the newest server first
        sock = _connect(directory, name)
        if sock is None:
            continue
        try:
            code = _run_on(sock, frame)
        finally:
            sock.close()
        if code is not None:
            return code
    return None


def _run_on(sock: socket, frame: bytes) -> int | None:
    import _signal  # type: ignore[import-not-found]  # the signal module imports enum: ~4 ms
    import _socket

    fds = b"".join(fd.to_bytes(4, sys.byteorder, signed=True) for fd in (0, 1, 2))
    channel = _Channel(sock)
    try:
        sock.settimeout(HANDSHAKE_TIMEOUT)
        sock.sendmsg([frame], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
        answer = channel.read()
    except OSError:
        return None
    if answer is None or not answer.startswith(b"P"):
        reason = answer[1:].decode(errors="replace") if answer else "the server closed the connection"
        _trace(f"running in this process: {reason}")
        return None
    worker = int(answer[1:])
    forwarded = [getattr(_signal, name) for name in FORWARDED_SIGNALS if hasattr(_signal, name)]
    previous = {}
    sent: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        sent.append(signum)
        try:
            os.kill(worker, signum)
        except OSError:
            pass  # it has just exited

    for signum in forwarded:
        previous[signum] = _signal.signal(signum, forward)
    try:
        try:
            sock.sendall(b"G")
        except OSError:
            return None  # the worker is gone before it started: nothing ran
        _trace(f"served by worker {worker}")
        sock.settimeout(None)
        try:
            result = channel.read()
        except OSError:
            result = None
    finally:
        for signum, handler in previous.items():
            _signal.signal(signum, handler)
    if result is not None and result.startswith(b"X"):
        return int(result[1:])
    fatal = [s for s in sent if s != _signal.SIGINT]
    if fatal:
        # The worker died of the signal this process passed on: die of it too, so a shell
        # or a supervisor sees what it would have seen without the warm server.
        _signal.signal(fatal[-1], _signal.SIG_DFL)
        os.kill(os.getpid(), fatal[-1])
        return 128 + fatal[-1]
    os.write(2, (LOST_WORKER.format(pid=worker) + "\n").encode())
    return 1


def console_main() -> int:
    """The ``guardian`` console script: a warm server's answer, else the command run here."""
    code = run_warm(sys.argv[1:], b"console")
    if code is not None:
        return code
    from guardian.cli import main

    return main()
