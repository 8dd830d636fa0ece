"""guardian.service and `guardian service`: the generated unit and plist, loading, and the no-manager fallback.

The service manager is reached only through systemctl/launchctl on PATH, so the
tests put small fake tools there (real processes, scripted answers) instead of
patching Python.  The autouse fixture has already pointed HOME and XDG_* at a
temp dir; every generated file is checked to land there.
"""

from __future__ import annotations

import configparser
import json
import os
import plistlib
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from guardian.paths import guardian_home
from guardian.project import Project
from guardian.watch.service import current_platform, render_unit, service_spec, watch_argv
from tests.conftest import REAL_HOME, run_cli

NO_BUS = "Failed to connect to bus: No medium found"


@pytest.fixture
def proj(project: Path) -> Project:
    (project / "a.txt").write_text("hello\n")
    r = run_cli("init", cwd=project)
    assert r.exit_code == 0, r.stderr
    return Project.find(project)


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty bin dir that is the whole PATH: no real systemctl or launchctl is ever run."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("FAKE_TOOL_LOG", str(tmp_path / "tool.log"))
    return bin_dir


def fake_tool(bin_dir: Path, name: str, cases: str) -> None:
    """A /bin/sh script that logs its arguments and answers by a `case` on them."""
    script = bin_dir / name
    script.write_text(
        "#!/bin/sh\n"
        'printf "%s\\n" "$*" >> "$FAKE_TOOL_LOG"\n'
        'case "$*" in\n' + textwrap.indent(textwrap.dedent(cases), "  ") + "esac\nexit 0\n"
    )
    script.chmod(0o755)


def tool_log(tmp_path: Path) -> list[str]:
    log = tmp_path / "tool.log"
    return log.read_text().splitlines() if log.exists() else []


def no_user_manager(bin_dir: Path) -> None:
    fake_tool(bin_dir, "systemctl", f'"--user show-environment") echo "{NO_BUS}" >&2; exit 1;;\n')


def working_systemd(bin_dir: Path, enable_fails: bool = False) -> None:
    enable = 'echo "Failed to enable unit: Access denied" >&2; exit 1' if enable_fails else "exit 0"
    fake_tool(
        bin_dir,
        "systemctl",
        f"""\
        "--user show-environment") echo "HOME=/nowhere"; exit 0;;
        "--user enable "*) {enable};;
        "--user is-active "*) echo active; exit 0;;
        """,
    )


def unit_path(proj: Project) -> Path:
    return Path(os.environ["XDG_CONFIG_HOME"]) / "systemd" / "user" / f"guardian-{proj.paths.store.name}.service"


def plist_path(proj: Project) -> Path:
    return Path(os.environ["HOME"]) / "Library" / "LaunchAgents" / f"dev.guardian.{proj.paths.store.name}.plist"


def parse_unit(path: Path) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=True, delimiters=("=",), comment_prefixes=("#", ";"))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def systemd_words(line: str) -> list[str]:
    """Split an ExecStart= value the way systemd does for the quoting guardian writes."""
    words: list[str] = []
    i = 0
    while i < len(line):
        if line[i] == " ":
            i += 1
            continue
        assert line[i] == '"', f"unquoted word in {line!r}"
        i += 1
        word = ""
        while line[i] != '"':
            if line[i] == "\\":
                i += 1
            word += line[i]
            i += 1
        i += 1
        words.append(word.replace("%%", "%").replace("$$", "$"))
    return words


# --------------------------------------------------------------------------- systemd unit


def test_install_without_user_manager_writes_unit_and_exits_0(
    proj: Project, tools: Path, monkeypatch: pytest.MonkeyPatch, isolated_home: Path
) -> None:
    monkeypatch.setenv("GUARDIAN_SERVICE_PLATFORM", "linux")
    no_user_manager(tools)
    r = run_cli("service", "install", cwd=proj.root)
    assert r.exit_code == 0, r.stderr
    path = unit_path(proj)
    assert r.stdout == (
        f"wrote systemd user unit {path}\n"
        f"not loaded: no systemd user manager is running (systemctl --user show-environment: {NO_BUS})\n"
        "the file stays in place and loads at the next login where a user service manager runs; "
        f"until then start the watcher with: guardian -C {proj.root} start\n"
    )
    assert r.stderr == ""
    assert isolated_home in path.parents and REAL_HOME not in path.parents
    # Enabled the way `systemctl --user enable` would, so a later login starts it.
    wants = path.parent / "default.target.wants" / path.name
    assert wants.is_symlink() and wants.resolve() == path.resolve()

    unit = parse_unit(path)
    assert unit.sections() == ["Unit", "Service", "Install"]
    assert unit["Unit"]["Description"] == f"guardian watcher for {proj.root}"
    service = unit["Service"]
    assert systemd_words(service["ExecStart"]) == [
        os.path.abspath(sys.executable),
        "-P",
        "-m",
        "guardian",
        "-C",
        str(proj.root),
        "watch",
    ]
    assert service["Type"] == "simple"
    assert service["Restart"] == "on-failure"
    assert service["RestartSec"] == "5"
    assert service["TimeoutStopSec"] == "30"
    assert service["Environment"] == f'"GUARDIAN_HOME={guardian_home()}"'
    assert unit["Install"]["WantedBy"] == "default.target"
    assert stat_mode(path) == 0o644


