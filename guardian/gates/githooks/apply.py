"""Putting protected files back after a git command rolled them back, and recording what git left.

This is the only part of the hooks that writes, so it is the only part that loads
the ops layer (and with it pygit2, ~100 ms): the handlers import it only once they
know there is something to write.  A put-back runs in one write session: a
pre-restore snapshot of what git wrote (so it can be restored too), the files,
then a snapshot of the result; afterwards the index entries of those paths are set
to HEAD's, so the rewind is not left staged.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from guardian.gates.githooks.source import Loss
from guardian.ops.session import write_session
from guardian.ops.snapshot import take_snapshot
from guardian.paths import check_relative
from guardian.util.fs import write_user_file, write_user_symlink

if TYPE_CHECKING:
    from guardian.gates.githooks.context import HookContext

_MODE_LINK = 0o120000
_MODE_EXEC = 0o100755


def put_back(ctx: HookContext, losses: Sequence[Loss], head: str) -> tuple[str | None, str | None]:
    """Write each loss's source back (after a pre-restore snapshot); the index then matches ``head`` for them.

    Returns (pre-restore snapshot, post-restore snapshot).
    """
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


def capture_as_left(ctx: HookContext, paths: Sequence[str]) -> str | None:
    """Snapshot ``paths`` as git left them (trigger "hook"); the new snapshot id, if anything changed."""
    return take_snapshot(ctx.project(), list(paths), "hook", command=ctx.process.text).snapshot


def _index_to(ctx: HookContext, names: Sequence[str], head: str) -> None:
    """Make the index entries of ``names`` those of ``head``, so nothing about them is left staged.

    Without this, an aborted ``reset --hard`` would leave the rewound version of a
    protected file staged, and the next ``git commit`` would record the rewind.  A
    path in conflict keeps its stages: replacing them with HEAD's version would
    drop the other side of the merge without a word.
    """
    unmerged = ctx.unmerged_paths()
    names = [name for name in names if name not in unmerged]  # a conflict stays for the person to resolve
    if not names:
        return
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
