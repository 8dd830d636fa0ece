"""Guardrail commands: check (and repair) drift, and run the watcher as a user service."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from guardian.cli.completion import complete_paths
from guardian.cli.group import Context, cli, emit_json, json_option, pass_ctx
from guardian.cli.output import echo, paint
from guardian.errors import EXIT_FAILED, EXIT_OK
from guardian.util.times import format_time

if TYPE_CHECKING:
    # Imported lazily in the commands: every guardian invocation loads this module.
    from guardian.gates.guardrail import GuardrailReport
    from guardian.watch.service import ServiceReport


def _print_check(report: GuardrailReport, repair: bool) -> None:
    if report.clean:
        echo(f"no drift: {report.checked} watched file(s) match their latest valid snapshot")
        return
    for d in report.drift:
        mark = " (protected)" if d.protected else ""
        if d.problem == "rolled-back":  # the detail says it: "rolled back to the version of ..."
            echo(f"{paint('drift:', 'drift')} {d.path}{mark}: {d.detail}")
            continue
        echo(f"{paint('drift:', 'drift')} {d.path}{mark} is {paint(d.problem, d.problem)}: {d.detail}")
    if not repair:
        return
    for d in report.drift:
        if d.path in report.repaired and d.last_valid_snapshot and d.last_valid_time is not None:
            echo(f"repaired: {d.path} from snapshot {d.last_valid_snapshot[:12]} ({format_time(d.last_valid_time)})")
    for path, reason in report.not_repaired:
        echo(f"{paint('not repaired:', 'failed')} {path}: {reason}")
    if report.pre_snapshot:
        echo(
            f"the state before this repair is snapshot {report.pre_snapshot[:12]} "
            f"(undo with 'guardian restore --at {report.pre_snapshot[:12]} PATH')"
        )


@cli.command()
@click.argument("paths", nargs=-1, shell_complete=complete_paths)
@click.option("--repair", is_flag=True, help="Restore drifting files to their latest valid version (never forces).")
@json_option
@pass_ctx
def check(ctx: Context, paths: tuple[str, ...], repair: bool, as_json: bool) -> int:
    """Report watched files that are missing, invalid, suspect or rolled back (protected first); exit 1 on drift."""
    from guardian.gates.guardrail import run_guardrail
    from guardian.paths import to_relative

    project = ctx.project()
    rels = [to_relative(project.root, p, ctx.cwd) for p in paths] or None
    report = run_guardrail(project, rels, repair=repair, trigger="check")
    if as_json:
        emit_json(report.to_json())
    else:
        _print_check(report, repair)
    if report.clean:
        return EXIT_OK
    if repair and report.all_repaired:
        return EXIT_OK
    if not as_json:
        if repair:
            echo(f"guardian: {len(report.not_repaired)} drifting file(s) not repaired", err=True)
        else:
            echo(
                f"guardian: {len(report.drift)} file(s) drifted from their latest valid snapshot; "
                "run 'guardian check --repair' to restore them",
                err=True,
            )
    return EXIT_FAILED


@cli.group()
def service() -> None:
    """Run this project's watcher as a systemd user unit (Linux) or LaunchAgent (macOS)."""


def _print_manager(report: ServiceReport) -> None:
    if report.loaded:
        for command in report.commands:
            echo(f"ran: {command}")
        echo(f"loaded: {report.name} is {report.state}; it runs 'guardian watch' and restarts on failure")
    else:
        echo(f"not loaded: {report.manager.reason}")
        echo(
            f"the file stays in place and loads at the next login where a user service manager runs; "
            f"until then start the watcher with: {report.hint}"
        )


@service.command()
@json_option
@pass_ctx
def install(ctx: Context, as_json: bool) -> int:
    """Write the service file and load it (start the watcher) if a user service manager runs."""
    from guardian.watch.service import install as do_install

    report = do_install(ctx.project())
    if as_json:
        emit_json(report.to_json())
        return EXIT_OK
    echo(f"wrote {report.kind} {report.path}")
    _print_manager(report)
    return EXIT_OK


@service.command()
@json_option
@pass_ctx
def uninstall(ctx: Context, as_json: bool) -> int:
    """Stop and unload the service, then remove its file."""
    from guardian.watch.service import uninstall as do_uninstall

    report = do_uninstall(ctx.project())
    if as_json:
        emit_json(report.to_json())
        return EXIT_OK
    for command in report.commands:
        echo(f"ran: {command}")
    if report.installed:
        echo(f"removed {report.kind} {report.path}")
    else:
        echo(f"nothing to uninstall: no {report.kind} at {report.path}")
    return EXIT_OK


@service.command(name="status")
@json_option
@pass_ctx
def service_status(ctx: Context, as_json: bool) -> int:
    """Show whether the service file is installed and current, and whether it runs."""
    from guardian.watch.service import status as get_status

    report = get_status(ctx.project())
    if as_json:
        emit_json(report.to_json())
        return EXIT_OK
    if not report.installed:
        state = "not installed (run 'guardian service install')"
    elif report.up_to_date:
        state = "installed"
    else:
        state = "installed, out of date (rerun 'guardian service install')"
    echo(f"service:  {report.kind} {report.name}")
    echo(f"file:     {report.path}: {state}")
    echo(f"manager:  {'running' if report.manager.available else 'not running: ' + report.manager.reason}")
    echo(f"state:    {report.state or 'unknown'}")
    watcher = f"running (pid {report.watcher.get('pid')})" if report.watcher.get("running") else "not running"
    echo(f"watcher:  {watcher}")
    if not report.loaded and report.hint:
        echo(f"to start the watcher without the service: {report.hint}")
    return EXIT_OK
