"""What each git hook does: refuse a rebase, undo a rewind, keep a stash or a branch, check after a merge.

Facts about git 2.39 these handlers are built on (each one checked with real git):

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
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from guardian.errors import EXIT_OK
from guardian.gates.githooks.context import EXIT_REFUSE, HookContext, RefUpdate, parse_updates, say, short, trace
from guardian.gates.githooks.decide import created_now, find_losses
from guardian.gates.githooks.gitcli import Git, is_zero
from guardian.gates.githooks.judge import (
    allowed_outright,
    decision_facts,
    forced_through,
    grant_forced_paths,
    how_to_force,
    judge,
    why,
)
from guardian.gates.githooks.rebase import check_rebase_result, names_in_commits
from guardian.gates.githooks.source import Loss, blob_sha1, current_content

if TYPE_CHECKING:
    from guardian.policy import Decision


# --------------------------------------------------------------------------- work-tree rewinds


def _undo_rewind(
    ctx: HookContext, old: str, new: str, *, head: str, aborting: bool, committed_is_safe: bool = False
) -> int:
    """The shared core of reference-transaction (HEAD moves) and post-checkout.

    ``head`` is the commit HEAD points at once the hook is done: ``old`` when the
    ref update is aborted, ``new`` after a checkout that already moved HEAD.
    """
    losses, harmless, stashed = find_losses(ctx, old, new, committed_is_safe=committed_is_safe)
    if not (losses or harmless or stashed):
        return EXIT_OK
    # Only now is there something to write: the ops layer, and pygit2 with it, loads here.
    from guardian.gates.githooks.apply import capture_as_left, put_back

    facts: dict[str, Any] = {"old": old, "new": new}
    if stashed:
        facts["kept_in_stash"] = stashed
    if not losses:
        # guardian's record follows the accepted state, so a later hook does not "undo" back past it.
        note = "protected paths changed; nothing guardian holds was lost"
        ctx.record("hook", harmless + stashed, {**facts, "note": note}, capture_as_left(ctx, harmless + stashed))
        return EXIT_OK
    decision = judge(ctx, [(loss.path, "modify" if loss.present else "delete") for loss in losses])
    facts["decision"] = decision_facts(decision)
    paths = [loss.path for loss in losses]
    if allowed_outright(decision):
        note = "the policy allows rolling these back"
        ctx.record("hook", paths, {**facts, "note": note}, capture_as_left(ctx, paths))
        return EXIT_OK
    if forced_through(decision):
        facts["grants"] = grant_forced_paths(ctx, decision)
        ctx.record("force", paths, {**facts, "force": True}, capture_as_left(ctx, paths))
        say(f"guardian: GUARDIAN_FORCE=1: letting {ctx.user_command_text()} roll back: {', '.join(paths)}")
        return EXIT_OK
    refused = {p.path for p in decision.paths if p.outcome != "allow"}
    back = [loss for loss in losses if loss.path in refused]
    pre, post = put_back(ctx, back, head)
    facts["restored"] = {loss.path: loss.source.describe() for loss in back}
    facts["pre_snapshot"] = pre
    ctx.record("block", paths, facts, post)
    say(_rewind_message(ctx, back, decision, head, pre, aborting))
    return EXIT_REFUSE


def _rewind_message(
    ctx: HookContext, back: Sequence[Loss], decision: Decision, head: str, pre: str | None, aborting: bool
) -> str:
    lines = [f"guardian: refused: `{ctx.user_command_text()}` rolled back protected paths; guardian put them back:"]
    verdicts = {p.path: p for p in decision.paths}
    for loss in back:
        what = "modified" if loss.present else "deleted "
        lines.append(f"  {loss.path}  {what} -> restored from {loss.source.describe()}  ({why(verdicts[loss.path])})")
    if aborting:
        lines.append(
            f"The ref update is aborted: HEAD stays at {short(head)}. Protected paths: their content from before "
            "the command, nothing staged."
        )
        lines.append(
            "Other files: as git left them; `git status` shows the command's effect on them as staged changes "
            "(undo: git reset --hard HEAD)."
        )
    else:
        lines.append(
            f"HEAD is at {short(head)}. Protected paths: their content from before the command (modified in "
            "`git status`). Other files: as git left them. The command fails."
        )
    if pre:
        lines.append(f"What git wrote is in guardian snapshot {short(pre)}: guardian restore --at {short(pre)} PATH")
    lines.append(how_to_force(ctx, decision))
    return "\n".join(lines)


# --------------------------------------------------------------------------- reference-transaction


def reference_transaction(ctx: HookContext) -> int:
    """At ``prepared``: undo a HEAD rewind of protected files, refuse to drop protected stash or branch content."""
    if not ctx.args or ctx.args[0] != "prepared":
        return EXIT_OK
    updates = parse_updates(ctx.stdin)
    if not updates or ctx.run_by_rebase() or ctx.aborting():
        # A rebase's own steps: pre-rebase judged it, post-rewrite judges its result.  An abort
        # goes back to the state before the operation, which the other side still holds.
        return EXIT_OK
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
    old = next((u.old for u in updates if not is_zero(u.old)), None) or ctx.git.rev("HEAD")
    new = updates[0].new
    if old is None or is_zero(new):
        return EXIT_OK
    if old != new and created_now(ctx, old, new):
        trace(f"HEAD {old[:12]} -> {new[:12]}: this command wrote the commit (commit, merge, cherry-pick)")
        return EXIT_OK
    if _detached_checkout(ctx, updates):
        # Only HEAD moves (checkout COMMIT, switch --detach, a bisect step): no branch rewinds, so
        # what was committed stays where it was, like a branch switch; only uncommitted content counts.
        trace(f"HEAD {old[:12]} -> {new[:12]}: a detached checkout; no branch moves")
        return _undo_rewind(ctx, old, new, head=old, aborting=True, committed_is_safe=True)
    code = _undo_rewind(ctx, old, new, head=old, aborting=True)
    if code == EXIT_OK and old != new:
        _witness_before_rewind(ctx, old, new)
    return code


def _detached_checkout(ctx: HookContext, updates: Sequence[RefUpdate]) -> bool:
    """Is this ``checkout``/``switch`` moving a detached HEAD alone?  (``bisect`` runs ``git checkout``.)

    ``reset`` stays a rewind even on a detached HEAD: it is how work is thrown away.
    """
    commands = ctx.commands()
    return all(u.ref == "HEAD" for u in updates) and bool(commands) and commands[0][0] in ("checkout", "switch")


def _witness_before_rewind(ctx: HookContext, old: str, new: str) -> None:
    """A branch rewound without touching files (``update-ref``, ``reset --soft``): snapshot what they hold.

    The work tree still has ``old``'s protected content, but HEAD no longer does:
    a later ``git reset --hard`` would take HEAD's older version as the state
    before it, unless guardian has seen what was there.
    """
    if ctx.git.ok("merge-base", "--is-ancestor", old, new):
        return  # forward: HEAD gains history, loses none
    engine = ctx.engine()
    names = [
        n
        for n in ctx.git.names("diff", "--name-only", "-z", "--no-renames", old, new)
        if engine.is_protected(ctx.path_of(n))
    ]
    had = ctx.git.tree_entries(old, names)
    sha1_repo = len(old) == 40
    held = {}
    for name, (_mode, oid) in had.items():
        content = current_content(ctx.top / name)
        if content is not None and blob_sha1(content) == (oid if sha1_repo else blob_sha1(ctx.git.blob(oid))):
            held[ctx.path_of(name)] = blob_sha1(content)
    if not held:
        return
    with ctx.project().reader() as (_repo, catalog):
        unseen = [path for path, sha1 in held.items() if (v := catalog.versions_of(path)) == [] or v[-1].blob != sha1]
    if unseen:
        from guardian.gates.githooks.apply import capture_as_left

        trace(f"HEAD rewinds {short(old)} -> {short(new)} without touching {unseen}: snapshotting them")
        capture_as_left(ctx, unseen)


def _stash_update(ctx: HookContext, update: RefUpdate) -> int:
    """Deleting refs/stash (drop of the last entry, pop, clear) discards every entry in its reflog."""
    if not is_zero(update.new):
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
            content = current_content(ctx.top / name)
            if content is not None and blob_sha1(content) == oid:
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
    survivors = [u.new for u in updates if not is_zero(u.new)]
    lost: dict[str, str] = {}
    for update in branches:
        old = update.old if not is_zero(update.old) else ctx.git.rev(update.ref)
        if old is None or old == update.new:
            continue  # a new branch, or no move
        names = names_in_commits(ctx.git, old, survivors, all_refs_but=changing)
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
    decision = judge(ctx, [(path, "modify") for path in sorted(lost)])
    paths = sorted(lost)
    facts = {**facts, "held_by": lost, "decision": decision_facts(decision)}
    if allowed_outright(decision):
        ctx.record("hook", paths, {**facts, "note": "the policy allows discarding these"})
        return EXIT_OK
    if forced_through(decision):
        ctx.record("force", paths, {**facts, "force": True})
        command = ctx.user_command_text()
        say(f"guardian: GUARDIAN_FORCE=1: letting {command} discard protected content: {', '.join(paths)}")
        return EXIT_OK
    ctx.record("block", paths, facts)
    verdicts = {p.path: p for p in decision.paths}
    lines = [f"guardian: refused: `{ctx.user_command_text()}` would discard protected content held only in {what}:"]
    lines += [f"  {path}  in {lost[path]}  ({why(verdicts[path])})" for path in paths]
    lines.append(f"Nothing has been changed. To keep it: {keep}.")
    lines.append(how_to_force(ctx, decision))
    say("\n".join(lines))
    return EXIT_REFUSE


# --------------------------------------------------------------------------- post-checkout


def post_checkout(ctx: HookContext) -> int:
    """After ``checkout -- PATH``, ``checkout .``, ``restore``, a branch switch or ``checkout -f``:
    put back protected files the command rolled back, and fail the command."""
    if len(ctx.args) < 3 or is_zero(ctx.args[0]) or ctx.run_by_rebase():
        return EXIT_OK  # a clone or a new worktree has nothing to lose; a rebase is judged before and after
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
    code, facts = check_rebase_result(ctx) if ctx.args[:1] == ["rebase"] else (EXIT_OK, {})
    _snapshot_and_check(ctx, {"rewritten": len(rewritten), **facts})
    return code


def _snapshot_and_check(ctx: HookContext, facts: dict[str, Any]) -> int:
    """A merge or a rewrite has happened: capture the result, then look for drift from the last valid state."""
    from guardian.gates.guardrail import run_guardrail
    from guardian.ops.snapshot import take_snapshot

    project = ctx.project()
    result = take_snapshot(project, None, "hook", command=ctx.process.text, details={"hook": ctx.name})
    report = run_guardrail(project, None, repair=project.policy.guardrail.repair, trigger="hook")
    drift = [d.to_json() for d in report.drift]
    for d in report.drift:
        mark = " (protected)" if d.protected else ""
        fixed = " - repaired" if d.path in report.repaired else ""
        # A rollback's detail already says what happened ("rolled back to the version of ...").
        what = d.detail if d.problem == "rolled-back" else f"is {d.problem}: {d.detail}"
        say(f"guardian: after {ctx.name}: {d.path}{mark} {what}{fixed}")
    if report.drift and not report.all_repaired:
        say("guardian: run 'guardian check' for details and 'guardian check --repair' to restore")
    changed = [f.path for f in result.files]
    ctx.record("hook", changed, {**facts, "drift": drift[:100]}, result.snapshot)
    return EXIT_OK
