"""The warm server: commands answered by a running watcher's preloaded server, as real processes.

Every test here runs a real ``guardian watch`` (which starts guardian.warm.server), real
clients (``python -m guardian`` and the console entry), and compares what a command prints
and exits with against the same command run in its own process (GUARDIAN_WARM=0).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from guardian.paths import guardian_home
from guardian.project import Project
from guardian.warm import wire
from guardian.warm.client import _wanted
from tests.watch.test_daemon import finish, spawn_watch, wait_watching
from tests.watch.test_watcher import make_project, wait_captured, wait_until

TRACE = {wire.ENV_TRACE: "1"}
COLD = {wire.ENV_WARM: "0"}


def run_dir() -> Path:
    return guardian_home() / wire.RUN_DIR


def live_sockets() -> list[Path]:
    directory = run_dir()
    return sorted(directory.glob("warm-*.sock")) if directory.is_dir() else []


def wait_server(timeout: float = 30) -> Path:
    wait_until(lambda: bool(live_sockets()), "the warm server's socket", timeout)
    return live_sockets()[-1]


def server_pid_of(sock: Path) -> int:
    pid = wire.server_pid(sock.name)
    assert pid is not None
    return pid


CONSOLE = "import sys; from guardian.warm.client import console_main; sys.exit(console_main())"


def guardian(
    *args: str, cwd: Path, env: dict[str, str] | None = None, stdin: bytes | None = None, console: bool = False
) -> subprocess.CompletedProcess[bytes]:
    prefix = [sys.executable, "-c", CONSOLE] if console else [sys.executable, "-m", "guardian"]
    return subprocess.run(
        [*prefix, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )


def served(result: subprocess.CompletedProcess[bytes]) -> bool:
    return b"guardian warm: served by worker" in result.stderr


def without_trace(stderr: bytes) -> bytes:
    return b"".join(line for line in stderr.splitlines(keepends=True) if not line.startswith(b"guardian warm: "))


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[Project]:
    files = {"src/worker_pool.py": "def work():\n    return 1\n" * 50, "a.txt": "a\n"}
    project = make_project(tmp_path / "proj", files)
    proc = spawn_watch(project)
    try:
        wait_watching(project, proc)
        wait_server()
        yield project
    finally:
        finish(proc)


# --------------------------------------------------------------------------- pure parts


def test_home_dir_agrees_with_guardian_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert wire.home_dir() == str(guardian_home())
    monkeypatch.delenv("GUARDIAN_HOME")
    for xdg in (str(tmp_path / "xdg"), "", "   ", None):
        if xdg is None:
            monkeypatch.delenv("XDG_DATA_HOME", raising=False)
        else:
            monkeypatch.setenv("XDG_DATA_HOME", xdg)
        assert wire.home_dir() == str(guardian_home()), xdg


def test_request_round_trip_keeps_undecodable_bytes() -> None:
    request = wire.Request(
        entry=b"module",
        home=b"/h",
        package=b"/p/guardian",
        executable=b"/usr/bin/python3",
        cwd=b"/work/caf\xe9",
        umask=0o027,
        encodings=("utf-8", "utf-8", "latin-1", "utf-8"),
        errors="strict",
        limits={"RLIMIT_FSIZE": (1024, -1), "RLIMIT_NOFILE": (256, 4096)},
        argv=[b"guardian", b"restore", b"na\xefve.py"],
        env={b"A": b"1=2", b"GUARDIAN_HOME": b"/h", b"RAW": b"\xff"},
    )
    frame = request.encode()
    assert int.from_bytes(frame[:4], "big") == len(frame) - 4
    back = wire.Request.decode(frame[4:])
    assert [getattr(back, name) for name in wire.Request.__slots__] == [
        getattr(request, name) for name in wire.Request.__slots__
    ]
    with pytest.raises(ValueError, match="NUL"):
        wire.Request(b"module", b"/h", b"/p", b"/py", b"/", 0, ("a",) * 4, "strict", {}, [b"x\0y"], {}).encode()
    with pytest.raises(ValueError, match="not a warm request"):
        wire.Request.decode(b"GW0\0x")


def test_python_m_agent_hook_runs_its_own_short_path(watched: Project) -> None:
    payload = json.dumps({"tool_name": "Bash", "tool_input": {"command": "ls"}, "cwd": str(watched.root)})
    result = guardian("agent-hook", cwd=watched.root, env=TRACE, stdin=payload.encode())
    assert result.returncode == 0, result.stderr
    assert not served(result)


def test_commands_that_own_their_process_are_not_handed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _wanted(["history", "a.py"])
    assert not _wanted(["watch"])
    assert not _wanted(["-C", "dir", "start"])
    assert _wanted(["restore", "--", "watch"])  # a file named watch
    monkeypatch.setenv(wire.ENV_WARM, "0")
    assert not _wanted(["history", "a.py"])


# --------------------------------------------------------------------------- served commands


def test_commands_print_and_exit_the_same_warm_and_cold(watched: Project) -> None:
    root = watched.root
    (root / "src" / "worker_pool.py").write_text("#!/usr/bin/env python3\n")
    wait_captured(watched, "src/worker_pool.py", "#!/usr/bin/env python3\n")
    cases = [
        ("history", "src/worker_pool.py"),
        ("log",),
        ("check",),
        ("history", "never-there.py"),
        ("restore", "missing-file.py"),
        ("no-such-command",),
        ("restore", "--at", "not-a-snapshot", "a.txt"),
        ("--version",),
    ]
    for args in cases:
        cold = guardian(*args, cwd=root, env=COLD)
        for console in (False, True):
            warm = guardian(*args, cwd=root, env=TRACE, console=console)
            assert served(warm), (args, warm.stderr)
            assert warm.returncode == cold.returncode, (args, warm.stderr, cold.stderr)
            assert warm.stdout == cold.stdout, args
            assert without_trace(warm.stderr) == cold.stderr, args


def test_restore_by_name_from_a_subdirectory(watched: Project) -> None:
    root = watched.root
    target = root / "src" / "worker_pool.py"
    good = target.read_bytes()
    target.unlink()
    result = guardian("restore", "worker_pool.py", cwd=root / "src", env=TRACE)
    assert served(result), result.stderr
    assert result.returncode == 0, result.stderr
    assert b"restored src/worker_pool.py" in result.stdout
    assert target.read_bytes() == good


def test_stdin_reaches_the_worker(watched: Project) -> None:
    payload = json.dumps({"tool_name": "Bash", "tool_input": {"command": "rm -rf src"}, "cwd": str(watched.root)})
    cold = guardian("agent-hook", cwd=watched.root, env=COLD, stdin=payload.encode(), console=True)
    warm = guardian("agent-hook", cwd=watched.root, env=TRACE, stdin=payload.encode(), console=True)
    assert served(warm), warm.stderr
    assert (warm.returncode, warm.stdout, without_trace(warm.stderr)) == (cold.returncode, cold.stdout, cold.stderr)


def test_concurrent_commands_all_answered(watched: Project) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "guardian", "history", "src/worker_pool.py"],
            cwd=watched.root,
            env={**os.environ, **TRACE},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(12)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outputs]
    assert len({o[0] for o in outputs}) == 1
    assert sum(b"served by worker" in o[1] for o in outputs) == len(procs)


# --------------------------------------------------------------------------- when it must not answer


def test_other_import_time_settings_run_in_their_own_process(watched: Project) -> None:
    result = guardian("history", "a.txt", cwd=watched.root, env={**TRACE, "PYTHONWARNINGS": "ignore::UserWarning"})
    assert result.returncode == 0
    assert not served(result)
    reason = b"running in this process: other GUARDIAN_CRASH_AT, GUARDIAN_PYGIT2_FULL or PYTHON* settings"
    assert reason in result.stderr


def test_run_time_settings_reach_the_worker(watched: Project) -> None:
    # Variables read while the command runs come from the client: a hook's GUARDIAN_* settings
    # (the shim exports GUARDIAN_STORE_HEAD), the time zone of the times printed.
    for env in ({"TZ": "Asia/Tokyo"}, {"TZ": "America/St_Johns"}, {"GUARDIAN_HOOK_TRACE": "1"}):
        cold = guardian("history", "a.txt", cwd=watched.root, env={**COLD, **env})
        warm = guardian("history", "a.txt", cwd=watched.root, env={**TRACE, **env})
        assert served(warm), (env, warm.stderr)
        assert (warm.returncode, warm.stdout) == (cold.returncode, cold.stdout), env
    assert b"+09:00" in guardian("history", "a.txt", cwd=watched.root, env={"TZ": "Asia/Tokyo"}).stdout


def test_the_worker_takes_the_clients_resource_limits(watched: Project) -> None:
    import resource

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (100, resource.RLIM_INFINITY))

    target = watched.root / "src" / "worker_pool.py"
    outcomes = []
    for env in (COLD, TRACE):
        target.unlink(missing_ok=True)
        result = subprocess.run([sys.executable, "-m", "guardian", "restore", "worker_pool.py"], cwd=watched.root,
                                env={**os.environ, **env}, capture_output=True, preexec_fn=limit_file_size,
                                timeout=60, check=False)
        outcomes.append((result.returncode, result.stdout, without_trace(result.stderr)))
        assert served(result) == (env is TRACE), result.stderr
    # A 1.2 KB file cannot be written under a 100-byte limit: both fail, the same way.
    assert outcomes[0][0] != 0, outcomes[0]
    assert outcomes[1] == outcomes[0]
    assert not target.exists()


def test_every_import_time_setting_is_compared(tmp_path: Path) -> None:
    """Import every guardian module under an environment that records what is read: GUARDIAN_*
    variables read at import time must be in wire.IMPORT_TIME_KEYS (the server compares them)."""
    code = (
        "import os, pkgutil, importlib, json, sys\n"
        "read = set()\n"
        "class Recording(type(os.environ)):\n"
        "    def __getitem__(self, key):\n"
        "        read.add(key)\n"
        "        return super().__getitem__(key)\n"
        "    def __contains__(self, key):\n"
        "        read.add(key)\n"
        "        return super().__contains__(key)\n"
        "env = os.environ\n"
        "os.environ = Recording(env._data, env.encodekey, env.decodekey, env.encodevalue, env.decodevalue)\n"
        "import guardian\n"
        "for info in pkgutil.walk_packages(guardian.__path__, 'guardian.'):\n"
        "    if info.name not in ('guardian.__main__', 'guardian.warm.server'):\n"
        "        try:\n"
        "            importlib.import_module(info.name)\n"
        "        except Exception:\n"
        "            pass\n"
        "print(json.dumps(sorted(k for k in read if k.startswith('GUARDIAN_'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    read = set(json.loads(result.stdout))
    assert "GUARDIAN_CRASH_AT" in read  # the recorder sees what util/crash.py reads
    assert read <= set(wire.IMPORT_TIME_KEYS) | {"GUARDIAN_HOME"}, read - set(wire.IMPORT_TIME_KEYS)


def test_closed_stdin_runs_in_its_own_process(watched: Project) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "guardian", "history", "a.txt"],
        cwd=watched.root,
        env={**os.environ, **TRACE},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=False,
        pass_fds=(),
        preexec_fn=lambda: os.close(0),
    )
    assert result.returncode == 0, result.stderr
    assert not served(result)
    assert b"a.txt" in result.stdout


def test_changed_code_stops_the_server_and_a_new_one_starts(tmp_path: Path) -> None:
    # A private copy of the package, so that changing a module touches no one else's files.
    package = Path(__import__("guardian").__file__).parent
    copy = tmp_path / "pkg"
    shutil.copytree(package, copy / "guardian", ignore=shutil.ignore_patterns("__pycache__"))
    env = {"PYTHONPATH": str(copy), "GUARDIAN_WARM_RESTART_SECONDS": "1"}
    project = make_project(tmp_path / "proj", {"a.txt": "a\n"})
    proc = spawn_watch(project, env=env)
    try:
        wait_watching(project, proc)
        first = wait_server()
        assert served(guardian("history", "a.txt", cwd=project.root, env={**env, **TRACE}))
        module = copy / "guardian" / "query" / "history.py"
        module.write_text(module.read_text() + "\n# changed\n")
        result = guardian("history", "a.txt", cwd=project.root, env={**env, **TRACE})
        assert result.returncode == 0
        assert b"running in this process: guardian's code changed since the watcher started" in result.stderr
        wait_until(lambda: live_sockets() and live_sockets()[-1] != first, "a new warm server", 30)
        wait_until(lambda: served(guardian("history", "a.txt", cwd=project.root, env={**env, **TRACE})),
                   "the new server to answer", 30)
    finally:
        finish(proc)


# --------------------------------------------------------------------------- signals and deaths


def blocking_hook(project: Project) -> subprocess.Popen[bytes]:
    """agent-hook reads its stdin to the end: with a pipe left open, the worker waits in read().

    Run as the ``guardian`` script runs: ``python -m guardian agent-hook`` takes its own short path.
    """
    return subprocess.Popen(
        [sys.executable, "-c", CONSOLE, "agent-hook"],
        cwd=project.root,
        env={**os.environ, **TRACE},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def reap(proc: subprocess.Popen[bytes]) -> int:
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    return proc.wait(timeout=30)


def worker_of(proc: subprocess.Popen[bytes]) -> int:
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert line.startswith(b"guardian warm: served by worker "), line
    return int(line.split()[-1])


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().split(b") ")[-1][:1] != b"Z"
    except (FileNotFoundError, ProcessLookupError):  # gone before the open, or between the open and the read
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killing_the_client_kills_its_worker(watched: Project) -> None:
    for _ in range(5):
        proc = blocking_hook(watched)
        worker = worker_of(proc)
        assert alive(worker)
        proc.send_signal(signal.SIGKILL)
        reap(proc)
        wait_until(lambda w=worker: not alive(w), f"worker {worker} to end with its client", 10)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_signals_are_forwarded_to_the_worker(watched: Project) -> None:
    proc = blocking_hook(watched)
    worker = worker_of(proc)
    proc.send_signal(signal.SIGTERM)
    assert reap(proc) == -signal.SIGTERM
    wait_until(lambda: not alive(worker), "the worker to die of SIGTERM", 10)

    proc = blocking_hook(watched)
    worker = worker_of(proc)
    proc.send_signal(signal.SIGINT)
    assert reap(proc) == 130
    wait_until(lambda: not alive(worker), "the worker to stop on ^C", 10)


def test_a_worker_killed_behind_the_clients_back_is_reported(watched: Project) -> None:
    # Not a signal the client passed on (the OOM killer, say): no exit code came back, and
    # the client says so, names the worker, and exits 1 rather than pretending success.
    proc = blocking_hook(watched)
    worker = worker_of(proc)
    os.kill(worker, signal.SIGKILL)
    assert proc.stderr is not None
    rest = proc.stderr.read()
    assert reap(proc) == 1
    assert rest == (
        f"guardian: error: the watcher's warm server lost the worker running this command (pid {worker}) "
        "before it reported an exit code; check the result, and rerun with GUARDIAN_WARM=0 to run it in its "
        "own process\n"
    ).encode()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_watcher_takes_its_server_along(watched: Project, tmp_path: Path) -> None:
    project = make_project(tmp_path / "second", {"b.txt": "b\n"})
    before = set(live_sockets())
    proc = spawn_watch(project)
    wait_watching(project, proc)
    wait_until(lambda: set(live_sockets()) - before, "the second watcher's warm server", 30)
    (second,) = set(live_sockets()) - before
    finish(proc, signal.SIGKILL)
    wait_until(lambda: not alive(server_pid_of(second)), "the killed watcher's server to exit", 10)
    # Any project's command is answered by the server still running, the first watcher's.
    result = guardian("history", "b.txt", cwd=project.root, env=TRACE)
    assert result.returncode == 0, result.stderr
    assert served(result)
    assert b"b.txt" in result.stdout
    # A socket left by a server that died without cleaning up is removed by the next server.
    second.touch() if not second.exists() else None
    proc = spawn_watch(project)
    try:
        wait_watching(project, proc)
        wait_until(lambda: len(set(live_sockets()) - before) == 1 and not second.exists(), "the leftover removed", 30)
    finally:
        finish(proc)


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to act as another user")
def test_another_user_cannot_reach_the_server(watched: Project) -> None:
    sock = str(wait_server())
    pid = os.fork()
    if pid == 0:  # the child: become nobody, try to connect, report by exit status only
        code = 1
        try:
            os.setgid(65534)
            os.setuid(65534)
            import socket

            client = socket.socket(socket.AF_UNIX)
            try:
                client.connect(sock)
                code = 0
            except PermissionError:
                code = 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 3


def test_a_socket_nobody_listens_on_is_skipped(watched: Project) -> None:
    wait_server()
    dead = run_dir() / wire.socket_name(2**22 + 12345)  # above Linux's default pid_max: no such process
    dead.touch()  # a file, not a listening socket: connect() fails as on a dead server's socket
    for _ in range(3):
        result = guardian("history", "a.txt", cwd=watched.root, env=TRACE)
        assert result.returncode == 0, result.stderr
        assert served(result)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_server_holds_no_project_or_store_file_open(watched: Project) -> None:
    # The warm-up reads the policy and compiles its patterns; nothing of the project or the
    # store may stay open in the server its workers are forked from (no lock, no database).
    server = server_pid_of(wait_server())
    targets = []
    for fd in os.listdir(f"/proc/{server}/fd"):
        try:
            targets.append(os.readlink(f"/proc/{server}/fd/{fd}"))
        except FileNotFoundError:
            continue
    held = [t for t in targets if t.startswith((str(watched.root), str(watched.paths.store)))]
    assert held == [], held
