"""The agent command gate: judge a coding agent's tool call before it runs.

Claude Code runs ``guardian agent-hook`` before every Bash, Write, Edit and
MultiEdit call and pipes it a PreToolUse JSON document.  The gate:

1. finds the guardian project from the call's ``cwd`` (no project: exit 0, not ours);
2. reads a Bash command with :func:`guardian.shellparse.parse_command` (git
   aliases included) into destructive :class:`~guardian.shellparse.Intent` s;
   a command with none is benign and passes at once, without loading pygit2;
3. works out the paths each intent would touch, asking the tools themselves
   where they can answer without changing anything (``git diff``, ``git clean
   -n``, ``git stash show``, ``rsync -n``, ``find`` without its actions, glob
   expansion and a walk of directories);
4. asks :class:`~guardian.policy.PolicyEngine` about each path;
5. blocks (exit 2, one line on stderr, which Claude Code shows the model) when a
   protected path needs force or is blocked, or when it cannot tell what the
   command touches and protected paths exist where it runs; otherwise it takes a
   snapshot (trigger ``agent``) and allows.

Mapping to the policy's operations (see docs/agents.md for the full table):
deleting (``rm``, ``find -delete``, ``git clean``, the sources of ``mv``) is
``delete``; what replaces a file's content with another version from git or
elsewhere (``git reset/checkout/restore/rebase``, ``stash drop``, ``branch -D``,
``rsync``) is ``rollback``; an in-place edit of an existing file (``>``, ``tee``,
``dd of=``, ``truncate``, ``sed -i``/``perl -i``, ``cp``/``mv``/``ln -sf`` onto
it, and the Write/Edit tools) is ``modify``.  A rule that does not set
``modify`` judges edits by its ``rollback`` action (an agent overwriting a
protected file is, for the file, the same loss as a rollback of it), so a rule
can let agents edit a component (``modify: allow``) while rollbacks of it stay
gated.  Creating a file where none exists loses nothing and is not gated.

Everything that writes (snapshots, events) happens in :func:`run_hook`;
:func:`judge_command` and :func:`judge_file_write` only read, so the decision
table is testable, and ``guardian agent check`` can show a decision safely.
"""

from __future__ import annotations

import glob
import json
import os
import posixpath
import re
import shlex
import stat
import subprocess
import sys
import traceback
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from guardian.errors import ConfigError, GuardianError, NotAProject
from guardian.events import EventLog
from guardian.paths import find_project_root
from guardian.shell.parse import ANY_PATH, Intent, parse_command

if TYPE_CHECKING:
    # The policy engine (pathspec) and the project are loaded only once a command is destructive:
    # the benign path runs on every agent command and must stay light.
    from guardian.config import Policy
    from guardian.policy import ChangeKind, Operation, Outcome, PathDecision, PolicyEngine
    from guardian.project import Project

ENV_FORCE = "GUARDIAN_FORCE"
EXIT_ALLOW = 0
EXIT_BLOCK = 2  # Claude Code: "blocking error", the tool call is cancelled and stderr goes to the model
HOOK_MATCHER = "Bash|Write|Edit|MultiEdit"
# The key holding the file each file-editing tool writes.  NotebookEdit is not in the
# installed matcher, but a user who routes it here gets the same treatment.
FILE_TOOLS: dict[str, str] = {"Write": "file_path", "Edit": "file_path", "MultiEdit": "file_path",
                              "NotebookEdit": "notebook_path"}
TOOL_TIMEOUT = 10.0  # seconds for each git/find/rsync query; Claude Code kills a hook after 60 s
WALK_LIMIT = 50_000  # directory entries looked at per walk before settling for the directory itself
SNAPSHOT_LOCK_TIMEOUT = 20.0
RSYNC_BIN = "rsync"  # module-level so tests can simulate a machine without rsync
FORCE_ADVICE = "ask the user, who can run it with GUARDIAN_FORCE=1 or use 'guardian rollback --force'"
BLOCK_ADVICE = "the policy blocks this even with GUARDIAN_FORCE=1; ask the user"

_GIT_TREE_KINDS = frozenset({"git-reset", "git-checkout-rev", "git-rebase"})
_GLOB_CHARS = frozenset("*?[")
_DYNAMIC_MARKS = ("$", "`", "<(", ">(")
_ITEMIZE_RE = re.compile(r"^(\*deleting|[<>ch.][fdLDS][^ ]{9}) +(.+)$")
_STATUS_RE = re.compile(r"^[ACDMRTUXB][0-9]*$")

Action = Literal["benign", "allow", "forced", "block"]


class BadHookInput(ValueError):
    """The hook's stdin is not a PreToolUse document we can read."""


class _Unsure(Exception):
    """The tools could not say what an intent touches (git failed, a timeout, ...)."""


# --------------------------------------------------------------------------- hook input


@dataclass(frozen=True)
class HookRequest:
    """What the gate needs from one PreToolUse document."""

    tool_name: str
    cwd: Path
    command: str | None = None  # Bash
    file_path: str | None = None  # Write, Edit, MultiEdit
    session_id: str | None = None
    tool_use_id: str | None = None
    event: str = ""  # hook_event_name

    @property
    def display(self) -> str:
        return self.command if self.command is not None else f"{self.tool_name} {self.file_path}"


