"""What the shell reader reports: :class:`Intent`, the kinds it can have, and the placeholder targets.

This is the contract with the agent hook, which resolves an intent's targets
against its ``cwd`` and asks the policy engine about them.  The hook imports
these names from :mod:`guardian.shell.parse`; they live here so that the
parser and every command handler can build intents without importing the entry
module, which imports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Placeholder targets.  Both are documented parts of the contract with the hook.
WORK_TREE = ":/"  # git's own spelling for "the whole work tree": reset --hard, switching branches, rebase
ANY_PATH = "*"  # unknown paths (xargs input, a computed command): as broad as the glob it looks like
# "opaque": a construct guardian cannot see into (inline code, eval, a computed command); its targets are
# the literal words it was given.  "unknown-command": a tool guardian does not model, naming its operands.
# "unknown-dynamic": text that cannot be read at all, judged over the whole project.

KINDS: tuple[str, ...] = (
    "git-reset",
    "git-checkout-paths",
    "git-checkout-rev",
    "git-restore",
    "git-clean",
    "git-stash-drop",
    "git-stash-clear",
    "git-branch-delete",
    "git-branch-force",
    "git-rebase",
    "rsync-delete",
    "rm",
    "find-delete",
    "truncate",
    "redirect",
    "sed-inplace",
    "mv",
    "cp",
    "git-pick",
    "git-apply",
    "extract",
    "patch",
    "opaque",
    "unknown-command",
    "unknown-dynamic",
)


@dataclass(frozen=True)
class Intent:
    """One simple command that would change files.

    ``argv`` is the effective command after unwrapping ``sudo``/``env``/``xargs``
    and expanding git aliases.  ``targets`` are the paths it would modify or
    delete, as written (globs unexpanded), relative to ``cwd`` (None: the
    directory the command string starts in).  Besides real paths they may hold
    :data:`WORK_TREE` or :data:`ANY_PATH`.  ``detail`` carries extra facts as
    strings, notably ``rev``/``mode`` for git, ``sources`` for ``mv``/``cp``,
    ``deletes`` (newline-separated paths removed besides the targets, e.g. the
    sources of ``mv``) and ``dynamic`` (why some target is only known at run
    time).
    """

    kind: str
    argv: tuple[str, ...]
    cwd: str | None
    targets: tuple[str, ...]
    detail: dict[str, str] = field(default_factory=dict)

    @property
    def paths(self) -> tuple[str, ...]:
        """Every path this command destroys: the targets plus ``detail["deletes"]``."""
        extra = tuple(p for p in self.detail.get("deletes", "").split("\n") if p)
        return self.targets + tuple(p for p in extra if p not in self.targets)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "argv": list(self.argv),
            "cwd": self.cwd,
            "targets": list(self.targets),
            "detail": dict(self.detail),
        }
