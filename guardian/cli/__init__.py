"""The click layer: parse arguments, call one plain function, print the result.

``main`` is the single place that turns exceptions into exit codes.  It imports click
and the command modules (``guardian.cli.base``) only when click has to parse the command
line: ``guardian history PATH`` and ``guardian restore PATH...`` with no option are
answered by ``guardian.cli.fast`` without them.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Sequence

from guardian.errors import EXIT_BUG, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, GuardianError


def _print_traceback() -> None:
    import traceback  # only on the error path: it costs ~7 ms of imports

    traceback.print_exc()


def _format_traceback() -> str:
    import traceback

    return traceback.format_exc()


def _log_traceback() -> str | None:
    try:
        from guardian.paths import guardian_home

        home = guardian_home()
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = home / "errors.log"
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(f"--- pid {os.getpid()} argv {sys.argv!r}\n{_format_traceback()}\n")
        return str(path)
    except OSError:
        return None


def _record_failure(exc: GuardianError) -> None:
    """Put operational failures on the project's record; usage mistakes are not events."""
    from guardian.cli import state
    from guardian.errors import EXIT_BLOCKED, EXIT_NEEDS_FORCE

    project = state.last_project
    if project is None or exc.exit_code == EXIT_USAGE or not project.paths.store.is_dir():
        return
    kind = "block" if exc.exit_code in (EXIT_BLOCKED, EXIT_NEEDS_FORCE) else "error"
    try:
        project.events.append(kind, [], None, None, {"message": str(exc), "exit_code": exc.exit_code, "argv": sys.argv})
    except OSError:
        pass  # the store may be the thing that is broken; the message above already told the user


WINDOWS_REFUSAL = "guardian needs Linux or macOS (it uses fcntl locks and POSIX file semantics)"


def _wants_json(args: Sequence[str]) -> bool:
    """--json given anywhere before '--' (read from argv too: a usage error stops click before it sees it)."""
    from guardian.cli import state

    if state.current is not None and state.current.as_json:
        return True
    options = args[: list(args).index("--")] if "--" in args else args
    return "--json" in options


def _fail(args: Sequence[str], code: int, message: str, line: str | None = None) -> int:
    """The one-line message on stderr and, under --json, {"error", "exit_code"} on stdout."""
    from guardian.cli.output import echo_plain

    if line is not None:
        echo_plain(line, err=True)
    if _wants_json(args):
        import json

        echo_plain(json.dumps({"error": message, "exit_code": code}, indent=2))
    return code


def main(argv: Sequence[str] | None = None) -> int:
    if sys.platform == "win32":
        # Refuse in one line, before any store module imports fcntl and dies with a traceback.
        from guardian.cli.output import echo_plain

        echo_plain(f"guardian: error: {WINDOWS_REFUSAL}", err=True)
        return EXIT_FAILED
    from guardian.cli import state
    from guardian.cli.fast import plain_command

    state.reset()
    args = list(argv) if argv is not None else sys.argv[1:]
    debug = "--debug" in args
    for stream in (sys.stdout, sys.stderr):
        # File names are bytes; print undecodable ones as the raw bytes they are, like ls does.
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="surrogateescape")
    try:
        command = plain_command(args)
        return command() if command is not None else _click_main(args)
    except GuardianError as exc:
        if debug:
            _print_traceback()
        _record_failure(exc)
        return _fail(args, exc.exit_code, str(exc), f"guardian: error: {exc}")
    except KeyboardInterrupt:
        return _fail(args, EXIT_INTERRUPTED, "interrupted", "guardian: interrupted")
    except BrokenPipeError:
        # `guardian log | head` closing the pipe early is not an error.
        sys.stderr.close()
        return 0
    except OSError as exc:
        # An environment error (a full disk, an I/O error, a permission) that no layer
        # turned into a GuardianError: still not a guardian bug, so one line and exit 1.
        _log_traceback()
        if debug:
            _print_traceback()
        name = exc.filename
        named = f" ({os.fsdecode(name) if isinstance(name, bytes) else name})" if name is not None else ""
        message = f"{exc.strerror or exc}{named}"
        return _fail(args, EXIT_FAILED, message, f"guardian: error: {message}")
    except Exception as exc:  # noqa: BLE001 - the one place unexpected errors become an exit code
        where = _log_traceback()
        if debug:
            _print_traceback()
        hint = f"; traceback saved to {where}" if where else ""
        message = f"internal error: {type(exc).__name__}: {exc}{hint}; rerun with --debug to see it"
        return _fail(args, EXIT_BUG, message, f"guardian: {message}")


def _click_main(args: list[str]) -> int:
    """Let click parse the command line and run the command; click's own exceptions become exit codes here.

    None of them is a GuardianError, a KeyboardInterrupt or an OSError, so catching them first,
    here, decides every exception as the handler in :func:`main` decided it before.
    """
    import click

    from guardian.cli.base import cli

    try:
        result = cli.main(args=args, prog_name="guardian", standalone_mode=False)
        return int(result or 0)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.Abort:
        return _fail(args, EXIT_INTERRUPTED, "interrupted", "guardian: interrupted")
    except click.ClickException as exc:
        exc.show()
        return _fail(args, EXIT_USAGE if exc.exit_code == 2 else exc.exit_code, exc.format_message())
