"""What the warm client and the warm server share: where the sockets live, and the request's bytes.

Kept to builtin modules only (no pathlib, json, socket or enum): the client imports this on
every ``guardian`` command, and its whole point is to start in a few milliseconds.

A request is one length-prefixed frame of NUL-separated fields, sent with the client's
stdin, stdout and stderr attached (SCM_RIGHTS)::

    b"GW1" NUL entry NUL home NUL package NUL executable NUL cwd NUL umask NUL
    stdin-encoding NUL stdout-encoding NUL stderr-encoding NUL filesystem-encoding NUL
    errors NUL limits NUL argc NUL argv... NUL env-entries (KEY=VALUE)...

``limits`` is ``name=soft:hard,...`` for the LIMITS below (-1: unlimited).

A worker answers with newline-ended messages: ``P<pid>`` (it will run the command; the
client answers ``G`` to let it start) or ``L<reason>`` (run it yourself), then ``X<code>``
(the command's exit code).  A connection that ends without ``X`` means the worker died.
"""

from __future__ import annotations

import os
import sys

MAGIC = b"GW1"
ENV_WARM = "GUARDIAN_WARM"  # "0": never use a warm server (the command runs in its own process)
ENV_TRACE = "GUARDIAN_WARM_TRACE"  # "1": say on stderr which process ran the command
RUN_DIR = "run"
SOCKET_PREFIX = "warm-"
SOCKET_SUFFIX = ".sock"
# The GUARDIAN_* variables read when a module is imported (the server imported every module
# under its own values): a client with other values runs the command itself.  Every other
# GUARDIAN_* variable is read while the command runs, from the client's environment, which
# the worker takes over (the git hook shims pass GUARDIAN_STORE_HEAD that way).
# tests/warm/test_warm.py imports every module under a recording environment to keep this
# list complete.
IMPORT_TIME_KEYS = ("GUARDIAN_CRASH_AT", "GUARDIAN_PYGIT2_FULL")
PYTHON_KEYS_IGNORED = ("PYTHONDONTWRITEBYTECODE", "PYTHONIOENCODING", "PYTHONUNBUFFERED")
# Commands that must own their process: a watcher (it is the server's parent), and starting
# one (it detaches a daemon); both are long-lived and gain nothing from a warm start.
OWN_PROCESS_COMMANDS = frozenset({"watch", "start"})
# Resource limits the worker takes from its client: a command must fail on a file-size or
# descriptor limit exactly as it would in its own process.
LIMITS = ("RLIMIT_FSIZE", "RLIMIT_NOFILE", "RLIMIT_AS", "RLIMIT_DATA", "RLIMIT_CPU", "RLIMIT_CORE")
HANDSHAKE_TIMEOUT = 5.0  # seconds the client waits for P or L before it runs the command itself


def home_dir(environ: dict[str, str] | os._Environ[str] | None = None) -> str | None:
    """guardian_home() without platformdirs (it takes ~10 ms to import); None where unsure.

    Linux: platformdirs' user_data_dir is $XDG_DATA_HOME (when set and not blank) or
    ~/.local/share, then /guardian.  macOS: ~/Library/Application Support/guardian.  The
    server checks the home the client names against its own, so a wrong guess only means
    the command runs in its own process; tests/warm compare this with guardian_home().
    """
    env = os.environ if environ is None else environ
    override = env.get("GUARDIAN_HOME")
    if override:
        home = os.path.expanduser(override)
        return home if os.path.isabs(home) else None
    user_home = env.get("HOME") or os.path.expanduser("~")
    if not os.path.isabs(user_home):
        return None
    if sys.platform == "darwin":
        return os.path.join(user_home, "Library", "Application Support", "guardian")
    if sys.platform.startswith("linux"):
        data = (env.get("XDG_DATA_HOME") or "").strip()
        base = data if data and os.path.isabs(data) else os.path.join(user_home, ".local", "share")
        return os.path.join(base, "guardian")
    return None


