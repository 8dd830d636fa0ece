"""The root command group and the options every command shares (``guardian.cli.base`` adds the commands).

``-C DIR``, ``--debug``, ``--json``, ``-q`` and ``-v`` are accepted before or after
the command name (``guardian -C p status`` and ``guardian status -C p`` alike).
Every command and group made through :data:`cli` gets them: :class:`GuardianCommand`
adds the ones a command does not declare itself, and each stores its value in the
one :class:`Context` of the invocation, which the error handler reads too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from guardian import __version__
from guardian.cli import state
from guardian.cli.state import Context as Context  # re-exported: the commands take it
from guardian.errors import UsageError

F = TypeVar("F", bound=Callable[..., Any])


pass_ctx = click.make_pass_decorator(Context)


def shared(ctx: click.Context) -> Context:
    """The invocation's Context, made on first use by whichever option is parsed first."""
    root = ctx.find_root()
    if not isinstance(root.obj, Context):
        root.obj = Context()
    state.current = root.obj
    return root.obj


def _set_directory(ctx: click.Context, _param: click.Parameter, value: str | None) -> Path | None:
    if value is None:
        return shared(ctx).directory
    path = Path(value).absolute()
    if not path.is_dir():
        raise UsageError(f"-C {value}: not a directory; give an existing project directory")
    shared(ctx).directory = path
    return path


def _flag_setter(name: str) -> Callable[[click.Context, click.Parameter, bool], bool]:
    def store(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
        state = shared(ctx)
        if value:
            setattr(state, name, True)
        if state.quiet and state.verbose:
            raise UsageError("-q and -v cannot be used together; pick one")
        return bool(getattr(state, name))

    return store


def _flag_option(decls: list[str], attribute: str, help_text: str) -> click.Option:
    """A global flag that sets ``attribute`` on the shared state, not passed to the function."""
    return click.Option(decls, is_flag=True, callback=_flag_setter(attribute), expose_value=False, help=help_text)


def _shared_options() -> list[click.Option]:
    """Fresh Option objects (click keeps per-command state on them), none passed to the function."""
    return [
        click.Option(
            ["-C", "directory"],
            metavar="DIR",
            callback=_set_directory,
            expose_value=False,
            is_eager=True,
            help="Run as if started in DIR (like git -C).",
        ),
        _flag_option(["--debug"], "debug", "Show tracebacks."),
        _flag_option(["--json", "as_json"], "as_json", "Print machine-readable JSON (errors too)."),
        _flag_option(["-q", "--quiet"], "quiet", "No per-file lines, except those reporting a problem."),
        _flag_option(["-v", "--verbose"], "verbose", "Every per-file line (by default long lists are cut short)."),
    ]


def _add_shared(params: list[click.Parameter]) -> list[click.Parameter]:
    taken = {opt for p in params for opt in getattr(p, "opts", [])}
    return [*params, *(opt for opt in _shared_options() if not taken.intersection(opt.opts))]


class GuardianCommand(click.Command):
    """A command that also accepts the shared options after its name."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.hidden:  # hook-impl: git's argument list is passed through untouched
            self.params = _add_shared(self.params)


class GuardianGroup(click.Group):
    """A group whose commands and subgroups share the options (``guardian remote -C p list``)."""

    command_class = GuardianCommand
    group_class = type  # subgroups are GuardianGroups too

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params = _add_shared(self.params)


@click.group(
    cls=GuardianGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.version_option(__version__, prog_name="guardian")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """guardian: snapshots, validated restore and protected components for shared work trees."""
    shared(ctx)


def _json_value(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    state = shared(ctx)
    if value:
        state.as_json = True
    return state.as_json


# For commands that take ``as_json``: true when --json was given before or after the command name.
json_option = click.option(
    "--json", "as_json", is_flag=True, callback=_json_value, help="Print machine-readable JSON (errors too)."
)


def emit_json(data: Any) -> None:
    """Print data as JSON; every epoch time in it gains an ISO 8601 sibling with its zone ('time_iso')."""
    from guardian.util.times import with_iso_times

    click.echo(json.dumps(with_iso_times(data), indent=2, sort_keys=False, default=str))
