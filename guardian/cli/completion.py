"""``guardian completion bash|zsh|fish``, and what completes: paths, and snapshot ids from the catalog.

The script is click's own; the shell runs ``guardian`` with ``_GUARDIAN_COMPLETE`` set to
ask for candidates, and the callbacks here answer for PATH arguments and snapshot options.
"""

from __future__ import annotations

import click
from click.shell_completion import CompletionItem, get_completion_class

from guardian.cli.group import cli, emit_json, json_option, shared
from guardian.errors import EXIT_OK

COMPLETE_VAR = "_GUARDIAN_COMPLETE"
SHELLS = ("bash", "zsh", "fish")


def complete_paths(_ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Let the shell complete file names itself (type 'file'), as it does for any command."""
    return [CompletionItem(incomplete, type="file")]


def complete_snapshots(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    from guardian.query.completion import snapshot_ids

    # -C, when typed, has already been parsed (and stored) by the time the shell asks.
    return [CompletionItem(sid, help=about) for sid, about in snapshot_ids(shared(ctx).cwd, incomplete)]


@cli.command()
@click.argument("shell", type=click.Choice(SHELLS))
@json_option
def completion(shell: str, as_json: bool) -> int:
    """Print the completion script for SHELL; e.g. eval "$(guardian completion bash)" in ~/.bashrc."""
    cls = get_completion_class(shell)
    assert cls is not None  # every name in SHELLS is one click knows
    script = cls(cli, {}, "guardian", COMPLETE_VAR).source()
    if as_json:
        emit_json({"shell": shell, "script": script})
    else:
        click.echo(script)
    return EXIT_OK
