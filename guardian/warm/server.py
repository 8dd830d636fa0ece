"""The warm server: a watcher's child that has guardian imported and runs commands in pre-forked workers.

A watcher starts it (``python -P -m guardian.warm.server``, see guardian.watch.warm_process)
once it has caught up; it imports every guardian module once, compiles the watcher's
project's path patterns, then listens on ``<GUARDIAN_HOME>/run/warm-<pid>.sock`` with one
spare worker forked ahead.  The worker that takes a client (guardian.warm.client) checks
that the client runs this very code (same home, package, interpreter, file-name encoding,
import-time settings, no module file changed since the import), takes the client's stdin,
stdout and stderr, working directory, umask, limits, environment and arguments, waits for
the client's go-ahead, runs the command as ``python -m guardian`` or the ``guardian``
script would, and reports its exit code.  If the client disappears (SIGKILL), the worker
kills itself: stopping a command stops its work, as it would in its own process.

Why fork from a server rather than from the watcher: the watcher has threads (watchdog,
timers), and a fork copies only the forking thread, so locks another thread held stay held
forever in the child.  This server is single-threaded; its own session (setsid) keeps a
terminal's ^C from the watcher's terminal away from its workers.  It exits when its watcher
does (PR_SET_PDEATHSIG on Linux, a parent check every second everywhere), when asked
(SIGTERM), and when it finds its code out of date.
"""

from __future__ import annotations

import atexit
import gc
import importlib
import io
import os
import pkgutil
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from guardian.warm.wire import Request, identity_env, run_dir, server_pid, socket_name

MAX_FRAME = 4 << 20  # a request larger than this (an environment of megabytes) is refused
READ_TIMEOUT = 2.0  # seconds a connected client gets to send its request
# Modules not imported ahead: this one's entry point, and the module runner.
NOT_PRELOADED = frozenset({"guardian.__main__", "guardian.warm.server"})
CHECK_INTERVAL = 1.0  # seconds between checks that the parent still runs


# Set by the worker once its exit code is on its way: the client then closes the connection,
# and that end-of-file must not be taken for a killed client.
_reported = threading.Event()


class Refused(Exception):
    """The client must run the command itself; the message says why (sent as L<message>)."""


def preload() -> list[str]:
    """Import every guardian module and the heavy libraries they load lazily; the names that failed."""
    import guardian

    failed: list[str] = []
    for info in pkgutil.walk_packages(guardian.__path__, "guardian."):
        if info.name in NOT_PRELOADED:
            continue
        try:
            importlib.import_module(info.name)
        except Exception:  # noqa: BLE001 - a platform-specific module; its command imports it again and reports
            failed.append(info.name)
    # Loaded lazily by commands (found by recording what workers imported): who the user is
    # (getpass, pwd, termios), and the stream encodings a client may ask for.
    lazily = ("getpass", "pwd", "termios", "encodings.ascii", "encodings.utf_8", "encodings.latin_1")
    for name in ("click", "yaml", "sqlite3", "json", "tempfile", "subprocess", "traceback", *lazily):
        try:
            importlib.import_module(name)
        except ImportError:
            failed.append(name)
    return failed


WARM_UP_PATHS = ("guardian.yaml", "README.md", "src/module.py", "a/b/c/data.json", ".env", "node_modules/x/y.js")


def warm_up(root: str) -> None:
    """Compile the watcher's project's path patterns once, so that every worker finds them compiled.

    re.compile and the filters' spec cache are keyed by the pattern text, so a worker for
    another project, or after a policy change, compiles its own as before: this only moves
    the common case's ~10 ms of regex compiling out of every hook and capture.  Read-only:
    the policy and the store's project.json are read, nothing is opened for writing, and
    nothing stays open.
    """
    from pathlib import Path

    from guardian.capture.filters import PathFilter
    from guardian.policy import PolicyEngine
    from guardian.project import Project

    project = Project.find(Path(root))
    policy = project.policy
    keep = PathFilter(project.root, policy.watch, policy.protect_rules)
    engine = PolicyEngine.from_policy(policy)
    for rel in WARM_UP_PATHS:
        keep(rel, False)
        engine.rules_for(rel)


