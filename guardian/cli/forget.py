"""``guardian forget``: purge a secret (``--text``) or a path from every stored version."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from guardian.cli.completion import complete_paths
from guardian.cli.group import Context, cli, emit_json, json_option, pass_ctx
from guardian.cli.output import echo, file_lines
from guardian.errors import EXIT_OK
from guardian.util.times import format_time

if TYPE_CHECKING:
    from guardian.ops.forget import ForgetResult


def _print(ctx: Context, result: ForgetResult) -> None:
    verb = "would rewrite" if result.dry_run else "rewrote"
    if not result.versions and not result.messages:
        echo("nothing stored holds that; nothing to forget")
        return
    files = result.files
    echo(f"{verb} {len(result.versions)} version(s) of {len(files)} file(s):")
    word = {"redact": "redact" if result.dry_run else "redacted", "drop": "drop" if result.dry_run else "dropped"}
    lines = [f"  {v.snapshot[:12]}  {format_time(v.time)}  {word[v.action]:<8}  {v.path}" for v in result.versions]
    file_lines(ctx, lines, what="version(s)")
    if result.messages:
        echo(f"{verb} {result.messages} snapshot message(s) that held the text")
    if result.dry_run:
        if result.still_on_disk:
            echo(
                f"a real run would refuse: {', '.join(result.still_on_disk[:5])} still hold(s) it in the work tree "
                "(remove it there first)"
            )
        return
    echo(
        f"{result.snapshots} snapshot(s) got new ids (the old ids still find them); "
        f"head {(result.head_before or '')[:12]} -> {(result.head_after or '')[:12]}"
    )
    if result.replayed:
        echo(f"{result.replayed} snapshot(s) taken meanwhile were rewritten too")
    echo(
        "the old versions are unreachable now: 'guardian gc' deletes them from disk; the next 'guardian push' "
        "replaces the mirror's history (run 'git gc --prune=now' in the mirror repository to delete them there)"
    )


@cli.command()
@click.argument("paths", nargs=-1, shell_complete=complete_paths)
@click.option("--text", metavar="SECRET", default=None, help="Redact this text in every stored version and message.")
@click.option("--dry-run", is_flag=True, help="List the versions that would change, change nothing.")
@json_option
@pass_ctx
def forget(ctx: Context, paths: tuple[str, ...], text: str | None, dry_run: bool, as_json: bool) -> int:
    """Purge a secret from the store: --text SECRET redacts it everywhere, PATH drops every version of PATH."""
    from guardian.ops.forget import forget as do_forget

    result = do_forget(ctx.project(), text=text, paths=paths, cwd=ctx.cwd, dry_run=dry_run)
    if as_json:
        emit_json(result.to_json())
    else:
        _print(ctx, result)
    return EXIT_OK
