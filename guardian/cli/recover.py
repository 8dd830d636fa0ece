"""Commands that put files back: restore, and undo of the last restore, rollback or repair."""

from __future__ import annotations

import click

from guardian.cli.completion import complete_paths, complete_snapshots
from guardian.cli.fast import print_restore
from guardian.cli.group import Context, cli, emit_json, json_option, pass_ctx
from guardian.cli.output import echo
from guardian.errors import EXIT_OK
from guardian.util.times import format_iso_text, parse_time


@cli.command()
@click.argument("paths", nargs=-1, required=True, shell_complete=complete_paths)
@click.option(
    "--at", "at", metavar="SNAP", default=None, shell_complete=complete_snapshots, help="Restore from this snapshot."
)
@click.option(
    "--before", metavar="TIME", default=None, help="Latest valid version before TIME (e.g. 2h, yesterday, 16:38)."
)
@click.option("--dry-run", is_flag=True, help="Say what would be restored, change nothing.")
@click.option("--force", is_flag=True, help="Restore protected paths whose policy says restore: force.")
@click.option("--from-remote", is_flag=True, help="Pick versions from the mirror's history (see 'guardian push').")
@click.option("--remote", "remote", metavar="NAME", default=None, help="With --from-remote: which remote.")
@click.option("--ref", metavar="HOST/PROJECT", default=None, help="With --from-remote: another machine's snapshots.")
@json_option
@pass_ctx
def restore(
    ctx: Context,
    paths: tuple[str, ...],
    at: str | None,
    before: str | None,
    dry_run: bool,
    force: bool,
    from_remote: bool,
    remote: str | None,
    ref: str | None,
    as_json: bool,
) -> int:
    """Bring back the latest valid version of each PATH (a bare file name is found anywhere in history)."""
    from guardian.errors import UsageError
    from guardian.ops.restore import restore as do_restore

    if at and before:
        raise UsageError("--at and --before cannot be used together; pick one")
    if (remote or ref) and not from_remote:
        raise UsageError("--remote and --ref only go with --from-remote")
    t_before = parse_time(before, "--before") if before else None
    if from_remote:
        from guardian.ops.remote import restore_from_remote

        report = restore_from_remote(
            ctx.project(),
            paths,
            remote=remote,
            ref=ref,
            cwd=ctx.cwd,
            at=at,
            before=t_before,
            dry_run=dry_run,
            force=force,
        )
    else:
        report = do_restore(ctx.project(), paths, cwd=ctx.cwd, at=at, before=t_before, dry_run=dry_run, force=force)
    if as_json:
        emit_json(report.to_json())
        return EXIT_OK
    print_restore(ctx, report, dry_run=dry_run)
    return EXIT_OK


@cli.command()
@click.option("--list", "list_only", is_flag=True, help="List the recent restores, rollbacks and repairs instead.")
@click.option("--force", is_flag=True, help="Also put back protected paths whose rule says rollback: force.")
@click.option("--dry-run", is_flag=True, help="Print what undo would change; change nothing.")
@json_option
@pass_ctx
def undo(ctx: Context, list_only: bool, force: bool, dry_run: bool, as_json: bool) -> int:
    """Reverse the last restore, rollback or repair, from the snapshot it took before it began.

    Undo is a rollback of the paths it changed, so 'guardian undo' again re-applies it.
    """
    from guardian.cli.protect import print_rollback
    from guardian.ops.undo import recent_operations
    from guardian.ops.undo import undo as do_undo

    project = ctx.project()
    if list_only:
        ops = recent_operations(project)
        if as_json:
            emit_json([op.to_json() for op in ops])
            return EXIT_OK
        if not ops:
            echo("nothing to undo: no restore, rollback or repair is on the record")
        for n, op in enumerate(ops):
            paths = ", ".join(op.paths[:3]) + (f" +{len(op.paths) - 3} more" if len(op.paths) > 3 else "")
            which = "  <- 'guardian undo' reverses this one" if n == 0 else ""
            echo(f"{format_iso_text(op.ts)}  {op.label:<8} {paths or 'the whole tree'}  "
                 f"(before: {op.pre_snapshot[:12]}){which}")
        return EXIT_OK
    # The rollback records this as its command, and 'guardian undo --list' reads "undo" back from it.
    argv = ["guardian", "undo", *(["--force"] if force else []), *(["--dry-run"] if dry_run else [])]
    report = do_undo(project, force=force, dry_run=dry_run, argv=argv)
    if as_json:
        emit_json(report.to_json())
        return report.rollback.exit_code
    op = report.undone
    verb = "would undo" if dry_run else "undoing"
    echo(f"{verb} the {op.label} of {format_iso_text(op.ts)}: back to snapshot {op.pre_snapshot[:12]}")
    pre = (report.rollback.pre_snapshot or "")[:12]
    hint = f"the state before this undo is snapshot {pre}; 'guardian undo' again redoes it"
    print_rollback(ctx, report.rollback, hint, root=project.root)
    for path in report.changed_since:
        echo(
            f"note: {path} changed again after that {op.label}; "
            "those edits are in the snapshot taken before this undo ('guardian undo' brings them back)"
        )
    return report.rollback.exit_code
