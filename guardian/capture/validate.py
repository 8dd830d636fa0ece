"""Give every changed file a verdict: valid, suspect or invalid, with a short reason.

Checks look at the bytes only.  Nothing the user wrote is ever executed: Python
is compiled (not run), YAML is parsed as an event stream (never constructed),
shell scripts go through ``bash -n``, and SQLite images are opened read-only and
immutable from a private temporary copy.  The only foreign programs run are the
shell syntax checkers and the commands the user declared in ``guardian.yaml``.
Given the last valid version, a torn rewrite of it that still parses is suspect too
(``capture.torn``), as is content another process still has open for writing.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from guardian.capture.checkproc import private_check_dir, run_check
from guardian.capture.sqlite import is_sqlite_bytes, sqlite_problem
from guardian.capture.torn import torn_reasons
from guardian.config import CheckSpec, SuspectSettings, ValidateRule
from guardian.errors import ConfigError
from guardian.util.globs import GlobSpec

if TYPE_CHECKING:
    from guardian.catalog.db import Catalog

Verdict = Literal["valid", "suspect", "invalid"]

# Parsing a huge file would stall a snapshot; files this big are rarely hand-edited source anyway.
MAX_PARSE_BYTES = 20 * 1024 * 1024
SHELL_TIMEOUT = 10.0
# A check's output only feeds a one-line reason; never let a chatty tool fill memory.
_MAX_OUTPUT_READ = 64 * 1024
_MAX_REASON_CHARS = 300

_BUILTIN_BY_SUFFIX: dict[str, tuple[str, ...]] = {
    ".py": ("python",),
    ".pyi": ("python",),
    ".json": ("json",),
    ".yaml": ("yaml",),
    ".yml": ("yaml",),
    ".toml": ("toml",),
    ".sqlite": ("sqlite",),
    ".sqlite3": ("sqlite",),
    ".db": ("sqlite",),
    ".sh": ("shell",),
    ".bash": ("shell",),
    ".zsh": ("shell",),
}
# The same, made once: checks_for runs for every captured file, and a CheckSpec is never changed.
_BUILTIN_SPECS = {suffix: tuple(CheckSpec(name=n) for n in names) for suffix, names in _BUILTIN_BY_SUFFIX.items()}
_PARSE_CHECKS = frozenset({"python", "json", "yaml", "toml", "sqlite", "shell"})
# Built-in checks that read nothing but the bytes given and start no process (see pure_findings).
PURE_CHECKS = frozenset({"python", "json", "yaml", "toml", "not-empty", "no-conflict-markers"})
_SEVERITY: dict[Verdict, int] = {"valid": 0, "suspect": 1, "invalid": 2}


# NamedTuples, not frozen dataclasses: the same fields, equality, hash, repr and immutability,
# without importing dataclasses (and with it inspect, ~10 ms) on restore's and the git hooks' paths.
class FileVerdict(NamedTuple):
    verdict: Verdict
    reason: str = ""


class _Finding(NamedTuple):
    verdict: Verdict
    reason: str


Finding = tuple[Verdict, str]  # a check's finding as plain data, to cross a process boundary


# --------------------------------------------------------------------------- which checks apply


@functools.lru_cache(maxsize=256)
def _compiled(patterns: tuple[str, ...]) -> GlobSpec:
    try:
        return GlobSpec.from_lines(patterns)
    except (ValueError, re.error) as exc:
        raise ConfigError(f"validate: bad path pattern in {list(patterns)!r}: {exc}") from None


def _normalise(rel_path: str) -> str:
    rel = rel_path.replace(os.sep, "/") if os.sep != "/" else rel_path
    while rel.startswith("./"):
        rel = rel[2:]
    return rel


def _suffix(rel: str) -> str:
    """PurePosixPath(rel).suffix, without building the path object (this runs once per captured file)."""
    name = rel.rpartition("/")[2]
    if name in ("", "."):
        return PurePosixPath(rel).suffix  # a trailing "/" or "/.": let pathlib normalise it
    dot = name.rfind(".")
    return name[dot:] if 0 < dot < len(name) - 1 else ""


def checks_for(rel_path: str, rules: Sequence[ValidateRule]) -> tuple[CheckSpec, ...]:
    """Built-in checks implied by the file's extension, then those of every matching user rule."""
    rel = _normalise(rel_path)
    found: list[CheckSpec] = list(_BUILTIN_SPECS.get(_suffix(rel).lower(), ()))
    for rule in rules:
        if rule.paths and _compiled(tuple(rule.paths)).match(rel):
            found.extend(rule.checks)
    unique: list[CheckSpec] = []
    for spec in found:
        if spec not in unique:
            unique.append(spec)
    return tuple(unique)


