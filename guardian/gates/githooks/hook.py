"""``guardian hook-impl HOOK ARGS...``: what a hook shim runs, and the entry ``python -m guardian`` takes for it.

A hook runs on every checkout, commit and reset, so this path stays cheap.  The
fast path (no guardian project, a ref that is not HEAD, a branch or the stash, a
commit that created the commit it moves to, no file rewritten) reads no policy
and imports no pygit2; with files rewritten but none protected it reads the
policy (yaml, pathspec) and still leaves pygit2 alone.  Importing pygit2 costs
~100 ms.  Installing the shims is guardian.gates.githooks.install, which this
path never loads.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from guardian.errors import EXIT_BUG, EXIT_OK, GuardianError, UsageError
from guardian.gates.githooks.context import ENV_HOOKS_DIR, HOOK_NAMES, STDIN_HOOKS, NoStore, make_context, say
from guardian.gates.githooks.handlers import post_checkout, post_merge, post_rewrite, reference_transaction
from guardian.gates.githooks.rebase import pre_rebase


def run_hook(name: str, args: Sequence[str], stdin: bytes, cwd: Path) -> int:
    """What ``guardian hook-impl NAME ARGS...`` does.  0 lets git go on; EXIT_REFUSE stops or fails it."""
    if name not in HOOK_NAMES:
        raise UsageError(f"unknown hook '{name}'; guardian handles: {', '.join(HOOK_NAMES)}")
    ctx = make_context(name, args, stdin, cwd)
    if ctx is None:
        return EXIT_OK
    handler = {
        "pre-rebase": pre_rebase,
        "reference-transaction": reference_transaction,
        "post-checkout": post_checkout,
        "post-merge": post_merge,
        "post-rewrite": post_rewrite,
    }[name]
    if name == "reference-transaction":
        _warn_if_shims_replaced()
    try:
        return handler(ctx)
    except NoStore as missing:
        say(
            f"guardian hook {name}: {missing.root} has a guardian.yaml but no store yet; protected paths are NOT "
            f"checked until you run 'guardian init' there"
        )
        return EXIT_OK


def _warn_if_shims_replaced() -> None:
    """Say so on every ref update while another tool (husky's prepare step) has written over guardian's shims.

    reference-transaction is the hook such tools leave alone, so it is the one that can tell.
    """
    directory = os.environ.get(ENV_HOOKS_DIR)
    if not directory:
        return
    from guardian.gates.githooks.shim import unguarded  # only here: its import costs a few ms on every hook

    lost = unguarded(Path(directory), [n for n in HOOK_NAMES if n != "reference-transaction"])
    if lost:
        say(
            f"guardian: warning: {', '.join(lost)} in {directory} no longer run guardian (another tool, such as "
            "husky's prepare step, wrote over them); run 'guardian hooks install' to chain them again"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m guardian.gates.githooks.hook HOOK ARGS...``: hook-impl without loading the click CLI.

    ``python -m guardian`` imports every command module (about 100 ms) before
    ``hook-impl`` runs; ``scripts/bench_hooks.py`` uses this entry point to show
    what a dispatcher that skips them would save.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["hook-impl"]:
        args = args[1:]
    if not args:
        say("usage: python -m guardian.gates.githooks.hook HOOK [ARGS...]")
        return 2
    try:
        stdin = sys.stdin.buffer.read() if args[0] in STDIN_HOOKS else b""
        return run_hook(args[0], args[1:], stdin, Path.cwd())
    except GuardianError as exc:
        say(f"guardian: error: {exc}")
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - a hook must end in one clear line, never a traceback
        say(f"guardian: internal error in the {args[0]} hook: {type(exc).__name__}: {exc}")
        return EXIT_BUG


if __name__ == "__main__":
    raise SystemExit(main())
