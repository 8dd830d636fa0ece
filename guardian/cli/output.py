"""How commands print: colour for verdicts and decisions, long per-file lists cut short, a progress bar.

Colour is on only when the stream is a terminal and ``NO_COLOR`` is unset (or
empty); ``FORCE_COLOR`` turns it on anywhere.  The progress bar draws only on a
terminal: redirected to a file or a CI log it prints nothing at all.

Nothing here imports click at load time: ``guardian.cli.fast`` prints through this module
without it.  ``paint`` and ``echo`` write what ``click.style`` and ``click.echo`` would.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from guardian.cli.state import Context

# Words that carry a judgement, and their colour.
_COLOURS = {
    "invalid": "red",
    "block": "red",
    "blocked": "red",
    "failed": "red",
    "damage": "red",
    "error": "red",
    "missing": "red",
    "suspect": "yellow",
    "force": "yellow",
    "forced": "yellow",
    "skip": "yellow",
    "drift": "yellow",
    "allow": "green",
    "valid": "green",
}

# ANSI foreground codes of the colours above, as click.style writes them.
_FOREGROUND = {"red": 31, "green": 32, "yellow": 33}
# click.echo strips these from text bound for a stream without colour.
_ANSI_CODE = "\033["

# Per-file lines a command prints by default before it says how many it left out (-v prints all).
DEFAULT_FILE_LINES = 20


def colour_on(err: bool = False) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    stream = sys.stderr if err else sys.stdout
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def paint(text: str, word: str | None = None, *, err: bool = False) -> str:
    """text coloured by the judgement it carries (word, or text itself: 'INVALID', 'block', ...)."""
    colour = _COLOURS.get((word or text).strip().lower().rstrip(":"))
    if colour is None or not colour_on(err):
        return text
    # click.style(text, fg=colour, bold=colour == "red"): bold on, or explicitly off.
    return f"\033[{_FOREGROUND[colour]}m\033[{1 if colour == 'red' else 22}m{text}\033[0m"


def echo(text: str = "", *, err: bool = False, nl: bool = True) -> None:
    """click.echo(text, err=err, nl=nl, color=colour_on(err)), without importing click.

    paint() has already decided on colour; without it, escape codes are stripped as click does.
    """
    _write(text, err, nl, colour_on(err))


def echo_plain(text: str, *, err: bool = False) -> None:
    """click.echo(text, err=err): escape codes in text are kept on a terminal only."""
    _write(text, err, True, _is_terminal(sys.stderr if err else sys.stdout))


def _write(text: str, err: bool, nl: bool, colour: bool) -> None:
    stream = sys.stderr if err else sys.stdout
    if stream is None:
        return
    out = text + "\n" if nl else text
    if not colour and _ANSI_CODE in out:
        out = strip_ansi(out)
    if out:
        stream.write(out)
    stream.flush()


def strip_ansi(text: str) -> str:
    import re

    return re.sub(r"\033\[[0-?]*[ -/]*[@-~]", "", text)  # click's own pattern


def verdict_mark(verdict: str, reason: str) -> str:
    """'  INVALID: reason' in the verdict's colour; nothing for a valid file."""
    return "" if verdict == "valid" else f"  {paint(verdict.upper(), verdict)}: {reason}"


def file_lines(ctx: Context, lines: Iterable[str], problems: Iterable[str] = (), what: str = "file(s)") -> None:
    """Print per-file lines by the shared -q/-v: problems always, the rest cut short unless -v.

    -q prints only the problems; the default prints up to DEFAULT_FILE_LINES lines in all, then
    how many it left out; -v prints every line.
    """
    problem_lines = list(problems)
    for line in problem_lines:
        echo(line)
    if ctx.quiet:
        return
    room = None if ctx.verbose else max(0, DEFAULT_FILE_LINES - len(problem_lines))
    left = 0
    for count, line in enumerate(lines):
        if room is not None and count >= room:
            left += 1
            continue
        echo(line)
    if left:
        echo(f"  ... and {left} more {what} (-v lists them all)")


class Progress:
    """A click progress bar on stderr that appears once the work has taken a second, on a terminal only.

    It is a ``(done, total)`` callback, as the capture engine, gc and rollback expect.
    Off a terminal, or with -q, it prints nothing: no carriage-return frames in logs.
    """

    def __init__(self, label: str, ctx: Context | None = None, delay: float = 1.0) -> None:
        self.label = label
        self.start = time.monotonic()
        self.delay = delay
        self.enabled = not (ctx is not None and ctx.quiet) and _stderr_is_terminal()
        self._bar: Any = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or not total:
            return
        if self._bar is None:
            if time.monotonic() - self.start < self.delay:
                return
            import click

            self._bar = click.progressbar(length=total, label=self.label, file=sys.stderr, show_pos=True)
            self._bar.__enter__()
        if total != self._bar.length:
            self._bar.length = total
        step = done - self._bar.pos
        if step > 0:
            self._bar.update(step)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None


def _stderr_is_terminal() -> bool:
    return _is_terminal(sys.stderr)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
