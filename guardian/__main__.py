"""`python -m guardian`.  The hooks that run on every agent command take a short path."""

import sys

if len(sys.argv) > 1 and sys.argv[1] == "agent-hook" and len(sys.argv) == 2:
    # Coding agents call this before every shell command: skip click and the command
    # modules (~60 ms of imports) and answer from guardian.agent directly.
    import os

    from guardian.gates.agent.hook import run_hook

    result = run_hook(sys.stdin.buffer.read(), os.environ, os.getcwd())  # no pathlib: it is slow to import
    if result.stderr:
        sys.stderr.write(result.stderr)
    raise SystemExit(result.exit_code)

if len(sys.argv) > 1 and sys.argv[1] == "hook-impl":
    # Git hook shims call this on every checkout, commit and reset: same short path.
    from guardian.gates.githooks.hook import main as hook_main

    raise SystemExit(hook_main(sys.argv[2:]))

from guardian.cli import main

raise SystemExit(main())
