"""Which protected paths did this git command roll back, and what did they hold before it?

The work tree holds no history, so a hook compares each file's ctime with the
start time of the git process that ran it (``/proc/PID/stat`` on Linux), and keeps
only files whose content git has as a blob (a file someone edited a moment before
git started is not one).  A file whose content git just replaced has a fresh
inode; one git merely read (``commit``, ``reset --soft``) does not.  For each
suspect, the content to put back comes from guardian's latest snapshot taken
before the command, or from the commit HEAD was at, whichever is the newer
witness; a path a stash entry still holds is not lost.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path

from guardian.errors import OperationFailed
from guardian.gates.githooks.age import AgeBook
from guardian.gates.githooks.before import pre_command_sources
from guardian.gates.githooks.context import START_SLACK, HookContext, trace
from guardian.gates.githooks.source import Loss, Source, blob_sha1, current_content


def _rewritten(ctx: HookContext, extra: Iterable[str]) -> list[str]:
    """Work-tree paths (git's names) that this git command wrote or deleted."""
    since = ctx.started - START_SLACK
    listed = set(ctx.git.names("ls-files", "-z", "--full-name"))
    listed.update(extra)
    found: list[str] = []
    dir_fresh: dict[str, bool] = {}
    top = os.fspath(ctx.top) + os.sep  # joined as text: a Path per tracked file costs more than its lstat
    for name in sorted(listed):
        try:
            st = os.lstat(top + name)
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
        return os.stat(_object_path(ctx, oid)).st_mtime >= since - START_SLACK
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


def created_now(ctx: HookContext, old: str, new: str) -> bool:
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


def _stash_keeps(ctx: HookContext, losses: Sequence[Loss]) -> set[str]:
    """Paths whose pre-command content the newest stash entry holds.

    ``git stash`` saves the work tree, then runs ``git reset --hard`` in a child
    process: when that entry was written by the git command that ran this one,
    it holds exactly what the reset replaced.  Otherwise an entry keeps a path
    only when it has the very content guardian would have put back.
    """
    if losses and ctx.run_by_pre_commit():
        trace("pre-commit's own checkout: its patch of unstaged changes keeps them, and it applies it again")
        return {loss.git_path for loss in losses}
    if not losses:
        return set()
    stash = ctx.git.rev("refs/stash")
    if stash is None:
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


def find_losses(
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
    if not moved:
        # HEAD stays, but its branch may have been rewound just before without touching the
        # files (update-ref, reset --soft): what the previous tip had is what the work tree had.
        for previous in {ctx.git.rev("HEAD@{1}"), ctx.git.rev(f"{ctx.current_branch() or 'HEAD'}@{{1}}")} - {None, old}:
            extra.update(ctx.git.names("diff", "--name-only", "-z", "--no-renames", old, str(previous)))
    rewritten = _rewritten(ctx, extra)
    trace(f"{old[:12]} -> {new[:12]}: started {ctx.started:.3f}, rewritten {rewritten}")
    if not rewritten:
        return [], [], []
    engine = ctx.engine()
    protected = [n for n in rewritten if engine.is_protected(ctx.path_of(n))]
    if not protected:
        return [], [], []
    # A file someone edited just before git started has a fresh ctime too; what git writes, it has.
    in_store = _in_object_store(ctx, protected, "sha1" if len(old) == 40 else "sha256")
    protected = [n for n in protected if n in in_store]
    # Moving forward brings newer history; only what it overwrote besides is a loss.  (Asked of
    # git only when the answer matters: each question is a git process.)
    forward = moved and any(n in diff for n in protected) and ctx.git.ok("merge-base", "--is-ancestor", old, new)
    suspects = [n for n in protected if not (forward and n in diff)]
    if suspects:
        # A path git left unmerged is being resolved: taking one side (checkout --theirs/--ours) is no rollback.
        unmerged = ctx.unmerged_paths()
        suspects = [n for n in suspects if n not in unmerged]
    harmless = [ctx.path_of(n) for n in protected if n not in suspects]
    if not suspects:
        return [], harmless, []
    in_old = ctx.git.tree_entries(old, suspects)
    sources = pre_command_sources(ctx, suspects, old, in_old)
    trace(f"suspects {suspects}, sources {sources}")
    committed = in_old if committed_is_safe else {}
    held = _held_by_operation(ctx, suspects)
    book = AgeBook(ctx)
    losses: list[Loss] = []
    for name in suspects:
        source = sources.get(name)
        content = current_content(ctx.top / name)
        if (
            source is None
            or (content is not None and blob_sha1(content) == source.sha1)
            or (name in committed and (source.where == "git" or committed[name][1] == source.sha1))
            or source.sha1 in held.get(name, ())
        ):
            harmless.append(ctx.path_of(name))
            continue
        loss = Loss(ctx.path_of(name), name, content is not None, source)
        if content is not None and not _moves_back(book, loss, blob_sha1(content)):
            trace(f"{name}: its new content is newer than {source.describe()}: not a rollback")
            harmless.append(ctx.path_of(name))
            continue
        if ctx.operation_heads() and _is_conflict_state(ctx, source):
            trace(f"{name}: {source.describe()} is a merge conflict in progress, not work to keep")
            harmless.append(ctx.path_of(name))
            continue
        losses.append(loss)
    kept = _stash_keeps(ctx, losses)
    return [loss for loss in losses if loss.git_path not in kept], harmless, sorted(ctx.path_of(n) for n in kept)


def _moves_back(book: AgeBook, loss: Loss, now: str) -> bool:
    """Is the content git left at ``loss.path`` older than the content it replaced?"""
    older = book.older(loss.path, now, loss.source.sha1)
    trace(f"{loss.git_path}: {now[:8]} older than {loss.source.sha1[:8]}: {older}")
    return older


def _held_by_operation(ctx: HookContext, names: Sequence[str]) -> dict[str, set[str]]:
    """name -> the contents an operation in progress still holds for it (the other side of a merge, a pick).

    Aborting a merge, or resetting in the middle of one, drops content that the
    other branch still has: nothing is lost.  Empty when no merge, cherry-pick or
    revert is in progress.
    """
    held: dict[str, set[str]] = {}
    if ctx.rebase_in_progress():
        # What a stopped rebase is replaying is the person's own branch being rewritten: a
        # reset now drops it from the result (post-rewrite would only see it at the end).
        return held
    heads = ctx.operation_heads()
    if not heads:
        return held
    sha1_repo = ctx.git_object_format() == "sha1"
    for name, head in heads.items():
        if name == "REBASE_HEAD":
            continue
        for name, (_mode, oid) in ctx.git.tree_entries(head, names).items():
            held.setdefault(name, set()).add(oid if sha1_repo else blob_sha1(ctx.git.blob(oid)))
    return held


def _is_conflict_state(ctx: HookContext, source: Source) -> bool:
    """Does ``source`` hold conflict markers, as git writes them into a file it could not merge?"""
    if source.where == "git":
        data = ctx.git.blob(source.oid)
    else:
        data = ctx.project().open_repo().read_blob(source.oid)
    lines = data.split(b"\n")
    return any(line.startswith(b"<<<<<<< ") for line in lines) and any(line.startswith(b">>>>>>> ") for line in lines)
