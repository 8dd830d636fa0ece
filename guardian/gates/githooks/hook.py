"""Git hooks: shims that hand each hook to ``guardian hook-impl``, and what each hook does.

Facts about git 2.39 this module is built on (each one checked with real git):

- No hook runs *before* ``reset``, ``checkout``/``switch``, ``restore``, ``revert``,
  ``cherry-pick`` or ``clean`` change files.  ``pre-rebase`` is the only hook that
  runs before anything is touched.
- ``reference-transaction prepared`` runs after ``git reset --hard`` (and a
  detaching ``git checkout COMMIT``) has rewritten the index and the work tree,
  but before HEAD moves.  Exiting non-zero aborts the ref update: HEAD stays,
  the files stay new.  So the hook *undoes* at the last chance: it writes the
  protected files back and aborts.
- ``git checkout BRANCH`` and ``git checkout -f`` move HEAD as a symref without
  any reference transaction; ``post-checkout`` is the only hook that sees them,
  after the fact, and its exit code becomes the command's.
- ``git stash drop`` while other entries remain, and ``drop stash@{N}``, rewrite
  the stash reflog without a reference transaction: no hook can see them.  Only a
  drop of the last entry, ``pop`` of it, and ``stash clear`` delete ``refs/stash``
  through a transaction.
- The ``old`` value git passes is all zeros when the update does not check it
  (``checkout COMMIT``, ``branch -f``, ``branch -D``, ``stash`` push), so the
  current value is read from the repository instead.

Which files did *this* git command write?  The work tree holds no history, so
the hook compares each file's ctime with the start time of the git process that
ran it (``/proc/PID/stat`` on Linux), and keeps only files whose content git has
as a blob (a file someone edited a moment before git started is not one).  A
file whose content git just replaced has a fresh inode; one git merely read
(``commit``, ``reset --soft``) does not.

The fast path (no guardian project, a ref that is not HEAD, a branch or the
stash, a commit that created the commit it moves to, no file rewritten) reads
no policy and imports no pygit2; with files rewritten but none protected it
reads the policy (yaml, pathspec) and still leaves pygit2 alone.  Importing
pygit2 costs ~100 ms, and a hook runs on every commit.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import stat
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guardian.errors import EXIT_BLOCKED, EXIT_OK, OperationFailed, UsageError
from guardian.util.proc import process_argv

if TYPE_CHECKING:
    from guardian.policy import ChangeKind, Decision, PathDecision, PolicyEngine
    from guardian.project import Project

HOOK_NAMES: tuple[str, ...] = ("pre-rebase", "reference-transaction", "post-checkout", "post-merge", "post-rewrite")
STDIN_HOOKS = frozenset({"reference-transaction", "post-rewrite"})
SHIM_MARKER = "# guardian-hook-shim v1"
_MARKER_PREFIX = "# guardian-hook-shim"
LEGACY_SUFFIX = ".legacy"
TEMPLATE_NAME = "guardian-hook.sh"

ENV_FORCE = "GUARDIAN_FORCE"
ENV_GIT_PID = "GUARDIAN_GIT_PID"  # set by the shim: the git process that ran the hook
ENV_HOOK_ROOT = "GUARDIAN_HOOK_ROOT"  # set by the shim: the project root it found
ENV_TRACE = "GUARDIAN_HOOK_TRACE"  # set to 1 to have hook-impl say on stderr why it acts or not

# hook-impl exits with this when it refuses; the shim turns it into exit 1.  Any
# other non-zero exit means guardian itself failed, which the shim reports as
# "protected paths were NOT checked" and lets the git command go on.
EXIT_REFUSE = EXIT_BLOCKED

# Same as guardian.config.POLICY_FILENAME, not imported so that the fast path does not load yaml.
_POLICY_FILENAME = "guardian.yaml"
# A file whose ctime is this close before the git process started still counts as
# written by it: the process start time is truncated to a clock tick (10 ms) and
# file times use the kernel's coarse clock.
_START_SLACK = 0.02
# Where the start time of the git process cannot be read, look back this far.
_UNKNOWN_START_WINDOW = 5.0
_GIT_TIMEOUT = 120.0
_MODE_LINK = 0o120000
_MODE_EXEC = 0o100755

_PACKAGE_DIR = Path(__file__).resolve().parents[2]  # guardian/
_SOURCE_SHIMS = _PACKAGE_DIR.parent / "hooks"
_PACKAGED_SHIMS = _PACKAGE_DIR / "hook_shims"


def shims_dir() -> Path:
    """The shim templates live in hooks/ in a source checkout and in guardian/hook_shims in the wheel."""
    return _SOURCE_SHIMS if (_SOURCE_SHIMS / TEMPLATE_NAME).is_file() else _PACKAGED_SHIMS


# --------------------------------------------------------------------------- git


def _is_zero(oid: str) -> bool:
    return not oid.strip("0")


class Git:
    """The git CLI, run in one work tree.  (pygit2 is for guardian's own store only.)"""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd

    def run(self, *args: str, input: bytes | None = None, check: bool = True) -> bytes:
        try:
            proc = subprocess.run(
                ["git", *args], cwd=self.cwd, input=input, capture_output=True, timeout=_GIT_TIMEOUT, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise OperationFailed(f"cannot run git {args[0]}: {exc}") from None
        if check and proc.returncode != 0:
            message = os.fsdecode(proc.stderr).strip().splitlines()
            raise OperationFailed(f"git {' '.join(args[:3])} failed: {message[-1] if message else proc.returncode}")
        return proc.stdout

    def ok(self, *args: str) -> bool:
        return subprocess.run(["git", *args], cwd=self.cwd, capture_output=True, timeout=_GIT_TIMEOUT).returncode == 0

    def text(self, *args: str) -> str:
        return os.fsdecode(self.run(*args)).strip()

    def rev(self, spec: str) -> str | None:
        """The object id ``spec`` names, or None."""
        out = self.run("rev-parse", "-q", "--verify", "--end-of-options", spec, check=False).strip()
        return os.fsdecode(out) or None

    def names(self, *args: str) -> list[str]:
        """Paths from a ``-z`` listing."""
        return [os.fsdecode(p) for p in self.run(*args).split(b"\0") if p]

    def tree_entries(self, commit: str, paths: Sequence[str]) -> dict[str, tuple[int, str]]:
        """path -> (mode, object id) in ``commit`` for those of ``paths`` that are files there."""
        if not paths:
            return {}
        out = self.run("ls-tree", "-z", "--full-tree", commit, "--", *paths)
        entries: dict[str, tuple[int, str]] = {}
        for item in out.split(b"\0"):
            if not item:
                continue
            meta, _, name = item.partition(b"\t")
            mode, kind, oid = meta.split()
            if kind == b"blob":
                entries[os.fsdecode(name)] = (int(mode, 8), os.fsdecode(oid))
        return entries

    def blob(self, oid: str) -> bytes:
        return self.run("cat-file", "blob", oid)


# --------------------------------------------------------------------------- processes


def process_start_time(pid: int) -> float | None:
    """Wall-clock start of process ``pid``: 10 ms resolution on Linux, a second elsewhere."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        # The command name (field 2) may hold spaces and parentheses: split after the last ")".
        fields = raw[raw.rindex(")") + 2 :].split()
        started_ticks = int(fields[19])  # field 22, starttime, in clock ticks since boot
        since_boot = started_ticks / os.sysconf("SC_CLK_TCK")
        return time.time() - (time.clock_gettime(time.CLOCK_BOOTTIME) - since_boot)
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    try:
        out = subprocess.run(["ps", "-o", "etime=", "-p", str(pid)], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    elapsed = _parse_etime(out.strip())
    # etime counts whole seconds: widen by one so nothing the command wrote is missed.
    return None if elapsed is None else time.time() - elapsed - 1.0


def _parse_etime(text: str) -> float | None:
    """ps's elapsed time, ``[[dd-]hh:]mm:ss``, in seconds."""
    days, _, clock = text.strip().rpartition("-")
    try:
        seconds = 0
        for part in clock.split(":"):
            seconds = seconds * 60 + int(part)
        return float(int(days or 0) * 86400 + seconds)
    except ValueError:
        return None


def _parent_pid(pid: int) -> int | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        return int(raw[raw.rindex(")") + 2 :].split()[1])
    except (OSError, ValueError, IndexError):
        pass
    try:
        out = subprocess.run(["ps", "-o", "ppid=", "-p", str(pid)], capture_output=True, text=True, timeout=10).stdout
        return int(out.strip())
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


def _is_git(argv: Sequence[str] | None) -> bool:
    return argv is not None and len(argv) > 0 and os.path.basename(argv[0]) in ("git", "git.exe")


@dataclass(frozen=True)
class GitProcess:
    """A git process: the one that ran the hook, or the git command that ran that one."""

    pid: int
    argv: list[str] | None
    started: float | None

    @property
    def text(self) -> str:
        return shlex.join(self.argv) if self.argv else f"git (pid {self.pid})"


def outer_git(pid: int) -> GitProcess | None:
    """The git process that started git process ``pid``, if there is one.

    ``git stash`` runs ``git reset --hard`` as a child: the hook fires in the
    child, but the user typed ``git stash``.
    """
    parent = _parent_pid(pid)
    if parent is None or parent <= 1:
        return None
    argv = process_argv(parent)
    return GitProcess(parent, argv, process_start_time(parent)) if _is_git(argv) else None


# --------------------------------------------------------------------------- installation


@dataclass(frozen=True)
class HookFile:
    name: str
    path: Path
    state: str  # "guardian", "other" (a hook guardian did not write), "absent"
    legacy: Path | None  # the chained original, when there is one
    python: str | None  # the interpreter a guardian shim calls
    python_ok: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "state": self.state,
            "legacy": str(self.legacy) if self.legacy else None,
            "python": self.python,
            "python_ok": self.python_ok,
        }


@dataclass
class HooksStatus:
    hooks_dir: Path
    hooks_path: str | None  # core.hooksPath as configured; None when unset
    project_root: Path | None
    hooks: list[HookFile]

    @property
    def installed(self) -> bool:
        return all(h.state == "guardian" for h in self.hooks)

    def to_json(self) -> dict[str, Any]:
        return {
            "hooks_dir": str(self.hooks_dir),
            "core_hooks_path": self.hooks_path,
            "project_root": str(self.project_root) if self.project_root else None,
            "installed": self.installed,
            "hooks": [h.to_json() for h in self.hooks],
        }


@dataclass
class InstallReport:
    hooks_dir: Path
    hooks_path: str | None
    python: str
    project_root: Path | None
    written: list[str] = field(default_factory=list)
    chained: list[str] = field(default_factory=list)  # an existing hook was moved to <name>.legacy
    updated: list[str] = field(default_factory=list)  # a guardian shim was rewritten

    def to_json(self) -> dict[str, Any]:
        return {
            "hooks_dir": str(self.hooks_dir),
            "core_hooks_path": self.hooks_path,
            "python": self.python,
            "project_root": str(self.project_root) if self.project_root else None,
            "written": self.written,
            "chained": self.chained,
            "updated": self.updated,
        }


@dataclass
class UninstallReport:
    hooks_dir: Path
    removed: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)  # <name>.legacy put back as <name>
    left: list[tuple[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "hooks_dir": str(self.hooks_dir),
            "removed": self.removed,
            "restored": self.restored,
            "left": [{"hook": n, "reason": r} for n, r in self.left],
        }


def hooks_dir(cwd: Path) -> tuple[Path, str | None]:
    """(the directory git runs this repository's hooks from, core.hooksPath when set).

    ``git rev-parse --git-path hooks`` applies core.hooksPath and, in a linked
    worktree, points at the common directory that every worktree shares.
    """
    git = Git(cwd)
    if not git.ok("rev-parse", "--is-inside-work-tree"):
        raise UsageError(f"{cwd} is not inside a git work tree; run 'guardian hooks' in a git repository")
    where = os.fsdecode(git.run("rev-parse", "--git-path", "hooks").rstrip(b"\n"))
    configured = os.fsdecode(git.run("config", "--get", "core.hooksPath", check=False).strip()) or None
    return Path(os.path.abspath(cwd / where)), configured


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def is_guardian_shim(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError:
        return False
    return _MARKER_PREFIX.encode() in head


def _shim_python(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("python="):
            try:
                words = shlex.split(line[len("python=") :])
            except ValueError:
                return None
            return words[0] if words else None
    return None


def render_shim(name: str, python: str) -> str:
    template = (shims_dir() / TEMPLATE_NAME).read_text(encoding="utf-8")
    return template.replace("@HOOK@", shlex.quote(name)).replace("@PYTHON@", shlex.quote(python))


def _write_shim(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.guardian-tmp")
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)


def _find_root(top: Path) -> Path | None:
    for candidate in (top, *top.parents):
        if (candidate / _POLICY_FILENAME).is_file():
            return candidate
    return None


def _work_tree_top(cwd: Path) -> Path:
    return Path(os.fsdecode(Git(cwd).run("rev-parse", "--show-toplevel").rstrip(b"\n")))


def install(cwd: Path, python: str | None = None) -> InstallReport:
    """Write a shim for every hook; an existing hook is moved to <name>.legacy and chained."""
    directory, configured = hooks_dir(cwd)
    interpreter = os.path.abspath(python or sys.executable)
    report = InstallReport(directory, configured, interpreter, _find_root(_work_tree_top(cwd)))
    # Check everything before changing anything, so a refusal leaves the directory as it was.
    for name in HOOK_NAMES:
        path, legacy = directory / name, directory / (name + LEGACY_SUFFIX)
        if _exists(path) and not is_guardian_shim(path) and _exists(legacy):
            raise OperationFailed(
                f"{path} is not guardian's hook and {legacy} already exists, so the hook cannot be chained; "
                "move one of them away, then rerun 'guardian hooks install'"
            )
    directory.mkdir(parents=True, exist_ok=True)
    for name in HOOK_NAMES:
        path, legacy = directory / name, directory / (name + LEGACY_SUFFIX)
        if is_guardian_shim(path):
            report.updated.append(name)
        elif _exists(path):
            # A rename keeps the original byte for byte, with its mode (or as the same symlink).
            os.rename(path, legacy)
            report.chained.append(name)
        else:
            report.written.append(name)
        _write_shim(path, render_shim(name, interpreter))
    return report


def uninstall(cwd: Path) -> UninstallReport:
    """Remove guardian's shims and put back the hooks they replaced."""
    directory, _configured = hooks_dir(cwd)
    report = UninstallReport(directory)
    for name in HOOK_NAMES:
        path, legacy = directory / name, directory / (name + LEGACY_SUFFIX)
        if is_guardian_shim(path):
            path.unlink()
            report.removed.append(name)
        elif _exists(path):
            if _exists(legacy):
                report.left.append((name, f"{path} is not guardian's shim; {legacy} left in place"))
            continue
        if _exists(legacy):
            os.rename(legacy, path)
            report.restored.append(name)
    return report


def status(cwd: Path) -> HooksStatus:
    directory, configured = hooks_dir(cwd)
    found: list[HookFile] = []
    for name in HOOK_NAMES:
        path, legacy = directory / name, directory / (name + LEGACY_SUFFIX)
        chained = legacy if _exists(legacy) else None
        if is_guardian_shim(path):
            python = _shim_python(path)
            ok = bool(python) and os.access(python or "", os.X_OK)
            found.append(HookFile(name, path, "guardian", chained, python, ok))
        else:
            found.append(HookFile(name, path, "other" if _exists(path) else "absent", chained, None, False))
    return HooksStatus(directory, configured, _find_root(_work_tree_top(cwd)), found)


# --------------------------------------------------------------------------- hook-impl: context


@dataclass(frozen=True)
class RefUpdate:
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


class _NoStore(Exception):
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
        pid = _env_int(ENV_GIT_PID) or os.getppid()
        started = process_start_time(pid)
        self.started = started if started is not None else time.time() - _UNKNOWN_START_WINDOW
        self.force = os.environ.get(ENV_FORCE, "").strip().lower() in ("1", "true", "yes")
        self.pid = pid
        self._process: GitProcess | None = None
        self._outer: GitProcess | None = None
        self._outer_known = False
        self._project: Project | None = None
        self._engine: PolicyEngine | None = None

    # ---------------------------------------------------------------- lazy parts

    def path_of(self, git_path: str) -> str:
        return self.prefix + git_path

    def project(self) -> Project:
        if self._project is None:
            from guardian.project import Project

            project = Project.find(self.root)
            if not project.paths.repo.is_dir():
                raise _NoStore(project.root)
            self._project = project
        return self._project

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


def _env_int(name: str) -> int | None:
    try:
        value = int(os.environ.get(name, ""))
    except ValueError:
        return None
    return value if value > 0 else None


def _context(name: str, args: Sequence[str], stdin: bytes, cwd: Path) -> HookContext | None:
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
    root = Path(hinted) if hinted and (Path(hinted) / _POLICY_FILENAME).is_file() else _find_root(top)
    if root is None:
        return None
    return HookContext(name, args, stdin, git, top, git_dir, root)


def _rev_parse_one(git: Git, option: str) -> str:
    out = git.run("rev-parse", option, check=False).decode("utf-8", "surrogateescape")
    return out[:-1] if out.endswith("\n") else out


def run_hook(name: str, args: Sequence[str], stdin: bytes, cwd: Path) -> int:
    """What ``guardian hook-impl NAME ARGS...`` does.  0 lets git go on; EXIT_REFUSE stops or fails it."""
    if name not in HOOK_NAMES:
        raise UsageError(f"unknown hook '{name}'; guardian handles: {', '.join(HOOK_NAMES)}")
    ctx = _context(name, args, stdin, cwd)
    if ctx is None:
        return EXIT_OK
    handler = {
        "pre-rebase": pre_rebase,
        "reference-transaction": reference_transaction,
        "post-checkout": post_checkout,
        "post-merge": post_merge,
        "post-rewrite": post_rewrite,
    }[name]
    try:
        return handler(ctx)
    except _NoStore as missing:
        _say(
            f"guardian hook {name}: {missing.root} has a guardian.yaml but no store yet; protected paths are NOT "
            f"checked until you run 'guardian init' there"
        )
        return EXIT_OK


def _trace(text: str) -> None:
    if os.environ.get(ENV_TRACE) == "1":
        _say(f"guardian hook trace: {text}")


def _say(text: str) -> None:
    sys.stderr.write(text.rstrip("\n") + "\n")
    sys.stderr.flush()


def _short(oid: str | None) -> str:
    return (oid or "")[:12]


# --------------------------------------------------------------------------- decisions


def _decision_record(decision: Decision) -> dict[str, Any]:
    record = decision.to_json()
    record["paths"] = [p.to_json() for p in decision.paths if p.rule_paths][:1000]
    return record


def _why(verdict: PathDecision) -> str:
    if verdict.outcome == "block":
        return f"{verdict.reason}; {verdict.change} is blocked by policy"
    return f"{verdict.reason}; needs GUARDIAN_FORCE=1"


def _refusal_lines(decision: Decision) -> list[str]:
    return [f"  {p.path}  ({_why(p)})" for p in decision.paths if p.outcome != "allow"]


def _how_to_force(ctx: HookContext, decision: Decision) -> str:
    if decision.overall == "block":
        return (
            "A 'block' rule in guardian.yaml forbids this; no flag overrides it. "
            "Change the rule if the change is intended."
        )
    return f"To do it anyway: GUARDIAN_FORCE=1 {ctx.user_command_text()}"


def _judge(ctx: HookContext, changes: Sequence[tuple[str, ChangeKind]]) -> Decision:
    from guardian.policy import PathChange

    return ctx.engine().decide("rollback", [PathChange(p, c) for p, c in changes], ctx.force)


def _allowed_outright(decision: Decision) -> bool:
    """Every path is allowed without force.  (``Decision.overall`` is also "allow" once force was given.)"""
    return all(p.outcome == "allow" for p in decision.paths)


def _forced_through(decision: Decision) -> bool:
    """GUARDIAN_FORCE=1 was given and covers every path that needed it; nothing is blocked."""
    return decision.overall == "allow" and any(p.forced for p in decision.paths)


# --------------------------------------------------------------------------- pre-rebase


def pre_rebase(ctx: HookContext) -> int:
    """Refuse a rebase that would rewrite protected paths, before it touches anything.

    Two kinds of path count: those the rebased commits touch (their history is
    rewritten, and ``-i`` may drop them), and those that differ between the
    merge base and the upstream (the rebase brings the upstream's version into
    the work tree, which may be older: the upstream may have reverted them).
    """
    if not ctx.args:
        return EXIT_OK
    upstream = ctx.git.rev(ctx.args[0] + "^{commit}")
    branch = ctx.git.rev((ctx.args[1] if len(ctx.args) > 1 and ctx.args[1] else "HEAD") + "^{commit}")
    if upstream is None or branch is None:
        return EXIT_OK  # git will fail on its own
    base = os.fsdecode(ctx.git.run("merge-base", upstream, branch, check=False).strip()) or None
    rewritten = _names_in_commits(ctx.git, branch, [upstream])
    incoming = set(ctx.git.names("diff", "--name-only", "-z", "--no-renames", base, upstream)) if base else set()
    engine = ctx.engine()
    touched = sorted(p for p in rewritten | incoming if engine.is_protected(ctx.path_of(p)))
    if not touched:
        return EXIT_OK
    upstream_has = ctx.git.tree_entries(upstream, touched)
    changes: list[tuple[str, ChangeKind]] = [
        (ctx.path_of(p), "delete" if p not in upstream_has and p not in rewritten else "modify") for p in touched
    ]
    decision = _judge(ctx, changes)
    paths = [p for p, _c in changes]
    facts = {"upstream": upstream, "branch": branch, "merge_base": base, "decision": _decision_record(decision)}
    if _allowed_outright(decision):
        ctx.record("hook", paths, facts)
        return EXIT_OK
    if _forced_through(decision):
        ctx.record("force", paths, {**facts, "force": True})
        _say(f"guardian: GUARDIAN_FORCE=1: letting the rebase rewrite protected paths: {', '.join(paths)}")
        return EXIT_OK
    ctx.record("block", paths, facts)
    _say(
        "\n".join(
            [
                f"guardian: refused: this rebase would rewrite protected paths (onto {_short(upstream)}):",
                *_refusal_lines(decision),
                "Nothing has been changed.",
                _how_to_force(ctx, decision),
            ]
        )
    )
    return EXIT_REFUSE


def _names_in_commits(
    git: Git, tip: str, exclude: Sequence[str], all_refs_but: Sequence[str] | None = None
) -> set[str]:
    """Paths added or modified by the commits reachable from tip but not from ``exclude`` (or other refs)."""
    args = ["log", "-z", "--format=%x01", "--name-only", "--no-renames", "--diff-filter=d", tip, "--not", *exclude]
    if all_refs_but is not None:
        args += [f"--exclude={ref}" for ref in all_refs_but] + ["--all"]
    names: set[str] = set()
    for item in git.run(*args).split(b"\0"):
        name = item.lstrip(b"\n")
        if name and not name.startswith(b"\x01"):
            names.add(os.fsdecode(name))
    return names


# --------------------------------------------------------------------------- work-tree rewinds


@dataclass(frozen=True)
class Source:
    """Content to put back: a blob in guardian's store, or in the git repository."""

    where: str  # "snapshot" or "git"
    oid: str  # in the shadow store (sha1) or in git
    sha1: str  # the blob's sha1 as the shadow store hashes it, for comparisons
    mode: int
    snapshot: str | None = None  # the snapshot id, when where == "snapshot"
    commit: str | None = None  # the commit, when where == "git"

    def describe(self) -> str:
        if self.where == "snapshot":
            return f"snapshot {_short(self.snapshot)}"
        return f"commit {_short(self.commit)}"


@dataclass(frozen=True)
class Loss:
    path: str  # project-relative
    git_path: str  # work-tree-relative
    present: bool  # the file is there (with other content) rather than deleted
    source: Source


def _blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def _current_content(path: Path) -> bytes | None:
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISLNK(st.st_mode):
        return os.fsencode(os.readlink(path))
    if not stat.S_ISREG(st.st_mode):
        return None
    return path.read_bytes()


def _rewritten(ctx: HookContext, extra: Iterable[str]) -> list[str]:
    """Work-tree paths (git's names) that this git command wrote or deleted."""
    since = ctx.started - _START_SLACK
    listed = set(ctx.git.names("ls-files", "-z", "--full-name"))
    listed.update(extra)
    found: list[str] = []
    dir_fresh: dict[str, bool] = {}
    for name in sorted(listed):
        try:
            st = os.lstat(ctx.top / name)
        except (FileNotFoundError, NotADirectoryError):
            if _dir_changed_since(ctx.top, name, since, dir_fresh):
                found.append(name)
            continue
        if not stat.S_ISDIR(st.st_mode) and st.st_ctime >= since:
            found.append(name)
    return found


def _dir_changed_since(top: Path, name: str, since: float, cache: dict[str, bool]) -> bool:
    """Was a missing file deleted by this command?  Its nearest surviving directory changed since it started."""
    parent = os.path.dirname(name)
    while True:
        if parent in cache:
            return cache[parent]
        try:
            st = os.lstat(top / parent if parent else top)
        except (FileNotFoundError, NotADirectoryError):
            parent = os.path.dirname(parent)
            continue
        cache[parent] = stat.S_ISDIR(st.st_mode) and st.st_mtime >= since
        return cache[parent]


def _object_path(ctx: HookContext, oid: str) -> Path:
    objects = os.environ.get("GIT_OBJECT_DIRECTORY")
    if objects:
        return ctx.top / objects / oid[:2] / oid[2:]
    # A linked worktree's git dir names the shared one in "commondir".
    try:
        common = ctx.git_dir / (ctx.git_dir / "commondir").read_text(encoding="utf-8").strip()
    except OSError:
        common = ctx.git_dir
    return common / "objects" / oid[:2] / oid[2:]


def _written_since(ctx: HookContext, oid: str, since: float) -> bool:
    """Was object ``oid`` written (or freshened) since ``since``?  A packed object is old."""
    try:
        return os.stat(_object_path(ctx, oid)).st_mtime >= since - _START_SLACK
    except OSError:
        return False


def _work_tree_blob_id(path: Path, hash_name: str) -> str | None:
    """The id of the blob git would store for ``path`` unfiltered (a symlink: its target text).

    None for what is not a file or a symlink, or vanished.  Hashed here rather than
    by ``git hash-object``, which follows symlinks and reads names line by line.
    """
    try:
        if os.path.islink(path):
            data = os.fsencode(os.readlink(path))
            return hashlib.new(hash_name, b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise OperationFailed(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        digest = hashlib.new(hash_name, b"blob %d\0" % st.st_size, usedforsecurity=False)
        while chunk := os.read(fd, 1 << 20):
            digest.update(chunk)
    except OSError as exc:
        raise OperationFailed(f"cannot read {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    return digest.hexdigest()


def _known_objects(ctx: HookContext, oids: Iterable[str]) -> set[str]:
    listing = os.fsdecode(ctx.git.run("cat-file", "--batch-check", input="".join(f"{o}\n" for o in oids).encode()))
    return {line.split()[0] for line in listing.splitlines() if line and not line.endswith(" missing")}


def _in_object_store(ctx: HookContext, names: Sequence[str], hash_name: str = "sha1") -> set[str]:
    """Those of ``names`` that are missing, or whose content is a blob git already has."""
    present = [n for n in names if os.path.lexists(ctx.top / n)]
    found = {n for n in names if n not in present}
    if not present:
        return found
    oids = {n: oid for n in present if (oid := _work_tree_blob_id(ctx.top / n, hash_name)) is not None}
    known = _known_objects(ctx, oids.values())
    found.update(n for n, oid in oids.items() if oid in known)
    # Clean filters (eol conversion, LFS, ident) make a file's bytes differ from the blob git
    # wrote it from; git hashes the rest through them.  --stdin-paths reads one name a line
    # (stripping a CR, unquoting a leading '"'), so names it would misread stay out.
    rest = [
        n
        for n in oids
        if n not in found
        and not os.path.islink(ctx.top / n)
        and not any(c in n for c in "\n\r")
        and not n.startswith('"')
    ]
    if rest:
        data = b"".join(os.fsencode(n) + b"\n" for n in rest)
        filtered = os.fsdecode(ctx.git.run("hash-object", "--stdin-paths", input=data)).split()
        known = _known_objects(ctx, filtered)
        found.update(n for n, oid in zip(rest, filtered, strict=True) if oid in known)
    return found


def _created_now(ctx: HookContext, old: str, new: str) -> bool:
    """Did this git command make ``new`` as new work on top of ``old``?

    commit, merge, cherry-pick and revert make a child of ``old``; ``commit
    --amend`` a sibling.  The object must also have been written since the
    command started: a reset to an existing child (which may discard
    uncommitted work) is no new work.
    """
    out = ctx.git.run("rev-list", "--parents", "--no-walk", new, old, check=False).decode("ascii", "replace")
    parents = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    new_parents, old_parents = parents.get(new, []), parents.get(old, [])
    related = old in new_parents or (bool(new_parents) and new_parents[:1] == old_parents[:1])
    return related and _written_since(ctx, new, ctx.started)


def _pre_command_sources(ctx: HookContext, names: Sequence[str], old: str) -> dict[str, Source | None]:
    """What each path held before the command, as far as guardian and git know.

    guardian's latest snapshot taken before the command started is the best
    witness: it has uncommitted work.  It loses to the version committed in
    ``old`` (HEAD before the command) when it is stale, i.e. when the watcher was
    not running and the file was committed since: the snapshot's content is an
    older committed version of the file, or the last commit touching it is
    strictly newer (whole seconds).  A path guardian saw deleted, or whose latest
    snapshotted version is not valid, has no source: the hook does not
    resurrect a deletion or write back a broken file.  A path guardian never
    captured falls back to ``old``.
    """
    project = ctx.project()
    in_old = ctx.git.tree_entries(old, names)
    sha1_repo = len(old) == 40
    found: dict[str, Source | None] = {}
    with project.reader() as (_repo, catalog):
        for name in names:
            path = ctx.path_of(name)
            versions = [v for v in catalog.versions_of(path) if v.ts < ctx.started]
            git_source = None
            if name in in_old:
                mode, oid = in_old[name]
                sha1 = oid if sha1_repo else _blob_sha1(ctx.git.blob(oid))
                git_source = Source("git", oid, sha1, mode, commit=old)
            if not versions:
                found[name] = git_source
                continue
            last = versions[-1]
            if last.change == "delete" or last.blob is None or last.mode is None or last.verdict != "valid":
                # Content ``old`` committed is no broken transient state, whatever the validators say.
                committed = git_source is not None and last.change != "delete" and git_source.sha1 == last.blob
                found[name] = git_source if committed else None
                continue
            snap = Source("snapshot", last.blob, last.blob, last.mode, snapshot=last.snapshot)
            found[name] = snap
            if (
                git_source is not None
                and git_source.sha1 != snap.sha1
                and _snapshot_is_stale(ctx, old, name, snap, last.ts)
            ):
                found[name] = git_source
    return found


def _snapshot_is_stale(ctx: HookContext, head: str, name: str, snap: Source, taken: float) -> bool:
    """Is a snapshotted version older than what ``head`` has committed for the file?"""
    # --literal-pathspecs: a file named "*.py" is that file, not a glob.
    raw = os.fsdecode(
        ctx.git.run("--literal-pathspecs", "log", "--raw", "--no-abbrev", "--format=%x01%ct", head, "--", name)
    )
    newest_commit: int | None = None
    committed_blobs: set[str] = set()
    for line in raw.splitlines():
        if line.startswith("\x01"):
            if newest_commit is None:
                newest_commit = int(line[1:])
        elif line.startswith(":"):
            committed_blobs.add(line.split()[3])
    if snap.sha1 in committed_blobs:
        return True  # the snapshot holds a version that was committed before the one in head
    return newest_commit is not None and newest_commit > int(taken)


def _stash_keeps(ctx: HookContext, losses: Sequence[Loss]) -> set[str]:
    """Paths whose pre-command content the newest stash entry holds.

    ``git stash`` saves the work tree, then runs ``git reset --hard`` in a child
    process: when that entry was written by the git command that ran this one,
    it holds exactly what the reset replaced.  Otherwise an entry keeps a path
    only when it has the very content guardian would have put back.
    """
    stash = ctx.git.rev("refs/stash")
    if stash is None or not losses:
        return set()
    outer = ctx.outer
    if outer is not None and outer.started is not None and _written_since(ctx, stash, outer.started):
        return {loss.git_path for loss in losses}
    entries = ctx.git.tree_entries(stash, [loss.git_path for loss in losses])
    kept = set()
    for loss in losses:
        entry = entries.get(loss.git_path)
        # A sha1 repository names blobs as the store does; otherwise only a git source compares.
        if entry is not None and entry[1] in (loss.source.sha1, loss.source.oid if loss.source.where == "git" else ""):
            kept.add(loss.git_path)
    return kept


def _find_losses(
    ctx: HookContext, old: str, new: str, *, committed_is_safe: bool
) -> tuple[list[Loss], list[str], list[str]]:
    """(protected content this command replaced, protected paths it changed harmlessly, paths a stash keeps).

    With ``committed_is_safe`` (a branch switch: the branch left behind still
    holds its commits), only content that was not committed in ``old`` counts.
    """
    moved = old != new
    diff = set(ctx.git.names("diff", "--name-only", "-z", "--no-renames", old, new)) if moved else set()
    # Deleted files are in neither the index nor the work tree: look for them in the trees.
    extra = diff if moved else set(ctx.git.names("ls-tree", "-r", "-z", "--name-only", "--full-tree", old))
    rewritten = _rewritten(ctx, extra)
    _trace(f"{old[:12]} -> {new[:12]}: started {ctx.started:.3f}, rewritten {rewritten}")
    if not rewritten:
        return [], [], []
    engine = ctx.engine()
    protected = [n for n in rewritten if engine.is_protected(ctx.path_of(n))]
    if not protected:
        return [], [], []
    # A file someone edited just before git started has a fresh ctime too; what git writes, it has.
    in_store = _in_object_store(ctx, protected, "sha1" if len(old) == 40 else "sha256")
    protected = [n for n in protected if n in in_store]
    # Moving forward brings newer history; only what it overwrote besides is a loss.
    forward = moved and ctx.git.ok("merge-base", "--is-ancestor", old, new)
    suspects = [n for n in protected if not (forward and n in diff)]
    harmless = [ctx.path_of(n) for n in protected if n not in suspects]
    if not suspects:
        return [], harmless, []
    sources = _pre_command_sources(ctx, suspects, old)
    _trace(f"suspects {suspects}, sources {sources}")
    committed = ctx.git.tree_entries(old, suspects) if committed_is_safe else {}
    losses: list[Loss] = []
    for name in suspects:
        source = sources.get(name)
        content = _current_content(ctx.top / name)
        if (
            source is None
            or (content is not None and _blob_sha1(content) == source.sha1)
            or (name in committed and (source.where == "git" or committed[name][1] == source.sha1))
        ):
            harmless.append(ctx.path_of(name))
            continue
        losses.append(Loss(ctx.path_of(name), name, content is not None, source))
    kept = _stash_keeps(ctx, losses)
    return [loss for loss in losses if loss.git_path not in kept], harmless, sorted(ctx.path_of(n) for n in kept)


def _put_back(ctx: HookContext, losses: Sequence[Loss], head: str) -> tuple[str | None, str | None]:
    """Write each loss's source back (after a pre-restore snapshot); the index then matches ``head`` for them.

    Returns (pre-restore snapshot, post-restore snapshot).
    """
    from guardian.ops.session import write_session
    from guardian.paths import check_relative
    from guardian.util.fs import write_user_file, write_user_symlink

    project = ctx.project()
    paths = [loss.path for loss in losses]
    with write_session(project, "hook") as session:
        repo, capture = session.repo, session.capture
        command = ctx.process.text
        # What git wrote is kept too, so `guardian restore --at PRE PATH` can bring it back.
        pre = capture.run(paths, "pre-restore", command=command).snapshot or repo.head()
        for loss in losses:
            src = loss.source
            data = repo.read_blob(src.oid) if src.where == "snapshot" else ctx.git.blob(src.oid)
            check_relative(loss.path)
            if src.mode == _MODE_LINK:
                write_user_symlink(project.root, loss.path, data)
            else:
                write_user_file(project.root, loss.path, data, executable=src.mode == _MODE_EXEC)
        sources = ",".join(sorted({loss.source.describe() for loss in losses}))
        post = capture.run(paths, "hook", source=sources, command=command).snapshot
    _index_to(ctx, [loss.git_path for loss in losses], head)
    return pre, post


def _capture(ctx: HookContext, paths: Sequence[str]) -> str | None:
    """Snapshot ``paths`` as git left them (trigger "hook"); the new snapshot id, if anything changed."""
    from guardian.ops.snapshot import take_snapshot

    return take_snapshot(ctx.project(), list(paths), "hook", command=ctx.process.text).snapshot


def _index_to(ctx: HookContext, names: Sequence[str], head: str) -> None:
    """Make the index entries of ``names`` those of ``head``, so nothing about them is left staged.

    Without this, an aborted ``reset --hard`` would leave the rewound version of a
    protected file staged, and the next ``git commit`` would record the rewind.
    """
    entries = ctx.git.tree_entries(head, names)
    zero = "0" * len(head)
    lines = []
    for name in names:
        entry = entries.get(name)
        if entry is None:
            lines.append(f"0 {zero}\t{name}")
        else:
            lines.append(f"{entry[0]:o} {entry[1]}\t{name}")
    ctx.git.run("update-index", "-z", "--index-info", input=b"".join(os.fsencode(line) + b"\0" for line in lines))


def _undo_rewind(
    ctx: HookContext, old: str, new: str, *, head: str, aborting: bool, committed_is_safe: bool = False
) -> int:
    """The shared core of reference-transaction (HEAD moves) and post-checkout.

    ``head`` is the commit HEAD points at once the hook is done: ``old`` when the
    ref update is aborted, ``new`` after a checkout that already moved HEAD.
    """
    losses, harmless, stashed = _find_losses(ctx, old, new, committed_is_safe=committed_is_safe)
    facts: dict[str, Any] = {"old": old, "new": new}
    if stashed:
        facts["kept_in_stash"] = stashed
    if not losses:
        if harmless or stashed:
            # guardian's record follows the accepted state, so a later hook does not "undo" back past it.
            note = "protected paths changed; nothing guardian holds was lost"
            ctx.record("hook", harmless + stashed, {**facts, "note": note}, _capture(ctx, harmless + stashed))
        return EXIT_OK
    decision = _judge(ctx, [(loss.path, "modify" if loss.present else "delete") for loss in losses])
    facts["decision"] = _decision_record(decision)
    paths = [loss.path for loss in losses]
    if _allowed_outright(decision):
        note = "the policy allows rolling these back"
        ctx.record("hook", paths, {**facts, "note": note}, _capture(ctx, paths))
        return EXIT_OK
    if _forced_through(decision):
        ctx.record("force", paths, {**facts, "force": True}, _capture(ctx, paths))
        _say(f"guardian: GUARDIAN_FORCE=1: letting {ctx.user_command_text()} roll back: {', '.join(paths)}")
        return EXIT_OK
    refused = {p.path for p in decision.paths if p.outcome != "allow"}
    back = [loss for loss in losses if loss.path in refused]
    pre, post = _put_back(ctx, back, head)
    facts["restored"] = {loss.path: loss.source.describe() for loss in back}
    facts["pre_snapshot"] = pre
    ctx.record("block", paths, facts, post)
    _say(_rewind_message(ctx, back, decision, head, pre, aborting))
    return EXIT_REFUSE


def _rewind_message(
    ctx: HookContext, back: Sequence[Loss], decision: Decision, head: str, pre: str | None, aborting: bool
) -> str:
    lines = [f"guardian: refused: `{ctx.user_command_text()}` rolled back protected paths; guardian put them back:"]
    verdicts = {p.path: p for p in decision.paths}
    for loss in back:
        what = "modified" if loss.present else "deleted "
        lines.append(f"  {loss.path}  {what} -> restored from {loss.source.describe()}  ({_why(verdicts[loss.path])})")
    if aborting:
        lines.append(
            f"The ref update is aborted: HEAD stays at {_short(head)}. Protected paths: their content from before "
            "the command, nothing staged."
        )
        lines.append(
            "Other files: as git left them; `git status` shows the command's effect on them as staged changes "
            "(undo: git reset --hard HEAD)."
        )
    else:
        lines.append(
            f"HEAD is at {_short(head)}. Protected paths: their content from before the command (modified in "
            "`git status`). Other files: as git left them. The command fails."
        )
    if pre:
        lines.append(f"What git wrote is in guardian snapshot {_short(pre)}: guardian restore --at {_short(pre)} PATH")
    lines.append(_how_to_force(ctx, decision))
    return "\n".join(lines)


# --------------------------------------------------------------------------- reference-transaction


def reference_transaction(ctx: HookContext) -> int:
    """At ``prepared``: undo a HEAD rewind of protected files, refuse to drop protected stash or branch content."""
    if not ctx.args or ctx.args[0] != "prepared":
        return EXIT_OK
    updates = parse_updates(ctx.stdin)
    if not updates or ctx.rebase_in_progress():
        return EXIT_OK  # a rebase was judged by pre-rebase; post-rewrite snapshots its result
    branch = ctx.current_branch()
    head = [u for u in updates if u.ref == "HEAD" or (branch is not None and u.ref == branch)]
    stash = [u for u in updates if u.ref == "refs/stash"]
    others = [u for u in updates if u.ref.startswith("refs/heads/") and u.ref != branch]
    code = EXIT_OK
    if head:
        code = max(code, _head_move(ctx, head))
    if code == EXIT_OK and stash:
        code = max(code, _stash_update(ctx, stash[0]))
    if code == EXIT_OK and others:
        code = max(code, _branch_updates(ctx, others, updates))
    return code


def _head_move(ctx: HookContext, updates: Sequence[RefUpdate]) -> int:
    old = next((u.old for u in updates if not _is_zero(u.old)), None) or ctx.git.rev("HEAD")
    new = updates[0].new
    if old is None or _is_zero(new):
        return EXIT_OK
    if old != new and _created_now(ctx, old, new):
        _trace(f"HEAD {old[:12]} -> {new[:12]}: this command wrote the commit (commit, merge, cherry-pick)")
        return EXIT_OK
    return _undo_rewind(ctx, old, new, head=old, aborting=True)


def _stash_update(ctx: HookContext, update: RefUpdate) -> int:
    """Deleting refs/stash (drop of the last entry, pop, clear) discards every entry in its reflog."""
    if not _is_zero(update.new):
        return EXIT_OK  # a push: the older entries stay in the reflog
    entries = [
        os.fsdecode(e) for e in ctx.git.run("log", "-g", "--format=%H", "refs/stash", check=False).split() if e
    ] or [ctx.git.rev("refs/stash") or ""]
    engine = ctx.engine()
    lost: dict[str, str] = {}  # path -> the stash entry holding it
    for index, entry in enumerate(e for e in entries if e):
        for name, oid in _stash_content(ctx.git, entry).items():
            path = ctx.path_of(name)
            if path in lost or not engine.is_protected(path):
                continue
            content = _current_content(ctx.top / name)
            if content is not None and _blob_sha1(content) == oid:
                continue  # applied (git stash pop): the work tree has it
            lost[path] = f"stash@{{{index}}}"
    if not lost:
        return EXIT_OK
    code = _refuse_discard(
        ctx,
        lost,
        what="the stash",
        keep="git stash apply, or git stash branch NAME",
        facts={"stash_entries": entries},
    )
    if code == EXIT_REFUSE:
        _restore_stash_reflog(ctx, entries[0])
    return code


def _restore_stash_reflog(ctx: HookContext, entry: str) -> None:
    """Put back the reflog line ``git stash drop`` removed before asking to delete refs/stash.

    Dropping the last entry first empties the stash reflog, then deletes the
    ref.  Refusing the deletion keeps the ref, and so the entry, but ``git stash
    list`` reads the reflog: without its line the entry would look gone.
    """
    log = ctx.top / ctx.git.text("rev-parse", "--git-path", "logs/refs/stash")
    try:
        if log.stat().st_size > 0:
            return  # git stash clear: the reflog is intact
    except FileNotFoundError:
        pass
    # A stash commit's committer and subject are what `git stash` wrote to the reflog.
    who = ctx.git.text("show", "-s", "--date=raw", "--format=%cn <%ce> %cd%x09%s", entry)
    zero = "0" * len(entry)
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(f"{zero} {entry} {who}\n")


def _stash_content(git: Git, entry: str) -> dict[str, str]:
    """path -> blob of what a stash entry changed: its work-tree, index and untracked parts."""
    content: dict[str, str] = {}
    parents = os.fsdecode(git.run("rev-list", "--parents", "-n", "1", entry)).split()[1:]
    if not parents:
        return content
    base = parents[0]
    parts = [(base, entry)] + [(base, p) for p in parents[1:2]]
    for since, part in parts:
        names = git.names("diff", "--name-only", "-z", "--no-renames", "--diff-filter=d", since, part)
        for name, (_mode, oid) in git.tree_entries(part, names).items():
            content.setdefault(name, oid)
    if len(parents) > 2:  # stash -u: the untracked files, in a root commit of their own
        untracked = git.names("ls-tree", "-r", "-z", "--name-only", parents[2])
        for name, (_mode, oid) in git.tree_entries(parents[2], untracked).items():
            content.setdefault(name, oid)
    return content


def _branch_updates(ctx: HookContext, branches: Sequence[RefUpdate], updates: Sequence[RefUpdate]) -> int:
    """``branch -D`` / ``branch -f`` of a branch that is not checked out: refuse to strand protected commits."""
    changing = [u.ref for u in updates]
    survivors = [u.new for u in updates if not _is_zero(u.new)]
    lost: dict[str, str] = {}
    for update in branches:
        old = update.old if not _is_zero(update.old) else ctx.git.rev(update.ref)
        if old is None or old == update.new:
            continue  # a new branch, or no move
        names = _names_in_commits(ctx.git, old, survivors, all_refs_but=changing)
        for name in sorted(names):
            path = ctx.path_of(name)
            if ctx.engine().is_protected(path):
                lost.setdefault(path, update.ref.removeprefix("refs/heads/"))
    if not lost:
        return EXIT_OK
    return _refuse_discard(
        ctx,
        lost,
        what="commits that no other branch or tag reaches",
        keep="merge the branch, or tag it (git tag keep/NAME BRANCH)",
        facts={"refs": changing},
    )


def _refuse_discard(ctx: HookContext, lost: dict[str, str], *, what: str, keep: str, facts: dict[str, Any]) -> int:
    """Shared by the stash and branch checks: protected content would be left in no ref at all."""
    decision = _judge(ctx, [(path, "modify") for path in sorted(lost)])
    paths = sorted(lost)
    facts = {**facts, "held_by": lost, "decision": _decision_record(decision)}
    if _allowed_outright(decision):
        ctx.record("hook", paths, {**facts, "note": "the policy allows discarding these"})
        return EXIT_OK
    if _forced_through(decision):
        ctx.record("force", paths, {**facts, "force": True})
        command = ctx.user_command_text()
        _say(f"guardian: GUARDIAN_FORCE=1: letting {command} discard protected content: {', '.join(paths)}")
        return EXIT_OK
    ctx.record("block", paths, facts)
    verdicts = {p.path: p for p in decision.paths}
    lines = [f"guardian: refused: `{ctx.user_command_text()}` would discard protected content held only in {what}:"]
    lines += [f"  {path}  in {lost[path]}  ({_why(verdicts[path])})" for path in paths]
    lines.append(f"Nothing has been changed. To keep it: {keep}.")
    lines.append(_how_to_force(ctx, decision))
    _say("\n".join(lines))
    return EXIT_REFUSE


# --------------------------------------------------------------------------- post-checkout


def post_checkout(ctx: HookContext) -> int:
    """After ``checkout -- PATH``, ``checkout .``, ``restore``, a branch switch or ``checkout -f``:
    put back protected files the command rolled back, and fail the command."""
    if len(ctx.args) < 3 or _is_zero(ctx.args[0]) or ctx.rebase_in_progress():
        return EXIT_OK  # a clone or a new worktree has nothing to lose; a rebase was judged by pre-rebase
    prev, new, flag = ctx.args[:3]
    if flag == "0":
        return _undo_rewind(ctx, prev, new, head=new, aborting=False)
    if prev != new and ctx.current_branch() is None:
        return EXIT_OK  # HEAD was detached through a reference transaction, which judged the move
    # A branch switch: what was committed stays on the branch left behind, and git refuses
    # to overwrite uncommitted changes unless forced (checkout -f), which is what is left to catch.
    return _undo_rewind(ctx, prev, new, head=new, aborting=False, committed_is_safe=True)


# --------------------------------------------------------------------------- post-merge, post-rewrite


def post_merge(ctx: HookContext) -> int:
    return _snapshot_and_check(ctx, {"squash": ctx.args[:1] == ["1"]})


def post_rewrite(ctx: HookContext) -> int:
    rewritten = [line.split()[:2] for line in os.fsdecode(ctx.stdin).splitlines() if line.strip()]
    return _snapshot_and_check(ctx, {"rewritten": len(rewritten)})


def _snapshot_and_check(ctx: HookContext, facts: dict[str, Any]) -> int:
    """A merge or a rewrite has happened: capture the result, then look for drift from the last valid state."""
    from guardian.ops.snapshot import take_snapshot

    project = ctx.project()
    result = take_snapshot(project, None, "hook", command=ctx.process.text, details={"hook": ctx.name})
    drift: list[dict[str, Any]] = []
    try:
        from guardian.gates.guardrail import run_guardrail
    except ImportError:
        run_guardrail = None  # type: ignore[assignment]
    if run_guardrail is not None:
        report = run_guardrail(project, None, repair=project.policy.guardrail.repair, trigger="hook")
        drift = [d.to_json() for d in report.drift]
        for d in report.drift:
            mark = " (protected)" if d.protected else ""
            fixed = " - repaired" if d.path in report.repaired else ""
            _say(f"guardian: after {ctx.name}: {d.path}{mark} is {d.problem}: {d.detail}{fixed}")
        if report.drift and not report.all_repaired:
            _say("guardian: run 'guardian check' for details and 'guardian check --repair' to restore")
    changed = [f.path for f in result.files]
    ctx.record("hook", changed, {**facts, "drift": drift[:100]}, result.snapshot)
    return EXIT_OK


__all__ = [
    "ENV_FORCE",
    "EXIT_REFUSE",
    "HOOK_NAMES",
    "SHIM_MARKER",
    "HookContext",
    "HooksStatus",
    "InstallReport",
    "UninstallReport",
    "hooks_dir",
    "install",
    "is_guardian_shim",
    "main",
    "render_shim",
    "run_hook",
    "shims_dir",
    "status",
    "uninstall",
]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m guardian.gates.githooks.hook HOOK ARGS...``: hook-impl without loading the click CLI.

    ``python -m guardian`` imports every command module (about 100 ms) before
    ``hook-impl`` runs; ``scripts/bench_hooks.py`` uses this entry point to show
    what a dispatcher that skips them would save.
    """
    from guardian.errors import EXIT_BUG, GuardianError

    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["hook-impl"]:
        args = args[1:]
    if not args:
        _say("usage: python -m guardian.gates.githooks.hook HOOK [ARGS...]")
        return 2
    try:
        stdin = sys.stdin.buffer.read() if args[0] in STDIN_HOOKS else b""
        return run_hook(args[0], args[1:], stdin, Path.cwd())
    except GuardianError as exc:
        _say(f"guardian: error: {exc}")
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - a hook must end in one clear line, never a traceback
        _say(f"guardian: internal error in the {args[0]} hook: {type(exc).__name__}: {exc}")
        return EXIT_BUG


if __name__ == "__main__":
    raise SystemExit(main())
