"""The state of one CLI invocation, kept apart from click so the hot commands can run without it.

:class:`Context` holds the shared options (``-C``, ``--debug``, ``--json``, ``-q``, ``-v``);
``last_project`` is the project the command opened and ``current`` the invocation's Context,
both read by the error handler in ``guardian.cli.main``.  ``guardian.cli.group`` fills them
in for click's commands, ``guardian.cli.fast`` for the commands it answers itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class Context:
    """The shared options of one invocation.

    A plain class: it is never compared or printed, and a dataclass costs ~1 ms to create
    on every command, ``guardian.cli.fast``'s included.
    """

    __slots__ = ("as_json", "debug", "directory", "quiet", "verbose")

    def __init__(
        self,
        directory: Path | None = None,
        debug: bool = False,
        as_json: bool = False,
        quiet: bool = False,
        verbose: bool = False,
    ) -> None:
        self.directory = directory
        self.debug = debug
        self.as_json = as_json
        self.quiet = quiet
        self.verbose = verbose

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
# The shared options of the running invocation, so the error handler knows whether --json was asked.
current: Context | None = None


def reset() -> None:
    """Forget the previous invocation (tests run many in one process)."""
    global last_project, current
    last_project = None
    current = None
