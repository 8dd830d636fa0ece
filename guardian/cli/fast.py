"""The hot commands, answered without click: ``guardian history PATH``, ``log [PATH]``, ``restore PATH...``.

Importing click and every command module costs more than answering these from the catalog,
so ``guardian.cli.main`` hands a plain invocation (the command, then paths, no option) to
:func:`plain_command` first.  Anything else, an option, ``--``, ``-C``, a shell asking for
completions, goes to click as before.  The click commands print through the same functions
(:func:`print_history`, :func:`print_log`, :func:`print_restore`), so both ways print the same lines.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from guardian.cli import state
from guardian.cli.output import echo, file_lines, paint, verdict_mark
from guardian.errors import EXIT_OK

if TYPE_CHECKING:
    from guardian.ops.restore import RestoreReport
    from guardian.query.history import History
    from guardian.query.log import LogResult

COMPLETE_VAR = "_GUARDIAN_COMPLETE"  # guardian.cli.completion: set, the shell asks click for candidates


def plain_command(args: Sequence[str]) -> Callable[[], int] | None:
    """The command to run for ``history PATH``, ``log [PATH]`` or ``restore PATH...``; None: click parses args."""
    if not args or os.environ.get(COMPLETE_VAR) or any(not a or a.startswith("-") for a in args[1:]):
        return None
    name, paths = args[0], list(args[1:])
    if name == "history" and len(paths) == 1:
        return lambda: history(paths[0])
    if name == "log" and len(paths) <= 1:
        return lambda: log(paths[0] if paths else None)
    if name == "restore" and paths:
        return lambda: restore(paths)
    return None


def history(path: str) -> int:
    from guardian.query.history import file_history

    ctx = state.current = state.Context()
    print_history(file_history(ctx.project(), path, ctx.cwd))
    return EXIT_OK


def print_history(h: History) -> None:
    from guardian.query.history import _event_word
    from guardian.util.times import format_size, format_time

    echo(f"{h.path}  {h.sparkline}")
    for v in h.versions:
        echo(
            f"  {format_time(v.ts)}  {v.snapshot[:12]}  {_event_word(v):<8} {format_size(v.size):>9}  "
            f"({v.trigger}){verdict_mark(v.verdict, v.reason)}"
        )
    if h.git_commits:
        echo("git commits touching it:")
        for line in h.git_commits:
            echo(f"  {line}")
    echo(f"diagnosis: {h.diagnosis}")


def log(path: str | None) -> int:
    from guardian.query.log import DEFAULT_LOG_LIMIT, read_log

    ctx = state.current = state.Context()
    print_log(read_log(ctx.project(), path, cwd=ctx.cwd, limit=DEFAULT_LOG_LIMIT, since=None, until=None))
    return EXIT_OK


def print_log(result: LogResult) -> None:
    from guardian.util.times import format_time

    for line in result.lines:
        s, bad = line.entry.snapshot, line.entry.bad
        mark = f"  {paint(f'!{len(bad)} not valid', 'invalid')}" if bad else ""
        echo(f"{s.id[:12]}  {format_time(s.ts)}  {s.trigger:<11} {s.nchanged:>5} file(s){mark}  {line.paths_text()}")
        if line.note:
            echo(f"    note: {line.note}")
        for v in bad:
            echo(f"    {paint(v.verdict, v.verdict)}: {v.path}: {v.reason}")
    if result.more:
        # On stderr: stdout stays one line per snapshot (and its notes), for scripts that count them.
        echo("guardian: older snapshots not shown; -n N shows N, --all shows every one", err=True)
    window = result.window
    if window is not None:
        echo(
            f"\nin this window: {len(window.changed)} changed, {len(window.deleted)} deleted, "
            f"{len(window.became_bad)} not valid"
        )
        for p in window.deleted:
            echo(f"  deleted  {p}")
        for p, verdict, reason in window.became_bad:
            echo(f"  {paint(f'{verdict:<8}', verdict)} {p}: {reason}")


def restore(paths: Sequence[str]) -> int:
    from guardian.ops.restore import restore as do_restore

    ctx = state.current = state.Context()
    report = do_restore(ctx.project(), tuple(paths), cwd=ctx.cwd, at=None, before=None, dry_run=False, force=False)
    print_restore(ctx, report, dry_run=False)
    return EXIT_OK


def print_restore(ctx: state.Context, report: RestoreReport, *, dry_run: bool) -> None:
    from guardian.util.times import format_size, format_time

    verb = "would restore" if dry_run else "restored"
    file_lines(
        ctx,
        [
            f"{verb} {f.path} from snapshot {f.snapshot[:12]} ({format_time(f.time)}): "
            f"{format_size(f.size_before) if f.size_before is not None else 'missing'} -> {format_size(f.size_after)}"
            for f in report.files
        ]
        + [
            f"nothing to restore: {u.path} already has that content (snapshot {u.snapshot[:12]})"
            for u in report.unchanged
        ],
    )
    for line in report.notes:
        echo(line)
    for old, new in report.set_aside:
        echo(f"moved {old} aside to {new} (kept, not deleted; also in the store)")
    if report.pre_snapshot and not dry_run:
        echo(f"the state before this restore is snapshot {report.pre_snapshot[:12]} (undo with 'guardian undo')")
