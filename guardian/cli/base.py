"""The root command group and the options every command shares."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from guardian import __version__
from guardian.errors import UsageError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Context:
    directory: Path | None
    debug: bool

    @property
    def cwd(self) -> Path:
        return self.directory if self.directory is not None else Path.cwd()

    def project(self) -> Any:
        from guardian.project import Project

        global last_project
        found = Project.find(self.cwd)
        last_project = found
        return found


# The project the running command opened, so the error handler can put failures on its record.
last_project: Any = None


pass_ctx = click.make_pass_decorator(Context)


def _check_dir(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Path | None:
    if value is None:
        return None
    path = Path(value).absolute()
    if not path.is_dir():
        raise UsageError(f"-C {value}: not a directory; give an existing project directory")
    return path


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-C", "directory", metavar="DIR", callback=_check_dir, help="Run as if started in DIR (like git -C).")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(__version__, prog_name="guardian")
@click.pass_context
def cli(ctx: click.Context, directory: Path | None, debug: bool) -> None:
    """guardian: snapshots, validated restore and protected components for shared work trees."""
    ctx.obj = Context(directory, debug)


json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


class DelayedProgress:
    """A progress bar on stderr that appears only once the work has taken over a second."""

    def __init__(self, label: str, delay: float = 1.0) -> None:
        self.label = label
        self.start = time.monotonic()
        self.delay = delay
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if time.monotonic() - self.start < self.delay or not total:
            return
        width = 30
        filled = int(width * done / total)
        sys.stderr.write(f"\r{self.label} [{'#' * filled}{' ' * (width - filled)}] {done}/{total}")
        sys.stderr.flush()
        self.shown = True

    def finish(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()
