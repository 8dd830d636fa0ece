"""Per-kind resolution: which paths each destructive intent would change, and how.

Each rule asks the tools themselves where they can answer without changing
anything: ``git diff`` for reset/checkout/rebase/restore, ``git clean -n``,
``git stash show``, ``git log`` for the commits only a deleted branch reaches,
``rsync --dry-run``, ``find`` with its actions replaced by ``-print0``, and glob
expansion with a walk of directories for everything else.  The result is a list
of :class:`~guardian.gates.agent.resolver.Touch` es, or an
:class:`~guardian.gates.agent.resolver.Unknown` when the paths are only known at
run time or a tool could not answer.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from guardian.gates.agent.resolver import Resolver, Touch, Unknown, Unsure, is_dynamic, run_tool
from guardian.shell.parse import ANY_PATH, Intent

if TYPE_CHECKING:
    from guardian.policy import ChangeKind, Operation

RSYNC_BIN = "rsync"  # module-level so tests can simulate a machine without rsync
PATCH_BIN = "patch"
TAR_BIN = "tar"
UNZIP_BIN = "unzip"
_ITEMIZE_RE = re.compile(r"^(\*deleting|[<>ch.][fdLDS][^ ]{9}) +(.+)$")

_STATUS_CHANGE = {"A": "add", "D": "delete", "M": "modify", "T": "modify", "U": "modify", "X": "modify",
                  "C": "add", "R": "add", "B": "modify"}
_CHANGE_RANK = {"add": 0, "modify": 1, "delete": 2}


def _sub_args(intent: Intent, sub: str) -> tuple[str, ...]:
    """The arguments after git's subcommand, so git's own options (-C, -c) are not read as its flags."""
    return intent.argv[intent.argv.index(sub) + 1 :] if sub in intent.argv else intent.argv


def _merge(changes: dict[Path, str], path: Path, change: str) -> None:
    if change and _CHANGE_RANK[change] >= _CHANGE_RANK.get(changes.get(path, "add"), 0):
        changes[path] = change


def _local_changes(r: Resolver, cwd: Path, changes: dict[Path, str]) -> None:
    """What `reset --hard`/`checkout -f` throws away: uncommitted edits and staged new files."""
    for status, path in r.name_status(cwd, "HEAD"):
        # Staged new files ("A" against HEAD) are removed from the work tree; deleted ones come back.
        _merge(changes, path, {"A": "delete", "D": ""}.get(status, "modify"))


def _tree_diff(r: Resolver, cwd: Path, old: str, new: str, changes: dict[Path, str]) -> None:
    for status, path in r.name_status(cwd, old, new):
        _merge(changes, path, _STATUS_CHANGE.get(status, "modify"))


def _resolve_git_tree(r: Resolver, intent: Intent, idx: int, cwd: Path) -> list[Touch]:
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
                    raise Unsure(f"'{rev}' is not a revision git knows")
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
            raise Unsure("rebase --root rewrites every commit")
        upstream = detail.get("upstream", "@{upstream}")
        onto = detail.get("onto", upstream)
        # What lands in the tree is what `onto` changed since the fork point; our own commits are replayed.
        base = r.git(cwd, "merge-base", "HEAD", upstream).strip()
        _tree_diff(r, cwd, base, onto, changes)
    # reset puts back an older state ("revert"); checkout and rebase move to another one ("rewrite").
    verb = "revert" if kind == "git-reset" else "rewrite"
    return [t for path, change in sorted(changes.items()) for t in r.changed(path, change, idx, verb)]


def _resolve_paths(r: Resolver, intent: Intent, idx: int, cwd: Path) -> list[Touch]:
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


def _resolve_clean(r: Resolver, intent: Intent, idx: int, cwd: Path) -> list[Touch]:
    flags = intent.detail.get("flags", "")
    excludes = _clean_excludes(_sub_args(intent, "clean"))
    args = ["clean", "-n", *(f"-{f}" for f in flags), *excludes, "--", *intent.targets]
    touches: list[Touch] = []
    for line in r.git(cwd, *args).splitlines():
        if line.startswith("Would remove "):
            name = _unquote_git(line[len("Would remove "):])
            touches += r.deletes(cwd / name.rstrip("/"), idx)
    return touches


def _resolve_stash(r: Resolver, intent: Intent, idx: int, cwd: Path) -> list[Touch]:
    try:
        r.git(cwd, "rev-parse", "--verify", "-q", "refs/stash")
    except Unsure:
        return []  # no stash: drop and clear have nothing to lose
    if intent.kind == "git-stash-clear":
        stashes = [s for s in r.git(cwd, "stash", "list", "--format=%gd").split("\n") if s]
    else:
        stashes = [intent.detail.get("stash", "stash@{0}")]
    touches: list[Touch] = []
    for ref in stashes:
        try:
            found = list(r.name_status(cwd, "--include-untracked", ref, cmd="stash show"))
        except Unsure:
            found = list(r.name_status(cwd, ref, cmd="stash show"))  # git before 2.32
        for status, path in found:
            rel = r.rel(path)
            if rel is None or rel == "." or status == "D":
                continue
            # A file only in the stash is gone for good; an edit loses that version.
            change: ChangeKind = "delete" if status == "A" else "modify"
            touches.append(Touch(rel, "rollback", change, "discard stashed changes to", idx))
    return touches


def _resolve_branch(r: Resolver, intent: Intent, idx: int, cwd: Path) -> list[Touch]:
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
        except Unsure:
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


def _rsync_fallback(r: Resolver, intent: Intent, idx: int, dest: Path) -> list[Touch]:
    # Without a dry run, assume the worst: everything under the destination may be replaced or deleted.
    # rsync puts another version in place, as its dry run would have said: a rollback, not an edit.
    if intent.kind == "rsync-delete":
        return r.deletes(dest, idx, operation="rollback")
    return r.overwrites(dest, idx, operation="rollback", into_dirs=True)


def _resolve_rsync(r: Resolver, intent: Intent, idx: int, cwd: Path) -> list[Touch]:
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
        out = run_tool([RSYNC_BIN, "--dry-run", "--itemize-changes", *intent.argv[1:]], cwd, "rsync --dry-run")
    except Unsure as exc:
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


def _resolve_find(r: Resolver, intent: Intent, idx: int, cwd: Path) -> list[Touch]:
    starts = [p for t in intent.targets for p in r.expand(cwd, t)]
    try:
        out = run_tool(_find_listing_argv(intent.argv), cwd, "find (listing only)")
    except Unsure as exc:
        r.notes.append(f"{exc}: assumed find deletes everything under {' '.join(intent.targets)}")
        return [t for start in starts for t in r.deletes(start, idx)]
    touches: list[Touch] = []
    for name in out.split("\0"):
        if name:
            touches += r.deletes(cwd / name, idx)
    return touches


def _resolve_copy(r: Resolver, intent: Intent, idx: int, cwd: Path) -> list[Touch]:
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


def _resolve_simple(r: Resolver, intent: Intent, idx: int, cwd: Path) -> list[Touch]:
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


def _resolve_pick(r: Resolver, intent: Intent, idx: int, cwd: Path) -> list[Touch]:
    """``git cherry-pick REV`` brings REV's changes into the tree; ``git revert REV`` their inverse."""
    revert = intent.detail.get("mode") == "revert"
    changes: dict[Path, str] = {}
    for rev in (x for x in intent.detail.get("revs", "").split("\n") if x):
        if ".." in rev:
            old, _, new = rev.replace("...", "..").partition("..")
            old, new = old or "HEAD", new or "HEAD"
        else:
            old, new = f"{rev}^", rev
        if revert:
            old, new = new, old
        _tree_diff(r, cwd, old, new, changes)
    verb = "revert" if revert else "rewrite"
    return [t for path, change in sorted(changes.items()) for t in r.changed(path, change, idx, verb)]


