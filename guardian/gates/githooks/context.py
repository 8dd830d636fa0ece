"""What one hook run knows: git's arguments and stdin, the work tree, the project, the git process.

The policy and the store are loaded only on first use: most hook runs end before
they are needed (no project, a ref that is not HEAD, no protected file rewritten),
and loading the policy pulls in yaml while the store pulls in pygit2 (~100 ms).
Also here: the hook names and environment variables the shim and ``hook-impl``
share, and the one way a hook writes to stderr.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from guardian.errors import EXIT_BLOCKED, NotAProject
from guardian.gates.githooks.gitcli import Git
from guardian.gates.githooks.processes import (
    GitProcess,
    git_subcommand,
    nearest_git,
    outer_git,
    parent_argv,
    process_start_time,
)
from guardian.paths import POLICY_FILENAME, find_project_root, has_own_store
from guardian.util.proc import process_argv

if TYPE_CHECKING:
    from guardian.policy import PolicyEngine
    from guardian.project import Project

HOOK_NAMES: tuple[str, ...] = ("pre-rebase", "reference-transaction", "post-checkout", "post-merge", "post-rewrite")
STDIN_HOOKS = frozenset({"reference-transaction", "post-rewrite"})

ENV_FORCE = "GUARDIAN_FORCE"
ENV_GIT_PID = "GUARDIAN_GIT_PID"  # set by the shim: the git process that ran the hook
ENV_HOOK_ROOT = "GUARDIAN_HOOK_ROOT"  # set by the shim: the project root it found
ENV_STORE_HEAD = "GUARDIAN_STORE_HEAD"  # set by the shim: the store's snapshot head when the hook started
ENV_HOOKS_DIR = "GUARDIAN_HOOKS_DIR"  # set by the shim: the directory it runs from
ENV_TRACE = "GUARDIAN_HOOK_TRACE"  # set to 1 to have hook-impl say on stderr why it acts or not

# hook-impl exits with this when it refuses; the shim turns it into exit 1.  Any
# other non-zero exit means guardian itself failed, which the shim reports as
# "protected paths were NOT checked" and lets the git command go on.
EXIT_REFUSE = EXIT_BLOCKED

# Refs git keeps while an operation waits for the user (a conflict): the commit being merged or picked.
_OPERATION_HEADS = ("MERGE_HEAD", "CHERRY_PICK_HEAD", "REVERT_HEAD", "REBASE_HEAD")

# Where the start time of the git process cannot be read, look back this far.
_UNKNOWN_START_WINDOW = 5.0

# A file git wrote can have a ctime up to this much *before* the git process's start as
# read from /proc: the start time is truncated to a clock tick (10 ms), and file times
# come from the kernel's coarse clock, which lags real time by up to one tick (1-10 ms).
# Measured here: 2 in 150 `git reset --hard` wrote a.py with a ctime 1.3 ms before it.
START_SLACK = 0.02


class RefUpdate(NamedTuple):
    """One line of reference-transaction's stdin: ``OLD NEW REF``.  (No dataclass: that import costs ~10 ms.)"""

    old: str
    new: str
    ref: str


def parse_updates(data: bytes) -> list[RefUpdate]:
    updates: list[RefUpdate] = []
    for line in os.fsdecode(data).splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3:
            updates.append(RefUpdate(*parts))
    return updates


class NoStore(Exception):
    """The work tree has a guardian.yaml but ``guardian init`` never ran for it (a fresh clone or worktree)."""

    def __init__(self, root: Path) -> None:
        super().__init__(str(root))
        self.root = root


