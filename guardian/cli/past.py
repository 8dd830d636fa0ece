"""Commands that read the past: log, history, show, diff, events."""

from __future__ import annotations

import base64
import sys
from typing import TYPE_CHECKING

import click

from guardian.cli.completion import complete_paths, complete_snapshots
from guardian.cli.fast import print_history, print_log
from guardian.cli.group import Context, cli, emit_json, json_option, pass_ctx
from guardian.cli.output import echo, paint
from guardian.errors import EXIT_OK, UsageError
from guardian.util.times import format_iso_text, parse_time

if TYPE_CHECKING:
    from guardian.query.diff import VersionChoice


@cli.command()
@click.argument("path", required=False, shell_complete=complete_paths)
@click.option(
    "-n", "limit", type=click.IntRange(min=1), default=None, help="Show at most N snapshots (default: 20)."
)
@click.option("--all", "show_all", is_flag=True, help="Show every snapshot.")
@click.option(
    "--since", metavar="TIME", default=None, help="Only snapshots at or after TIME (e.g. 2h, yesterday, 16:38)."
)
@click.option("--until", metavar="TIME", default=None, help="Only snapshots at or before TIME.")
@json_option
@pass_ctx
def log(
    ctx: Context,
    path: str | None,
    limit: int | None,
    show_all: bool,
    since: str | None,
    until: str | None,
    as_json: bool,
) -> int:
    """List snapshots, newest first: the paths each changed, its note and its verdicts.

    With --since/--until, also say what changed in that window.
    """
    from guardian.query.log import DEFAULT_LOG_LIMIT, read_log

    if show_all and limit is not None:
        raise UsageError("-n and --all cannot be used together; pick one")
    t_since = parse_time(since, "--since") if since else None
    t_until = parse_time(until, "--until") if until else None
    count = None if show_all else (limit or DEFAULT_LOG_LIMIT)
    result = read_log(ctx.project(), path, cwd=ctx.cwd, limit=count, since=t_since, until=t_until)
    if as_json:
        emit_json(result.to_json())
        return EXIT_OK
    print_log(result)
    return EXIT_OK


@cli.command()
@click.argument("path", shell_complete=complete_paths)
@json_option
@pass_ctx
def history(ctx: Context, path: str, as_json: bool) -> int:
    """Show a file's timeline and a one-line diagnosis: never worked, or worked then broke."""
    from guardian.query.history import file_history

    h = file_history(ctx.project(), path, ctx.cwd)
    if as_json:
        emit_json(h.to_json())
        return EXIT_OK
    print_history(h)
    return EXIT_OK


_AT_HELP = "Snapshot id (default: the latest valid version)."
_BEFORE_HELP = "The latest valid version before this time (e.g. 2h, yesterday, 16:38)."


def _choice(at: str | None, before: str | None) -> VersionChoice:
    from guardian.query.diff import VersionChoice

    if at is not None and before is not None:
        raise UsageError("--at and --before cannot be used together; pick one")
    return VersionChoice(at=at, before=parse_time(before, "--before") if before is not None else None)


@cli.command()
@click.argument("path", shell_complete=complete_paths)
@click.option("--at", "at", metavar="SNAP", default=None, shell_complete=complete_snapshots, help=_AT_HELP)
@click.option("--before", metavar="TIME", default=None, help=_BEFORE_HELP)
@json_option
@pass_ctx
def show(ctx: Context, path: str, at: str | None, before: str | None, as_json: bool) -> int:
    """Print a snapshotted version of PATH."""
    from guardian.query.diff import show_version

    rel, snap, data = show_version(ctx.project(), path, _choice(at, before), ctx.cwd)
    if as_json:
        try:
            payload = {"encoding": "utf-8", "content": data.decode("utf-8")}
        except UnicodeDecodeError:
            payload = {"encoding": "base64", "content": base64.b64encode(data).decode()}
        emit_json({"path": rel, "snapshot": snap, "size": len(data), **payload})
        return EXIT_OK
    sys.stdout.buffer.write(data)
    sys.stdout.flush()
    return EXIT_OK