def module_stamps(paths: list[str] | None = None) -> dict[str, tuple[int, int]]:
    """(mtime_ns, size) of each file in ``paths`` (default: every loaded guardian module's): a change means new code."""
    if paths is None:
        paths = [
            path
            for name, module in list(sys.modules.items())
            if (name == "guardian" or name.startswith("guardian.")) and (path := getattr(module, "__file__", None))
        ]
    stamps: dict[str, tuple[int, int]] = {}
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            stamps[path] = (-1, -1)
        else:
            stamps[path] = (st.st_mtime_ns, st.st_size)
    return stamps


class Server:
    """The listening socket, the module stamps taken after the preload, and the spare worker.

    Pre-forked: one spare worker always waits in accept(), so a command does not wait for a
    fork (~6 ms for a process with everything imported).  The spare tells the server at
    once when it has taken a connection (b"a" on its pipe), and the server forks the next.
    """

    def __init__(self, home: str, parent: int) -> None:
        self.home = home
        self.parent = parent
        self.directory = run_dir(home)
        self.name = socket_name(os.getpid())
        self.path = os.path.join(self.directory, self.name)
        self.identity = identity_env(os.environb)
        import guardian

        self.package = os.fsencode(os.path.dirname(os.path.abspath(guardian.__file__)))
        self.stamps = module_stamps()
        self.pid = os.getpid()
        self.spare: int | None = None
        self.pipes: dict[int, int] = {}  # a worker's notification pipe (read end) -> its pid
        self.stopping = False
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.wake = os.pipe()

    # ----------------------------------------------------------------- socket

    def bind(self) -> None:
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        st = os.lstat(self.directory)
        if not os.path.isdir(self.directory) or os.path.islink(self.directory) or st.st_uid != os.getuid():
            raise Refused(f"{self.directory} is not a directory owned by this user")
        os.chmod(self.directory, 0o700)
        self._remove_stale()
        with _inside(self.directory):
            # Bound by its short name from inside the directory: the full path may not fit
            # in sockaddr_un; the umask makes the socket 0600 from the start.
            old = os.umask(0o177)
            try:
                self.listener.bind(self.name)
            finally:
                os.umask(old)
        self.listener.listen(64)
        self.listener.setblocking(False)  # a spare waits in select(), then accepts without blocking

    def _remove_stale(self) -> None:
        """Remove sockets no server listens on: left by a server killed before it could clean up."""
        for name in os.listdir(self.directory):
            pid = server_pid(name)
            if pid is None or pid == os.getpid():
                continue
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                stale = True
            except PermissionError:
                continue  # a live process of another user (a reused pid): not ours to remove
            else:
                # The pid lives, or is a zombie nobody reaped (a container's init may not):
                # only a refused connection says nobody listens.
                probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    with _inside(self.directory):
                        probe.connect(name)
                    stale = False
                except ConnectionRefusedError:
                    stale = True
                except OSError:
                    stale = False
                finally:
                    probe.close()
            if stale:
                try:
                    os.unlink(os.path.join(self.directory, name))
                except FileNotFoundError:
                    pass

    def close(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self.listener.close()
        if self.spare is not None:
            try:
                os.kill(self.spare, signal.SIGTERM)  # idle: it has no command to finish
            except ProcessLookupError:
                pass
        # Workers running commands finish them; their clients wait for their codes.

    # ----------------------------------------------------------------- loop

    def serve(self) -> None:
        wake_read, wake_write = self.wake
        os.set_blocking(wake_write, False)
        signal.set_wakeup_fd(wake_write)
        signal.signal(signal.SIGCHLD, lambda _s, _f: None)  # wakes select through the wakeup fd
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # only the watcher (through SIGTERM) stops it
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        try:
            while not self.stopping:
                if self.spare is None:
                    self._fork_spare()
                readable, _, _ = select.select([wake_read, *self.pipes], [], [], CHECK_INTERVAL)
                if wake_read in readable:
                    os.read(wake_read, 512)
                for fd in readable:
                    if fd in self.pipes:
                        self._notified(fd)
                self._reap()
                if os.getppid() != self.parent:
                    break
        finally:
            self.close()

    def _stop(self, _signum: int, _frame: object) -> None:
        self.stopping = True

    def _fork_spare(self) -> None:
        notify_read, notify_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(notify_read)
            code = 70
            try:
                code = _spare_worker(self, notify_write)
            except BaseException:  # noqa: BLE001 - the worker must end here, never return into the loop
                try:
                    import traceback

                    traceback.print_exc()
                except BaseException:  # noqa: BLE001
                    pass
            finally:
                os._exit(code)
        os.close(notify_write)
        self.pipes[notify_read] = pid
        self.spare = pid

    def _notified(self, fd: int) -> None:
        pid = self.pipes[fd]
        data = os.read(fd, 16)
        if pid == self.spare and (not data or b"a" in data):
            self.spare = None  # it took a client (or died): the loop forks the next spare
        if b"s" in data:
            self.stopping = True  # new code is installed: a server started with it will answer
        if not data:
            os.close(fd)
            del self.pipes[fd]

    def _reap(self) -> None:
        while True:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.spare:
                self.spare = None

    def check(self, request: Request) -> None:
        """Refused unless the client runs this very code with the same settings."""
        if request.home != os.fsencode(self.home):
            raise Refused("another GUARDIAN_HOME")
        if request.package != self.package or request.executable != os.fsencode(sys.executable):
            raise Refused("another guardian installation or interpreter")
        if identity_env(request.env) != self.identity:
            raise Refused("other GUARDIAN_CRASH_AT, GUARDIAN_PYGIT2_FULL or PYTHON* settings than the watcher's")
        if request.entry not in (b"module", b"console"):
            raise Refused("an unknown entry point")
        if request.encodings[3] != sys.getfilesystemencoding():
            raise Refused("another file system encoding")


class CodeChanged(Refused):
    """A module file changed since the preload: this server must stop."""


def _read_request(conn: socket.socket) -> tuple[Request, list[int]]:
    conn.settimeout(READ_TIMEOUT)
    if sys.platform.startswith("linux"):
        import struct

        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
        if uid != os.getuid():
            raise Refused("the client runs as another user")
    fds: list[int] = []
    data, ancdata, _flags, _addr = conn.recvmsg(65536, socket.CMSG_SPACE(3 * 4))
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % 4
            fds.extend(int.from_bytes(payload[i : i + 4], sys.byteorder, signed=True) for i in range(0, usable, 4))
    try:
        if len(fds) != 3:
            raise Refused("the request did not carry stdin, stdout and stderr")
        while len(data) < 4:
            more = conn.recv(4 - len(data))
            if not more:
                raise Refused("the request was cut short")
            data += more
        size = int.from_bytes(data[:4], "big")
        if size > MAX_FRAME:
            raise Refused("the request is too large")
        body = bytearray(data[4:])
        while len(body) < size:
            more = conn.recv(min(1 << 20, size - len(body)))
            if not more:
                raise Refused("the request was cut short")
            body += more
        return Request.decode(bytes(body)), fds
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


def _set_death_signal(signum: int) -> None:
    """PR_SET_PDEATHSIG (Linux): ``signum`` when the parent dies; 0 clears it."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signum, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # the spare's parent check every second still notices


def _accept(server: Server) -> socket.socket | None:
    """Wait for a client as the spare; None when the server is gone."""
    while True:
        if os.getppid() != server.pid:
            return None
        readable, _, _ = select.select([server.listener], [], [], CHECK_INTERVAL)
        if not readable:
            continue
        try:
            conn, _ = server.listener.accept()
        except (BlockingIOError, InterruptedError):
            continue
        except OSError:
            return None
        conn.setblocking(True)
        return conn


def _spare_worker(server: Server, notify: int) -> int:
    for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)
    for fd in (*server.wake, *server.pipes):
        os.close(fd)
    _set_death_signal(signal.SIGKILL)  # an idle spare ends with its server
    conn = _accept(server)
    if conn is None:
        return 0
    os.write(notify, b"a")
    # ^C as in any Python process, from before the client learns this pid (in P) and can
    # forward one: the server ignores SIGINT, and a spare inherits that.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _set_death_signal(0)  # from now on it runs a command, which finishes even if the watcher stops
    server.listener.close()
    fds: list[int] = []
    try:
        request, fds = _read_request(conn)
        server.check(request)
        _take_limits(request.limits)
        if module_stamps(list(server.stamps)) != server.stamps:
            os.write(notify, b"s")
            raise CodeChanged("guardian's code changed since the watcher started")
    except (Refused, ValueError, OSError) as exc:
        for fd in fds:
            os.close(fd)
        try:
            conn.sendall(b"L" + str(exc).encode(errors="replace")[:200].replace(b"\n", b" ") + b"\n")
        except OSError:
            pass
        return 0
    os.close(notify)
    try:
        try:
            conn.sendall(b"P%d\n" % os.getpid())
            go = conn.recv(1)
        except OSError:
            go = b""
        if go != b"G":
            return 0  # the client gave up before the go-ahead: it runs the command itself
        conn.settimeout(None)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request.cwd)
        os.umask(request.umask)
        os.environb.clear()
        os.environb.update(request.env)
        time.tzset()  # local time follows the client's TZ, as it would in its own process
        sys.argv = [os.fsdecode(a) for a in request.argv]
        _attach_streams(request)
        threading.Thread(target=_die_with_client, args=(conn,), name="warm-client-watch", daemon=True).start()
        code = _run(request)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        code = 130  # ^C forwarded by the client, in a path that does not catch it
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second ^C must not cost the client its exit code
    _finish()
    _reported.set()
    try:
        conn.sendall(b"X%d\n" % code)
    except OSError:
        pass
    return code


def _take_limits(limits: dict[str, tuple[int, int]]) -> None:
    """The client's resource limits (a file-size limit must stop a command here as it would there)."""
    import resource

    for name, (soft, hard) in limits.items():
        kind = getattr(resource, name, None)
        if kind is None:
            continue
        try:
            if resource.getrlimit(kind) != (soft, hard):
                resource.setrlimit(kind, (soft, hard))
        except (ValueError, OSError) as exc:
            raise Refused(f"cannot take the client's {name}: {exc}") from None


def _run(request: Request) -> int:
    args = sys.argv[1:]
    if request.entry == b"console":
        from guardian.cli import main

        return main(args)
    from guardian.warm.dispatch import run_command

    return run_command(args)


def _attach_streams(request: Request) -> None:
    """sys.stdin/stdout/stderr on the client's descriptors, with the client's encodings."""
    stdin_enc, stdout_enc, stderr_enc, _filesystem = request.encodings
    unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))
    buffering = 0 if unbuffered else -1
    streams = {
        "stdin": io.TextIOWrapper(open(0, "rb", closefd=False), encoding=stdin_enc, errors=request.errors),  # noqa: SIM115
        "stdout": io.TextIOWrapper(
            open(1, "wb", buffering=buffering, closefd=False),  # noqa: SIM115 - lives as long as the process
            encoding=stdout_enc,
            errors=request.errors,
            line_buffering=os.isatty(1),
            write_through=unbuffered,
        ),
        "stderr": io.TextIOWrapper(
            open(2, "wb", buffering=buffering, closefd=False),  # noqa: SIM115 - lives as long as the process
            encoding=stderr_enc,
            errors="backslashreplace",
            line_buffering=True,
            write_through=unbuffered,
        ),
    }
    for name, stream in streams.items():
        # Both names: click and shutil.get_terminal_size read sys.__stdout__.
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)