class HookContext:
    """Everything one hook run needs, with the expensive parts (policy, store) loaded on first use."""

    def __init__(
        self, name: str, args: Sequence[str], stdin: bytes, git: Git, top: Path, git_dir: Path, root: Path
    ) -> None:
        self.name = name
        self.args = list(args)
        self.stdin = stdin
        self.git = git
        self.top = top
        self.git_dir = git_dir
        self.root = root
        rel = os.path.relpath(top.resolve(), root.resolve())
        # Git names paths from the top of the work tree; the policy from the project root above it.
        self.prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        # The shim's parent, unless a hook manager ran the shim (pre-commit runs it as its legacy hook).
        pid = nearest_git(_env_int(ENV_GIT_PID) or os.getppid())
        started = process_start_time(pid)
        self.started = started if started is not None else time.time() - _UNKNOWN_START_WINDOW
        self.force = os.environ.get(ENV_FORCE, "").strip().lower() in ("1", "true", "yes")
        self.pid = pid
        self._process: GitProcess | None = None
        self._outer: GitProcess | None = None
        self._outer_known = False
        self._project: Project | None = None
        self._engine: PolicyEngine | None = None
        self._store_head = _oid_or_none(os.environ.get(ENV_STORE_HEAD, ""))
        self._operation_heads: dict[str, str] | None = None
        self._unmerged: set[str] | None = None

    # ---------------------------------------------------------------- lazy parts

    def path_of(self, git_path: str) -> str:
        return self.prefix + git_path

    def project(self) -> Project:
        if self._project is None:
            from guardian.project import Project

            project = Project.find(self.root)
            if not project.paths.repo.is_dir():
                raise NoStore(project.root)
            self._project = project
        return self._project

    def store_head(self) -> str | None:
        """The store's newest snapshot when this hook started: versions after it are not "before the command".

        The shim reads it from the ref file before Python starts; where it could not
        (it does not know the store), it is read on first use.
        """
        if self._store_head is None:
            from guardian.project import read_ref_file

            self._store_head = read_ref_file(self.project().paths.repo)
        return self._store_head

    def engine(self) -> PolicyEngine:
        if self._engine is None:
            from guardian.policy import PolicyEngine

            self._engine = PolicyEngine.from_policy(self.project().policy)
        return self._engine

    @property
    def process(self) -> GitProcess:
        """The git command that ran this hook."""
        if self._process is None:
            self._process = GitProcess(self.pid, process_argv(self.pid), self.started)
        return self._process

    @property
    def outer(self) -> GitProcess | None:
        if not self._outer_known:
            self._outer, self._outer_known = outer_git(self.pid), True
        return self._outer

    def user_command_text(self) -> str:
        """What the user typed: the outer git command when the hook ran under one."""
        return (self.outer or self.process).text

    def operation_heads(self) -> dict[str, str]:
        """The other side of a merge, cherry-pick, revert or rebase step in progress: name -> commit."""
        if self._operation_heads is None:
            self._operation_heads = {}
            for name in _OPERATION_HEADS:
                if (self.git_dir / name).is_file() and (oid := self.git.rev(name)) is not None:
                    self._operation_heads[name] = oid
        return self._operation_heads

    def unmerged_paths(self) -> set[str]:
        """Paths the index holds in conflict (stages 1-3), by git's names."""
        if self._unmerged is None:
            out = self.git.run("ls-files", "-u", "-z", check=False)
            self._unmerged = {os.fsdecode(item.split(b"\t", 1)[1]) for item in out.split(b"\0") if b"\t" in item}
        return self._unmerged

    def git_object_format(self) -> str:
        return "sha256" if len(self.git.rev("HEAD") or "") == 64 else "sha1"

    def commands(self) -> list[tuple[str, list[str]]]:
        """The git commands behind this hook, innermost first: (command, arguments) of each git process."""
        found = []
        for process in (self.process, self.outer):
            if process is not None and (command := git_subcommand(process.argv)) is not None:
                found.append(command)
        return found

    def run_by_rebase(self) -> bool:
        """Is this hook one of a rebase's own steps (``rebase``, ``pull --rebase``, ``--continue``, ``--abort``)?

        Its intermediate states are no rollbacks: ``pre-rebase`` judged the rebase
        before it started and ``post-rewrite`` judges its result.  A command the
        person runs while a rebase is stopped is judged like any other.
        """
        return any(name == "rebase" for name, _args in self.commands())

    def run_by_pre_commit(self) -> bool:
        """Is this git command pre-commit's own, stashing or restoring unstaged changes around its hooks?

        pre-commit saves unstaged changes as a patch, runs ``git checkout -- .``, runs
        its hooks and applies the patch again: what the checkout drops, the patch holds.
        """
        parent = parent_argv(self.pid)
        return parent is not None and any("pre_commit" in word or word.endswith("pre-commit") for word in parent[:3])

    def aborting(self) -> bool:
        """Is this ``merge|cherry-pick|revert|am --abort``: back to the state before the operation started?"""
        return any(
            name in ("merge", "cherry-pick", "revert", "am") and "--abort" in args for name, args in self.commands()
        )

    def rebase_in_progress(self) -> bool:
        return (self.git_dir / "rebase-merge").is_dir() or (self.git_dir / "rebase-apply").is_dir()

    def current_branch(self) -> str | None:
        """The checked-out branch (refs/heads/...), or None when HEAD is detached."""
        try:
            head = (self.git_dir / "HEAD").read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            head = ""
        if head.startswith("ref: "):
            return head[5:]
        if len(head) in (40, 64):
            return None
        out = self.git.run("symbolic-ref", "-q", "HEAD", check=False).strip()  # not the files backend
        return os.fsdecode(out) or None

    # ---------------------------------------------------------------- record

    def record(self, kind: str, paths: Sequence[str], facts: dict[str, Any], snapshot: str | None = None) -> None:
        details: dict[str, Any] = {
            "hook": self.name,
            "args": self.args,
            "git_command": self.process.text,
            "git_pid": self.pid,
            "work_tree": str(self.top),
        }
        if self.outer is not None:
            details["git_parent_command"] = self.outer.text
        details.update(facts)
        self.project().events.append(kind, list(paths)[:1000], snapshot, "hook", details)