# --------------------------------------------------------------------------- the verdict


# The start of the reason given to content read while another process had it open for writing;
# a capture looks at such a version again once the writer is gone (see capture.engine).
OPEN_FOR_WRITING = "still open for writing by "


def is_in_progress(reason: str) -> bool:
    """Whether a verdict's reason says the content was read while still being written."""
    return reason.startswith(OPEN_FOR_WRITING) or f"; {OPEN_FOR_WRITING}" in reason


def judge(
    rel_path: str,
    data: bytes,
    checks: Sequence[CheckSpec],
    *,
    last_valid_size: int | None,
    suspect: SuspectSettings,
    cwd: Path | None = None,
    previous: Callable[[], bytes | None] | None = None,
    writer: str | None = None,
    content_passed: bool = False,
    found: Mapping[str, Finding | None] | None = None,
) -> FileVerdict:
    """Run ``checks`` on ``data`` plus the shrink and torn-write heuristics; invalid beats suspect beats valid.

    ``previous`` reads the last valid version's content (None when there is none, or it is too
    large to compare); it is called only when a torn-write check can apply.  ``writer`` names
    the process that still has the file open for writing ("pid N (command)").  With
    ``content_passed`` (see :func:`content_passed_before`) the checks are not run again: they
    found nothing in this very content; the heuristics, which compare with the last valid
    version, still run.  ``found``: what :func:`pure_findings` said of this content, by check
    name (a worker process ran those checks); a check not in it runs here.
    """
    findings: list[_Finding] = []
    too_large: list[str] = []
    for spec in () if content_passed else checks:
        if spec.name in _PARSE_CHECKS and len(data) > MAX_PARSE_BYTES:
            if spec.name == "sqlite" and not is_sqlite_bytes(data):
                findings.append(_Finding("invalid", "sqlite: not a SQLite database (bad header)"))
            else:
                too_large.append(spec.name)
            continue
        if found is not None and spec.name in found:
            ran = found[spec.name]
            finding = None if ran is None else _Finding(*ran)
        else:
            finding = _run_check(spec, rel_path, data, cwd)
        if finding is not None:
            findings.append(finding)
    if too_large:
        findings.append(_Finding("valid", f"{', '.join(too_large)}: too large to parse ({len(data)} bytes)"))
    shrink = _shrink_finding(len(data), last_valid_size, suspect)
    if shrink is not None:
        findings.append(shrink)
    if previous is not None and len(data) <= MAX_PARSE_BYTES and all(f.verdict != "invalid" for f in findings):
        # A torn write that still parses (an invalid verdict needs no more reasons).
        outlines = [name for name in dict.fromkeys(spec.name for spec in checks) if name in ("python", "yaml")]
        reasons = torn_reasons(data, previous, outlines, last_valid_size, MAX_PARSE_BYTES, shrank=shrink is not None)
        findings.extend(_Finding("suspect", _clip(reason)) for reason in reasons)
    if writer is not None:
        findings.append(_Finding("suspect", f"{OPEN_FOR_WRITING}{writer}"))
    if not findings:
        return FileVerdict("valid")
    worst = max(findings, key=lambda f: _SEVERITY[f.verdict]).verdict
    reason = "; ".join(f.reason for f in findings if f.verdict == worst)
    return FileVerdict(worst, reason)