def parse_hook_input(data: bytes | str, default_cwd: Path) -> HookRequest:
    """Read Claude Code's PreToolUse JSON; raises :class:`BadHookInput` with a one-line reason."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        raw = json.loads(text)
    except UnicodeDecodeError as exc:
        raise BadHookInput(f"not UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise BadHookInput(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(raw, dict):
        raise BadHookInput(f"expected a JSON object, got {type(raw).__name__}")
    tool = raw.get("tool_name")
    if not isinstance(tool, str) or not tool:
        raise BadHookInput("no 'tool_name'")
    tool_input = raw.get("tool_input")
    if not isinstance(tool_input, dict):
        raise BadHookInput("'tool_input' is not an object")
    cwd_raw = raw.get("cwd")
    cwd = Path(cwd_raw) if isinstance(cwd_raw, str) and cwd_raw else default_cwd
    session = raw.get("session_id") if isinstance(raw.get("session_id"), str) else None
    use_id = raw.get("tool_use_id") if isinstance(raw.get("tool_use_id"), str) else None
    command: str | None = None
    file_path: str | None = None
    if tool == "Bash":
        command = tool_input.get("command")
        if not isinstance(command, str):
            raise BadHookInput("Bash call without a 'tool_input.command' string")
    elif tool in FILE_TOOLS:
        file_path = tool_input.get(FILE_TOOLS[tool])
        if not isinstance(file_path, str) or not file_path:
            raise BadHookInput(f"{tool} call without a 'tool_input.{FILE_TOOLS[tool]}' string")
    event = raw.get("hook_event_name")
    event = event if isinstance(event, str) else ""
    return HookRequest(tool, cwd, command, file_path, session, use_id, event)


def read_git_aliases(cwd: Path) -> dict[str, str]:
    """The git aliases in effect in ``cwd`` ({} without git or a repository: nothing to expand)."""
    try:
        proc = subprocess.run(
            ["git", "config", "-z", "--get-regexp", r"^alias\."],
            cwd=cwd, capture_output=True, timeout=TOOL_TIMEOUT, check=False, stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    aliases: dict[str, str] = {}
    for record in proc.stdout.decode("utf-8", "surrogateescape").split("\0"):
        key, _, value = record.partition("\n")
        if key.lower().startswith("alias.") and value:
            aliases[key[len("alias."):]] = value
    return aliases


# --------------------------------------------------------------------------- what a command touches


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
    """An intent whose paths cannot be worked out; ``scope`` is where it could act (root-relative)."""

    source: int
    reason: str
    scope: str


@dataclass(frozen=True)
class Problem:
    """One reason to stop the call: a protected path it would change, or one it might."""

    display: str  # the (part of the) command that would do it
    verb: str
    path: str
    outcome: Outcome  # "force" or "block"
    reason: str  # the rule's reason
    forced: bool  # GUARDIAN_FORCE=1 lets it through
    unknown: str = ""  # why guardian cannot tell, for fail-closed problems

    def to_json(self) -> dict[str, Any]:
        return {"command": self.display, "verb": self.verb, "path": self.path, "outcome": self.outcome,
                "reason": self.reason, "forced": self.forced, "unknown": self.unknown}


@dataclass
class Verdict:
    """The gate's answer for one tool call.  ``snapshot_paths`` None means the whole tree."""

    action: Action
    command: str
    message: str = ""
    intents: tuple[Intent, ...] = ()
    touches: tuple[Touch, ...] = ()
    decisions: tuple[PathDecision, ...] = ()
    unknown: tuple[Unknown, ...] = ()
    problems: tuple[Problem, ...] = ()
    snapshot_paths: tuple[str, ...] | None = ()
    notes: list[str] = field(default_factory=list)

    @property
    def blocked(self) -> bool:
        return self.action == "block"

    @property
    def exit_code(self) -> int:
        return EXIT_BLOCK if self.blocked else EXIT_ALLOW

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "command": self.command[:4000],
            "message": self.message,
            "intents": [{"kind": i.kind, "argv": list(i.argv)[:50], "cwd": i.cwd} for i in self.intents[:50]],
            "touched": len(self.touches),
            "protected": [
                {"path": d.path, "operation": t.operation, "change": d.change, "outcome": d.outcome,
                 "reason": d.reason, "forced": d.forced}
                for t, d in zip(self.touches, self.decisions, strict=True)
                if d.rule_paths
            ][:200],
            "unknown": [{"reason": u.reason, "scope": u.scope} for u in self.unknown][:50],
            "problems": [p.to_json() for p in self.problems][:50],
            "notes": self.notes[:50],
        }


_PLAIN_WORD = re.compile(r"^[\w@%+=:,./~^{}-]+$")


def _quote(word: str) -> str:
    # Quote only what needs it: "HEAD~1" reads better than shlex's "'HEAD~1'".
    return word if _PLAIN_WORD.match(word) else shlex.quote(word)


def _display(intent: Intent) -> str:
    if intent.kind == "tool-write":
        return intent.argv[0]
    text = " ".join(_quote(w) for w in intent.argv)
    if intent.kind == "redirect" and "op" in intent.detail:
        text = f"{text} {intent.detail['op']} {_quote(intent.targets[0])}".strip()
    text = " ".join(text.split())  # one line, whatever newlines the command held
    return text if len(text) <= 120 else text[:117] + "..."


def _is_dynamic(text: str) -> bool:
    return any(mark in text for mark in _DYNAMIC_MARKS)


def _brace_expand(text: str) -> list[str]:
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
                return [out for part in parts for out in _brace_expand(head + part + tail)]
    return [text]


def _unquote_git(path: str) -> str:
    """Undo git's C-style quoting of unusual file names ("we\\"ird")."""
    if not (len(path) >= 2 and path.startswith('"') and path.endswith('"')):
        return path
    body = path[1:-1]
    try:
        return body.encode("latin-1", "backslashreplace").decode("unicode_escape").encode("latin-1").decode(
            "utf-8", "surrogateescape"
        )
    except (UnicodeError, ValueError):
        return body


def _anchored(pattern: str) -> bool:
    # Mirrors guardian.policy: a pattern with a "/" before its last character names a fixed place.
    return "/" in pattern.rstrip("/")


