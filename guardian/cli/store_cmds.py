"""Store lifecycle commands: gc, remote add/list/remove, push."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from guardian.cli.base import Context, DelayedProgress, cli, emit_json, json_option, pass_ctx
from guardian.errors import EXIT_OK
from guardian.util.times import format_size, format_time

if TYPE_CHECKING:
    from guardian.lifecycle.gc import GcResult


def _print_gc(result: GcResult, verbose: bool) -> None:
    from guardian.lifecycle.retention import KEEP_REASONS

    verb = ("would drop", "would keep") if result.dry_run else ("dropped", "kept")
    click.echo(f"{verb[0]} {result.dropped} of {result.snapshots} snapshot(s), {verb[1]} {result.kept}:")
    for reason, count in result.kept_by_reason.items():
        click.echo(f"  {count:>6}  {KEEP_REASONS[reason]}")
    if verbose and result.plan is not None:
        for snap in reversed(result.plan.snapshots):
            reasons = result.plan.keep.get(snap.id)
            mark = f"keep  {', '.join(reasons)}" if reasons else "drop"
            click.echo(f"  {snap.id[:12]}  {format_time(snap.time)}  {mark}")
    if result.dry_run:
        return
    if result.replayed:
        click.echo(f"{result.replayed} snapshot(s) taken during gc were kept on the new history")
    click.echo(
        f"packed {result.packed_objects} object(s), pruned {result.pruned_objects} loose object(s), "
        f"removed {result.removed_packs} old pack(s)"
    )
    click.echo(
        f"store {format_size(result.size_before)} -> {format_size(result.size_after)} in {result.duration:.1f}s "
        f"(captures waited at most {result.longest_lock:.2f}s)"
    )


@cli.command()
@click.option("--dry-run", is_flag=True, help="Say what would be dropped and kept, change nothing.")
@click.option("-v", "--verbose", is_flag=True, help="List every snapshot with why it is kept or dropped.")
@json_option
@pass_ctx
def gc(ctx: Context, dry_run: bool, verbose: bool, as_json: bool) -> int:
    """Thin old snapshots by the retention policy, then pack and prune the store."""
    from guardian.lifecycle.gc import gc as run_gc

    progress = DelayedProgress("gc")
    result = run_gc(ctx.project(), dry_run=dry_run, progress=progress)
    progress.finish()
    if as_json:
        emit_json(result.to_json(verbose))
    else:
        _print_gc(result, verbose)
    return EXIT_OK


@cli.group()
def remote() -> None:
    """Git remotes the snapshot history is mirrored to (see 'guardian push')."""


@remote.command("add")
@click.argument("name")
@click.argument("url")
@pass_ctx
def remote_add(ctx: Context, name: str, url: str) -> int:
    """Add a remote: a path, ssh://host/path, host:path or git://host/path."""
    from guardian.lifecycle.mirror import add_remote

    info = add_remote(ctx.project(), name, url, ctx.cwd)
    click.echo(f"added remote {info.name} {info.url}; 'guardian push' sends snapshots to {info.ref} there")
    return EXIT_OK


@remote.command("remove")
@click.argument("name")
@pass_ctx
def remote_remove(ctx: Context, name: str) -> int:
    """Forget a remote (what was pushed there stays there)."""
    from guardian.lifecycle.mirror import remove_remote

    info = remove_remote(ctx.project(), name)
    click.echo(f"removed remote {info.name} {info.url}")
    return EXIT_OK


@remote.command("list")
@json_option
@pass_ctx
def remote_list(ctx: Context, as_json: bool) -> int:
    """List remotes with the result of the last push to each."""
    from guardian.lifecycle.mirror import list_remotes

    remotes = list_remotes(ctx.project())
    if as_json:
        emit_json([r.to_json() for r in remotes])
        return EXIT_OK
    if not remotes:
        click.echo("no remotes (add one with 'guardian remote add NAME URL')")
    for r in remotes:
        last = r.last_push
        if not last:
            state = "never pushed"
        elif last.get("ok"):
            state = f"last push {format_time(float(last['ts']))} ok"
        else:
            state = f"last push {format_time(float(last['ts']))} FAILED: {last.get('error')}"
        click.echo(f"{r.name}\t{r.url}\t{r.ref}\t{state}")
    return EXIT_OK


@cli.command()
@click.argument("name", required=False)
@json_option
@pass_ctx
def push(ctx: Context, name: str | None, as_json: bool) -> int:
    """Push the snapshot history to a remote (NAME, mirror.remote, or the only one)."""
    from guardian.lifecycle.mirror import push as do_push

    result = do_push(ctx.project(), name)
    if as_json:
        emit_json(result.to_json())
    elif result.up_to_date:
        click.echo(f"{result.remote} is up to date ({result.ref})")
    else:
        click.echo(
            f"pushed {(result.head or '')[:12]} to {result.remote} ({result.url}) as {result.ref} "
            f"in {result.duration:.1f}s"
        )
    return EXIT_OK