def pure_findings(rel_path: str, data: bytes, names: Iterable[str]) -> dict[str, Finding | None]:
    """What each of these PURE_CHECKS finds in data (None: nothing), for :func:`judge`'s ``found``.

    They read only the bytes given, so any process can run them: a large capture has its
    worker processes do it (``capture.parsepool``) while it reads and stores the next files.
    The caller keeps data within MAX_PARSE_BYTES; an exception propagates, and the caller
    then runs the check itself, so it fails the same way wherever it ran.
    """
    results: dict[str, Finding | None] = {}
    for name in names:
        finding = _BUILTINS[name](rel_path, data)
        results[name] = None if finding is None else (finding.verdict, finding.reason)
    return results


def content_passed_before(
    catalog: Catalog, policy_files: Sequence[Path], rel_path: str, blob: str, checks: Sequence[CheckSpec]
) -> bool:
    """Whether the store already judged this content of this path and its checks found nothing.

    The first version of rel_path holding ``blob`` must be valid with no reason at all: not
    accepted by the user, not settled, no check skipped as too large; and judged after the
    policy files in force last changed (another policy may check it otherwise).  A user command
    may read more than the file, so its checks always run again.  Only the content's part of
    that verdict is reused: the shrink and torn-write heuristics depend on the version before.
    """
    if any(spec.name == "command" for spec in checks):
        return False
    first = catalog.first_versions_with(rel_path, [blob], upto=sys.maxsize).get(blob)
    if first is None or first.verdict != "valid" or first.reason:
        return False
    for path in policy_files:
        try:
            changed = path.stat().st_mtime
        except OSError:
            continue
        if first.ts <= changed:  # snapshot times are whole seconds: the same second is not after
            return False
    return True


def _shrink_finding(size: int, last_valid_size: int | None, settings: SuspectSettings) -> _Finding | None:
    # Truncation by a crashed editor or a bad tool still parses (an empty dict, a lone shebang),
    # so a big drop relative to the last good version is the only signal we get.
    if last_valid_size is None or last_valid_size <= 0:
        return None
    lost = last_valid_size - size
    if lost > settings.shrink_ratio * last_valid_size and lost > settings.min_shrink_bytes:
        percent = lost * 100 // last_valid_size
        return _Finding("suspect", f"shrank {last_valid_size} -> {size} bytes (-{percent}%) since last valid version")
    return None


def _run_check(spec: CheckSpec, rel_path: str, data: bytes, cwd: Path | None = None) -> _Finding | None:
    if spec.name == "command":
        # User commands run from the project root so "./scripts/check.sh" means what it says.
        return _check_command(spec, rel_path, data, cwd)
    builtin = _BUILTINS.get(spec.name)
    if builtin is None:
        return _Finding("valid", f"unknown check '{spec.name}' not run")
    return builtin(rel_path, data)


# --------------------------------------------------------------------------- built-in checks


def _check_python(rel_path: str, data: bytes) -> _Finding | None:
    try:
        # compile() rather than ast.parse() also catches 'return' outside a function and friends;
        # bytes input lets it honour coding cookies and a BOM exactly as the interpreter would.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(data, rel_path, "exec", dont_inherit=True)
    except SyntaxError as exc:
        line = f" line {exc.lineno}" if exc.lineno else ""
        return _Finding("invalid", _clip(f"python: {type(exc).__name__}{line}: {exc.msg}"))
    except ValueError as exc:  # null bytes on some Python versions
        return _Finding("invalid", _clip(f"python: {exc}"))
    except (RecursionError, MemoryError):
        return _Finding("suspect", "python: too deeply nested to check")
    return None


def _decode(check: str, data: bytes) -> str | _Finding:
    try:
        # A BOM is harmless to every reader that matters; treating it as damage would cry wolf.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return _Finding("invalid", f"{check}: not UTF-8 text (bad byte at offset {exc.start})")


