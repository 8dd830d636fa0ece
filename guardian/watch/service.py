"""Run a project's watcher as a per-user service: a systemd user unit on Linux, a LaunchAgent on macOS.

The service runs ``<this python> -P -m guardian -C <root> watch`` and is restarted
when it fails.  ``GUARDIAN_HOME`` is written into the service as it is now, so
the service uses the same store as the command that installed it.

Where no user service manager runs (containers, CI, SSH sessions without a
login manager), the file is still written and enabled for the next login, and
the caller is told how to start the watcher now (``guardian start``).

``GUARDIAN_SERVICE_PLATFORM=linux|darwin`` picks the generator regardless of
the OS, so both can be tested anywhere.  The manager is reached only through
``systemctl`` and ``launchctl`` found on PATH.
"""

from __future__ import annotations

import os
import plistlib
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from guardian.errors import OperationFailed, UsageError
from guardian.paths import ENV_HOME, guardian_home
from guardian.project import Project
from guardian.util.fs import atomic_write_file

Platform = Literal["linux", "darwin"]
ENV_PLATFORM = "GUARDIAN_SERVICE_PLATFORM"
COMMAND_TIMEOUT = 20.0
RESTART_DELAY = 5  # seconds between a failure and the restart (launchd: its throttle interval)
STOP_TIMEOUT = 30  # seconds the watcher gets to flush pending changes on stop
_NAME_MAX = 200


@dataclass(frozen=True)
class ServiceSpec:
    """Everything about one project's service file, before anything is written."""

    platform: Platform
    name: str  # the unit name (guardian-x.service) or the launchd label (dev.guardian.x)
    path: Path
    root: Path
    argv: tuple[str, ...]
    content: bytes

    @property
    def kind(self) -> str:
        return "systemd user unit" if self.platform == "linux" else "LaunchAgent"


@dataclass(frozen=True)
class Manager:
    available: bool
    reason: str = ""  # why not, when it is not


@dataclass
class ServiceReport:
    platform: Platform
    kind: str
    name: str
    path: Path
    installed: bool
    up_to_date: bool | None = None
    manager: Manager = field(default_factory=lambda: Manager(False))
    loaded: bool = False
    state: str | None = None
    commands: list[str] = field(default_factory=list)
    hint: str | None = None
    watcher: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "platform": self.platform,
            "kind": self.kind,
            "name": self.name,
            "path": str(self.path),
            "installed": self.installed,
            "up_to_date": self.up_to_date,
            "manager": {"available": self.manager.available, "reason": self.manager.reason},
            "loaded": self.loaded,
            "state": self.state,
            "commands": self.commands,
            "hint": self.hint,
            "watcher": self.watcher,
        }


# --------------------------------------------------------------------------- where and what


def current_platform() -> Platform:
    override = os.environ.get(ENV_PLATFORM)
    if override:
        if override not in ("linux", "darwin"):
            raise UsageError(f"{ENV_PLATFORM}={override}: unknown platform; use linux or darwin")
        return "linux" if override == "linux" else "darwin"
    if sys.platform.startswith("linux"):
        return "linux"
    if sys.platform == "darwin":
        return "darwin"
    raise OperationFailed(
        f"guardian service supports Linux (systemd) and macOS (launchd), not {sys.platform}; "
        "run 'guardian start' to start the watcher instead"
    )


