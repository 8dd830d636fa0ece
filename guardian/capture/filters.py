"""What is captured: include/exclude rules as one callable, gitignore-style.

Order of precedence, strongest first:
1. ``.git`` directories and guardian's own temp files are never captured.  A ``.git``
   *file* in a subdirectory is, when it is a worktree pointer (one ``gitdir:`` line, see
   guardian.util.gitfile): without it a restored worktree commits to the main repository.
2. ``guardian.yaml`` is always captured (it is protected by default).
3. Secret files are captured only when an include pattern names them explicitly.
4. The built-in excludes: other tools' stores, caches, SQLite side files, editor swap files.
5. ``watch.exclude`` patterns and the project's ``.gitignore`` files, except over protected paths.
6. ``watch.include`` patterns (empty means everything), which protected files need not match.

Protected paths are always watched.  An exclude or ignore rule that hides a protected
file, a protected directory, or a directory on the way to a place a protect rule names
by its path ("g/" on the way to "g/followup/state/") is overridden there, so a full scan
descends into an ignored directory only where protected files can be.  The rule still
holds for a directory it hides *inside* a protected one (node_modules/ under a protected
frontend/), and for an ignored directory whose files only a name pattern such as "*.db"
protects: no scan looks inside every ignored directory.  ``hidden_protected_notes``
words what was overridden, for ``init`` and ``status``.

Patterns are matched by :mod:`guardian.util.globs`, in time linear in the path: a
``.gitignore`` in the tree is someone else's input, and one backtracking pattern in it
must not stall every capture.  For the same reason a line there that cannot be read
is skipped, as git skips it, instead of failing the snapshot.
"""

from __future__ import annotations

import functools
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from guardian.config import Policy, ProtectRule, WatchSettings
from guardian.paths import POLICY_FILENAME, is_git_pointer_path
from guardian.policy import PolicyEngine
from guardian.util.fs import TEMP_PREFIX, lstat_at, read_state
from guardian.util.gitfile import MAX_POINTER_SIZE, POINTER_NAME, parse_pointer
from guardian.util.globs import GlobSpec

DEFAULT_EXCLUDES: tuple[str, ...] = (
    ".git/",
    ".hg/",
    ".svn/",
    ".venv/",
    "venv/",
    ".virtualenvs/",
    ".tox/",
    ".nox/",
    "node_modules/",
    "__pycache__/",
    "*.py[cod]",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    "build/",
    "dist/",
    "*.egg-info/",
    ".eggs/",
    # SQLite side files: the database itself is captured through the backup API,
    # which already folds committed WAL content in.
    "*-wal",
    "*-shm",
    "*-journal",
    # Editor swap and backup files change on every keystroke and are never wanted back.
    "*.swp",
    "*.swx",
    "*~",
    ".DS_Store",
)

SECRET_PATTERNS: tuple[str, ...] = (
    ".env",
    ".env.*",
    "*.pem",
    "*.key",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    ".netrc",
    ".pgpass",
    ".pypirc",
    ".npmrc",
    ".git-credentials",
    "*.kdbx",
    "credentials.json",
    "**/.aws/credentials",
    "**/.docker/config.json",
    "**/.kube/config",
    "*.tfstate",
    "*.tfstate.backup",
    ".envrc",
    "*.env",
    ".htpasswd",
    "secrets.y*ml",
)

# The largest file the secret scanner reads (guardian.capture.secrets): larger text is generated
# or data (minified bundles, dumps), and scanning it would cost more than it finds.  Kept here,
# not in the scanner, so a capture that only queues its versions (secret_record) reads it
# without loading the scanner module.
SCAN_MAX_BYTES = 1 << 20

_CATCH_ALL = {"*", "**", "**/*", "/", "/**", "./", "*/", "**/"}


@functools.lru_cache(maxsize=32)
def _spec(lines: tuple[str, ...]) -> GlobSpec:
    """The lines compiled, once per process: every filter shares the built-in excludes and secret names.

    A GlobSpec is never changed once made (it only compiles its regexes on first use), so one
    object can serve every filter with the same lines; with no ``watch.exclude`` the built-in
    excludes and the excludes are the very same spec.
    """
    return GlobSpec.from_lines(lines)


def secret_names() -> GlobSpec:
    """The secret file names, lowercased: match a lowercased path against them (any case is the same secret)."""
    return _spec(tuple(p.lower() for p in SECRET_PATTERNS))


def _inside_git_dir(rel: str) -> bool:
    lowered = rel.lower()
    return lowered.startswith(".git/") or "/.git/" in lowered


