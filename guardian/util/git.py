"""The one way guardian runs the git command, with one set of safety settings.

pygit2 is for guardian's own store; the user's repositories and mirrors are reached
through the git CLI, so that their config, hooks and credentials apply.  Every caller
gets the same settings, because a setting one caller forgot was a bug every time:

- ``GIT_OPTIONAL_LOCKS=0``: a read (``status``, ``diff``) never takes index.lock, so
  guardian never makes a user's own git command fail with "index.lock exists".
- ``GIT_TERMINAL_PROMPT=0`` and stdin from /dev/null: git fails instead of waiting for
  a password nobody will type (a hook, the watcher's background push).
- ``LC_ALL=C``: messages and dates are parsed, so they must not be translated.
- ``core.quotepath=false``, ``color.ui=never``, ``diff.relative=false``: output that does
  not depend on the user's config.
- ``--literal-pathspecs``: a file named ``*.py`` is that file, not a glob.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

GIT_TIMEOUT = 60.0
SAFE_ENV = {"GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
_STATUS = re.compile(r"[ABCDMRTUX][0-9]*")
SAFE_CONFIG = ("-c", "core.quotepath=false", "-c", "color.ui=never", "-c", "diff.relative=false")


class GitError(Exception):
    """git could not run, or ran and failed.  Callers turn it into a message about what the user did."""

    def __init__(self, message: str, returncode: int | None = None, stderr: str = "") -> None:
        super().__init__(message)
        self.returncode = returncode
        self.stderr = stderr


class GitMissing(GitError):
    """The git command is not installed or not on PATH."""


class GitTimeout(GitError):
    """git gave no answer within the time allowed."""


class GitResult(NamedTuple):  # not a dataclass: the hooks and the agent hook import this; dataclasses costs ~10 ms
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def text(self) -> str:
        return os.fsdecode(self.stdout).strip()

    @property
    def error_text(self) -> str:
        return self.stderr.decode("utf-8", "replace")


def git_env(extra: Mapping[str, str] | None = None, *, interactive: bool = False) -> dict[str, str]:
    env = {**os.environ, **SAFE_ENV}
    if interactive:
        env.pop("GIT_TERMINAL_PROMPT", None)  # `guardian push` run by a person may ask for a password
    env.update(extra or {})
    return env


def run_git(
    args: Sequence[str],
    *,
    cwd: Path | None = None,
    git_dir: Path | None = None,
    input: bytes | None = None,
    timeout: float = GIT_TIMEOUT,
    check: bool = True,
    literal_pathspecs: bool = True,
    interactive: bool = False,
    env: Mapping[str, str] | None = None,
) -> GitResult:
    """Run ``git ARGS`` with guardian's safety settings.

    Raises GitMissing or GitTimeout when git cannot answer, and GitError when it
    exits non-zero and ``check`` is set; the message is git's last error line.
    """
    argv = ["git", *SAFE_CONFIG]
    if literal_pathspecs:
        argv.append("--literal-pathspecs")
    if git_dir is not None:
        argv += ["--git-dir", str(git_dir)]
    argv += list(args)
    try:
        proc = subprocess.run(
            argv,
            cwd=cwd,
            input=input,
            capture_output=True,
            timeout=timeout,
            check=False,
            env=git_env(env, interactive=interactive),
            stdin=None if input is not None or interactive else subprocess.DEVNULL,
        )
    except FileNotFoundError:
        if cwd is not None and not Path(cwd).is_dir():
            raise GitError(f"cannot run git in {cwd}: no such directory") from None
        raise GitMissing("the git command is not installed or not on PATH") from None
    except subprocess.TimeoutExpired:
        raise GitTimeout(f"'git {_first_word(args)}' gave no answer within {timeout:g}s") from None
    except OSError as exc:
        raise GitError(f"cannot run 'git {_first_word(args)}': {exc.strerror or exc}") from None
    result = GitResult(proc.returncode, proc.stdout, proc.stderr)
    if check and not result.ok:
        raise GitError(last_error_line(result), proc.returncode, result.error_text)
    return result


def git_ok(args: Sequence[str], *, cwd: Path | None = None, timeout: float = GIT_TIMEOUT) -> bool:
    """Whether ``git ARGS`` succeeds; a missing or hung git counts as no."""
    try:
        return run_git(args, cwd=cwd, timeout=timeout, check=False).ok
    except GitError:
        return False


def last_error_line(result: GitResult) -> str:
    lines = [line.strip() for line in result.error_text.splitlines() if line.strip()]
    return lines[-1] if lines else f"git exited with status {result.returncode}"


def _first_word(args: Sequence[str]) -> str:
    return next((a for a in args if not a.startswith("-")), args[0] if args else "")


def split_z(output: bytes) -> list[str]:
    """Paths from a ``-z`` listing (``ls-files -z``, ``diff --name-only -z``)."""
    return [os.fsdecode(p) for p in output.split(b"\0") if p]


class NameStatus(NamedTuple):
    """One record of ``--name-status -z``: A, D, M, T, U, X, B, or R/C with the old path."""

    status: str
    path: str
    old_path: str | None = None


def parse_name_status(output: bytes) -> list[NameStatus]:
    """Parse ``git diff/log/stash show --name-status -z``.

    Renames and copies appear only when a user's config forces rename detection past
    ``--no-renames``; they carry two paths, the old one first.  Lines that are not a
    status (``log``'s empty format lines) are skipped.
    """
    tokens = [os.fsdecode(t) for t in output.split(b"\0")]
    records: list[NameStatus] = []
    i = 0
    while i < len(tokens):
        status = tokens[i].strip()
        if not _STATUS.fullmatch(status) or i + 1 >= len(tokens):
            i += 1
            continue
        if status[0] in "RC" and i + 2 < len(tokens):
            records.append(NameStatus(status[0], tokens[i + 2], tokens[i + 1]))
            i += 3
            continue
        records.append(NameStatus(status[0], tokens[i + 1]))
        i += 2
    return records