def service_id(project: Project) -> str:
    """The store directory's name, restricted to what unit names and launchd labels allow."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", project.paths.store.name)
    # Keep the hash at the end: it is what tells two projects of the same name apart.
    return name if len(name) <= _NAME_MAX else name[: _NAME_MAX - 13] + name[-13:]


def systemd_user_dir() -> Path:
    config = os.environ.get("XDG_CONFIG_HOME", "")
    # The XDG spec says a relative value is invalid and must be ignored.
    base = Path(config) if config and os.path.isabs(config) else Path.home() / ".config"
    return base / "systemd" / "user"


def launch_agents_dir() -> Path:
    return Path.home() / "Library" / "LaunchAgents"


def watch_argv(root: Path, python: str | None = None) -> tuple[str, ...]:
    interpreter = python if python is not None else sys.executable
    if not interpreter:
        raise OperationFailed("cannot tell which python runs guardian (sys.executable is empty); run 'guardian start'")
    # abspath, not resolve: a virtualenv's python is a symlink that must stay one.
    # -P: never the service's working directory first on sys.path (a guardian/ package there would run).
    return (os.path.abspath(interpreter), "-P", "-m", "guardian", "-C", str(root), "watch")


def _refuse_control_chars(spec_kind: str, values: dict[str, str]) -> None:
    for what, value in values.items():
        if any(ord(c) < 0x20 or c == "\x7f" for c in value):
            raise OperationFailed(
                f"cannot write a {spec_kind} for {value!r}: the {what} contains a newline or control character, "
                "which a service file cannot hold; rename it, or run 'guardian start' instead"
            )


def _systemd_quote(arg: str) -> str:
    """One ExecStart word: double-quoted, C escapes, and % and $ doubled so systemd takes them literally."""
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


def render_unit(root: Path, argv: tuple[str, ...], home: Path) -> str:
    description = f"guardian watcher for {root}".replace("%", "%%")
    environment = f"{ENV_HOME}={home}".replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return "\n".join(
        [
            "# Written by 'guardian service install'; remove it with 'guardian service uninstall'.",
            "[Unit]",
            f"Description={description}",
            "",
            "[Service]",
            "Type=simple",
            f"ExecStart={' '.join(_systemd_quote(a) for a in argv)}",
            f'Environment="{environment}"',
            "Restart=on-failure",
            f"RestartSec={RESTART_DELAY}",
            f"TimeoutStopSec={STOP_TIMEOUT}",
            "",
            "[Install]",
            "WantedBy=default.target",
            "",
        ]
    )


def render_plist(label: str, root: Path, argv: tuple[str, ...], home: Path, log: Path) -> bytes:
    data: dict[str, Any] = {
        "Label": label,
        "ProgramArguments": list(argv),
        "WorkingDirectory": str(root),
        "EnvironmentVariables": {ENV_HOME: str(home)},
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": RESTART_DELAY,
        "ExitTimeOut": STOP_TIMEOUT,
        "ProcessType": "Background",
        # The watcher keeps its own log in the store; this catches what happens before it can.
        "StandardOutPath": str(log),
        "StandardErrorPath": str(log),
    }
    return plistlib.dumps(data, fmt=plistlib.FMT_XML, sort_keys=False)


def service_spec(project: Project, platform: Platform | None = None, python: str | None = None) -> ServiceSpec:
    platform = platform or current_platform()
    root = project.root
    argv = watch_argv(root, python)
    home = guardian_home()
    ident = service_id(project)
    kind = "systemd user unit" if platform == "linux" else "LaunchAgent"
    _refuse_control_chars(kind, {"project path": str(root), "python path": argv[0], ENV_HOME: str(home)})
    if platform == "linux":
        name = f"guardian-{ident}.service"
        unit = render_unit(root, argv, home).encode()
        return ServiceSpec(platform, name, systemd_user_dir() / name, root, argv, unit)
    label = f"dev.guardian.{ident}"
    log = project.paths.store / "launchd.log"
    content = render_plist(label, root, argv, home, log)
    return ServiceSpec(platform, label, launch_agents_dir() / f"{label}.plist", root, argv, content)


# --------------------------------------------------------------------------- the service manager


def _run(argv: list[str]) -> tuple[int, str]:
    """(exit code, output) of a manager command; 127 when it cannot be run at all."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False)
    except FileNotFoundError:
        return 127, f"{argv[0]}: not found"
    except subprocess.TimeoutExpired:
        return 124, f"timed out after {COMMAND_TIMEOUT:.0f}s"
    except OSError as exc:
        return 126, str(exc)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else "no output"


def _launchd_domain() -> str:
    return f"gui/{os.getuid()}"


def detect_manager(platform: Platform) -> Manager:
    tool = "systemctl" if platform == "linux" else "launchctl"
    if shutil.which(tool) is None:
        what = "systemd" if platform == "linux" else "launchd"
        return Manager(False, f"{tool} is not installed, so no {what} user manager can load it")
    probe = [tool, "--user", "show-environment"] if platform == "linux" else [tool, "print", _launchd_domain()]
    code, output = _run(probe)
    if code != 0:
        what = "no systemd user manager is running" if platform == "linux" else "no launchd GUI session is running"
        return Manager(False, f"{what} ({' '.join(probe)}: {_first_line(output)})")
    return Manager(True)


def _require(code_output: tuple[int, str], argv: list[str], after: str) -> None:
    code, output = code_output
    if code != 0:
        raise OperationFailed(f"'{' '.join(argv)}' failed ({_first_line(output)}); {after}")


def _systemd_wants_link(spec: ServiceSpec) -> Path:
    return spec.path.parent / "default.target.wants" / spec.name


