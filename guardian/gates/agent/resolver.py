"""One project's view of what a command touches: paths, shell expansion, walks and tool queries.

:class:`Resolver` holds what every per-kind rule in :mod:`guardian.gates.agent.resolve`
shares: turning a path into a root-relative one, expanding braces and globs as the
shell would, walking a directory for the protected files under it, building
:class:`Touch` es, and asking git (through :func:`guardian.util.git.run_git`),
``find`` or ``rsync`` what they would do.  It reads and never writes.  When a tool
cannot answer, it raises :class:`Unsure`, which the caller turns into an
:class:`Unknown`: "cannot tell", judged fail-closed where protected paths exist.
"""

from __future__ import annotations

import glob
import os
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from guardian.gates.agent.payload import TOOL_TIMEOUT
from guardian.shell.parse import Intent
from guardian.util.git import GitError, GitMissing, GitTimeout, parse_name_status, run_git

if TYPE_CHECKING:
    from guardian.policy import ChangeKind, Operation, PolicyEngine

WALK_LIMIT = 50_000  # directory entries looked at per walk before settling for the directory itself
DYNAMIC_MARKS = ("$", "`", "<(", ">(")
_GLOB_CHARS = frozenset("*?[")


class Unsure(Exception):
    """The tools could not say what an intent touches (git failed, a timeout, ...)."""


@dataclass(frozen=True)
class Touch:
    """One path an intent would change.  ``path`` is relative to the project root ("." is all of it).

    ``container`` marks a directory whose protected files are listed as touches
    of their own: it is judged too (the engine matches directory rules on it),
    but the files make the better message.
    """

    path: str
    operation: Operation
    change: ChangeKind
    verb: str  # for the message: delete, overwrite, revert, move away, ...
    source: int  # index of the intent
    container: bool = False


@dataclass(frozen=True)
class Unknown:
    """An intent whose paths cannot be worked out; ``scope`` is where it could act (root-relative).

    ``operation`` is what it would do there when that much is known (``rm "$X"`` deletes); None means it
    could do anything, and is judged by the strictest of the rule's actions.  ``exact`` marks a path an
    opaque construct or an unknown tool names literally: only that path is judged, nothing under it.
    """

    source: int
    reason: str
    scope: str
    operation: Operation | None = None
    exact: bool = False


def is_dynamic(text: str) -> bool:
    return any(mark in text for mark in DYNAMIC_MARKS)


def brace_expand(text: str) -> list[str]:
    """Bash brace expansion of the first {a,b} group, recursively: agents/{x,y} -> agents/x agents/y."""
    depth, start = 0, -1
    for i, c in enumerate(text):
        if c == "{":
            if depth == 0:
                start = i
            depth += 1
        elif c == "}" and depth:
            depth -= 1
            if depth == 0:
                body = text[start + 1 : i]
                parts, level, cur = [], 0, ""
                for ch in body:
                    if ch == "," and level == 0:
                        parts.append(cur)
                        cur = ""
                        continue
                    level += ch == "{"
                    level -= ch == "}"
                    cur += ch
                parts.append(cur)
                if len(parts) < 2:
                    continue  # "{x}" and "stash@{0}" are literal
                head, tail = text[:start], text[i + 1 :]
                return [out for part in parts for out in brace_expand(head + part + tail)]
    return [text]


def _anchored(pattern: str) -> bool:
    # Mirrors guardian.policy: a pattern with a "/" before its last character names a fixed place.
    return "/" in pattern.rstrip("/")


