"""The user's git repository as the hooks see it: a thin wrapper over guardian.util.git in one work tree.

Every call goes through :func:`guardian.util.git.run_git`, so a hook's git commands
get the same safety settings as the rest of guardian (no optional locks, no
prompts, literal pathspecs).  What this adds is the hooks' own wording: a git
command that cannot run or fails becomes one :class:`OperationFailed` naming it,
which ``hook-impl`` prints as a single line.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from guardian.errors import OperationFailed
from guardian.util.git import GitError, GitResult, run_git, split_z

# A hook may run in a large repository on a slow disk; it is still bounded, never left hanging.
_GIT_TIMEOUT = 120.0


def is_zero(oid: str) -> bool:
    """Whether a ref-update value is git's "no object" (all zeros)."""
    return not oid.strip("0")


class Git:
    """The git CLI, run in one work tree.  (pygit2 is for guardian's own store only.)"""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd

    def _result(self, args: Sequence[str], input: bytes | None) -> GitResult:
        try:
            return run_git(args, cwd=self.cwd, input=input, timeout=_GIT_TIMEOUT, check=False)
        except GitError as exc:
            raise OperationFailed(f"cannot run git {args[0]}: {exc}") from None

    def run(self, *args: str, input: bytes | None = None, check: bool = True) -> bytes:
        result = self._result(args, input)
        if check and not result.ok:
            message = os.fsdecode(result.stderr).strip().splitlines()
            raise OperationFailed(f"git {' '.join(args[:3])} failed: {message[-1] if message else result.returncode}")
        return result.stdout

    def ok(self, *args: str) -> bool:
        return self._result(args, None).ok

    def text(self, *args: str) -> str:
        return os.fsdecode(self.run(*args)).strip()

    def rev(self, spec: str) -> str | None:
        """The object id ``spec`` names, or None."""
        out = self.run("rev-parse", "-q", "--verify", "--end-of-options", spec, check=False).strip()
        return os.fsdecode(out) or None

    def names(self, *args: str) -> list[str]:
        """Paths from a ``-z`` listing."""
        return split_z(self.run(*args))

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
