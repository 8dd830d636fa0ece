"""The user's own git repository, read after the fact: where it is, its reflog, its blobs.

The watcher's enforcement (``guardian.gates.enforce``), ``history`` and ``restore`` ask
the same questions about a change that git may have made: which commands moved HEAD
since a time, which blob a commit holds at a path, whether one commit is an ancestor
of another, whether a merge or rebase is under way, and whether git has ever stored
some content at all.  Answers are read from the files in the git directory where
that is cheap and exact (the HEAD reflog, the in-progress markers, loose objects and
pack indexes), and from one ``git`` call where it is not (``cat-file --batch-check``
for many ``REV:PATH`` lookups at once).  Nothing here writes to the user's repository,
and every git run goes through :func:`guardian.util.git.run_git` (no optional locks).
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from guardian.util.git import GitError, run_git

# How far back the HEAD reflog is read: its last 256 KB (~1,500 entries) is far more than
# any window between two captures of one path, and reading more would cost more than it helps.
_REFLOG_TAIL = 256 * 1024
_GIT_TIMEOUT = 10.0
_IDX_MAGIC = b"\xfftOc"
ZERO_OID = "0" * 40


@dataclass(frozen=True)
class ReflogEntry:
    """One line of a reflog: HEAD (or a ref) moved from ``old`` to ``new`` at ``time`` because of ``message``."""

    old: str
    new: str
    time: int
    message: str

    @property
    def action(self) -> str:
        """The command's part of the message: 'reset', 'checkout', 'rebase (finish)', 'pull --rebase (start)'."""
        return self.message.split(":", 1)[0].strip()

    @property
    def kind(self) -> str:
        """How the entry moved the work tree: 'reset', 'rebase', 'commit' (it did not), or 'move'."""
        action = self.action
        if action == "reset":
            return "reset"
        if "rebase" in action:
            return "rebase"
        if action.startswith("commit"):
            return "commit"  # a commit records the tree; it never writes the work tree
        return "move"


def parse_reflog_line(line: str) -> ReflogEntry | None:
    meta, _, message = line.partition("\t")
    parts = meta.split()
    # "<old> <new> <name...> <<email>> <epoch> <tz>": the name may hold spaces, the last two never do.
    if len(parts) < 4:
        return None
    try:
        when = int(parts[-2])
    except ValueError:
        return None
    return ReflogEntry(parts[0], parts[1], when, message.strip())


@dataclass(frozen=True)
class InProgress:
    """What git has under way in the work tree: the marker files each multi-step command leaves."""

    rebase: bool
    merge_heads: tuple[str, ...]  # MERGE_HEAD, CHERRY_PICK_HEAD, REVERT_HEAD: commits being applied