class Resolver:
    """Turns intents into :class:`Touch` es and :class:`Unknown` s for one project."""

    def __init__(self, root: Path, cwd: Path, engine: PolicyEngine) -> None:
        self.root = root
        self.cwd = cwd
        self.engine = engine
        self.notes: list[str] = []
        self._toplevels: dict[Path, Path] = {}

    # ----------------------------------------------------------------- paths

    def rel(self, path: str | Path) -> str | None:
        """Root-relative POSIX path; "." for the root or anything containing it; None outside."""
        norm = os.path.normpath(path)
        root = str(self.root)
        if norm == root or root.startswith(norm.rstrip("/") + "/"):
            return "."
        if norm.startswith(root + "/"):
            return norm[len(root) + 1 :]
        return None

    def real(self, path: Path) -> Path:
        """``path`` with the directories above it resolved, the way a Write tool path is: ``wo_link/run.py``
        is the file under the link's target.  The last component stays as written (``rm link`` removes
        the link, not what it points to)."""
        try:
            return Path(os.path.realpath(path.parent)) / path.name if path.name else Path(os.path.realpath(path))
        except (OSError, ValueError):
            return path

    def real_target(self, path: Path) -> Path:
        """Where a write through ``path`` lands: every symlink followed, the last one too (``> link``)."""
        try:
            return Path(os.path.realpath(path))
        except (OSError, ValueError):
            return path

    def base_dir(self, intent: Intent) -> Path | None:
        """The directory the intent runs in; None when only known at run time (cd $X, cd -)."""
        if intent.cwd is None:
            return self.cwd
        where = os.path.expanduser(intent.cwd) if intent.cwd.startswith("~") else intent.cwd
        if is_dynamic(where):
            return None
        return Path(os.path.normpath(self.cwd / where))

    def expand(self, base: Path, target: str) -> list[Path]:
        """Brace and glob expansion as the shell would do it, relative to ``base``; literal if nothing matches."""
        if target.startswith("~"):
            target = os.path.expanduser(target)
        out: list[Path] = []
        for word in brace_expand(target):
            # Symlinked directories are followed as the command would follow them: "link/x" is the
            # file under the link's target, and so is "link/" itself (rm -rf link/ empties the target).
            resolve = self.real_target if word.endswith("/") else self.real
            if _GLOB_CHARS & set(word):
                if os.path.isabs(word):
                    matches = [Path(m) for m in glob.glob(word)]
                else:
                    matches = [base / m for m in glob.glob(word, root_dir=base)]
                if matches:
                    out.extend(resolve(Path(os.path.normpath(m))) for m in sorted(matches))
                    continue
            out.append(resolve(Path(os.path.normpath(base / word))))
        return out

    def dynamic_scope(self, base: Path, target: str) -> str | None:
        """The directory a partly computed target lies in: its literal prefix ("build/$X" -> build)."""
        cut = min(i for i in (target.find(m) for m in DYNAMIC_MARKS) if i >= 0)
        prefix = target[:cut]
        if prefix.startswith("~"):
            prefix = os.path.expanduser(prefix)
        directory = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        if prefix.startswith("/") and not directory:
            directory = "/"
        return self.rel(base / directory if directory else base)

    def protected_under(self, rel_dir: str, engine: PolicyEngine | None = None) -> tuple[list[str], bool]:
        """Protected files (and symlinks) under a directory, and whether the walk gave up early."""
        engine = engine or self.engine
        # With only anchored patterns ("agents/wo_executor/"), the walk skips directories no rule can reach.
        prunable = all(_anchored(p) for rule in engine.rules for p in rule.paths if not p.startswith(("!", "#")))
        start = self.root if rel_dir == "." else self.root / rel_dir
        found: list[str] = []
        seen = 0
        stack = [start]
        while stack:
            directory = stack.pop()
            try:
                with os.scandir(directory) as entries:
                    listing = list(entries)
            except OSError:
                continue
            for entry in listing:
                seen += 1
                if seen > WALK_LIMIT:
                    self.notes.append(f"stopped listing {rel_dir} after {WALK_LIMIT} entries")
                    return found, True
                rel = self.rel(entry.path)
                if rel is None or rel == ".":
                    continue
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    continue
                if is_dir:
                    if entry.name.lower() == ".git":
                        continue  # git's own store, never a project file
                    if not prunable or engine.is_protected(rel):
                        stack.append(Path(entry.path))
                elif engine.is_protected(rel):
                    found.append(rel)
        return sorted(found), False

    # ----------------------------------------------------------------- touch builders

    def deletes(self, path: Path, idx: int, *, operation: Operation = "delete", verb: str = "delete",
                recursive: bool = True) -> list[Touch]:
        rel = self.rel(path)
        if rel is None or not os.path.lexists(path):
            return []
        if rel != "." and not (os.path.isdir(path) and not os.path.islink(path)):
            return [Touch(rel, operation, "delete", verb, idx)]
        if not recursive:
            return []  # rm without -r refuses a directory; rm -d removes only empty ones
        files, _partial = self.protected_under(rel)
        # The directory itself is judged too: a directory rule (or one it contains) matches it
        # even when the walk stopped early or the protected files are not on disk yet.
        return [Touch(rel, operation, "delete", verb, idx, container=True),
                *(Touch(f, operation, "delete", verb, idx) for f in files)]

    def overwrites(self, path: Path, idx: int, *, operation: Operation = "modify", verb: str = "overwrite",
                   into_dirs: bool = False) -> list[Touch]:
        """An existing file whose content is replaced: an in-place edit (``modify``) unless told otherwise.

        A write goes through a symlink to the file it points to, so that file is the one judged."""
        path = self.real_target(path)
        rel = self.rel(path)
        if rel is None or not os.path.lexists(path):
            return []  # a new file: nothing is lost
        if os.path.isdir(path) and not os.path.islink(path):
            if not into_dirs:
                return []  # `> dir` and `sed -i dir` fail without touching anything
            files, _partial = self.protected_under(rel)
            return [Touch(rel, operation, "modify", verb, idx, container=True),
                    *(Touch(f, operation, "modify", verb, idx) for f in files)]
        return [Touch(rel, operation, "modify", verb, idx)]

    def changed(self, path: Path, change: str, idx: int, verb: str) -> list[Touch]:
        """A change reported by git or rsync (a ``rollback``); an "add" over an existing file overwrites it."""
        rel = self.rel(path)
        if rel is None or rel == ".":
            return []
        if change == "delete":
            return [Touch(rel, "rollback", "delete", "delete", idx)]
        if change == "add" and not os.path.lexists(path):
            return []
        return [Touch(rel, "rollback", "modify", verb, idx)]

    # ----------------------------------------------------------------- tools

    def git_output(self, cwd: Path, *args: str) -> bytes:
        """``git ARGS`` run in ``cwd``; any failure is :class:`Unsure`, naming what was asked."""
        if not cwd.is_dir():
            raise Unsure(f"{cwd} is not a directory")
        what = "git " + " ".join(a for a in args if not a.startswith("--format"))
        try:
            # The pathspecs are the user's own words: git reads them as the user's git would, globs included.
            return run_git(args, cwd=cwd, timeout=TOOL_TIMEOUT, literal_pathspecs=False).stdout
        except GitMissing:
            raise Unsure("git is not installed") from None
        except GitTimeout:
            raise Unsure(f"'{what}' took longer than {TOOL_TIMEOUT:g}s") from None
        except GitError as exc:
            if exc.returncode is None:
                raise Unsure(str(exc)) from None  # git could not start at all
            err = exc.stderr.strip().splitlines()
            raise Unsure(f"'{what}' failed: {err[0] if err else f'exit {exc.returncode}'}") from None

    def git(self, cwd: Path, *args: str) -> str:
        return self.git_output(cwd, *args).decode("utf-8", "surrogateescape")

    def toplevel(self, cwd: Path) -> Path:
        if cwd not in self._toplevels:
            self._toplevels[cwd] = Path(self.git(cwd, "rev-parse", "--show-toplevel").strip())
        return self._toplevels[cwd]

    def name_status(self, cwd: Path, *args: str, cmd: str = "diff") -> Iterator[tuple[str, Path]]:
        """(status letter, absolute path) from `git diff/log/stash show --no-renames --name-status -z`."""
        top = self.toplevel(cwd)
        extra = ["--format="] if cmd == "log" else []
        out = self.git_output(cwd, *cmd.split(), "--no-renames", "--name-status", "-z", *extra, *args)
        for record in parse_name_status(out):
            if record.old_path is None:
                yield record.status, top / record.path
                continue
            # A rename or copy despite --no-renames: read it as the addition (and deletion) it stands for.
            if record.status == "R":
                yield "D", top / record.old_path
            yield "A", top / record.path

    def rev_exists(self, cwd: Path, rev: str) -> bool:
        try:
            self.git(cwd, "rev-parse", "--verify", "-q", f"{rev}^{{commit}}")
        except Unsure:
            return False
        return True


def run_tool(argv: Sequence[str], cwd: Path, what: str, ok_codes: Sequence[int] = (0,)) -> str:
    """Run the read-only form of a tool other than git (``find`` without actions, ``rsync -n``)."""
    if not cwd.is_dir():
        raise Unsure(f"{cwd} is not a directory")
    env = {**os.environ, "LC_ALL": "C"}  # its output is parsed: no translated messages
    try:
        proc = subprocess.run(
            list(argv), cwd=cwd, capture_output=True, timeout=TOOL_TIMEOUT, check=False, env=env,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise Unsure(f"{argv[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise Unsure(f"'{what}' took longer than {TOOL_TIMEOUT:g}s") from None
    except OSError as exc:
        raise Unsure(f"cannot run '{what}': {exc.strerror or exc}") from None
    if proc.returncode not in ok_codes:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise Unsure(f"'{what}' failed: {err[0] if err else f'exit {proc.returncode}'}")
    return proc.stdout.decode("utf-8", "surrogateescape")
