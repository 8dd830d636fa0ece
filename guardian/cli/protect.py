"""Protected-component commands: gate (for users' own scripts) and rollback."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from guardian.cli.base import Context, DelayedProgress, cli, emit_json, json_option, pass_ctx
from guardian.util.times import parse_time

if TYPE_CHECKING:
    # Imported lazily in the commands: every guardian invocation loads this module, and
    # guardian.rollback pulls in pygit2, which the gate must not pay for.
    from guardian.gates.gate import GateResult
    from guardian.ops.rollback import RollbackReport
    from guardian.policy import PathDecision


def _gate_line(p: PathDecision) -> str:
    head = f"{p.outcome if not p.forced else 'forced':<6} {p.path} ({p.change})"
    if p.outcome == "block":
        return f"{head}: blocked (protected: {p.reason})"
    if p.forced:
        return f"{head}: allowed by --force (protected: {p.reason})"
    if p.outcome == "force":
        return f"{head}: needs --force (protected: {p.reason})"
    if p.rule_paths:
        return f"{head}: allowed (protected: {p.reason})"
    return head


def _print_gate(result: GateResult) -> None:
    from guardian.gates.gate import summary_line

    for p in result.decision.paths:
        click.echo(_gate_line(p))
    if result.outside:
        click.echo(f"not judged: {len(result.outside)} path(s) outside the project root")
    click.echo(summary_line(result))
    if result.decision.overall == "force":
        click.echo("rerun with --force if you mean to change protected paths", err=True)
    elif result.decision.overall == "block":
        click.echo("blocked paths cannot be forced; change the protect rule in guardian.yaml if you must", err=True)


@cli.command()
# Spelled out rather than imported: guardian.policy pulls in pathspec, which --help need not pay for.
@click.argument("operation", type=click.Choice(("rollback", "delete", "restore", "modify")))
@click.argument("paths", nargs=-1)
@click.option("--force", is_flag=True, help="Allow changes to protected paths whose rule says 'force'.")
@click.option(
    "--from-git", "from_git", metavar="REV", default=None, help="Take the paths from 'git diff --name-status HEAD REV'."
)
@json_option
@pass_ctx
def gate(ctx: Context, operation: str, paths: tuple[str, ...], force: bool, from_git: str | None, as_json: bool) -> int:
    """Ask the policy whether OPERATION may change PATHS; exit 0 allow, 3 needs --force, 4 blocked."""
    from guardian.gates.gate import run_gate

    result = run_gate(ctx.project(), operation, paths, cwd=ctx.cwd, force=force, from_git=from_git, argv=sys.argv)
    if as_json:
        emit_json(result.to_json())
    else:
        _print_gate(result)
    return result.exit_code


_DONE = {"rewrite": "rewrote", "delete": "deleted", "recreate": "recreated"}
_PLANNED = {"rewrite": "would rewrite", "delete": "would delete", "recreate": "would recreate"}


def _print_rollback(report: RollbackReport) -> None:
    verbs = _PLANNED if report.dry_run else _DONE
    forced = report.forced
    for c in sorted(report.applied, key=lambda c: c.path):
        mark = f" (forced: {forced[c.path].reason})" if c.path in forced else ""
        click.echo(f"{verbs[c.action]} {c.path}{mark}")
    for p in report.skipped:
        click.echo(f"SKIP {p.path} (protected: {p.reason})")
    for p in report.blocked:
        click.echo(f"BLOCKED {p.path} (protected: {p.reason})")
    for f in report.failed:
        click.echo(f"FAILED {f.path}: {f.error}")
    click.echo(report.summary())
    if report.skipped:
        click.echo(f"{len(report.skipped)} protected path(s) skipped; rerun with --force to roll them back too")
    if report.pre_snapshot and not report.dry_run and report.applied:
        pre = report.pre_snapshot[:12]
        click.echo(f"the state before this rollback is snapshot {pre}; undo with 'guardian rollback --to {pre}'")


@cli.command()
@click.argument("paths", nargs=-1)
@click.option("--to", "to", metavar="SNAP", default=None, help="The snapshot to return to (an id from 'guardian log').")
@click.option("--before", metavar="TIME", default=None, help="Return to the last snapshot before TIME (e.g. 2h).")
@click.option("--force", is_flag=True, help="Also roll back protected paths whose rule says 'force'.")
@click.option("--dry-run", is_flag=True, help="Print the plan; change no file.")
@json_option
@pass_ctx
def rollback(
    ctx: Context,
    paths: tuple[str, ...],
    to: str | None,
    before: str | None,
    force: bool,
    dry_run: bool,
    as_json: bool,
) -> int:
    """Return the tree (or PATHS) to a snapshot; protected paths are skipped unless --force."""
    from guardian.ops.rollback import rollback as do_rollback

    project = ctx.project()
    t_before = parse_time(before, "--before") if before is not None else None
    progress = DelayedProgress("rollback")
    try:
        report = do_rollback(
            project,
            to=to,
            before=t_before,
            paths=paths,
            cwd=ctx.cwd,
            force=force,
            dry_run=dry_run,
            argv=sys.argv,
            progress=progress,
        )
    finally:
        progress.finish()
    if as_json:
        emit_json(report.to_json())
    else:
        _print_rollback(report)
    return report.exit_code