class UserRepo:
    """One work tree's git repository, located once; None from :meth:`locate` outside git."""

    def __init__(self, cwd: Path, top: Path, git_dir: Path, common_dir: Path) -> None:
        self.cwd = cwd  # the guarded root: every path below is relative to it (``REV:./PATH``)
        self.top = top
        self.git_dir = git_dir
        self.common_dir = common_dir
        self._packs: dict[str, tuple[int, list[mmap.mmap]]] = {}
        self._dirs: tuple[int | None, list[Path]] | None = None

    @classmethod
    def locate(cls, root: Path) -> UserRepo | None:
        """The repository whose work tree holds ``root``, or None (no git, or not inside one)."""
        if not _inside_git(root):
            return None
        try:
            result = run_git(
                ["rev-parse", "--show-toplevel", "--absolute-git-dir", "--git-common-dir"],
                cwd=root,
                timeout=_GIT_TIMEOUT,
                check=False,
            )
        except GitError:
            return None
        lines = os.fsdecode(result.stdout).splitlines()
        if not result.ok or len(lines) < 3:
            return None
        git_dir = Path(lines[1])
        common = Path(lines[2])
        if not common.is_absolute():
            common = (root / common).resolve()
        return cls(root, Path(lines[0]), git_dir, common)

    # ------------------------------------------------------------------ reflog and state

    def reflog(self, ref: str = "HEAD", since: float | None = None, until: float | None = None) -> list[ReflogEntry]:
        """The entries of ``ref``'s reflog in [since, until], oldest first (the file's tail only)."""
        base = self.git_dir if ref == "HEAD" else self.common_dir
        path = base / "logs" / ref
        try:
            with open(path, "rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                handle.seek(max(0, size - _REFLOG_TAIL))
                raw = handle.read()
        except OSError:
            return []
        if size > _REFLOG_TAIL:
            raw = raw.split(b"\n", 1)[-1]  # the first line is probably cut
        entries: list[ReflogEntry] = []
        for line in os.fsdecode(raw).splitlines():
            entry = parse_reflog_line(line)
            if entry is None:
                continue
            if since is not None and entry.time < int(since):
                continue
            if until is not None and entry.time > until:
                continue
            entries.append(entry)
        return entries

    def in_progress(self) -> InProgress:
        rebase = (self.git_dir / "rebase-merge").is_dir() or (self.git_dir / "rebase-apply").is_dir()
        heads: list[str] = []
        for name in ("MERGE_HEAD", "CHERRY_PICK_HEAD", "REVERT_HEAD"):
            try:
                first = (self.git_dir / name).read_text(encoding="ascii").split()
            except (OSError, UnicodeDecodeError):
                continue
            if first:
                heads.append(first[0])
        return InProgress(rebase, tuple(heads))

    def busy(self) -> str | None:
        """What git is doing in this work tree right now that an undo must not race, or None.

        git holding ``index.lock`` is writing the work tree or the index.  A git command that
        writes the work tree (reset, checkout, rebase, ...) still running here may be in its
        hooks, and a guardian git hook (``hook-impl``) deciding about the very change may put
        it back itself and refuse the command, which tells the person more than an undo does.
        A reader (``git log`` in a pager) is no reason to wait.
        """
        if (self.git_dir / "index.lock").exists():
            return "git is writing the index"
        return _git_at_work(self.top)

    # ------------------------------------------------------------------ objects

    def blobs(self, specs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str | None]:
        """(rev, root-relative path) -> the blob id there (None: no such file, or not a blob); one git call."""
        wanted = list(dict.fromkeys((rev, path) for rev, path in specs if rev and rev != ZERO_OID))
        found: dict[tuple[str, str], str | None] = {key: None for key in wanted}
        usable = [key for key in wanted if "\n" not in key[1]]
        if not usable:
            return found
        lines = "".join(f"{rev}:./{path}\n" for rev, path in usable).encode()
        try:
            result = run_git(
                ["cat-file", "--batch-check=%(objectname) %(objecttype)"],
                cwd=self.cwd,
                input=lines,
                timeout=_GIT_TIMEOUT,
                check=False,
                literal_pathspecs=False,
            )
        except GitError:
            return found
        answers = os.fsdecode(result.stdout).splitlines()
        for key, answer in zip(usable, answers, strict=False):
            parts = answer.split()
            if len(parts) == 2 and parts[1] == "blob":
                found[key] = parts[0]
        return found

    def is_ancestor(self, older: str, newer: str) -> bool:
        """Whether ``older`` is ``newer`` or one of its ancestors (a move to it rewinds)."""
        if older == newer:
            return True
        try:
            args = ["merge-base", "--is-ancestor", older, newer]
            result = run_git(args, cwd=self.cwd, timeout=_GIT_TIMEOUT, check=False)
        except GitError:
            return False
        return result.returncode == 0

    def has_object(self, oid: str) -> bool:
        """Whether git stores object ``oid`` (loose or packed); read from the object files, no git call."""
        if len(oid) != 40:
            return False
        raw = bytes.fromhex(oid)
        loose = f"{oid[:2]}/{oid[2:]}"
        for objects in self._object_dirs():
            if os.path.exists(f"{objects}/{loose}"):
                return True
            if self._in_packs(objects / "pack", raw):
                return True
        return False

    def _object_dirs(self) -> list[Path]:
        """The object directory and its alternates (read again when the alternates file changes)."""
        objects = self.common_dir / "objects"
        alternates_file = objects / "info" / "alternates"
        try:
            stamp: int | None = alternates_file.stat().st_mtime_ns
        except OSError:
            stamp = None
        if self._dirs is not None and self._dirs[0] == stamp:
            return self._dirs[1]
        dirs = [objects]
        try:
            alternates = alternates_file.read_text(encoding="utf-8").splitlines() if stamp is not None else []
        except (OSError, UnicodeDecodeError):
            alternates = []
        for line in alternates:
            line = line.strip()
            if line and not line.startswith("#"):
                alt = Path(line)
                dirs.append(alt if alt.is_absolute() else (objects / alt).resolve())
        self._dirs = (stamp, dirs)
        return dirs

    def _in_packs(self, pack_dir: Path, raw: bytes) -> bool:
        return any(_idx_contains(index, raw) for index in self._pack_indexes(pack_dir))

    def _pack_indexes(self, pack_dir: Path) -> list[mmap.mmap]:
        """The version-2 indexes of a pack directory, mapped once; a new pack changes the directory's mtime."""
        try:
            stamp = pack_dir.stat().st_mtime_ns
        except OSError:
            return []
        cached = self._packs.get(str(pack_dir))
        if cached is not None and cached[0] == stamp:
            return cached[1]
        indexes: list[mmap.mmap] = []
        try:
            names = sorted(e.name for e in os.scandir(pack_dir) if e.name.endswith(".idx"))
        except OSError:
            names = []
        for name in names:
            try:
                with open(pack_dir / name, "rb") as handle:
                    index = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError):
                continue
            if index[:8] == _IDX_MAGIC + b"\0\0\0\2":  # version 1 (git before 1.5.2) is not read
                indexes.append(index)
        self._packs[str(pack_dir)] = (stamp, indexes)
        return indexes

    # ------------------------------------------------------------------ the history of one path

    def path_history(self, path: str) -> list[PathCommit]:
        """Every commit (all refs and reflogs) that changed ``path``, parents first, with its blobs.

        Best effort: a failing or slow git gives no history.
        """
        args = [
            "log",
            "--all",
            "--reflog",
            "--topo-order",
            "--reverse",
            "--format=%x01%H %ct",
            "--raw",
            "--no-abbrev",
            "--no-renames",
            "--",
            path,
        ]
        try:
            result = run_git(args, cwd=self.cwd, timeout=_GIT_TIMEOUT, check=False)
        except GitError:
            return []
        if not result.ok:
            return []
        commits: list[PathCommit] = []
        for line in os.fsdecode(result.stdout).splitlines():
            if line.startswith("\x01"):
                sha, _, when = line[1:].partition(" ")
                commits.append(PathCommit(sha, int(when or 0), None, None))
                continue
            if not line.startswith(":") or not commits:
                continue
            meta = line.split("\t", 1)[0].split()
            if len(meta) >= 5:
                last = commits[-1]
                commits[-1] = PathCommit(last.commit, last.time, _oid(meta[2]), _oid(meta[3]))
        return [c for c in commits if c.old_blob or c.new_blob]


