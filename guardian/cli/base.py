"""The command group with every command on it: importing this module registers them all.

The group and the shared options are defined in ``guardian.cli.group``; each command module
adds its commands to that group when imported.  ``guardian.cli.main`` imports this module
only when click has to parse the command line (``guardian.cli.fast`` answers the hot
commands without click).
"""

from __future__ import annotations

# Importing the command modules registers their commands on the group.
from guardian.cli import agent as _agent  # noqa: F401
from guardian.cli import completion as _completion  # noqa: F401
from guardian.cli import core as _core  # noqa: F401
from guardian.cli import forget as _forget  # noqa: F401
from guardian.cli import guard as _guard  # noqa: F401
from guardian.cli import hooks as _hooks  # noqa: F401
from guardian.cli import past as _past  # noqa: F401
from guardian.cli import protect as _protect  # noqa: F401
from guardian.cli import recover as _recover  # noqa: F401
from guardian.cli import store_cmds as _store_cmds  # noqa: F401
from guardian.cli import watch as _watch  # noqa: F401
from guardian.cli.group import Context, cli, emit_json, json_option, pass_ctx, shared

__all__ = ["Context", "cli", "emit_json", "json_option", "pass_ctx", "shared"]