def _once(values: tuple[str, ...], option: str) -> str | None:
    """A snapshot option given once; given twice, say so instead of letting the last one win."""
    if len(values) > 1:
        raise UsageError(
            f"{option} given {len(values)} times; to compare two snapshots use --from SNAP --to SNAP"
        )
    return values[0] if values else None


@cli.command()
@click.argument("path", shell_complete=complete_paths)
@click.option(
    "--from",
    "from_",
    metavar="SNAP",
    multiple=True,
    shell_complete=complete_snapshots,
    help="The old side: this snapshot's version (default: the latest valid version).",
)
@click.option("--at", "at", metavar="SNAP", multiple=True, shell_complete=complete_snapshots, help="Same as --from.")
@click.option(
    "--before", metavar="TIME", default=None, help="The old side: the latest valid version before TIME."
)
@click.option(
    "--to",
    "to",
    metavar="SNAP",
    multiple=True,
    shell_complete=complete_snapshots,
    help="The new side: this snapshot's version (default: the working file).",
)
@json_option
@pass_ctx
def diff(
    ctx: Context,
    path: str,
    from_: tuple[str, ...],
    at: tuple[str, ...],
    before: str | None,
    to: tuple[str, ...],
    as_json: bool,
) -> int:
    """Unified diff of two versions of PATH: --from (or --at, --before) to --to, or to the working file."""
    from guardian.query.diff import VersionChoice, diff_versions

    old_at = _once(from_, "--from")
    if old_at is not None and at:
        raise UsageError("--from and --at are the same option; give one of them")
    old_at = old_at or _once(at, "--at")
    old = _choice(old_at, before)
    if old_at is not None:
        old = VersionChoice(at=old_at, option="--from" if from_ else "--at")
    to_at = _once(to, "--to")
    new = VersionChoice(at=to_at, option="--to") if to_at is not None else None
    old_version, new_version, text = diff_versions(ctx.project(), path, old, new, ctx.cwd)
    if as_json:
        emit_json(
            {
                "path": old_version.path,
                "from": old_version.snapshot,
                "to": new_version.snapshot,
                "diff": text,
                "identical": text == "",
            }
        )
        return EXIT_OK
    click.echo(text, nl=False)
    return EXIT_OK


@cli.command()
@click.option("-n", "limit", type=click.IntRange(min=1), default=50, show_default=True, help="Show the last N events.")
@click.option("--kind", default="", help="Comma-separated kinds, e.g. rollback,force,block,hook,agent.")
@click.option("--path", "path", default=None, help="Only events about this path (or under this directory).")
@json_option
@pass_ctx
def events(ctx: Context, limit: int, kind: str, path: str | None, as_json: bool) -> int:
    """Show the append-only event log: who did what, when, and what was decided."""
    from guardian.events import check_kinds

    project = ctx.project()
    kinds = check_kinds([k.strip() for k in kind.split(",") if k.strip()])
    records = project.events.tail(limit, kinds, path)
    if as_json:
        emit_json([r.to_json() for r in records])
        return EXIT_OK
    for r in records:
        snap = (r.snapshot or "")[:12]
        who = r.details.get("user", "?")
        paths = ", ".join(r.paths[:5]) + (f" (+{len(r.paths) - 5})" if len(r.paths) > 5 else "")
        what = r.details.get("summary") or r.details.get("message") or r.details.get("reason") or ""
        if not what:
            extra = {k: v for k, v in r.details.items() if k not in ("user", "pid", "argv", "decision", "files")}
            what = " ".join(f"{k}={v}" for k, v in list(extra.items())[:4])
        kind_text = paint(f"{r.event:<14}", r.event if r.event in ("block", "force", "error") else None)
        echo(
            f"{format_iso_text(r.ts)}  {who:<8} {kind_text} {r.trigger or '-':<11} {snap:<12} {paths}  {what}".rstrip()
        )
    return EXIT_OK
