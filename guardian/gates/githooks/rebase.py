"""Rebases: judged by the content they move back, before they start and once they are done.

A rebase replays the branch's own commits onto a new base.  It moves protected
content back only where the new base has an older version of a path those commits do
not touch (``rebase --onto`` an older commit, an upstream that reverted a file), or
where the replay loses what those commits did (``rebase -i`` dropping one, a
``--skip``, a conflict resolved to the old side).  ``git rebase main`` over a main
that fixed a file, and ``pull --rebase`` over the person's own newer commits, move
nothing back and pass.

- ``pre-rebase UPSTREAM [BRANCH]`` predicts the first kind from the trees (git passes
  the upstream; ``--onto`` is read from the rebase's command line) and refuses before
  anything is touched.
- ``post-rewrite rebase`` compares the result with the branch as it was
  (``rebase-merge/orig-head``) for the paths the branch's own commits changed.  The
  rebase is done by then; protected content it dropped is written back into the work
  tree (HEAD stays), and the message says how to commit it or let it go.

The rebase's intermediate steps (its ref updates and checkouts) are not judged:
``HookContext.run_by_rebase``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from guardian.errors import EXIT_OK
from guardian.gates.githooks.age import AgeBook
from guardian.gates.githooks.context import EXIT_REFUSE, HookContext, say, short
from guardian.gates.githooks.gitcli import Git
from guardian.gates.githooks.judge import (
    allowed_outright,
    decision_facts,
    forced_through,
    grant_forced_paths,
    how_to_force,
    judge,
    refusal_lines,
    why,
)
from guardian.gates.githooks.source import Loss, Source, blob_sha1, current_content

if TYPE_CHECKING:
    from guardian.policy import ChangeKind


def names_in_commits(git: Git, tip: str, exclude: Sequence[str], all_refs_but: Sequence[str] | None = None) -> set[str]:
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


def _sha1(ctx: HookContext, oid: str) -> str:
    return oid if len(oid) == 40 else blob_sha1(ctx.git.blob(oid))


def _moving_back(
    ctx: HookContext, names: Sequence[str], before: str, after: str
) -> list[tuple[str, ChangeKind, tuple[int, str] | None]]:
    """(path, change, what ``before`` had) for each of ``names`` that ``after`` deletes or holds older."""
    had = ctx.git.tree_entries(before, names)
    gets = ctx.git.tree_entries(after, names)
    found: list[tuple[str, ChangeKind, tuple[int, str] | None]] = []
    book = AgeBook(ctx)
    for name in names:
        if name not in had:
            continue  # the branch did not have it: nothing of it is lost
        if name not in gets:
            found.append((name, "delete", had[name]))
            continue
        if book.older(ctx.path_of(name), _sha1(ctx, gets[name][1]), _sha1(ctx, had[name][1])):
            found.append((name, "modify", had[name]))
    return found


def _onto(ctx: HookContext, upstream: str) -> str:
    """The commit the rebase puts the branch on: ``--onto`` from its command line, else the upstream."""
    for name, args in ctx.commands():
        if name != "rebase":
            continue
        for i, word in enumerate(args):
            if word.startswith("--onto="):
                spec = word[len("--onto=") :]
            elif word == "--onto" and i + 1 < len(args):
                spec = args[i + 1]
            else:
                continue
            return ctx.git.rev(spec + "^{commit}") or upstream
    return upstream


def pre_rebase(ctx: HookContext) -> int:
    """Refuse a rebase whose new base would move protected content back, before it touches anything."""
    if not ctx.args or not ctx.args[0]:
        return EXIT_OK  # --root: no upstream to compare with; post-rewrite judges the result
    upstream = ctx.git.rev(ctx.args[0] + "^{commit}")
    branch = ctx.git.rev((ctx.args[1] if len(ctx.args) > 1 and ctx.args[1] else "HEAD") + "^{commit}")
    if upstream is None or branch is None:
        return EXIT_OK  # git will fail on its own
    onto = _onto(ctx, upstream)
    replayed = names_in_commits(ctx.git, branch, [upstream])
    changing = set(ctx.git.names("diff", "--name-only", "-z", "--no-renames", branch, onto))
    engine = ctx.engine()
    candidates = sorted(p for p in changing - replayed if engine.is_protected(ctx.path_of(p)))
    back = _moving_back(ctx, candidates, branch, onto) if candidates else []
    if not back:
        return EXIT_OK
    changes: list[tuple[str, ChangeKind]] = [(ctx.path_of(p), change) for p, change, _had in back]
    decision = judge(ctx, changes)
    paths = [p for p, _c in changes]
    facts: dict[str, Any] = {"upstream": upstream, "onto": onto, "branch": branch, "decision": decision_facts(decision)}
    if allowed_outright(decision):
        ctx.record("hook", paths, {**facts, "note": "the policy allows moving these back"})
        return EXIT_OK
    if forced_through(decision):
        facts["grants"] = grant_forced_paths(ctx, decision)
        ctx.record("force", paths, {**facts, "force": True})
        say(f"guardian: GUARDIAN_FORCE=1: letting the rebase move protected paths back: {', '.join(paths)}")
        return EXIT_OK
    ctx.record("block", paths, facts)
    say(
        "\n".join(
            [
                f"guardian: refused: this rebase would move protected paths back to older versions "
                f"(onto {short(onto)}):",
                *refusal_lines(decision),
                "Nothing has been changed.",
                how_to_force(ctx, decision),
            ]
        )
    )
    return EXIT_REFUSE


def _original_tip(ctx: HookContext) -> str | None:
    for state in ("rebase-merge", "rebase-apply"):
        try:
            text = (ctx.git_dir / state / "orig-head").read_text(encoding="ascii").strip()
        except OSError:
            continue
        if text:
            return text
    return ctx.git.rev("ORIG_HEAD")


def check_rebase_result(ctx: HookContext) -> tuple[int, dict[str, Any]]:
    """After a rebase: put back protected changes of the branch's own commits that the result lost.

    Returns (exit code, facts for the post-rewrite event).
    """
    orig, head = _original_tip(ctx), ctx.git.rev("HEAD")
    if orig is None or head is None or orig == head:
        return EXIT_OK, {}
    base = os.fsdecode(ctx.git.run("merge-base", orig, head, check=False).strip())
    mine = names_in_commits(ctx.git, orig, [base]) if base else set()
    engine = ctx.engine()
    changed = set(ctx.git.names("diff", "--name-only", "-z", "--no-renames", orig, head))
    candidates = sorted(p for p in changed & mine if engine.is_protected(ctx.path_of(p)))
    back = _moving_back(ctx, candidates, orig, head) if candidates else []
    if not back:
        return EXIT_OK, {}
    changes: list[tuple[str, ChangeKind]] = [(ctx.path_of(p), change) for p, change, _had in back]
    decision = judge(ctx, changes)
    paths = [p for p, _c in changes]
    facts: dict[str, Any] = {"orig_head": orig, "head": head, "decision": decision_facts(decision)}
    if allowed_outright(decision):
        return EXIT_OK, {**facts, "moved_back": paths}
    if forced_through(decision):
        facts["grants"] = grant_forced_paths(ctx, decision)
        ctx.record("force", paths, {**facts, "force": True})
        say(f"guardian: GUARDIAN_FORCE=1: letting the rebase drop protected changes: {', '.join(paths)}")
        return EXIT_OK, {}
    from guardian.gates.githooks.apply import put_back  # writes: the ops layer loads only here

    refused = {p.path for p in decision.paths if p.outcome != "allow"}
    losses = []
    for name, _change, had in back:
        if ctx.path_of(name) in refused and had is not None:
            source = Source("git", had[1], _sha1(ctx, had[1]), had[0], commit=orig)
            losses.append(Loss(ctx.path_of(name), name, current_content(ctx.top / name) is not None, source))
    pre, post = put_back(ctx, losses, head)
    facts.update(restored={loss.path: loss.source.describe() for loss in losses}, pre_snapshot=pre)
    ctx.record("block", paths, facts, post)
    verdicts = {p.path: p for p in decision.paths}
    lines = [f"guardian: the rebase dropped protected changes of {short(orig)}; guardian put them back:"]
    lines += [
        f"  {loss.path}  -> restored from {loss.source.describe()}  ({why(verdicts[loss.path])})" for loss in losses
    ]
    lines.append(
        "The rebase itself is done. These files now hold your branch's version as uncommitted changes: "
        "commit them (git commit -a), or drop them with GUARDIAN_FORCE=1 git checkout -- PATH."
    )
    say("\n".join(lines))
    return EXIT_REFUSE, {}