class _Resolver:
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

    def base_dir(self, intent: Intent) -> Path | None:
        """The directory the intent runs in; None when only known at run time (cd $X, cd -)."""
        if intent.cwd is None:
            return self.cwd
        where = os.path.expanduser(intent.cwd) if intent.cwd.startswith("~") else intent.cwd
        if _is_dynamic(where):
            return None
        return Path(os.path.normpath(self.cwd / where))

    def expand(self, base: Path, target: str) -> list[Path]:
        """Brace and glob expansion as the shell would do it, relative to ``base``; literal if nothing matches."""
        if target.startswith("~"):
            target = os.path.expanduser(target)
        out: list[Path] = []
        for word in _brace_expand(target):
            if _GLOB_CHARS & set(word):
                if os.path.isabs(word):
                    matches = [Path(m) for m in glob.glob(word)]
                else:
                    matches = [base / m for m in glob.glob(word, root_dir=base)]
                if matches:
                    out.extend(Path(os.path.normpath(m)) for m in sorted(matches))
                    continue
            out.append(Path(os.path.normpath(base / word)))
        return out

    def dynamic_scope(self, base: Path, target: str) -> str | None:
        """The directory a partly computed target lies in: its literal prefix ("build/$X" -> build)."""
        cut = min(i for i in (target.find(m) for m in _DYNAMIC_MARKS) if i >= 0)
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
        """An existing file whose content is replaced: an in-place edit (``modify``) unless told otherwise."""
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

    def _run(self, argv: Sequence[str], cwd: Path, what: str) -> str:
        if not cwd.is_dir():
            raise _Unsure(f"{cwd} is not a directory")
        env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
        try:
            proc = subprocess.run(
                list(argv), cwd=cwd, capture_output=True, timeout=TOOL_TIMEOUT, check=False, env=env,
                stdin=subprocess.DEVNULL,
            )
        except FileNotFoundError:
            raise _Unsure(f"{argv[0]} is not installed") from None
        except subprocess.TimeoutExpired:
            raise _Unsure(f"'{what}' took longer than {TOOL_TIMEOUT:g}s") from None
        except OSError as exc:
            raise _Unsure(f"cannot run '{what}': {exc.strerror or exc}") from None
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            raise _Unsure(f"'{what}' failed: {err[0] if err else f'exit {proc.returncode}'}")
        return proc.stdout.decode("utf-8", "surrogateescape")

    def git(self, cwd: Path, *args: str) -> str:
        argv = ["git", "-c", "core.quotepath=false", "-c", "diff.relative=false", *args]
        return self._run(argv, cwd, "git " + " ".join(a for a in args if not a.startswith("--format")))

    def toplevel(self, cwd: Path) -> Path:
        if cwd not in self._toplevels:
            self._toplevels[cwd] = Path(self.git(cwd, "rev-parse", "--show-toplevel").strip())
        return self._toplevels[cwd]

    def name_status(self, cwd: Path, *args: str, cmd: str = "diff") -> Iterator[tuple[str, Path]]:
        """(status letter, absolute path) from `git diff/log/stash show --name-status -z`."""
        top = self.toplevel(cwd)
        extra = ["--format="] if cmd == "log" else []
        out = self.git(cwd, *cmd.split(), "--no-renames", "--name-status", "-z", *extra, *args)
        tokens = [t for t in out.split("\0") if t]
        i = 0
        while i + 1 < len(tokens):
            if _STATUS_RE.match(tokens[i]):
                yield tokens[i][0], top / tokens[i + 1]
                i += 2
            else:
                i += 1

    def rev_exists(self, cwd: Path, rev: str) -> bool:
        try:
            self.git(cwd, "rev-parse", "--verify", "-q", f"{rev}^{{commit}}")
        except _Unsure:
            return False
        return True


# --------------------------------------------------------------------------- per-kind resolution


_STATUS_CHANGE = {"A": "add", "D": "delete", "M": "modify", "T": "modify", "U": "modify", "X": "modify",
                  "C": "add", "R": "add", "B": "modify"}
_CHANGE_RANK = {"add": 0, "modify": 1, "delete": 2}


def _sub_args(intent: Intent, sub: str) -> tuple[str, ...]:
    """The arguments after git's subcommand, so git's own options (-C, -c) are not read as its flags."""
    return intent.argv[intent.argv.index(sub) + 1 :] if sub in intent.argv else intent.argv


def _merge(changes: dict[Path, str], path: Path, change: str) -> None:
    if change and _CHANGE_RANK[change] >= _CHANGE_RANK.get(changes.get(path, "add"), 0):
        changes[path] = change


def _local_changes(r: _Resolver, cwd: Path, changes: dict[Path, str]) -> None:
    """What `reset --hard`/`checkout -f` throws away: uncommitted edits and staged new files."""
    for status, path in r.name_status(cwd, "HEAD"):
        # Staged new files ("A" against HEAD) are removed from the work tree; deleted ones come back.
        _merge(changes, path, {"A": "delete", "D": ""}.get(status, "modify"))


def _tree_diff(r: _Resolver, cwd: Path, old: str, new: str, changes: dict[Path, str]) -> None:
    for status, path in r.name_status(cwd, old, new):
        _merge(changes, path, _STATUS_CHANGE.get(status, "modify"))


def _resolve_git_tree(r: _Resolver, intent: Intent, idx: int, cwd: Path) -> list[Touch]:
    changes: dict[Path, str] = {}
    kind, detail = intent.kind, intent.detail
    if kind == "git-reset":
        rev = detail.get("rev", "HEAD")
        if rev != "HEAD":
            _tree_diff(r, cwd, "HEAD", rev, changes)
        if detail.get("mode") == "hard":
            _local_changes(r, cwd, changes)
    elif kind == "git-checkout-rev":
        if "orphan" in detail:
            top = r.toplevel(cwd)
            for name in r.git(cwd, "ls-files", "-z").split("\0"):
                if name:
                    _merge(changes, top / name, "delete")
        else:
            rev = detail.get("rev", "HEAD")
            rev = "@{-1}" if rev == "-" else rev
            if not r.rev_exists(cwd, rev):
                if os.path.lexists(cwd / rev):
                    # `git checkout agents` names a path, not a branch: it discards local edits there.
                    return _resolve_paths(r, Intent("git-checkout-paths", intent.argv, intent.cwd, (rev,), {}),
                                          idx, cwd)
                remote = [ref for ref in r.git(cwd, "for-each-ref", "--format=%(refname)", "refs/remotes").split()
                          if ref.endswith("/" + rev)]
                if len(remote) != 1:
                    raise _Unsure(f"'{rev}' is not a revision git knows")
                rev = remote[0]  # git's DWIM: `checkout feature` tracks origin/feature
            _tree_diff(r, cwd, "HEAD", rev, changes)
            if detail.get("force"):
                _local_changes(r, cwd, changes)
    else:  # git-rebase
        if any(a in ("--continue", "--skip") for a in intent.argv):
            # The rest of a rebase that was judged when it started.
            r.notes.append("rebase --continue/--skip: judged when the rebase started")
            return []
        if "--root" in intent.argv and "onto" not in detail:
            raise _Unsure("rebase --root rewrites every commit")
        upstream = detail.get("upstream", "@{upstream}")
        onto = detail.get("onto", upstream)
        # What lands in the tree is what `onto` changed since the fork point; our own commits are replayed.
        base = r.git(cwd, "merge-base", "HEAD", upstream).strip()
        _tree_diff(r, cwd, base, onto, changes)
    # reset puts back an older state ("revert"); checkout and rebase move to another one ("rewrite").
    verb = "revert" if kind == "git-reset" else "rewrite"
    return [t for path, change in sorted(changes.items()) for t in r.changed(path, change, idx, verb)]


