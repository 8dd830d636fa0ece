"""Store lifecycle commands: gc, remote add/list/remove, push."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from guardian.cli.group import Context, cli, emit_json, json_option, pass_ctx
from guardian.cli.output import Progress, echo, paint
from guardian.errors import EXIT_OK
from guardian.util.times import format_size, format_time

if TYPE_CHECKING:
    from guardian.lifecycle.gc import GcResult


def _print_gc(result: GcResult, verbose: bool) -> None:
    from guardian.lifecycle.retention import KEEP_REASONS

    verb = ("would drop", "would keep") if result.dry_run else ("dropped", "kept")
    echo(f"{verb[0]} {result.dropped} of {result.snapshots} snapshot(s), {verb[1]} {result.kept}:")
    for reason, count in result.kept_by_reason.items():
        echo(f"  {count:>6}  {KEEP_REASONS[reason]}")
    if verbose and result.plan is not None:
        for snap in reversed(result.plan.snapshots):
            reasons = result.plan.keep.get(snap.id)
            mark = f"keep  {', '.join(reasons)}" if reasons else "drop"
            echo(f"  {snap.id[:12]}  {format_time(snap.time)}  {mark}")
    if result.dry_run:
        return
    if result.replayed:
        echo(f"{result.replayed} snapshot(s) taken during gc were kept on the new history")
    echo(
        f"packed {result.packed_objects} object(s), pruned {result.pruned_objects} loose object(s), "
        f"removed {result.removed_packs} old pack(s)"
    )
    echo(
        f"store {format_size(result.size_before)} -> {format_size(result.size_after)} in {result.duration:.1f}s "
        f"(captures waited at most {result.longest_lock:.2f}s)"
    )


@cli.command()
@click.option("--dry-run", is_flag=True, help="Say what would be dropped and kept, change nothing.")
@json_option
@pass_ctx
def gc(ctx: Context, dry_run: bool, as_json: bool) -> int:
    """Thin old snapshots by the retention policy, then pack and prune the store (-v: every snapshot, and why)."""
    from guardian.lifecycle.gc import gc as run_gc

    progress = Progress("gc", ctx)
    try:
        result = run_gc(ctx.project(), dry_run=dry_run, progress=progress)
    finally:
        progress.finish()
    if as_json:
        emit_json(result.to_json(ctx.verbose))
    else:
        _print_gc(result, ctx.verbose)
    return EXIT_OK


@cli.group()
def remote() -> None:
    """Git remotes the snapshot history is mirrored to (see 'guardian push')."""


@remote.command("add")
@click.argument("name")
@click.argument("url")
@json_option
@pass_ctx
def remote_add(ctx: Context, name: str, url: str, as_json: bool) -> int:
    """Add a remote: a path, ssh://host/path, host:path or git://host/path."""
    from guardian.lifecycle.mirror import add_remote

    info = add_remote(ctx.project(), name, url, ctx.cwd)
    if as_json:
        emit_json({"added": info.to_json()})
    else:
        echo(f"added remote {info.name} {info.url}; 'guardian push' sends snapshots to {info.ref} there")
    return EXIT_OK


@remote.command("remove")
@click.argument("name")
@json_option
@pass_ctx
def remote_remove(ctx: Context, name: str, as_json: bool) -> int:
    """Forget a remote (what was pushed there stays there)."""
    from guardian.lifecycle.mirror import remove_remote

    info = remove_remote(ctx.project(), name)
    if as_json:
        emit_json({"removed": info.to_json()})
    else:
        echo(f"removed remote {info.name} {info.url}")
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
        echo("no remotes (add one with 'guardian remote add NAME URL')")
    for r in remotes:
        last = r.last_push
        if not last:
            state = "never pushed"
        elif last.get("ok"):
            state = f"last push {format_time(float(last['ts']))} ok"
        else:
            state = f"last push {format_time(float(last['ts']))} {paint('FAILED', 'failed')}: {last.get('error')}"
        echo(f"{r.name}\t{r.url}\t{r.ref}\t{state}")
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
        echo(f"{result.remote} is up to date ({result.ref})")
    else:
        echo(
            f"pushed {(result.head or '')[:12]} to {result.remote} ({result.url}) as {result.ref} "
            f"in {result.duration:.1f}s"
        )
    note = None if as_json else result.redaction_note()
    if note:
        echo(note)
    return EXIT_OK
