"""README's command reference names every command --help lists, with its options."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import click

from guardian.cli import main  # noqa: F401 - registers every command on the group
from guardian.cli.base import cli

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
SHARED = {"--debug", "--json", "--quiet", "--verbose", "--help", "--version"}


def _commands(group: click.Group, words: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in sorted(group.commands.items()):
        if command.hidden:
            continue
        if isinstance(command, click.Group):
            yield from _commands(command, (*words, name))
        else:
            yield (*words, name), command


def _documented(words: tuple[str, ...]) -> bool:
    """`guardian a b` in a table, or inside an alternation such as `guardian a x|b|y`."""
    *group, leaf = words
    head = " ".join(["guardian", *group])
    if f"`{head} {leaf}" in README:
        return True
    alternation = re.compile(rf"`{re.escape(head)} [^`]*?(^|\\\|| ){re.escape(leaf)}(\\\||[ `])", re.M)
    return bool(alternation.search(README)) or (bool(group) and f"`{' '.join(group)} {leaf}" in README)


def test_every_command_is_in_the_readme() -> None:
    missing = [" ".join(words) for words, _ in _commands(cli) if not _documented(words)]
    assert missing == []


def test_every_option_is_in_the_readme() -> None:
    missing = []
    for words, command in _commands(cli):
        for param in command.params:
            if getattr(param, "hidden", False):
                continue
            for opt in getattr(param, "opts", []):
                if opt.startswith("--") and opt not in SHARED and opt not in README:
                    missing.append(f"{' '.join(words)} {opt}")
    assert missing == []