def _patch_files(intent: Intent, cwd: Path) -> list[str]:
    patches = [p for p in intent.detail.get("patches", "-").split("\n") if p]
    if not patches or "-" in patches:
        raise Unsure("it reads its patch from stdin")
    for patch in patches:
        if is_dynamic(patch) or not (cwd / patch).is_file():
            raise Unsure(f"cannot read the patch {patch}")
    return patches


def _resolve_git_apply(r: Resolver, intent: Intent, idx: int, cwd: Path) -> list[Touch]:
    """``git apply [-R] PATCH``: the files the patch names, as ``git apply --numstat --summary`` lists them."""
    detail = intent.detail
    args = ["apply", "--numstat", "--summary"]
    if "reverse" in detail:
        args.append("-R")
    if "strip" in detail:
        args.append(f"-p{detail['strip']}")
    if "directory" in detail:
        args.append(f"--directory={detail['directory']}")
    out = r.git(cwd, *args, *_patch_files(intent, cwd))
    top = r.toplevel(cwd)
    changes: dict[Path, str] = {}
    for line in out.splitlines():
        fields = line.split("\t")
        if len(fields) == 3:
            _merge(changes, top / _unquote_git(fields[2]), "modify")
        elif line.startswith((" delete mode ", " create mode ")):
            name = line.split(" ", 4)[-1]
            _merge(changes, top / _unquote_git(name), "delete" if "delete" in line else "add")
    return [t for path, change in sorted(changes.items()) for t in r.changed(path, change, idx, "rewrite")]