def _start_hint(spec: ServiceSpec) -> str:
    return f"guardian -C {spec.root} start"


def _query_state(spec: ServiceSpec) -> tuple[bool, str | None]:
    """(loaded, state) as the manager sees it."""
    if spec.platform == "linux":
        code, output = _run(["systemctl", "--user", "is-active", spec.name])
        state = _first_line(output) if output else None
        return state in ("active", "activating", "reloading", "deactivating"), state
    code, output = _run(["launchctl", "print", f"{_launchd_domain()}/{spec.name}"])
    if code != 0:
        return False, "not loaded"
    match = re.search(r"^\s*state = (\S+)", output, re.MULTILINE)
    return True, match.group(1) if match else "loaded"


# --------------------------------------------------------------------------- install, uninstall, status


def _report(spec: ServiceSpec, manager: Manager) -> ServiceReport:
    return ServiceReport(spec.platform, spec.kind, spec.name, spec.path, spec.path.exists(), manager=manager)


def install(project: Project) -> ServiceReport:
    """Write the service file, then load and start it if a user service manager runs."""
    project.require_store()
    spec = service_spec(project)
    spec.path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_file(spec.path, spec.content, 0o644)
    manager = detect_manager(spec.platform)
    report = _report(spec, manager)
    report.up_to_date = True
    if not manager.available:
        if spec.platform == "linux":
            # What 'systemctl --user enable' would do, so the unit starts at the next login that has systemd.
            link = _systemd_wants_link(spec)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.unlink(missing_ok=True)
            link.symlink_to(Path("..") / spec.name)
        report.hint = _start_hint(spec)
        return report
    if spec.platform == "linux":
        steps = [
            ["systemctl", "--user", "daemon-reload"],
            ["systemctl", "--user", "enable", spec.name],
            # restart, not start: a reinstall must replace a watcher running the old command.
            ["systemctl", "--user", "restart", spec.name],
        ]
    else:
        # Unload an older version first; failing because none was loaded is fine.
        _run(["launchctl", "bootout", f"{_launchd_domain()}/{spec.name}"])
        steps = [["launchctl", "bootstrap", _launchd_domain(), str(spec.path)]]
    for argv in steps:
        _require(
            _run(argv),
            argv,
            f"{spec.path} was written but not loaded; fix the cause and rerun 'guardian service install', "
            f"or start the watcher with '{_start_hint(spec)}'",
        )
        report.commands.append(" ".join(argv))
    report.loaded, report.state = _query_state(spec)
    return report


def uninstall(project: Project) -> ServiceReport:
    """Stop and unload the service if a manager runs, then remove its file.  Nothing installed is fine."""
    spec = service_spec(project)
    manager = detect_manager(spec.platform)
    report = _report(spec, manager)
    if manager.available:
        loaded, _state = _query_state(spec)
        if spec.platform == "linux":
            if report.installed:
                argv = ["systemctl", "--user", "disable", "--now", spec.name]
                _require(_run(argv), argv, f"{spec.path} is left in place; stop the service and rerun")
                report.commands.append(" ".join(argv))
        elif loaded:
            argv = ["launchctl", "bootout", f"{_launchd_domain()}/{spec.name}"]
            _require(_run(argv), argv, f"{spec.path} is left in place; stop the service and rerun")
            report.commands.append(" ".join(argv))
    if spec.platform == "linux":
        _systemd_wants_link(spec).unlink(missing_ok=True)
    spec.path.unlink(missing_ok=True)
    if manager.available and spec.platform == "linux" and report.installed:
        argv = ["systemctl", "--user", "daemon-reload"]
        _run(argv)
        report.commands.append(" ".join(argv))
    return report


def status(project: Project) -> ServiceReport:
    from guardian.query.status import watcher_state

    spec = service_spec(project)
    manager = detect_manager(spec.platform)
    report = _report(spec, manager)
    if report.installed:
        try:
            report.up_to_date = spec.path.read_bytes() == spec.content
        except OSError:
            report.up_to_date = False
    if manager.available:
        report.loaded, report.state = _query_state(spec)
    if not report.loaded:
        report.hint = _start_hint(spec)
    report.watcher = watcher_state(project)
    return report


__all__ = [
    "ENV_PLATFORM",
    "Manager",
    "ServiceReport",
    "ServiceSpec",
    "current_platform",
    "detect_manager",
    "install",
    "launch_agents_dir",
    "render_plist",
    "render_unit",
    "service_id",
    "service_spec",
    "status",
    "systemd_user_dir",
    "uninstall",
    "watch_argv",
]
