"""Commands that put files back: restore."""

from __future__ import annotations

import click

from guardian.cli.base import Context, cli, emit_json, json_option, pass_ctx
from guardian.cli.completion import complete_paths, complete_snapshots
from guardian.cli.output import echo, file_lines
from guardian.errors import EXIT_OK
from guardian.util.times import format_size, format_time, parse_time


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
    verb = "would restore" if dry_run else "restored"
    file_lines(
        ctx,
        [
            f"{verb} {f.path} from snapshot {f.snapshot[:12]} ({format_time(f.time)}): "
            f"{format_size(f.size_before) if f.size_before is not None else 'missing'} -> {format_size(f.size_after)}"
            for f in report.files
        ],
    )
    if report.pre_snapshot:
        echo(f"the state before this restore is snapshot {report.pre_snapshot[:12]} (undo with --at it)")
    return EXIT_OK