def _resolve_paths(r: _Resolver, intent: Intent, idx: int, cwd: Path) -> list[Touch]:
    """`git checkout [REV] -- PATHS` and `git restore [--source REV] PATHS`."""
    restore = intent.kind == "git-restore"
    source = intent.detail.get("source" if restore else "rev")
    staged = any(a == "--staged" or re.fullmatch(r"-[A-Za-z]*S[A-Za-z]*", a) for a in _sub_args(intent, "restore"))
    if restore and source is None and staged:
        source = "HEAD"  # --staged --worktree restores both from HEAD
    pathspecs = ["--", *intent.targets]
    changes: dict[Path, str] = {}
    if source is None:
        # Without a source the work tree is reset to the index: local edits are discarded.
        for status, path in r.name_status(cwd, *pathspecs):
            _merge(changes, path, "" if status == "D" else "modify")
    else:
        for status, path in r.name_status(cwd, source, *pathspecs):
            if status == "A":
                # Only in the work tree: restore (no-overlay) deletes it, checkout (overlay) leaves it.
                _merge(changes, path, "delete" if restore else "")
            elif status == "D":
                _merge(changes, path, "add")
            else:
                _merge(changes, path, "modify")
    return [t for path, change in sorted(changes.items()) for t in r.changed(path, change, idx, "revert")]


def _clean_excludes(argv: Sequence[str]) -> list[str]:
    out: list[str] = []
    it = iter(range(len(argv)))
    for i in it:
        a = argv[i]
        if a in ("-e", "--exclude") and i + 1 < len(argv):
            out += ["-e", argv[i + 1]]
            next(it, None)
        elif a.startswith("--exclude="):
            out += ["-e", a.partition("=")[2]]
        elif a.startswith("-e") and len(a) > 2:
            out += ["-e", a[2:]]
    return out


def _resolve_clean(r: _Resolver, intent: Intent, idx: int, cwd: Path) -> list[Touch]:
    flags = intent.detail.get("flags", "")
    excludes = _clean_excludes(_sub_args(intent, "clean"))
    args = ["clean", "-n", *(f"-{f}" for f in flags), *excludes, "--", *intent.targets]
    touches: list[Touch] = []
    for line in r.git(cwd, *args).splitlines():
        if line.startswith("Would remove "):
            name = _unquote_git(line[len("Would remove "):])
            touches += r.deletes(cwd / name.rstrip("/"), idx)
    return touches


def _resolve_stash(r: _Resolver, intent: Intent, idx: int, cwd: Path) -> list[Touch]:
    try:
        r.git(cwd, "rev-parse", "--verify", "-q", "refs/stash")
    except _Unsure:
        return []  # no stash: drop and clear have nothing to lose
    if intent.kind == "git-stash-clear":
        stashes = [s for s in r.git(cwd, "stash", "list", "--format=%gd").split("\n") if s]
    else:
        stashes = [intent.detail.get("stash", "stash@{0}")]
    touches: list[Touch] = []
    for ref in stashes:
        try:
            found = list(r.name_status(cwd, "--include-untracked", ref, cmd="stash show"))
        except _Unsure:
            found = list(r.name_status(cwd, ref, cmd="stash show"))  # git before 2.32
        for status, path in found:
            rel = r.rel(path)
            if rel is None or rel == "." or status == "D":
                continue
            # A file only in the stash is gone for good; an edit loses that version.
            change: ChangeKind = "delete" if status == "A" else "modify"
            touches.append(Touch(rel, "rollback", change, "discard stashed changes to", idx))
    return touches


def _resolve_branch(r: _Resolver, intent: Intent, idx: int, cwd: Path) -> list[Touch]:
    """Paths changed by commits that only the deleted (or moved) branch reaches."""
    detail = intent.detail
    lost: list[tuple[str, str]] = []  # (branch ref, where it goes: "" for deletion)
    if intent.kind == "git-branch-delete":
        lost = [(name, "") for name in detail.get("branches", "").split("\n") if name]
    else:
        renaming = any(a.startswith("-") and not a.startswith("--") and ("M" in a or "C" in a)
                       for a in _sub_args(intent, "branch"))
        branch, rev = detail.get("branch", ""), detail.get("rev")
        if renaming:
            # `branch -M old new` overwrites new with old; `branch -M new` overwrites new with HEAD.
            lost = [(rev, branch)] if rev else [(branch, "HEAD")]
        elif branch:
            lost = [(branch, rev or "HEAD")]
    touches: list[Touch] = []
    for name, keep in lost:
        ref = f"refs/heads/{name}"
        try:
            r.git(cwd, "rev-parse", "--verify", "-q", ref)
        except _Unsure:
            continue  # no such branch: nothing to lose (git will refuse or create it)
        args = [ref, "--not", f"--exclude={ref}", "--all", *([keep] if keep else [])]
        for status, path in r.name_status(cwd, *args, cmd="log"):
            rel = r.rel(path)
            if rel is None or rel == ".":
                continue
            change: ChangeKind = "delete" if status == "A" else "modify"
            touches.append(Touch(rel, "rollback", change, "discard commits that change", idx))
    return touches


_RSYNC_UNSAFE = ("--log-file", "--write-batch", "--only-write-batch", "--read-batch", "--daemon")


def _rsync_fallback(r: _Resolver, intent: Intent, idx: int, dest: Path) -> list[Touch]:
    # Without a dry run, assume the worst: everything under the destination may be replaced or deleted.
    # rsync puts another version in place, as its dry run would have said: a rollback, not an edit.
    if intent.kind == "rsync-delete":
        return r.deletes(dest, idx, operation="rollback")
    return r.overwrites(dest, idx, operation="rollback", into_dirs=True)