def _check_json(rel_path: str, data: bytes) -> _Finding | None:
    text = _decode("json", data)
    if isinstance(text, _Finding):
        return text
    if not text.strip():
        return _Finding("invalid", "json: empty")
    try:
        # Keeping integers as text sidesteps the 4300-digit int conversion limit, which is not a JSON rule.
        json.loads(text, parse_int=str)
    except json.JSONDecodeError as exc:
        return _Finding("invalid", _clip(f"json: line {exc.lineno} column {exc.colno}: {exc.msg}"))
    except (RecursionError, MemoryError):
        return _Finding("suspect", "json: too deeply nested to check")
    return None


def _check_yaml(rel_path: str, data: bytes) -> _Finding | None:
    import yaml  # only for a YAML file: most captures (a git hook's) never need it (~20 ms)

    # libyaml is an order of magnitude faster on big files; the pure-Python parser is the fallback.
    loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    text = _decode("yaml", data)
    if isinstance(text, _Finding):
        return text
    try:
        # Events only: constructing objects would let a few aliases expand into gigabytes.
        for _event in yaml.parse(text, Loader=loader):
            pass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        return _Finding("invalid", _clip(f"yaml:{where}: {exc.problem or exc.context}"))
    except yaml.YAMLError as exc:
        return _Finding("invalid", _clip(f"yaml: {_first_line(str(exc))}"))
    return None


def _check_toml(rel_path: str, data: bytes) -> _Finding | None:
    import tomllib  # only for a TOML file

    text = _decode("toml", data)
    if isinstance(text, _Finding):
        return text
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return _Finding("invalid", _clip(f"toml: {exc}"))
    except (ValueError, RecursionError, MemoryError) as exc:
        return _Finding("suspect", _clip(f"toml: could not check: {type(exc).__name__}"))
    return None


def _check_sqlite(rel_path: str, data: bytes) -> _Finding | None:
    problem = sqlite_problem(data)
    return None if problem is None else _Finding("invalid", _clip(problem))


def _check_shell(rel_path: str, data: bytes) -> _Finding | None:
    shell = "zsh" if _wants_zsh(rel_path, data) else "bash"
    program = shutil.which(shell)
    if program is None:
        return _Finding("valid", f"shell: {shell} not found, not checked")
    # -f / --norc --noprofile keep the user's startup files out of it; -n parses without executing.
    flags = ["-f", "-n"] if shell == "zsh" else ["--norc", "--noprofile", "-n"]
    env = {k: v for k, v in os.environ.items() if k not in ("BASH_ENV", "ENV")}
    with private_check_dir() as tmp:
        target = _place(tmp, rel_path, data)
        try:
            code, output = _run([program, *flags, str(target)], SHELL_TIMEOUT, tmp, env)
        except OSError as exc:
            return _Finding("valid", f"shell: {shell} not run: {exc.strerror or exc}")
        output = _unprefix(output, target, rel_path)
    if code is None:
        return _Finding("suspect", f"shell: {shell} -n timed out after {SHELL_TIMEOUT:g}s")
    if code != 0:
        return _Finding("invalid", _clip(f"shell: {output or f'{shell} -n exited with status {code}'}"))
    return None


def _wants_zsh(rel_path: str, data: bytes) -> bool:
    if PurePosixPath(rel_path).suffix.lower() == ".zsh":
        return True
    first = data.split(b"\n", 1)[0]
    return first.startswith(b"#!") and b"zsh" in first


def _check_not_empty(rel_path: str, data: bytes) -> _Finding | None:
    return None if data else _Finding("invalid", "not-empty: file is empty")


_CONFLICT_START = re.compile(rb"^<<<<<<< ", re.MULTILINE)
_CONFLICT_MID = re.compile(rb"^=======\r?$", re.MULTILINE)
_CONFLICT_END = re.compile(rb"^>>>>>>> ", re.MULTILINE)


