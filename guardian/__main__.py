"""`python -m guardian`: a running watcher's warm server answers when it can (guardian.warm)."""

import sys

from guardian.warm.client import run_warm

_code = run_warm(sys.argv[1:], b"module")
if _code is None:
    from guardian.warm.dispatch import run_command

    _code = run_command(sys.argv[1:])
raise SystemExit(_code)
