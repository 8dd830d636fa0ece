"""Protected-component commands: gate (for users' own scripts) and rollback."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from guardian.cli.completion import complete_paths, complete_snapshots
from guardian.cli.group import Context, cli, emit_json, json_option, pass_ctx
from guardian.cli.output import Progress, echo, file_lines, paint
from guardian.util.times import parse_time

if TYPE_CHECKING:
    # Imported lazily in the commands: every guardian invocation loads this module, and
    # guardian.rollback pulls in pygit2, which the gate must not pay for.
    from pathlib import Path

    from guardian.gates.gate import GateResult
    from guardian.ops.rollback import RollbackReport
    from guardian.policy import PathDecision


def _gate_line(p: PathDecision) -> str:
    word = p.outcome if not p.forced else "forced"
    head = f"{paint(f'{word:<6}', word)} {p.path} ({p.change})"
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
        echo(_gate_line(p))
    if result.outside:
        echo(f"not judged: {len(result.outside)} path(s) outside the project root")
    echo(paint(summary_line(result), result.decision.overall))
    if result.decision.overall == "force":
        echo("rerun with --force if you mean to change protected paths", err=True)
    elif result.decision.overall == "block":
        echo("blocked paths cannot be forced; change the protect rule in guardian.yaml if you must", err=True)


@cli.command()
# Spelled out rather than imported: guardian.policy pulls in pathspec, which --help need not pay for.
@click.argument("operation", type=click.Choice(("rollback", "delete", "restore", "modify")))
@click.argument("paths", nargs=-1, shell_complete=complete_paths)
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


def print_rollback(
    ctx: Context, report: RollbackReport, undo_hint: str | None = None, root: Path | None = None
) -> None:
    verbs = _PLANNED if report.dry_run else _DONE
    forced = report.forced
    applied = [
        f"{verbs[c.action]} {c.path}{f' (forced: {forced[c.path].reason})' if c.path in forced else ''}"
        for c in sorted(report.applied, key=lambda c: c.path)
    ]
    problems = (
        [f"{paint('SKIP', 'skip')} {p.path} (protected: {p.reason})" for p in report.skipped]
        + [f"{paint('BLOCKED', 'blocked')} {p.path} (protected: {p.reason})" for p in report.blocked]
        + [f"{paint('FAILED', 'failed')} {f.path}: {f.error}" for f in report.failed]
    )
    # Applied changes first (cut short unless -v; none with -q), then every path that needs attention.
    file_lines(ctx, applied, what="change(s)")
    file_lines(ctx, [], problems)
    echo(report.summary())
    if report.skipped:
        echo(f"{len(report.skipped)} protected path(s) skipped; rerun with --force to roll them back too")
    if report.pre_snapshot and not report.dry_run and report.applied:
        pre = report.pre_snapshot[:12]
        echo(undo_hint or f"the state before this rollback is snapshot {pre}; undo with 'guardian rollback --to {pre}'")
    if root is not None and not report.dry_run:
        from guardian.ops.restore_dir import reattach_hints

        for line in reattach_hints(root, [c.path for c in report.applied if c.entry is not None]):
            echo(line)


@cli.command()
@click.argument("paths", nargs=-1, shell_complete=complete_paths)
@click.option(
    "--to",
    "to",
    metavar="SNAP",
    default=None,
    shell_complete=complete_snapshots,
    help="The snapshot to return to (an id from 'guardian log').",
)
@click.option(
    "--before", metavar="TIME", default=None, help="Return to the last snapshot before TIME (e.g. 2h, 16:38)."
)
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
    progress = Progress("rollback", ctx)
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
        print_rollback(ctx, report, root=project.root)
    return report.exit_code


@cli.command()
@click.argument("operation", type=click.Choice(("rollback", "delete", "modify", "restore")))
@click.argument("paths", nargs=-1)
@click.option(
    "--for", "duration", metavar="DURATION", default="5m", show_default=True, help="How long the grant lasts (10m, 1h)."
)
@json_option
@pass_ctx
def allow(ctx: Context, operation: str, paths: tuple[str, ...], duration: str, as_json: bool) -> int:
    """Let OPERATION change protected PATHS for a while: the watcher and hooks then let it stand."""
    from guardian.errors import UsageError
    from guardian.ops.grant import allow as do_allow
    from guardian.util.times import format_time, parse_duration

    try:
        seconds = parse_duration(duration)
    except ValueError as exc:
        raise UsageError(f"--for: {exc}") from None
    grant = do_allow(ctx.project(), operation, paths, cwd=ctx.cwd, seconds=seconds)
    if as_json:
        emit_json(grant.to_json())
    else:
        echo(
            f"granted {operation} of {', '.join(grant.paths)} until {format_time(grant.expires)} (grant {grant.id})"
        )
    return 0


@cli.command()
@click.option("--revoke", "revoke", metavar="ID", multiple=True, help="Drop this grant (repeatable).")
@click.option("--revoke-all", is_flag=True, help="Drop every grant.")
@json_option
@pass_ctx
def grants(ctx: Context, revoke: tuple[str, ...], revoke_all: bool, as_json: bool) -> int:
    """List the force grants in effect, or revoke them."""
    from guardian.trust.grants import active_grants, revoke_grants
    from guardian.util.times import format_time

    project = ctx.project()
    project.require_store()
    if revoke or revoke_all:
        dropped = revoke_grants(project.paths.store, None if revoke_all else revoke)
        project.events.append("grant", [], None, "grant", {"revoked": [g.id for g in dropped]})
        if as_json:
            emit_json({"revoked": [g.to_json() for g in dropped]})
        else:
            echo(f"revoked {len(dropped)} grant(s)")
        return 0
    found = active_grants(project.paths.store)
    if as_json:
        emit_json({"grants": [g.to_json() for g in found]})
        return 0
    if not found:
        echo("no grants in effect")
    for g in found:
        echo(f"{g.id}  {g.operation:<8} {', '.join(g.paths)}  until {format_time(g.expires)}  ({g.by})")
    return 0


@cli.group()
def policy() -> None:
    """The policy in force: guardian.yaml as last accepted."""


@policy.command("accept")
@json_option
@pass_ctx
def policy_accept(ctx: Context, as_json: bool) -> int:
    """Put guardian.yaml as it is on disk in force (edits that weaken protection wait for this)."""
    from guardian.ops.grant import accept_policy

    report = accept_policy(ctx.project())
    if as_json:
        emit_json(report.to_json())
        return 0
    if not report.changed:
        echo("guardian.yaml is already the policy in force")
        return 0
    echo("accepted guardian.yaml: it is now the policy in force")
    for line in report.weakened:
        echo(f"  gives up: {line}")
    return 0