def _resolve_patch(r: Resolver, intent: Intent, idx: int, cwd: Path) -> list[Touch]:
    """``patch``: the files it would patch, from its own ``--dry-run``."""
    detail = intent.detail
    into = cwd / detail["into"] if "into" in detail else cwd
    if "file" in detail:
        return r.overwrites(r.expand(cwd, detail["file"])[0], idx, operation="rollback", verb="rewrite")
    argv = [PATCH_BIN, "--dry-run", "--batch", "--force"]
    if "reverse" in detail:
        argv.append("-R")
    if "strip" in detail:
        argv.append(f"-p{detail['strip']}")
    touches: list[Touch] = []
    for patch in _patch_files(intent, cwd):
        out = run_tool([*argv, "-i", str(cwd / patch)], into, "patch --dry-run", ok_codes=(0, 1))
        for line in out.splitlines():
            for prefix in ("checking file ", "patching file "):
                if line.startswith(prefix):
                    name = line[len(prefix):].strip().strip("'\"")
                    touches += r.overwrites(into / name, idx, operation="rollback", verb="rewrite")
    return touches


def _resolve_extract(r: Resolver, intent: Intent, idx: int, cwd: Path) -> list[Touch]:
    """``tar -x`` and ``unzip -o``: every member that exists already is replaced by the archive's version."""
    detail = intent.detail
    archive = detail.get("archive", "-")
    if archive == "-" or is_dynamic(archive):
        raise Unsure("it reads its archive from stdin" if archive == "-" else f"'{archive}' is only known at run time")
    members = [m for m in detail.get("members", "").split("\n") if m]
    if detail.get("tool") == "unzip":
        out = run_tool([UNZIP_BIN, "-Z1", archive, *members], cwd, "unzip -Z1")
    else:
        out = run_tool([TAR_BIN, "-tf", archive, *members], cwd, "tar -t")
    into = cwd / detail["into"] if "into" in detail else cwd
    strip = int(detail.get("strip", "0") or 0)
    touches: list[Touch] = []
    for name in out.splitlines():
        parts = [p for p in name.strip().lstrip("/").split("/") if p and p != "."][strip:]
        if not parts or name.endswith("/"):
            continue
        touches += r.overwrites(into.joinpath(*parts), idx, operation="rollback", verb="replace")
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
    "git-pick": _resolve_pick,
    "git-apply": _resolve_git_apply,
    "patch": _resolve_patch,
    "extract": _resolve_extract,
}


# What a destructive intent does to the paths it names, for judging it when those paths are only known
# at run time.  None: it could do anything (judged by the strictest of a rule's actions).
_KIND_OPERATION: dict[str, Operation | None] = {
    "rm": "delete", "find-delete": "delete", "git-clean": "delete", "mv": None, "cp": "modify",
    "redirect": "modify", "truncate": "modify", "sed-inplace": "modify", "tool-write": "modify",
    "unknown-dynamic": None, "opaque": None, "unknown-command": None,
}