def _check_conflict_markers(rel_path: str, data: bytes) -> _Finding | None:
    # All three markers, in order: a lone "=======" is a perfectly good Markdown/RST underline.
    # Taking the first match of each in turn finds an ordered triple if one exists, in linear time.
    start = _CONFLICT_START.search(data)
    if start is None:
        return None
    mid = _CONFLICT_MID.search(data, start.end())
    if mid is None:
        return None
    if _CONFLICT_END.search(data, mid.end()) is None:
        return None
    line = data.count(b"\n", 0, start.start()) + 1
    return _Finding("invalid", f"no-conflict-markers: merge conflict markers from line {line}")


_BUILTINS: dict[str, Callable[[str, bytes], _Finding | None]] = {
    "python": _check_python,
    "json": _check_json,
    "yaml": _check_yaml,
    "toml": _check_toml,
    "sqlite": _check_sqlite,
    "shell": _check_shell,
    "not-empty": _check_not_empty,
    "no-conflict-markers": _check_conflict_markers,
}


# --------------------------------------------------------------------------- user commands


def _check_command(spec: CheckSpec, rel_path: str, data: bytes, cwd: Path | None = None) -> _Finding | None:
    if not spec.command:
        return _Finding("valid", "command check not run: no command given")
    prog = spec.command[0]
    with private_check_dir() as tmp:
        target = _place(tmp, rel_path, data)
        argv = [arg.replace("{path}", str(target)) for arg in spec.command]
        try:
            code, output = _run(argv, spec.timeout, tmp, None, cwd)
        except FileNotFoundError:
            # A tool that is not installed must not mark every file suspect forever.
            return _Finding("valid", f"check '{prog}' not run: not found")
        except OSError as exc:
            return _Finding("valid", _clip(f"check '{prog}' not run: {exc.strerror or exc}"))
        output = _unprefix(output, target, rel_path)
    if code is None:
        return _Finding("suspect", f"command '{prog}' timed out after {spec.timeout:g}s")
    if code != 0:
        detail = output or f"exited with status {code}"
        return _Finding("invalid", _clip(f"command '{prog}': {detail}"))
    return None


def _place(tmp: Path, rel_path: str, data: bytes) -> Path:
    # Same base name as the original so tools that key on the name or suffix (package.json,
    # .eslintrc.json, foo.zsh) behave as they would on the real file; its own subdirectory
    # keeps it clear of the output files.
    name = PurePosixPath(_normalise(rel_path)).name or "file"
    folder = tmp / "in"
    folder.mkdir()
    target = folder / name
    target.write_bytes(data)
    return target


def _run(
    argv: list[str], timeout: float, tmp: Path, env: dict[str, str] | None, cwd: Path | None = None
) -> tuple[int | None, str]:
    """Run argv; return (exit code or None on timeout, first line of stderr else stdout).

    Output goes to files rather than pipes: a grandchild that keeps a pipe open would
    otherwise hang us past the timeout.  ``run_check`` kills the check's whole process
    group when it ends, and makes it die with guardian.
    """
    code = run_check(argv, timeout, tmp, env, cwd)
    message = _first_line(_read_head(tmp / "stderr")) or _first_line(_read_head(tmp / "stdout"))
    return code, message


def _read_head(path: Path) -> str:
    with open(path, "rb") as fh:
        return fh.read(_MAX_OUTPUT_READ).decode("utf-8", "replace")


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def _unprefix(message: str, target: Path, rel_path: str) -> str:
    # Tools name the temporary copy; the user knows the file by its project path.
    message = message.replace(f"{target}: ", "", 1) if message.startswith(f"{target}: ") else message
    return message.replace(str(target), rel_path)


def _clip(reason: str) -> str:
    return reason if len(reason) <= _MAX_REASON_CHARS else reason[: _MAX_REASON_CHARS - 3] + "..."