def _die_with_client(conn: socket.socket) -> None:
    """Stop the command when its client is gone (killed): what killing the command's own process does."""
    try:
        while conn.recv(64):
            pass
    except OSError:
        pass
    if not _reported.is_set():
        os.kill(os.getpid(), signal.SIGKILL)


def _finish() -> None:
    """What a normal interpreter exit does before the process ends: join threads, run atexit, flush."""
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


@contextmanager
def _inside(directory: str) -> Iterator[None]:
    here = os.open(".", os.O_RDONLY)
    try:
        os.chdir(directory)
        yield
    finally:
        os.fchdir(here)
        os.close(here)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    parent = int(args[args.index("--parent") + 1]) if "--parent" in args else os.getppid()
    _set_death_signal(signal.SIGTERM)
    if os.getppid() != parent:
        return 0  # the watcher died before the death signal was armed
    try:
        os.setsid()
    except OSError:
        pass
    os.chdir("/")
    from guardian.paths import guardian_home

    home = str(guardian_home())
    failed = preload()
    if "--root" in args:
        try:
            warm_up(args[args.index("--root") + 1])
        except Exception as exc:  # noqa: BLE001 - only a head start: workers compile what they need
            print(f"guardian warm server: no warm-up of the project: {type(exc).__name__}: {exc}", file=sys.stderr)
    server = Server(home, parent)
    try:
        server.bind()
    except (OSError, Refused) as exc:
        print(f"guardian warm server: not serving: {exc}", file=sys.stderr)
        return 1
    if failed:
        print(f"guardian warm server: not preloaded (imported on use): {', '.join(failed)}", file=sys.stderr)
    gc.collect()
    gc.freeze()  # the workers' collections then leave the preloaded objects' pages shared
    server.serve()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