def run_dir(home: str) -> str:
    return os.path.join(home, RUN_DIR)


def socket_name(pid: int) -> str:
    return f"{SOCKET_PREFIX}{pid}{SOCKET_SUFFIX}"


def server_pid(name: str) -> int | None:
    """The pid in a socket's name, or None when the name is not a warm socket's."""
    if not (name.startswith(SOCKET_PREFIX) and name.endswith(SOCKET_SUFFIX)):
        return None
    digits = name[len(SOCKET_PREFIX) : -len(SOCKET_SUFFIX)]
    return int(digits) if digits.isdigit() else None


def identity_env(environ: dict[bytes, bytes] | os._Environ[bytes]) -> dict[bytes, bytes]:
    """The variables a server and its client must agree on: IMPORT_TIME_KEYS, and PYTHON* (which code loads)."""
    wanted = {key.encode() for key in IMPORT_TIME_KEYS}
    ignored = {key.encode() for key in PYTHON_KEYS_IGNORED}
    return {
        key: value
        for key, value in environ.items()
        if key in wanted or (key.startswith(b"PYTHON") and key not in ignored)
    }


class Request:
    """One command to run, as the client describes it.  A plain slotted class: built once per command."""

    __slots__ = (
        "argv", "cwd", "encodings", "entry", "env", "errors", "executable", "home", "limits", "package", "umask"
    )

    def __init__(
        self,
        entry: bytes,
        home: bytes,
        package: bytes,
        executable: bytes,
        cwd: bytes,
        umask: int,
        encodings: tuple[str, str, str, str],
        errors: str,
        limits: dict[str, tuple[int, int]],
        argv: list[bytes],
        env: dict[bytes, bytes],
    ) -> None:
        self.entry = entry  # b"module" (python -m guardian) or b"console" (the guardian script)
        self.home = home
        self.package = package
        self.executable = executable
        self.cwd = cwd
        self.umask = umask
        self.encodings = encodings
        self.errors = errors
        self.limits = limits
        self.argv = argv
        self.env = env

    def encode(self) -> bytes:
        fields = [
            MAGIC,
            self.entry,
            self.home,
            self.package,
            self.executable,
            self.cwd,
            b"%d" % self.umask,
            *(e.encode() for e in self.encodings),
            self.errors.encode(),
            ",".join(f"{name}={soft}:{hard}" for name, (soft, hard) in self.limits.items()).encode(),
            b"%d" % len(self.argv),
            *self.argv,
            *(key + b"=" + value for key, value in self.env.items()),
        ]
        if any(b"\0" in f for f in fields):
            raise ValueError("a NUL byte in a request field")
        body = b"\0".join(fields)
        return len(body).to_bytes(4, "big") + body

    @classmethod
    def decode(cls, body: bytes) -> Request:
        """The request in ``body`` (the frame without its length); ValueError when it is not one."""
        fields = body.split(b"\0")
        if len(fields) < 14 or fields[0] != MAGIC:
            raise ValueError("not a warm request")
        entry, home, package, executable, cwd, umask = fields[1:7]
        encodings = (fields[7].decode(), fields[8].decode(), fields[9].decode(), fields[10].decode())
        errors = fields[11].decode()
        limits: dict[str, tuple[int, int]] = {}
        for limit in filter(None, fields[12].decode().split(",")):
            name, _, pair = limit.partition("=")
            soft, _, hard = pair.partition(":")
            limits[name] = (int(soft), int(hard))
        argc = int(fields[13])
        if argc < 1 or 14 + argc > len(fields):
            raise ValueError("bad argument count")
        argv = fields[14 : 14 + argc]
        env: dict[bytes, bytes] = {}
        for item in fields[14 + argc :]:
            key, sep, value = item.partition(b"=")
            if not sep or not key:
                raise ValueError("bad environment entry")
            env[key] = value
        return cls(entry, home, package, executable, cwd, int(umask), encodings, errors, limits, argv, env)
