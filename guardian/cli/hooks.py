"""Git hook commands: ``guardian hooks install|uninstall|status`` and the hidden ``hook-impl`` the shims run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from guardian.cli.group import Context, cli, emit_json, json_option, pass_ctx
from guardian.errors import EXIT_OK

if TYPE_CHECKING:
    from guardian.gates.githooks.install import HooksStatus


@cli.group()
def hooks() -> None:
    """Install git hooks that stop or undo git commands rolling back protected paths."""


def _where(hooks_dir: Path, hooks_path: str | None) -> None:
    click.echo(f"hooks dir: {hooks_dir}")
    if hooks_path:
        click.echo(
            f"core.hooksPath is set ({hooks_path}): git runs hooks from there; any other repository that uses "
            "it runs these shims too (they do nothing where there is no guardian.yaml)"
        )


@hooks.command()
@click.option(
    "--python", "python", default=None, metavar="PATH", help="Interpreter the shims call (default: this one)."
)
@json_option
@pass_ctx
def install(ctx: Context, python: str | None, as_json: bool) -> int:
    """Write the hook shims; existing hooks are kept as <hook>.guardian-chained and run first."""
    from guardian.gates.githooks.install import install as do_install

    report = do_install(ctx.cwd, python)
    if as_json:
        emit_json(report.to_json())
        return EXIT_OK
    _where(report.hooks_dir, report.hooks_path)
    for name in report.written:
        click.echo(f"installed {name}")
    for name in report.updated:
        click.echo(f"updated   {name}")
    for name in report.chained:
        click.echo(f"installed {name} (your hook is kept as {name}.guardian-chained and runs first)")
    for name in report.via_pre_commit:
        click.echo(f"updated   {name} (pre-commit runs it as {name}.legacy)")
    click.echo(f"the shims run {report.python} -P -m guardian hook-impl")
    if report.project_root is None:
        click.echo("note: no guardian.yaml in this work tree or above it; the hooks do nothing until 'guardian init'")
    return EXIT_OK


@hooks.command()
@json_option
@pass_ctx
def uninstall(ctx: Context, as_json: bool) -> int:
    """Remove the shims and put back the hooks they replaced, byte for byte."""
    from guardian.gates.githooks.install import uninstall as do_uninstall

    report = do_uninstall(ctx.cwd)
    if as_json:
        emit_json(report.to_json())
        return EXIT_OK
    click.echo(f"hooks dir: {report.hooks_dir}")
    for name in report.removed:
        click.echo(f"removed  {name}")
    for name in report.restored:
        click.echo(f"restored {name} (your original hook)")
    for name, reason in report.left:
        click.echo(f"left     {name}: {reason}")
    if not (report.removed or report.restored or report.left):
        click.echo("no guardian hooks were installed")
    return EXIT_OK


def _print_status(result: HooksStatus) -> None:
    _where(result.hooks_dir, result.hooks_path)
    click.echo(f"project:   {result.project_root or 'none (no guardian.yaml here or above; the hooks do nothing)'}")
    for h in result.hooks:
        broken = "" if h.python_ok else f"  BROKEN: {h.python} is not runnable; rerun 'guardian hooks install'"
        if h.outdated and h.python_ok:
            broken = "  (written by another guardian version: rerun 'guardian hooks install' to update it)"
        if h.state == "guardian":
            chained = f", runs {h.chained.name} first" if h.chained else ""
            click.echo(f"  {h.name:<22} guardian{chained}{broken}")
        elif h.state == "via-pre-commit":
            click.echo(f"  {h.name:<22} guardian, run by pre-commit as {h.name}.legacy{broken}")
        elif h.state == "replaced":
            who = f"{h.manager}'s" if h.manager else "another tool's"
            why = " (husky's prepare step rewrites its hooks)" if h.manager == "husky" else ""
            click.echo(
                f"  {h.name:<22} NOT GUARDED: {who} file replaced guardian's shim{why}; "
                "run 'guardian hooks install' to chain it again"
            )
        elif h.state == "other":
            who = f"{h.manager}'s" if h.manager else "not guardian's"
            click.echo(f"  {h.name:<22} {who} (run 'guardian hooks install' to chain it)")
        else:
            click.echo(f"  {h.name:<22} not installed")


@hooks.command()
@json_option
@pass_ctx
def status(ctx: Context, as_json: bool) -> int:
    """Show where git runs hooks from (core.hooksPath included) and which are guardian's."""
    from guardian.gates.githooks.install import status as get_status

    result = get_status(ctx.cwd)
    if as_json:
        emit_json(result.to_json())
    else:
        _print_status(result)
    return EXIT_OK


@cli.command(
    "hook-impl",
    hidden=True,
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.argument("hook")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@pass_ctx
def hook_impl(ctx: Context, hook: str, args: tuple[str, ...]) -> int:
    """What a hook shim runs: HOOK's logic on git's ARGS (and stdin)."""
    from guardian.gates.githooks.context import STDIN_HOOKS
    from guardian.gates.githooks.hook import run_hook

    stdin = sys.stdin.buffer.read() if hook in STDIN_HOOKS else b""
    return run_hook(hook, args, stdin, ctx.cwd)


def init_hooks(cwd: Path, skip: bool) -> tuple[dict[str, Any] | None, list[str]]:
    """What ``guardian init`` does about git hooks: (the --json part, the lines to print).

    In a git work tree the hooks are installed, unless ``--no-hooks``; outside git nothing happens.
    """
    from guardian.gates.githooks.gitcli import Git

    if not Git(cwd).ok("rev-parse", "--is-inside-work-tree"):
        return None, []
    if skip:
        return {"installed": False, "why": "--no-hooks"}, [
            "git hooks: not installed (--no-hooks); 'guardian hooks install' adds them"
        ]
    from guardian.gates.githooks.install import install_for_init

    report, why_not = install_for_init(cwd)
    if report is None:
        return {"installed": False, "why": why_not}, [f"git hooks: NOT installed: {why_not}"]
    lines = [f"git hooks: installed in {report.hooks_dir}"]
    lines += [f"  your {name} hook is kept as {name}.guardian-chained and runs first" for name in report.chained]
    return {"installed": True, **report.to_json()}, lines