def _operation(intent: Intent) -> Operation | None:
    if intent.kind.startswith("git-") or intent.kind in ("rsync-delete", "extract", "patch"):
        return "rollback"
    return _KIND_OPERATION.get(intent.kind)


def _named(r: Resolver, intent: Intent, idx: int, base: Path) -> list[Unknown]:
    """The literal paths an opaque construct or an unknown tool names, as exact unknowns (no walk under them)."""
    out: list[Unknown] = []
    seen: set[str] = set()
    reason = intent.detail.get("reason", "guardian cannot see what it does")
    for target in intent.targets:
        if not target or is_dynamic(target) or target == ANY_PATH:
            continue
        for path in r.expand(base, target):
            rel = r.rel(r.real(path))
            if rel is None or rel == "." or rel in seen or not os.path.lexists(path):
                continue
            seen.add(rel)
            out.append(Unknown(idx, reason, rel, None, exact=True))
    return out


def _resolve_opaque(r: Resolver, intent: Intent, idx: int, base: Path, scope: str | None
                    ) -> tuple[list[Touch], list[Unknown]]:
    """Inline code, eval, a computed command: what its code visibly deletes or writes, and what it names."""
    unknown = _named(r, intent, idx, base)
    api = intent.detail.get("api", "")
    touches: list[Touch] = []
    if api:
        for target in intent.targets:
            if is_dynamic(target) or target == ANY_PATH:
                continue
            for path in r.expand(base, target):
                if api == "delete":
                    touches += r.deletes(path, idx)
                elif api == "write":
                    touches += r.overwrites(r.real(path), idx)
        if (not touches or api == "any") and scope is not None:
            # It deletes or writes, but not a path written out in its code: somewhere under where it runs.
            ops: dict[str, Operation] = {"delete": "delete", "write": "modify"}
            op = ops.get(api)
            what = {"delete": "its code deletes files whose names it computes",
                    "write": "its code writes files whose names it computes"}.get(api, "its code hides what it calls")
            unknown.append(Unknown(idx, what, scope, op))
    return touches, unknown


def resolve_intent(r: Resolver, intent: Intent, idx: int) -> tuple[list[Touch], list[Unknown]]:
    operation = _operation(intent)
    if intent.kind == "unknown-dynamic":
        # A command that cannot be read at all could act anywhere: the whole project is in scope.
        return [], [Unknown(idx, intent.detail.get("reason", "the command cannot be read"), ".", None)]
    base = r.base_dir(intent)
    if base is None:
        return [], [Unknown(idx, f"it runs in {intent.cwd}, a directory only known at run time", ".", operation)]
    scope = r.rel(base)
    if intent.kind == "unknown-command":
        return [], _named(r, intent, idx, base)
    if intent.kind == "opaque":
        return _resolve_opaque(r, intent, idx, base, scope)
    # "*" is ANY_PATH (xargs input, --pathspec-from-file) only when the parser says the paths are computed;
    # otherwise it is the shell glob of `rm -rf *`.
    computed = "dynamic" in intent.detail or any(a.startswith("--pathspec-from-file") for a in intent.argv)
    unknown: list[Unknown] = []
    for target in intent.paths if intent.kind != "tool-write" else ():
        if target == ANY_PATH and computed:
            if scope is not None:
                source = intent.detail.get("dynamic", "a file")
                source = "run-time expansions" if source == "expansion" else source
                unknown.append(Unknown(idx, f"its paths come from {source}", scope, operation))
        elif is_dynamic(target):
            where = r.dynamic_scope(base, target)
            if where is not None:
                unknown.append(Unknown(idx, f"'{target}' is only known at run time", where, operation))
    if unknown:
        return [], unknown
    # rsync without --delete is reported as cp (or mv, with --remove-source-files); rsync -n answers for all.
    rsync = intent.kind == "rsync-delete" or intent.detail.get("verb") == "rsync"
    handler = _resolve_rsync if rsync else _RESOLVERS.get(intent.kind, _resolve_simple)
    try:
        return handler(r, intent, idx, base), []
    except Unsure as exc:
        # Git state we cannot read: the operation is repository-wide, so the whole project is in scope.
        where = "." if intent.kind.startswith("git-") else (scope or ".")
        return [], [Unknown(idx, str(exc), where, operation)]
