"""Watcher commands: watch (foreground), start (background), stop."""

from __future__ import annotations

import click

from guardian.cli.group import Context, cli, emit_json, json_option, pass_ctx
from guardian.cli.output import echo
from guardian.errors import EXIT_OK


@cli.command()
@click.option("--ready-fd", type=int, default=None, hidden=True, help="Write 'ready <mode>' here once watching.")
@json_option
@pass_ctx
def watch(ctx: Context, ready_fd: int | None, as_json: bool) -> int:
    """Watch the project in the foreground and snapshot every change (Ctrl-C flushes and stops).

    With --json it prints nothing while it watches, then one JSON summary when it stops.
    """
    from dataclasses import asdict

    from guardian.watch.daemon import run_watcher

    summary = run_watcher(ctx.project(), ready_fd=ready_fd, echo=ready_fd is None and not as_json and not ctx.quiet)
    if as_json:
        emit_json(asdict(summary))
    elif ready_fd is None:
        echo(f"watcher stopped: {summary.snapshots} snapshot(s), {summary.rescans} rescan(s)", err=True)
    return EXIT_OK


@cli.command()
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=30.0,
    show_default=True,
    help="Seconds to wait for it to be ready.",
)
@json_option
@pass_ctx
def start(ctx: Context, timeout: float, as_json: bool) -> int:
    """Start a background watcher for this project; returns once it is watching."""
    from guardian.watch.daemon import start_watcher

    report = start_watcher(ctx.project(), timeout)
    if as_json:
        emit_json(report.to_json())
    else:
        echo(f"watcher started (pid {report.pid}, {report.mode}); log: {report.log}")
    return EXIT_OK


@cli.command()
@click.option(
    "--timeout", type=click.FloatRange(min=1), default=60.0, show_default=True, help="Seconds to wait for it to exit."
)
@json_option
@pass_ctx
def stop(ctx: Context, timeout: float, as_json: bool) -> int:
    """Stop the background watcher after it has captured pending changes."""
    from guardian.watch.daemon import stop_watcher

    report = stop_watcher(ctx.project(), timeout)
    if as_json:
        emit_json(report.to_json())
    else:
        echo(f"watcher stopped (pid {report.pid})")
    return EXIT_OK
