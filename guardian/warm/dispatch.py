"""``python -m guardian``'s dispatch: the two hook commands take short paths, the rest goes to click.

Shared by guardian/__main__.py (the command run in its own process) and the warm server's
workers (the same command run in a forked worker), so both run the same code.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence


def run_command(args: Sequence[str]) -> int:
    """Run ``guardian ARGS`` as ``python -m guardian`` does; the exit code."""
    if list(args) == ["agent-hook"]:
        # Coding agents call this before every shell command: skip click and the command
        # modules (~60 ms of imports) and answer from guardian.agent directly.
        from guardian.gates.agent.hook import run_hook

        result = run_hook(sys.stdin.buffer.read(), os.environ, os.getcwd())  # no pathlib: it is slow to import
        if result.stderr:
            sys.stderr.write(result.stderr)
        return result.exit_code
    if args and args[0] == "hook-impl":
        # Git hook shims call this on every checkout, commit and reset: same short path.
        from guardian.gates.githooks.hook import main as hook_main

        return hook_main(list(args[1:]))
    from guardian.cli import main

    return main(list(args))
