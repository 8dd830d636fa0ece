"""Agent commands: the PreToolUse hook itself, installing it, and a dry check of one command."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, Literal

import click

from guardian.cli.group import Context, cli, emit_json, json_option, pass_ctx
from guardian.cli.output import echo, paint
from guardian.errors import EXIT_BLOCKED, EXIT_OK

if TYPE_CHECKING:
    from guardian.gates.agent.install import InstallReport

# guardian.gates.agent is imported inside the commands: every guardian invocation loads this module.

Scope = Literal["project", "user"]
_project_option = click.option(
    "--project", "scope", flag_value="project", default=True, help="The project's .claude/settings.json (default)."
)
_user_option = click.option("--user", "scope", flag_value="user", help="Your ~/.claude/settings.json (every project).")


@cli.command("agent-hook")
@json_option
@pass_ctx
def agent_hook(ctx: Context, as_json: bool) -> int:
    """Judge one Claude Code PreToolUse call read from stdin; exit 2 blocks it (run by the installed hook).

    Claude Code reads the exit code and stderr; --json adds the same on stdout for scripts.
    """
    from guardian.gates.agent.hook import run_hook

    data = sys.stdin.buffer.read()
    result = run_hook(data, os.environ, ctx.cwd)
    if result.stderr:
        click.echo(result.stderr, err=True, nl=False)
    if as_json:
        emit_json({"exit_code": result.exit_code, "blocked": result.exit_code == 2, "message": result.stderr.strip()})
    return result.exit_code


@cli.group()
def agent() -> None:
    """Gate coding agents' commands: install the hook, or check a command by hand."""


def _install_json(report: InstallReport, scope: Scope) -> dict[str, Any]:
    return {
        "path": str(report.path),
        "scope": scope,
        "action": report.action,
        "changed": report.changed,
        "command": report.command,
    }


@agent.command("install")
@click.argument("target", type=click.Choice(["claude"]))
@_project_option
@_user_option
@json_option
@pass_ctx
def install(ctx: Context, target: str, scope: Scope, as_json: bool) -> int:
    """Add guardian's PreToolUse hook to Claude Code's settings, keeping every other setting."""
    from guardian.gates.agent.install import claude_settings_path, install_claude_hook

    report = install_claude_hook(claude_settings_path(scope, ctx.cwd))
    if as_json:
        emit_json(_install_json(report, scope))
        return EXIT_OK
    words = {
        "installed": "installed the hook in",
        "updated": "updated the hook in",
        "unchanged": "the hook is already installed in",
    }
    echo(f"{words[report.action]} {report.path}")
    echo(f"  PreToolUse {report.command}")
    return EXIT_OK


@agent.command("uninstall")
@click.argument("target", type=click.Choice(["claude"]))
@_project_option
@_user_option
@json_option
@pass_ctx
def uninstall(ctx: Context, target: str, scope: Scope, as_json: bool) -> int:
    """Remove guardian's hook (only guardian's) from Claude Code's settings."""
    from guardian.gates.agent.install import claude_settings_path, uninstall_claude_hook

    report = uninstall_claude_hook(claude_settings_path(scope, ctx.cwd))
    if as_json:
        emit_json(_install_json(report, scope))
    elif report.changed:
        echo(f"removed the hook from {report.path}")
    else:
        echo(f"no guardian hook in {report.path}")
    return EXIT_OK


@agent.command("check")
@click.argument("command")
@json_option
@pass_ctx
def check(ctx: Context, command: str, as_json: bool) -> int:
    """Say what the hook would decide for COMMAND run here; takes no snapshot, records nothing.

    Exits 0 when the hook would allow it and 4 when it would block it.
    """
    from guardian.gates.agent.judge import judge_command
    from guardian.gates.agent.payload import force_requested

    project = ctx.project()
    force = force_requested(os.environ)
    verdict = judge_command(project.root, project.policy, command, ctx.cwd, force=force)
    if as_json:
        emit_json(verdict.to_json())
    elif verdict.blocked:
        echo(paint(verdict.message, "block"))
    elif verdict.action == "benign":
        echo(f"{paint('allow')}: nothing destructive")
    else:
        forced = " (forced by GUARDIAN_FORCE)" if verdict.action == "forced" else ""
        scope = "the whole tree" if verdict.snapshot_paths is None else f"{len(verdict.snapshot_paths)} path(s)"
        echo(f"{paint('allow')}{forced}: the hook would snapshot {scope} first")
    return EXIT_BLOCKED if verdict.blocked else EXIT_OK