def _resolve_rsync(r: _Resolver, intent: Intent, idx: int, cwd: Path) -> list[Touch]:
    dest_word = intent.targets[0]
    dest = r.expand(cwd, dest_word)[0]
    sources = [s for s in intent.detail.get("src", "").split("\n") if s]
    touches: list[Touch] = []
    if "deletes" in intent.detail:  # --remove-source-files
        for src in sources:
            for path in r.expand(cwd, src):
                touches += r.deletes(path, idx, verb="move away")
    if ":" in dest_word.split("/", 1)[0] or dest_word.startswith("rsync://"):
        return touches  # a remote destination: nothing here is overwritten
    if r.rel(dest) is None:
        return touches
    remote_source = any(re.match(r"^[^/]*:", s) or s.startswith("rsync://") for s in sources)
    if remote_source or any(a.startswith(_RSYNC_UNSAFE) for a in intent.argv):
        r.notes.append("rsync not dry-run (remote source or side-effecting option): assumed the worst")
        return touches + _rsync_fallback(r, intent, idx, dest)
    try:
        out = r._run([RSYNC_BIN, "--dry-run", "--itemize-changes", *intent.argv[1:]], cwd, "rsync --dry-run")
    except _Unsure as exc:
        r.notes.append(f"{exc}: assumed rsync replaces everything under {dest_word}")
        return touches + _rsync_fallback(r, intent, idx, dest)
    into_dir = dest_word.endswith("/") or os.path.isdir(dest) or len(sources) > 1
    for line in out.splitlines():
        m = _ITEMIZE_RE.match(line)
        if not m:
            continue
        item, name = m.group(1), m.group(2).rstrip("/")
        path = dest / name if into_dir else dest
        if item == "*deleting":
            touches += r.changed(path, "delete", idx, "delete")
        elif item[1] == "d" or item[0] == "." or item[2:].startswith("+"):
            continue  # directories, attribute-only updates and new files lose nothing
        else:
            touches += r.changed(path, "modify", idx, "overwrite")
    return touches


def _find_listing_argv(argv: Sequence[str]) -> list[str]:
    """The find command with its actions replaced by -print0, so running it changes nothing."""
    out = ["find"]
    i = 1
    while i < len(argv):
        a = argv[i]
        if a == "-delete":
            out.append("-print0")
        elif a in ("-exec", "-execdir", "-ok", "-okdir"):
            j = i + 1
            while j < len(argv) and argv[j] not in (";", "+"):
                j += 1
            command = argv[i + 1 : j]
            is_rm = bool(command) and posixpath.basename(command[0]) in ("rm", "unlink", "shred")
            out.append("-print0" if is_rm else "-true")
            i = j
        elif a in ("-fprint", "-fprint0", "-fls"):
            out.append("-true")
            i += 1
        elif a == "-fprintf":
            out.append("-true")
            i += 2
        elif a in ("-printf",):
            out.append("-true")
            i += 1
        elif a in ("-print", "-print0", "-ls"):
            out.append("-true")  # the user's own output would mix with the listing
        else:
            out.append(a)
        i += 1
    return out


def _resolve_find(r: _Resolver, intent: Intent, idx: int, cwd: Path) -> list[Touch]:
    starts = [p for t in intent.targets for p in r.expand(cwd, t)]
    try:
        out = r._run(_find_listing_argv(intent.argv), cwd, "find (listing only)")
    except _Unsure as exc:
        r.notes.append(f"{exc}: assumed find deletes everything under {' '.join(intent.targets)}")
        return [t for start in starts for t in r.deletes(start, idx)]
    touches: list[Touch] = []
    for name in out.split("\0"):
        if name:
            touches += r.deletes(cwd / name, idx)
    return touches


def _resolve_copy(r: _Resolver, intent: Intent, idx: int, cwd: Path) -> list[Touch]:
    """cp/mv/ln/install: the destination is overwritten (``modify``); mv (and git mv) also removes its sources."""
    detail = intent.detail
    sources = [p for s in detail.get("sources", "").split("\n") if s for p in r.expand(cwd, s)]
    touches: list[Touch] = []
    for src in (p for s in detail.get("deletes", "").split("\n") if s for p in r.expand(cwd, s)):
        touches += r.deletes(src, idx, verb="move away")
    dest = r.expand(cwd, intent.targets[0])[0]
    if os.path.isdir(dest) and detail.get("verb") != "ln":
        for src in sources:
            # `cp -r x dir/` writes dir/x (and everything under it).
            touches += r.overwrites(dest / src.name, idx, into_dirs=True)
    else:
        touches += r.overwrites(dest, idx)
    return touches


def _resolve_simple(r: _Resolver, intent: Intent, idx: int, cwd: Path) -> list[Touch]:
    kind, detail = intent.kind, intent.detail
    touches: list[Touch] = []
    if kind == "tool-write":
        # A file tool names one real path: no globbing.  Resolve the parent as the root was resolved.
        path = Path(os.path.normpath(cwd / intent.targets[0]))
        return r.overwrites(path.parent.resolve() / path.name, idx)
    for target in intent.targets:
        for path in r.expand(cwd, target):
            if kind == "rm":
                recursive = "recursive" in detail or detail.get("git") == "rm"
                touches += r.deletes(path, idx, recursive=recursive)
            elif kind == "truncate" and detail.get("size", "").startswith("+"):
                continue  # growing a file loses nothing
            else:
                # redirect, truncate, sed -i: in-place edits (``modify``); a `find -exec sed -i` has dirs as targets.
                touches += r.overwrites(path, idx, into_dirs=detail.get("via") == "find")
    return touches


_RESOLVERS = {
    "git-reset": _resolve_git_tree,
    "git-checkout-rev": _resolve_git_tree,
    "git-rebase": _resolve_git_tree,
    "git-checkout-paths": _resolve_paths,
    "git-restore": _resolve_paths,
    "git-clean": _resolve_clean,
    "git-stash-drop": _resolve_stash,
    "git-stash-clear": _resolve_stash,
    "git-branch-delete": _resolve_branch,
    "git-branch-force": _resolve_branch,
    "find-delete": _resolve_find,
    "mv": _resolve_copy,
    "cp": _resolve_copy,
    "rsync-delete": _resolve_rsync,
}