@dataclass(frozen=True)
class PathCommit:
    commit: str
    time: int
    old_blob: str | None  # the path's blob in the first parent (None: not there)
    new_blob: str | None  # its blob in this commit (None: deleted here)


def _oid(text: str) -> str | None:
    return None if not text.strip("0") or len(text) != 40 else text


def _idx_contains(index: mmap.mmap, raw: bytes) -> bool:
    """Binary search of a version-2 pack index's sorted object names (20 bytes each, after the fan-out)."""
    first = raw[0]
    fan = 8
    low = 0 if first == 0 else int.from_bytes(index[fan + (first - 1) * 4 : fan + first * 4], "big")
    high = int.from_bytes(index[fan + first * 4 : fan + first * 4 + 4], "big")
    names = fan + 256 * 4
    while low < high:
        middle = (low + high) // 2
        at = names + middle * 20
        name = bytes(index[at : at + 20])
        if name == raw:
            return True
        if name < raw:
            low = middle + 1
        else:
            high = middle
    return False


# git commands that write the work tree: while one runs (its hooks included), an undo waits.
_WRITERS = frozenset(
    {
        "am",
        "apply",
        "checkout",
        "checkout-index",
        "cherry-pick",
        "merge",
        "pull",
        "read-tree",
        "rebase",
        "reset",
        "restore",
        "revert",
        "stash",
        "switch",
    }
)


def _git_at_work(top: Path) -> str | None:
    """A git command writing ``top``'s work tree, or a guardian hook deciding there (Linux /proc; else None)."""
    try:
        pids = [name for name in os.listdir("/proc") if name.isdigit() and int(name) != os.getpid()]
    except OSError:
        return None
    where = str(top)
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                argv = [os.fsdecode(a) for a in handle.read().split(b"\0") if a]
            if not argv:
                continue
            what = _writer(argv)
            if what is None:
                continue
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if cwd == where or cwd.startswith(where + "/"):
            return f"{what} is running"
    return None


def _writer(argv: list[str]) -> str | None:
    """'git reset' for a git command that writes the work tree, 'a guardian git hook' for hook-impl, else None."""
    if "hook-impl" in argv:
        return "a guardian git hook"
    if os.path.basename(argv[0]) != "git":
        return None
    words = iter(argv[1:])
    for word in words:
        if word in ("-C", "-c", "--git-dir", "--work-tree", "--namespace"):
            next(words, None)
            continue
        if word.startswith("-"):
            continue
        return f"git {word}" if word in _WRITERS else None
    return None


def _inside_git(root: Path) -> bool:
    """A quick look for a ``.git`` above root, so a directory outside git never starts a git process."""
    for directory in (root, *root.parents):
        if (directory / ".git").exists():
            return True
    return bool(os.environ.get("GIT_DIR"))