def test_only_the_probe_runs_without_a_manager(
    proj: Project, tools: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GUARDIAN_SERVICE_PLATFORM", "linux")
    no_user_manager(tools)
    assert run_cli("service", "install", cwd=proj.root).exit_code == 0
    assert tool_log(tmp_path) == ["--user show-environment"]


def test_install_honours_xdg_config_home(proj: Project, tools: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUARDIAN_SERVICE_PLATFORM", "linux")
    no_user_manager(tools)
    elsewhere = Path(os.environ["HOME"]) / "elsewhere"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(elsewhere))
    assert run_cli("service", "install", cwd=proj.root).exit_code == 0
    assert (elsewhere / "systemd" / "user" / f"guardian-{proj.paths.store.name}.service").is_file()
    # Unset (or relative, which the XDG spec says to ignore): ~/.config.
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/dir")
    assert run_cli("service", "install", cwd=proj.root).exit_code == 0
    home = Path(os.environ["HOME"])
    assert (home / ".config" / "systemd" / "user" / f"guardian-{proj.paths.store.name}.service").is_file()


def test_unit_quotes_awkward_paths(tmp_path: Path) -> None:
    root = tmp_path / 'we"ird 100% $HOME \\ dir'
    argv = watch_argv(root, "/opt/py thon/bin/python3")
    unit = render_unit(root, argv, tmp_path / "home 50%")
    path = tmp_path / "guardian-x.service"
    path.write_text(unit)
    parsed = parse_unit(path)
    assert systemd_words(parsed["Service"]["ExecStart"]) == list(argv)
    assert parsed["Unit"]["Description"] == f"guardian watcher for {root}".replace("%", "%%")
    assert parsed["Service"]["Environment"] == f'"GUARDIAN_HOME={tmp_path}/home 50%%"'


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("name", ["plain", 'we"ird 100% $HOME dir'])
def test_systemd_analyze_accepts_the_unit(name: str, tmp_path: Path) -> None:
    root = tmp_path / name
    root.mkdir()
    path = tmp_path / "guardian-test.service"
    path.write_text(render_unit(root, watch_argv(root), tmp_path / "home"))
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--user", str(path)],
        env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if "Failed to initialize manager" in proc.stderr:
        pytest.skip(f"systemd-analyze cannot run here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    # systemd only warns (exit 0) about settings it ignores; any line about our file is a bug.
    assert str(path) not in proc.stderr, proc.stderr


def test_install_loads_with_a_running_manager(
    proj: Project, tools: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GUARDIAN_SERVICE_PLATFORM", "linux")
    working_systemd(tools)
    r = run_cli("service", "install", cwd=proj.root)
    assert r.exit_code == 0, r.stderr
    name = unit_path(proj).name
    assert r.stdout == (
        f"wrote systemd user unit {unit_path(proj)}\n"
        "ran: systemctl --user daemon-reload\n"
        f"ran: systemctl --user enable {name}\n"
        f"ran: systemctl --user restart {name}\n"
        f"loaded: {name} is active; it runs 'guardian watch' and restarts on failure\n"
    )
    assert tool_log(tmp_path) == [
        "--user show-environment",
        "--user daemon-reload",
        f"--user enable {name}",
        f"--user restart {name}",
        f"--user is-active {name}",
    ]
    # systemctl made (or would make) the wants link itself; guardian does not when a manager runs.
    assert not (unit_path(proj).parent / "default.target.wants" / name).exists()


def test_install_reports_a_failing_load(proj: Project, tools: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUARDIAN_SERVICE_PLATFORM", "linux")
    working_systemd(tools, enable_fails=True)
    r = run_cli("service", "install", cwd=proj.root)
    name = unit_path(proj).name
    assert r.exit_code == 1
    assert r.stdout == ""
    assert r.stderr == (
        f"guardian: error: 'systemctl --user enable {name}' failed (Failed to enable unit: Access denied); "
        f"{unit_path(proj)} was written but not loaded; fix the cause and rerun 'guardian service install', "
        f"or start the watcher with 'guardian -C {proj.root} start'\n"
    )
    assert unit_path(proj).is_file()


def test_uninstall_stops_and_removes(
    proj: Project, tools: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GUARDIAN_SERVICE_PLATFORM", "linux")
    working_systemd(tools)
    assert run_cli("service", "install", cwd=proj.root).exit_code == 0
    (tmp_path / "tool.log").unlink()
    r = run_cli("service", "uninstall", cwd=proj.root)
    assert r.exit_code == 0, r.stderr
    name = unit_path(proj).name
    assert r.stdout == (
        f"ran: systemctl --user disable --now {name}\n"
        "ran: systemctl --user daemon-reload\n"
        f"removed systemd user unit {unit_path(proj)}\n"
    )
    assert not unit_path(proj).exists()
    assert f"--user disable --now {name}" in tool_log(tmp_path)


def test_uninstall_without_manager_removes_file_and_link(
    proj: Project, tools: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GUARDIAN_SERVICE_PLATFORM", "linux")
    no_user_manager(tools)
    assert run_cli("service", "install", cwd=proj.root).exit_code == 0
    wants = unit_path(proj).parent / "default.target.wants" / unit_path(proj).name
    assert wants.is_symlink()
    r = run_cli("service", "uninstall", cwd=proj.root)
    assert r.exit_code == 0
    assert r.stdout == f"removed systemd user unit {unit_path(proj)}\n"
    assert not unit_path(proj).exists() and not wants.is_symlink()


def test_uninstall_when_nothing_is_installed(proj: Project, tools: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUARDIAN_SERVICE_PLATFORM", "linux")
    no_user_manager(tools)
    r = run_cli("service", "uninstall", cwd=proj.root)
    assert r.exit_code == 0
    assert r.stdout == f"nothing to uninstall: no systemd user unit at {unit_path(proj)}\n"


def test_status_reports_file_manager_and_watcher(proj: Project, tools: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUARDIAN_SERVICE_PLATFORM", "linux")
    no_user_manager(tools)
    name = unit_path(proj).name
    manager = f"not running: no systemd user manager is running (systemctl --user show-environment: {NO_BUS})"
    hint = f"to start the watcher without the service: guardian -C {proj.root} start"
    r = run_cli("service", "status", cwd=proj.root)
    assert r.exit_code == 0
    assert r.stdout.splitlines() == [
        f"service:  systemd user unit {name}",
        f"file:     {unit_path(proj)}: not installed (run 'guardian service install')",
        f"manager:  {manager}",
        "state:    unknown",
        "watcher:  not running",
        hint,
    ]
    assert run_cli("service", "install", cwd=proj.root).exit_code == 0
    assert (
        run_cli("service", "status", cwd=proj.root).stdout.splitlines()[1] == f"file:     {unit_path(proj)}: installed"
    )
    # A unit written for another python is out of date.
    unit_path(proj).write_text(unit_path(proj).read_text().replace("-m", "-X dev -m"))
    r = run_cli("service", "status", "--json", cwd=proj.root)
    assert r.exit_code == 0
    data = json.loads(r.stdout)
    assert data["installed"] is True and data["up_to_date"] is False
    assert data["manager"] == {"available": False, "reason": manager.removeprefix("not running: ")}
    assert data["watcher"]["running"] is False


def test_status_with_a_running_manager(proj: Project, tools: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUARDIAN_SERVICE_PLATFORM", "linux")
    working_systemd(tools)
    assert run_cli("service", "install", cwd=proj.root).exit_code == 0
    lines = run_cli("service", "status", cwd=proj.root).stdout.splitlines()
    assert lines[2:4] == ["manager:  running", "state:    active"]
    assert len(lines) == 5  # no start hint while the service runs


# --------------------------------------------------------------------------- LaunchAgent


def test_plist_round_trip(proj: Project, tools: Path, monkeypatch: pytest.MonkeyPatch, isolated_home: Path) -> None:
    monkeypatch.setenv("GUARDIAN_SERVICE_PLATFORM", "darwin")
    r = run_cli("service", "install", cwd=proj.root)
    assert r.exit_code == 0, r.stderr
    path = plist_path(proj)
    assert r.stdout == (
        f"wrote LaunchAgent {path}\n"
        "not loaded: launchctl is not installed, so no launchd user manager can load it\n"
        "the file stays in place and loads at the next login where a user service manager runs; "
        f"until then start the watcher with: guardian -C {proj.root} start\n"
    )
    assert isolated_home in path.parents and REAL_HOME not in path.parents
    raw = path.read_bytes()
    data = plistlib.loads(raw)
    assert data == {
        "Label": f"dev.guardian.{proj.paths.store.name}",
        "ProgramArguments": [os.path.abspath(sys.executable), "-P", "-m", "guardian", "-C", str(proj.root), "watch"],
        "WorkingDirectory": str(proj.root),
        "EnvironmentVariables": {"GUARDIAN_HOME": str(guardian_home())},
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": 5,
        "ExitTimeOut": 30,
        "ProcessType": "Background",
        "StandardOutPath": str(proj.paths.store / "launchd.log"),
        "StandardErrorPath": str(proj.paths.store / "launchd.log"),
    }
    assert plistlib.dumps(data, sort_keys=False) == raw
    if shutil.which("plutil", path=os.defpath + ":/usr/bin") is not None:
        lint = subprocess.run(["/usr/bin/plutil", "-lint", str(path)], capture_output=True, text=True, check=False)
        assert lint.returncode == 0, lint.stdout


def test_plist_loads_with_launchctl(
    proj: Project, tools: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GUARDIAN_SERVICE_PLATFORM", "darwin")
    fake_tool(
        tools,
        "launchctl",
        """\
        "print gui/"*/*) printf "{\\n\\tstate = running\\n}\\n"; exit 0;;
        "bootout "*) echo "Boot-out failed: 3: No such process" >&2; exit 3;;
        """,
    )
    r = run_cli("service", "install", cwd=proj.root)
    assert r.exit_code == 0, r.stderr
    label = f"dev.guardian.{proj.paths.store.name}"
    domain = f"gui/{os.getuid()}"
    assert r.stdout.splitlines()[1:] == [
        f"ran: launchctl bootstrap {domain} {plist_path(proj)}",
        f"loaded: {label} is running; it runs 'guardian watch' and restarts on failure",
    ]
    assert tool_log(tmp_path) == [
        f"print {domain}",
        f"bootout {domain}/{label}",
        f"bootstrap {domain} {plist_path(proj)}",
        f"print {domain}/{label}",
    ]


# --------------------------------------------------------------------------- errors


def test_unknown_platform_override_is_a_usage_error(proj: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUARDIAN_SERVICE_PLATFORM", "windows")
    r = run_cli("service", "install", cwd=proj.root)
    assert r.exit_code == 2
    assert r.stderr == "guardian: error: GUARDIAN_SERVICE_PLATFORM=windows: unknown platform; use linux or darwin\n"


def test_unsupported_os(proj: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    # A POSIX system guardian runs on but has no service manager for (Windows is refused before any command).
    monkeypatch.delenv("GUARDIAN_SERVICE_PLATFORM", raising=False)
    monkeypatch.setattr(sys, "platform", "freebsd14")
    r = run_cli("service", "status", cwd=proj.root)
    assert r.exit_code == 1
    assert r.stderr == (
        "guardian: error: guardian service supports Linux (systemd) and macOS (launchd), not freebsd14; "
        "run 'guardian start' to start the watcher instead\n"
    )


def test_platform_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GUARDIAN_SERVICE_PLATFORM", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    assert current_platform() == "linux"
    monkeypatch.setattr(sys, "platform", "darwin")
    assert current_platform() == "darwin"


def test_install_needs_a_store(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUARDIAN_SERVICE_PLATFORM", "linux")
    (project / "guardian.yaml").write_text("version: 1\n")
    store = Project.find(project).paths.store
    r = run_cli("service", "install", cwd=project)
    assert r.exit_code == 1
    assert r.stderr == (
        f"guardian: error: no store for {project.resolve()} at {store}; run 'guardian init' in {project.resolve()}\n"
    )


def test_control_characters_in_the_root_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GUARDIAN_SERVICE_PLATFORM", "linux")
    root = tmp_path / "two\nlines"
    root.mkdir()
    (root / "a.txt").write_text("x\n")
    assert run_cli("init", cwd=root).exit_code == 0
    r = run_cli("service", "install", cwd=root)
    assert r.exit_code == 1
    assert r.stderr == (
        f"guardian: error: cannot write a systemd user unit for {str(root.resolve())!r}: the project path contains "
        "a newline or control character, which a service file cannot hold; rename it, or run 'guardian start' instead\n"
    )


def test_service_names_are_safe_and_distinct(tmp_path: Path) -> None:
    specs = []
    for name in ("my project", "my_project"):
        root = tmp_path / name
        root.mkdir()
        (root / "guardian.yaml").write_text("version: 1\n")
        specs.append(service_spec(Project.find(root), "linux"))
    assert specs[0].name != specs[1].name
    assert specs[0].name.startswith("guardian-my_project-") and specs[0].name.endswith(".service")
    assert all(c.isalnum() or c in "-_." for c in specs[0].name)


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777