def _resolve(r: _Resolver, intent: Intent, idx: int) -> tuple[list[Touch], list[Unknown]]:
    base = r.base_dir(intent)
    if base is None:
        return [], [Unknown(idx, f"it runs in {intent.cwd}, a directory only known at run time", ".")]
    scope = r.rel(base)
    if intent.kind == "unknown-dynamic":
        if scope is None:
            return [], []
        return [], [Unknown(idx, intent.detail.get("reason", "the command is only known at run time"), scope)]
    # "*" is ANY_PATH (xargs input, --pathspec-from-file) only when the parser says the paths are computed;
    # otherwise it is the shell glob of `rm -rf *`.
    computed = "dynamic" in intent.detail or any(a.startswith("--pathspec-from-file") for a in intent.argv)
    unknown: list[Unknown] = []
    for target in intent.paths if intent.kind != "tool-write" else ():
        if target == ANY_PATH and computed:
            if scope is not None:
                source = intent.detail.get("dynamic", "a file")
                source = "run-time expansions" if source == "expansion" else source
                unknown.append(Unknown(idx, f"its paths come from {source}", scope))
        elif _is_dynamic(target):
            where = r.dynamic_scope(base, target)
            if where is not None:
                unknown.append(Unknown(idx, f"'{target}' is only known at run time", where))
    if unknown:
        return [], unknown
    # rsync without --delete is reported as cp (or mv, with --remove-source-files); rsync -n answers for all.
    rsync = intent.kind == "rsync-delete" or intent.detail.get("verb") == "rsync"
    handler = _resolve_rsync if rsync else _RESOLVERS.get(intent.kind, _resolve_simple)
    try:
        return handler(r, intent, idx, base), []
    except _Unsure as exc:
        # Git state we cannot read: the operation is repository-wide, so the whole project is in scope.
        where = "." if intent.kind.startswith("git-") else (scope or ".")
        return [], [Unknown(idx, str(exc), where)]


# --------------------------------------------------------------------------- judging


def _user_engine(policy: Policy) -> PolicyEngine:
    from guardian.policy import PolicyEngine

    # Fail-closed scope checks look at the user's own rules only: with the built-in guardian.yaml rule,
    # every guarded project would count as holding protected paths and every `$CMD` would be blocked.
    return PolicyEngine(policy.protect)


def _problems(
    touches: Sequence[Touch], decisions: Sequence[PathDecision], displays: Sequence[str]
) -> list[Problem]:
    problems: list[Problem] = []
    for touch, decision in zip(touches, decisions, strict=True):
        if decision.outcome == "allow":
            continue
        display = displays[touch.source]
        problems.append(Problem(display, touch.verb, touch.path, decision.outcome, decision.reason,
                                decision.forced))
    return problems


def _message(problems: Sequence[Problem], containers: set[str]) -> str:
    """One line for the model: the first thing that stops the call, and what to do about it."""
    stopping = [p for p in problems if not p.forced]
    stopping.sort(key=lambda p: (p.outcome != "block", bool(p.unknown), p.path in containers, p.path))
    first = stopping[0]
    others = {p.path for p in stopping if p.path not in containers and not p.unknown} - {first.path}
    if not others:
        others = {p.path for p in stopping if not p.unknown} - {first.path}
    more = f" and {len(others)} more protected path{'s' if len(others) != 1 else ''}" if others else ""
    advice = BLOCK_ADVICE if first.outcome == "block" else FORCE_ADVICE
    if first.unknown:
        return (f"guardian: blocked: cannot tell what {first.display} would touch ({first.unknown}) and "
                f"{first.path} is protected: {first.reason}{more}; {advice}")
    return (f"guardian: blocked: {first.display} would {first.verb} {first.path} "
            f"(protected: {first.reason}){more}; {advice}")


def judge_intents(
    project_root: Path,
    policy: Policy,
    intents: Sequence[Intent],
    cwd: Path,
    command: str,
    *,
    force: bool = False,
) -> Verdict:
    """Judge parsed intents; reads git and the disk, writes nothing."""
    if not intents:
        return Verdict("benign", command)
    from guardian.policy import PathChange, PolicyEngine

    engine = PolicyEngine.from_policy(policy)
    resolver = _Resolver(project_root, cwd, engine)
    touches: list[Touch] = []
    unknown: list[Unknown] = []
    for idx, intent in enumerate(intents):
        found, unsure = _resolve(resolver, intent, idx)
        touches += found
        unknown += unsure
    decisions_by_touch: list[PathDecision] = []
    operations: tuple[Operation, ...] = ("delete", "rollback", "modify")
    for operation in operations:
        group = [t for t in touches if t.operation == operation]
        if group:
            decision = engine.decide(operation, [PathChange(t.path, t.change) for t in group], force)
            decisions_by_touch += decision.paths
    ordered = [t for op in operations for t in touches if t.operation == op]
    displays = [_display(i) for i in intents]
    problems = _problems(ordered, decisions_by_touch, displays)
    # Fail closed only where it matters: a command we cannot read is a problem when the user's
    # protected paths exist where it runs.
    user_engine = _user_engine(policy)
    in_scope: dict[str, tuple[list[str], bool]] = {}
    for item in unknown:
        if not user_engine.rules:
            break
        if item.scope not in in_scope:
            in_scope[item.scope] = resolver.protected_under(item.scope, user_engine)
        protected, partial = in_scope[item.scope]
        if protected or partial:  # a walk that gave up cannot vouch for the rest: fail closed
            path = protected[0] if protected else item.scope
            rule = user_engine.rule_for(path)
            reason = rule.reason if rule else "protected"
            problems.append(Problem(displays[item.source], "touch", path, "force", reason, force, item.reason))
    whole_tree = bool(unknown) or any(i.kind in _GIT_TREE_KINDS for i in intents) or any(
        t.path == "." for t in touches)
    snapshot_paths = None if whole_tree else tuple(sorted({t.path for t in touches}))
    verdict = Verdict("allow", command, intents=tuple(intents), touches=tuple(ordered),
                      decisions=tuple(decisions_by_touch), unknown=tuple(unknown), problems=tuple(problems),
                      snapshot_paths=snapshot_paths, notes=resolver.notes)
    if any(not p.forced for p in problems):
        containers = {t.path for t in touches if t.container}
        verdict.action = "block"
        verdict.message = _message(problems, containers)
    elif problems:
        verdict.action = "forced"
    return verdict


