"""`python -m guardian`: a running watcher's warm server answers when it can (guardian.warm)."""

import sys

_code = None
# The agent hook's own short path (guardian.gates.agent.hook, ~1 ms of imports) answers as
# fast as a hand-over to the warm server would (scripts/bench_doors.py, door d): it runs here.
if sys.argv[1:] != ["agent-hook"]:
    from guardian.warm.client import run_warm

    _code = run_warm(sys.argv[1:], b"module")
if _code is None:
    from guardian.warm.dispatch import run_command

    _code = run_command(sys.argv[1:])
raise SystemExit(_code)
