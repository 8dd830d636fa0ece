"""Find the destructive intents in a shell command string, without running anything.

Coding agents hand their shell commands to guardian's pre-command hook as one
string.  :func:`parse_command` reads it the way a POSIX shell would (quoting,
``&&``/``||``/``;``/``|``, redirections, ``$(...)``, here-documents, wrapper
commands such as ``sudo``, ``env`` and ``bash -c``) and reports every simple
command that would delete, overwrite or roll back files as an :class:`Intent`.
The hook then resolves ``targets`` against ``cwd`` and asks the policy engine.

This is a static reading, so it errs towards reporting: a word the shell
computes at run time is marked (``detail["dynamic"]``), a command name it
computes is reported as ``unknown-dynamic``, and text it cannot lex at all is
reported as ``unknown-dynamic`` too.  Scripts that a command runs (``python
x.py``, ``./deploy.sh``) are not opened: nothing here does I/O.

This module is the entry point and the table of commands it knows.  The work is
done by :mod:`~guardian.shell.lexer` (words, quoting, here-documents),
:mod:`~guardian.shell.parser` (command lists, substitutions, redirections),
:mod:`~guardian.shell.wrappers` (``sudo``, ``xargs``, ``bash -c``...),
:mod:`~guardian.shell.commands` (``rm``, ``mv``, ``sed -i``...) and
:mod:`~guardian.shell.git`; :mod:`~guardian.shell.intent` holds what they report.
"""

from __future__ import annotations

from collections.abc import Mapping

from guardian.shell.commands import COMMANDS
from guardian.shell.git import handle_git
from guardian.shell.intent import ANY_PATH, KINDS, WORK_TREE, Intent
from guardian.shell.parser import Env, Handler, parse_script
from guardian.shell.wrappers import WRAPPERS

# Every command name the reader knows, by the name the shell would run ("/usr/bin/rm" is "rm").
_HANDLERS: Mapping[str, Handler] = {"git": handle_git, **COMMANDS, **WRAPPERS}


def parse_command(command: str, git_aliases: Mapping[str, str] | None = None) -> list[Intent]:
    """Every destructive intent in ``command``, in the order the shell would meet them.

    ``git_aliases`` maps alias names to their expansion, as ``git config
    alias.NAME`` holds them ({"nuke": "reset --hard"}); an expansion starting
    with "!" is a shell command and is parsed as one.
    """
    aliases = {k.lower(): v for k, v in (git_aliases or {}).items()}
    return parse_script(command, Env(cwd=None, aliases=aliases, depth=0, handlers=_HANDLERS))


# The hook and the tests import the contract from here; intent.py defines it.
__all__ = ["ANY_PATH", "KINDS", "WORK_TREE", "Intent", "parse_command"]