def judge_command(
    project_root: Path,
    policy: Policy,
    command: str,
    cwd: Path,
    *,
    force: bool = False,
    aliases: Mapping[str, str] | None = None,
) -> Verdict:
    """Parse a shell command (with the repository's git aliases unless given) and judge it."""
    if aliases is None:
        aliases = read_git_aliases(cwd) if "git" in command else {}
    return judge_intents(project_root, policy, parse_command(command, aliases), cwd.resolve(), command,
                         force=force)


def judge_file_write(
    project_root: Path, policy: Policy, tool: str, file_path: str, cwd: Path, *, force: bool = False
) -> Verdict:
    """Write/Edit/MultiEdit onto ``file_path``: a ``modify`` of that file when it exists (see module doc)."""
    intent = Intent("tool-write", (tool, file_path), None, (file_path,), {"tool": tool})
    return judge_intents(project_root, policy, [intent], cwd.resolve(), f"{tool} {file_path}", force=force)


# --------------------------------------------------------------------------- the hook


@dataclass(frozen=True)
class HookResult:
    exit_code: int
    stderr: str = ""  # whole lines, newline-terminated


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _find_root(start: Path) -> Path | None:
    try:
        return find_project_root(start)
    except NotAProject:
        return None


def _events_for(root: Path) -> EventLog:
    from guardian.project import ProjectPaths

    return EventLog(ProjectPaths.for_root(root.resolve()).events)


def _record(log: EventLog, kind: str, paths: Sequence[str], snapshot: str | None, details: dict[str, Any]) -> str:
    """Append an event; a missing store (no `guardian init`) must not turn into a blocked call."""
    try:
        log.append(kind, list(paths)[:1000], snapshot, "agent", details)
    except OSError as exc:
        return f"guardian: warning: cannot record the {kind} event in {log.path}: {exc.strerror or exc}\n"
    return ""


def _request_details(request: HookRequest) -> dict[str, Any]:
    return {"tool": request.tool_name, "command": request.display[:4000], "cwd": str(request.cwd),
            "session_id": request.session_id, "tool_use_id": request.tool_use_id}


def _snapshot(project: Project, verdict: Verdict) -> tuple[str | None, str]:
    """Capture what the command is about to change; a failure warns but does not block."""
    paths = verdict.snapshot_paths
    if paths is not None and not paths:
        return None, ""
    from guardian.ops.snapshot import take_snapshot  # imports pygit2: only on this slow path
    from guardian.paths import check_relative  # the snapshot engine refuses .git and odd paths

    safe: list[str] | None = None
    if paths is not None:
        safe = []
        for rel in paths:
            try:
                safe.append(check_relative(rel))
            except GuardianError:
                continue
        if not safe:
            return None, ""
    try:
        result = take_snapshot(project, safe, "agent", command=verdict.command[:4000],
                               lock_timeout=SNAPSHOT_LOCK_TIMEOUT)
    except (GuardianError, OSError) as exc:
        return None, f"guardian: warning: no snapshot before this command: {exc}\n"
    return result.snapshot, ""


def run_hook(data: bytes | str, environ: Mapping[str, str], default_cwd: Path) -> HookResult:
    """The whole PreToolUse hook: parse, judge, snapshot or block, record."""
    try:
        request = parse_hook_input(data, default_cwd)
    except BadHookInput as exc:
        # A broken hook input must not stop the agent (fail open), but it goes on the record.
        root = _find_root(default_cwd)
        warning = f"guardian: warning: ignoring a malformed hook input: {exc}\n"
        if root is not None:
            warning += _record(_events_for(root), "error", [], None, {"error": f"malformed hook input: {exc}"})
        return HookResult(EXIT_ALLOW, warning)
    if request.command is None and request.file_path is None:
        return HookResult(EXIT_ALLOW)  # a tool the gate does not govern
    if request.event not in ("", "PreToolUse"):
        return HookResult(EXIT_ALLOW)  # registered for another event: too late (or too early) to gate
    cwd = request.cwd
    if request.file_path is not None:
        target = Path(request.file_path) if os.path.isabs(request.file_path) else cwd / request.file_path
        if not os.path.lexists(target):
            return HookResult(EXIT_ALLOW)  # a new file loses nothing
        start = target.parent
    else:
        start = cwd
    root = _find_root(start)
    if root is None:
        return HookResult(EXIT_ALLOW)  # not a guarded project: not ours
    force = _truthy(environ.get(ENV_FORCE))
    intents: list[Intent] = []
    if request.command is not None:
        aliases = read_git_aliases(cwd) if "git" in request.command else {}
        intents = parse_command(request.command, aliases)
        if not intents:
            return HookResult(EXIT_ALLOW)  # benign: the fast path, no pygit2, no event
    from guardian.project import Project

    log = _events_for(root)
    try:
        project = Project.find(root)
    except ConfigError as exc:
        return _policy_unreadable(request, log, exc, force)
    try:
        if request.file_path is not None:
            verdict = judge_file_write(project.root, project.policy, request.tool_name, request.file_path, cwd,
                                       force=force)
        else:
            verdict = judge_intents(project.root, project.policy, intents, cwd.resolve(), request.command or "",
                                    force=force)
    except Exception as exc:  # noqa: BLE001 - a gate bug must not silently wave a command through
        return _internal_error(request, project, log, exc, force)
    return _act(project, request, verdict, log)


def _act(project: Project, request: HookRequest, verdict: Verdict, log: EventLog) -> HookResult:
    details = {**_request_details(request), **verdict.to_json()}
    paths = sorted({t.path for t in verdict.touches})
    if verdict.blocked:
        blocked = [p.path for p in verdict.problems if not p.forced]
        # The model reads stderr as the reason: it stays the one line, even if the log is unwritable.
        _record(log, "agent", paths, None, {**details, "decision": "block"})
        _record(log, "block", blocked, None, {**details, "decision": "block"})
        return HookResult(EXIT_BLOCK, verdict.message + "\n")
    snapshot, stderr = _snapshot(project, verdict)
    decision = "force" if verdict.action == "forced" else "allow"
    stderr += _record(log, "agent", paths, snapshot, {**details, "decision": decision, "snapshot": snapshot})
    if verdict.action == "forced":
        forced = [p.path for p in verdict.problems]
        stderr += _record(log, "force", forced, snapshot, {**details, "decision": "force", "force": True})
    return HookResult(EXIT_ALLOW, stderr)