class PathFilter:
    """Callable ``(rel_path, is_dir) -> bool``: should this path be captured (or descended into)?

    ``protect``: the policy's protect rules (``Policy.protect_rules``); the paths they cover
    are watched whatever ``watch.exclude`` and ``.gitignore`` say (see the module doc).
    """

    def __init__(self, root: Path, watch: WatchSettings, protect: Sequence[ProtectRule] = ()) -> None:
        self.root = root
        self.watch = watch
        self._builtin = _spec(DEFAULT_EXCLUDES)
        self._exclude = _spec((*DEFAULT_EXCLUDES, *watch.exclude))
        self._include = _spec(tuple(watch.include)) if watch.include else None
        # Matched lowercased: ".ENV" or "Credentials.json" is the same secret on a case-insensitive disk.
        self._secrets = secret_names()
        # Secrets need an include that names them, not a catch-all like "**".
        explicit = tuple(p for p in watch.include if p.strip() not in _CATCH_ALL)
        self._explicit_include = _spec(explicit) if explicit else None
        self._gitignores: dict[str, GlobSpec | None] = {}
        self._gitignore_files: dict[str, list[str]] = {}  # which files each directory's rules came from
        self._protect = PolicyEngine(protect) if protect else None
        self._kept_dirs: dict[str, bool] = {}  # hidden directories, and whether protection keeps them

    def invalidate_gitignore(self, rel_dir: str) -> None:
        """Forget a cached .gitignore (the watcher calls this when one changes)."""
        self._gitignores.pop(rel_dir, None)
        self._kept_dirs.clear()

    def _gitignore_for(self, rel_dir: str) -> GlobSpec | None:
        if rel_dir in self._gitignores:
            return self._gitignores[rel_dir]
        spec: GlobSpec | None = None
        lines: list[str] = []
        read: list[str] = []
        candidates = [os.path.join(rel_dir, ".gitignore")]
        if rel_dir == "":
            candidates.append(".git/info/exclude")
        for candidate in candidates:
            try:
                with open(self.root / candidate, encoding="utf-8", errors="replace") as handle:
                    found = handle.read().splitlines()
            except OSError:
                continue
            lines.extend(found)
            if any(line.strip() and not line.startswith("#") for line in found):
                read.append(candidate)  # named in notes; git's stock info/exclude holds only comments
        if lines:
            spec = GlobSpec.from_lines(lines, skip_invalid=True)
        self._gitignores[rel_dir] = spec
        self._gitignore_files[rel_dir] = read
        return spec

    def _gitignored_by(self, rel: str, is_dir: bool) -> str | None:
        """The directory whose ignore rules hide rel ("" for the root), or None when none does."""
        parts = rel.split("/")
        # Check each ancestor's .gitignore against the path relative to that ancestor.
        for depth in range(len(parts)):
            base = "/".join(parts[:depth])
            spec = self._gitignore_for(base)
            if spec is None:
                continue
            sub = "/".join(parts[depth:]) + ("/" if is_dir else "")
            verdict = spec.check(sub)
            if verdict is not None:
                return base if verdict else None
        return None

    def _gitignored(self, rel: str, is_dir: bool) -> bool:
        return self._gitignored_by(rel, is_dir) is not None

    def _hidden(self, rel: str, is_dir: bool) -> bool:
        """Whether watch.exclude, the built-in excludes or a .gitignore leave rel out."""
        return self._exclude.match(rel + "/" if is_dir else rel) or (
            self.watch.gitignore and self._gitignored(rel, is_dir)
        )

    def is_secret(self, rel: str) -> bool:
        return self._secrets.match(rel.lower())

    def __call__(self, rel: str, is_dir: bool = False) -> bool:
        if not rel or rel == ".":
            return True
        leaf = rel.rsplit("/", 1)[-1]
        if leaf.startswith(TEMP_PREFIX) or _inside_git_dir(rel):
            return False
        if leaf.lower() == POINTER_NAME and (is_dir or not self._pointer_file(rel)):
            return False
        if rel == POLICY_FILENAME:
            return True
        probe = rel + "/" if is_dir else rel
        if not is_dir and self.is_secret(rel):
            return self._explicit_include is not None and self._explicit_include.match(rel)
        if self._hidden(rel, is_dir):
            return not self._builtin.match(probe) and self._kept_by_protection(rel, is_dir)
        if self._include is not None and not is_dir:
            return self._include.match(rel) or self._protected(rel)
        return True

    def _pointer_file(self, rel: str) -> bool:
        """Whether rel is a subdirectory's ``.git`` pointer file (or a gone one: its deletion is news)."""
        if not is_git_pointer_path(rel):
            return False
        state = read_state(self.root, rel, max_size=MAX_POINTER_SIZE)
        if state.kind == "missing":
            return True
        return state.kind == "file" and parse_pointer(state.data) is not None

    def _protected(self, rel: str) -> bool:
        return self._protect is not None and self._protect.governed_from(rel) is not None

    def _hidden_from(self, parts: list[str]) -> int:
        """How many leading components of the path make the shallowest place an exclude or ignore rule hides."""
        for depth in range(1, len(parts)):
            if self._hidden("/".join(parts[:depth]), True):
                return depth
        return len(parts)

    def _kept_by_protection(self, rel: str, is_dir: bool) -> bool:
        """Whether protection overrides the rule that hides rel (see the module doc)."""
        engine = self._protect
        if engine is None:
            return False
        if is_dir and rel in self._kept_dirs:
            return self._kept_dirs[rel]
        parts = rel.split("/")
        start = engine.governed_from(rel)
        if is_dir:
            # A directory on the way to a protected place, or protected from where it is hidden or below.
            kept = engine.leads_to(rel) or (start is not None and start >= self._hidden_from(parts))
            self._kept_dirs[rel] = kept
            return kept
        if start is None:
            return False
        hidden_at = self._hidden_from(parts)
        if hidden_at == len(parts):
            return True  # the file itself is what the rule hides, and protection names it
        # The file lies in a hidden directory: protection must start there or below, and every
        # directory on the way must be entered too, or a full scan would call it deleted.
        return start >= hidden_at and all(self("/".join(parts[:d]), True) for d in range(hidden_at, len(parts)))

    def hidden_by(self, rel: str, is_dir: bool) -> str | None:
        """How the exclude and ignore rules would hide rel, worded for a note ("is in .gitignore"), or None."""
        probe = rel + "/" if is_dir else rel
        if self._builtin.match(probe):
            return "is left out by guardian's built-in excludes"
        if self._exclude.match(probe):
            return "matches watch.exclude"
        base = self._gitignored_by(rel, is_dir) if self.watch.gitignore else None
        if base is None:
            return None
        files = self._gitignore_files.get(base) or [os.path.join(base, ".gitignore")]
        return f"is in {' or '.join(files)}"


