"""What is captured: include/exclude rules as one callable, gitignore-style.

Order of precedence, strongest first:
1. ``.git`` directories and guardian's own temp files are never captured.
2. ``guardian.yaml`` is always captured (it is protected by default).
3. Secret files are captured only when an include pattern names them explicitly.
4. ``watch.exclude`` patterns, the built-in excludes, and the project's ``.gitignore`` files.
5. ``watch.include`` patterns (empty means everything).

Patterns are matched by :mod:`guardian.util.globs`, in time linear in the path: a
``.gitignore`` in the tree is someone else's input, and one backtracking pattern in it
must not stall every capture.  For the same reason a line there that cannot be read
is skipped, as git skips it, instead of failing the snapshot.
"""

from __future__ import annotations

import os
from pathlib import Path

from guardian.config import WatchSettings
from guardian.paths import POLICY_FILENAME
from guardian.util.fs import TEMP_PREFIX
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

_CATCH_ALL = {"*", "**", "**/*", "/", "/**", "./", "*/", "**/"}


def _spec(lines: tuple[str, ...] | list[str]) -> GlobSpec:
    return GlobSpec.from_lines(lines)


class PathFilter:
    """Callable ``(rel_path, is_dir) -> bool``: should this path be captured (or descended into)?"""

    def __init__(self, root: Path, watch: WatchSettings) -> None:
        self.root = root
        self.watch = watch
        self._exclude = _spec([*DEFAULT_EXCLUDES, *watch.exclude])
        self._include = _spec(list(watch.include)) if watch.include else None
        # Matched lowercased: ".ENV" or "Credentials.json" is the same secret on a case-insensitive disk.
        self._secrets = _spec([p.lower() for p in SECRET_PATTERNS])
        # Secrets need an include that names them, not a catch-all like "**".
        explicit = [p for p in watch.include if p.strip() not in _CATCH_ALL]
        self._explicit_include = _spec(explicit) if explicit else None
        self._gitignores: dict[str, GlobSpec | None] = {}

    def invalidate_gitignore(self, rel_dir: str) -> None:
        """Forget a cached .gitignore (the watcher calls this when one changes)."""
        self._gitignores.pop(rel_dir, None)

    def _gitignore_for(self, rel_dir: str) -> GlobSpec | None:
        if rel_dir in self._gitignores:
            return self._gitignores[rel_dir]
        spec: GlobSpec | None = None
        lines: list[str] = []
        candidates = [os.path.join(rel_dir, ".gitignore")]
        if rel_dir == "":
            candidates.append(".git/info/exclude")
        for candidate in candidates:
            try:
                with open(self.root / candidate, encoding="utf-8", errors="replace") as handle:
                    lines.extend(handle.read().splitlines())
            except OSError:
                continue
        if lines:
            spec = GlobSpec.from_lines(lines, skip_invalid=True)
        self._gitignores[rel_dir] = spec
        return spec

    def _gitignored(self, rel: str, is_dir: bool) -> bool:
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
                return verdict
        return False

    def is_secret(self, rel: str) -> bool:
        return self._secrets.match(rel.lower())

    def __call__(self, rel: str, is_dir: bool = False) -> bool:
        if not rel or rel == ".":
            return True
        leaf = rel.rsplit("/", 1)[-1]
        if leaf.lower() == ".git" or leaf.startswith(TEMP_PREFIX):
            return False
        if rel == POLICY_FILENAME:
            return True
        probe = rel + "/" if is_dir else rel
        if not is_dir and self.is_secret(rel):
            return self._explicit_include is not None and self._explicit_include.match(rel)
        if self._exclude.match(probe):
            return False
        if self.watch.gitignore and self._gitignored(rel, is_dir):
            return False
        if self._include is not None and not is_dir:
            return self._include.match(rel)
        return True