def _policy_unreadable(request: HookRequest, log: EventLog, exc: ConfigError, force: bool) -> HookResult:
    # Without a readable policy guardian cannot tell what is protected: fail closed for destructive calls.
    details = {**_request_details(request), "error": str(exc)}
    if force:
        return HookResult(EXIT_ALLOW, _record(log, "force", [], None, {**details, "decision": "force", "force": True}))
    message = (f"guardian: blocked: cannot read the guardian policy ({' '.join(str(exc).split())}); "
               "ask the user to fix guardian.yaml, or to run it with GUARDIAN_FORCE=1")
    _record(log, "block", [], None, {**details, "decision": "block"})
    return HookResult(EXIT_BLOCK, message + "\n")


def _internal_error(request: HookRequest, project: Project, log: EventLog, exc: Exception, force: bool) -> HookResult:
    tb = traceback.format_exc().strip().splitlines()[-6:]
    details = {**_request_details(request), "error": f"{type(exc).__name__}: {exc}", "traceback": tb}
    stderr = _record(log, "error", [], None, details)
    if force or not project.policy.protect:
        return HookResult(EXIT_ALLOW, stderr)  # nothing of the user's is protected: fail open
    message = (f"guardian: blocked: internal error while checking this command ({type(exc).__name__}: "
               f"{' '.join(str(exc).split())}); {FORCE_ADVICE}")
    return HookResult(EXIT_BLOCK, message + "\n")


# --------------------------------------------------------------------------- Claude Code settings


@dataclass(frozen=True)
class InstallReport:
    path: Path
    action: Literal["installed", "updated", "unchanged", "removed", "absent"]
    command: str

    @property
    def changed(self) -> bool:
        return self.action in ("installed", "updated", "removed")


def hook_command() -> str:
    """The command Claude Code runs: this interpreter, so the hook works without guardian on PATH."""
    return f"{shlex.quote(sys.executable)} -m guardian agent-hook"


def claude_settings_path(scope: Literal["project", "user"], cwd: Path) -> Path:
    if scope == "user":
        return Path.home() / ".claude" / "settings.json"
    return find_project_root(cwd).resolve() / ".claude" / "settings.json"


def _is_ours(hook: object) -> bool:
    if not isinstance(hook, dict) or not isinstance(hook.get("command"), str):
        return False
    words = hook["command"].split()
    return len(words) >= 2 and words[-1] == "agent-hook" and "guardian" in words[-2]


def _read_settings(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); fix it, guardian left it unchanged") from None
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg}); fix the file and rerun, "
            "guardian left it unchanged"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object at the top level, found {type(data).__name__}; "
                          "guardian left it unchanged")
    return data


def _pre_tool_use(path: Path, data: dict[str, Any]) -> list[Any]:
    hooks = data.setdefault("hooks", {})
    if not isinstance(hooks, dict):
        raise ConfigError(f"{path}: 'hooks' must be an object, found {type(hooks).__name__}; "
                          "guardian left the file unchanged")
    entries = hooks.setdefault("PreToolUse", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: 'hooks.PreToolUse' must be a list, found {type(entries).__name__}; "
                          "guardian left the file unchanged")
    return entries


def _without_ours(entries: list[Any], keep: dict[str, Any] | None) -> list[Any]:
    """Every entry minus our hooks, except the one entry ``keep`` (identity) left as it is."""
    out: list[Any] = []
    for entry in entries:
        if entry is keep or not isinstance(entry, dict) or not isinstance(entry.get("hooks"), list):
            out.append(entry)
            continue
        others = [h for h in entry["hooks"] if not _is_ours(h)]
        if len(others) == len(entry["hooks"]):
            out.append(entry)
        elif others:
            out.append({**entry, "hooks": others})
    return out


def _write_settings(path: Path, data: dict[str, Any]) -> None:
    from guardian.util.fs import atomic_write_file

    target = path.resolve() if path.is_symlink() else path  # keep a symlinked settings file a symlink
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        mode = 0o644
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_file(target, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"), mode)


def install_claude_hook(path: Path, command: str | None = None) -> InstallReport:
    """Merge our PreToolUse hook into a Claude Code settings file, keeping everything else."""
    command = command or hook_command()
    data = _read_settings(path)
    existed = path.exists()
    entries = _pre_tool_use(path, data)
    canonical = next(
        (e for e in entries
         if isinstance(e, dict) and e.get("matcher") == HOOK_MATCHER and isinstance(e.get("hooks"), list)
         and [h.get("command") for h in e["hooks"] if _is_ours(h)] == [command]),
        None,
    )
    had_ours = any(_is_ours(h) for e in entries if isinstance(e, dict) and isinstance(e.get("hooks"), list)
                   for h in e["hooks"])
    new_entries = _without_ours(entries, canonical)
    if canonical is None:
        new_entries.append({"matcher": HOOK_MATCHER, "hooks": [{"type": "command", "command": command}]})
    if existed and new_entries == entries:
        return InstallReport(path, "unchanged", command)
    data["hooks"]["PreToolUse"] = new_entries
    _write_settings(path, data)
    return InstallReport(path, "updated" if had_ours else "installed", command)


def uninstall_claude_hook(path: Path) -> InstallReport:
    """Remove only guardian's hook; drop containers that only held it."""
    data = _read_settings(path)
    hooks = data.get("hooks")
    entries = hooks.get("PreToolUse") if isinstance(hooks, dict) else None
    if not isinstance(hooks, dict) or not isinstance(entries, list):
        return InstallReport(path, "absent", hook_command())
    new_entries = _without_ours(entries, None)
    if new_entries == entries:
        return InstallReport(path, "absent", hook_command())
    if new_entries:
        hooks["PreToolUse"] = new_entries
    else:
        del hooks["PreToolUse"]
        if not hooks:
            del data["hooks"]
    _write_settings(path, data)
    return InstallReport(path, "removed", hook_command())

