"""Find the destructive intents in a shell command string, without running anything.

Coding agents hand their shell commands to guardian's pre-command hook as one
string.  :func:`parse_command` reads it with a real bash grammar
(tree-sitter-bash, :mod:`~guardian.shell.grammar`) and reports every simple
command that would delete, overwrite or roll back files as an :class:`Intent`.
The hook then resolves ``targets`` against ``cwd`` and asks the policy engine.

This is a static reading, so it errs towards reporting: a word the shell
computes at run time is marked (``detail["dynamic"]``); a construct guardian
cannot see into (inline code, ``eval "$X"``, a computed command name, a wrapper
with options it does not know) is ``opaque``; a tool it does not model is an
``unknown-command`` naming its operands; text tree-sitter cannot read is
``unknown-dynamic``.  Scripts that a command runs (``python x.py``,
``./deploy.sh``) are not opened: nothing here does I/O.

This module is the entry point and the table of commands it knows.  The work is
done by :mod:`~guardian.shell.walker` (the syntax tree, words, variables,
pipes), :mod:`~guardian.shell.wrappers` (``sudo``, ``xargs``, ``bash -c``...),
:mod:`~guardian.shell.commands` (``rm``, ``mv``, ``sed -i``...),
:mod:`~guardian.shell.tools` (archives, downloads, editors...),
:mod:`~guardian.shell.interp` (interpreters) and :mod:`~guardian.shell.git`;
:mod:`~guardian.shell.intent` holds what they report.
"""

from __future__ import annotations

from collections.abc import Mapping

from guardian.shell.commands import COMMANDS
from guardian.shell.git import handle_git
from guardian.shell.intent import ANY_PATH, KINDS, WORK_TREE, Intent
from guardian.shell.interp import INTERPRETERS
from guardian.shell.parser import Env, Handler
from guardian.shell.tools import TOOLS
from guardian.shell.walker import parse_script
from guardian.shell.wrappers import WRAPPERS

# Every command name the reader knows, by the name the shell would run ("/usr/bin/rm" is "rm").
HANDLERS: Mapping[str, Handler] = {"git": handle_git, **COMMANDS, **TOOLS, **INTERPRETERS, **WRAPPERS}


def parse_command(
    command: str, git_aliases: Mapping[str, str] | None = None, environ: Mapping[str, str] | None = None
) -> list[Intent]:
    """Every destructive intent in ``command``, in the order the shell would meet them.

    ``git_aliases`` maps alias names to their expansion, as ``git config
    alias.NAME`` holds them ({"nuke": "reset --hard"}); an expansion starting
    with "!" is a shell command and is parsed as one.  ``environ`` holds the
    agent's HOME, TMPDIR and SHELL, so that ``rm -rf "$TMPDIR/build"`` is read
    as the path it is.
    """
    aliases = {k.lower(): v for k, v in (git_aliases or {}).items()}
    env = Env(cwd=None, aliases=aliases, depth=0, handlers=HANDLERS, environ=dict(environ or {}))
    return parse_script(command, env)


# The hook and the tests import the contract from here; intent.py defines it.
__all__ = ["ANY_PATH", "KINDS", "WORK_TREE", "Intent", "parse_command"]