def _oid_or_none(text: str) -> str | None:
    text = text.strip()
    return text if len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text) else None


def _env_int(name: str) -> int | None:
    try:
        value = int(os.environ.get(name, ""))
    except ValueError:
        return None
    return value if value > 0 else None


def make_context(name: str, args: Sequence[str], stdin: bytes, cwd: Path) -> HookContext | None:
    """The context for a hook run in ``cwd``, or None where there is nothing to guard (bare, no project)."""
    git = Git(cwd)
    out = git.run("rev-parse", "--show-toplevel", "--git-dir", check=False).decode("utf-8", "surrogateescape")
    lines = out.split("\n")
    if len(lines) != 3:
        # A path with a newline in it (rev-parse has no -z): one question per call, so each
        # answer is everything before its final newline.  Costs a git process only then.
        lines = [_rev_parse_one(git, "--show-toplevel"), _rev_parse_one(git, "--git-dir")]
    if not lines[0] or not lines[1]:
        return None  # a bare repository: no work tree to guard
    top = Path(lines[0])
    git_dir = Path(os.path.abspath(cwd / lines[1]))
    hinted = os.environ.get(ENV_HOOK_ROOT)
    if hinted and ((Path(hinted) / POLICY_FILENAME).is_file() or has_own_store(Path(hinted))):
        root = Path(hinted)  # the shim already walked up to guardian.yaml, or to a known project's store
    else:
        try:
            root = find_project_root(top)
        except NotAProject:
            return None
    return HookContext(name, args, stdin, git, top, git_dir, root)


def _rev_parse_one(git: Git, option: str) -> str:
    out = git.run("rev-parse", option, check=False).decode("utf-8", "surrogateescape")
    return out[:-1] if out.endswith("\n") else out


def trace(text: str) -> None:
    if os.environ.get(ENV_TRACE) == "1":
        say(f"guardian hook trace: {text}")


def say(text: str) -> None:
    sys.stderr.write(text.rstrip("\n") + "\n")
    sys.stderr.flush()


def short(oid: str | None) -> str:
    return (oid or "")[:12]