def _fixed_place(pattern: str) -> tuple[str, bool] | None:
    """The leading part of a protect pattern that names a fixed place: (path, is a directory), or None.

    "g/followup/state/" -> ("g/followup/state", True); "g/*/state.json" -> ("g", True);
    "*.db" -> None.  A name with no "/" ("state.db") is taken at the root, where an
    unanchored ignore rule would hide it as anywhere else.
    """
    text = pattern.strip()
    if not text or text.startswith(("!", "#")):
        return None
    is_dir = text.endswith("/")
    fixed: list[str] = []
    for part in text.strip("/").split("/"):
        if not part or any(c in part for c in "*?[\\"):
            is_dir = True  # cut short: what came before is a directory
            break
        fixed.append(part)
    if not fixed:
        return None
    return "/".join(fixed), is_dir


def hidden_protected_notes(root: Path, policy: Policy) -> list[str]:
    """One line for each protected place an exclude or ignore rule would hide, and what guardian does.

    Read from the protect patterns' fixed leading paths, so it costs a few pattern checks,
    never a walk of the tree; a pattern that names no fixed place ("*.db") is not looked at.
    """
    keep = PathFilter(root, policy.watch, policy.protect_rules)
    lines: list[str] = []
    for rule in policy.protect:
        for pattern in rule.paths:
            place = _fixed_place(pattern)
            if place is None:
                continue
            rel, is_dir = place
            if not is_dir:
                found = lstat_at(root, rel)
                is_dir = found is not None and stat.S_ISDIR(found.st_mode)
            line = _hidden_note(keep, rel, is_dir)
            if line is not None and line not in lines:
                lines.append(line)
    return lines


def _hidden_note(keep: PathFilter, rel: str, is_dir: bool) -> str | None:
    parts = rel.split("/")
    shown = rel + "/" if is_dir else rel
    for depth in range(1, len(parts) + 1):
        sub = "/".join(parts[:depth])
        sub_dir = is_dir or depth < len(parts)
        why = keep.hidden_by(sub, sub_dir)
        if why is None:
            continue
        where = sub + "/" if sub_dir else sub
        if not keep(sub, sub_dir) or not keep(rel, is_dir):
            return f"{shown} is protected but {where} {why}: it is not captured"
        if sub == rel:
            return f"{shown} {why} but protected; guardian watches it anyway"
        return f"{shown} is protected but {where} {why}; guardian watches {shown} anyway"
    return None
