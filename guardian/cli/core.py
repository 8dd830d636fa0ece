"""Core commands: init, status, snapshot, accept, projects, verify."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import click

from guardian.cli.completion import complete_paths
from guardian.cli.group import Context, cli, emit_json, json_option, pass_ctx
from guardian.cli.output import Progress, echo, file_lines, paint, verdict_mark
from guardian.errors import EXIT_FAILED, EXIT_OK, EXIT_STORE_DAMAGED
from guardian.util.times import format_age, format_iso_text, format_size, format_time, with_iso_times

if TYPE_CHECKING:
    from guardian.capture.engine import SnapshotResult

# status --json: these epoch fields become ISO text (no script reads the numbers); elsewhere they gain *_iso.
_STATUS_TIMES = frozenset({"last_snapshot", "last_heartbeat", "ts", "created", "expires"})


@cli.command()
@click.option(
    "--preset",
    default=None,
    help="Policy preset from policies/ for a new guardian.yaml (default: default).",
)
@click.option(
    "--from",
    "from_url",
    metavar="URL",
    default=None,
    help="Recover from a mirror: fetch its snapshots, write the files.",
)
@click.option(
    "--ref", metavar="HOST/PROJECT", default=None, help="With --from: whose snapshots, if the mirror has several."
)
@click.option("--nested", is_flag=True, help="Guard this directory on its own even inside a guarded project.")
@click.option("--no-hooks", is_flag=True, help="In a git repository, do not install guardian's git hooks.")
@json_option
@pass_ctx
def init(
    ctx: Context,
    preset: str | None,
    from_url: str | None,
    ref: str | None,
    nested: bool,
    no_hooks: bool,
    as_json: bool,
) -> int:
    """Create guardian.yaml (if absent) and the store, and take the first snapshot."""
    from guardian.ops.initialize import init_project

    if from_url is not None:
        return _init_from(ctx, from_url, ref, no_hooks, as_json)
    if ref is not None:
        from guardian.errors import UsageError

        raise UsageError("--ref only goes with --from URL")

    progress = Progress("first snapshot", ctx)
    try:
        report = init_project(ctx.cwd, preset, progress=progress, nested=nested)
    finally:
        progress.finish()
    for note in report.notes:
        echo(f"guardian: note: {note}", err=True)
    from guardian.cli.hooks import init_hooks

    hooks_json, hooks_lines = init_hooks(ctx.cwd, no_hooks)
    if as_json:
        emit_json({**report.to_json(), "hooks": hooks_json})
        return EXIT_OK
    echo(f"{'created' if report.created_policy else 'kept existing'} {report.root / 'guardian.yaml'}")
    echo(f"{'created' if report.created_store else 'kept existing'} store {report.store}")
    snap = report.snapshot
    if snap and snap.snapshot:
        echo(f"snapshot {snap.snapshot[:12]}: {len(snap.files)} file(s) captured")
    else:
        echo("nothing changed since the last snapshot")
    if report.secret_scans_queued:
        echo(f"secret scan of {report.secret_scans_queued} file(s) queued for the watcher (or 'guardian snapshot')")
    for line in hooks_lines:
        echo(line)
    return EXIT_OK


def _init_from(ctx: Context, url: str, ref: str | None, no_hooks: bool, as_json: bool) -> int:
    from guardian.cli.hooks import init_hooks
    from guardian.ops.remote import init_from

    report = init_from(ctx.cwd, url, ref=ref, cwd=ctx.cwd)
    # A machine rebuilt from its mirror is guarded as one set up with plain 'guardian init': hooks too.
    hooks_json, hooks_lines = init_hooks(report.root, no_hooks)
    if as_json:
        emit_json({**report.to_json(), "hooks": hooks_json})
        return EXIT_OK
    echo(f"fetched {report.ref} ({report.head[:12]}) from {report.url} into {report.store}")
    echo(f"restored {len(report.restored)} file(s) into {report.root}")
    older = [f"  {p}: its latest snapshot is not valid; restored its last valid version" for p in report.older_valid]
    kept = [f"  kept {p}: it already exists and differs (compare with 'guardian diff {p}')" for p in report.kept]
    skipped = [f"  skipped {path}: {reason}" for path, reason in report.skipped]
    file_lines(ctx, older + kept + skipped, [f"  refused {path}: {reason}" for path, reason in report.refused])
    for line in hooks_lines:
        echo(line)
    return EXIT_OK


@cli.command()
@json_option
@pass_ctx
def status(ctx: Context, as_json: bool) -> int:
    """Show the root, store, snapshots, store size and watcher health."""
    from guardian.query.status import status as get_status

    project = ctx.project()
    result = get_status(project)
    from guardian.gates.githooks.shim import outdated_hooks_note

    hooks_note = outdated_hooks_note(project.root)
    if hooks_note:
        result.notes.append(hooks_note)
    if as_json:
        emit_json(with_iso_times(result.to_json(), _STATUS_TIMES))
        return EXIT_OK
    echo(f"root:      {result.root}")
    echo(f"store:     {result.store}")
    echo(f"repo:      {result.repo}")
    echo(f"snapshots: {result.snapshots} ({result.files} files tracked)")
    if result.last_snapshot:
        echo(
            f"last:      {format_time(result.last_snapshot)} ({format_age(time.time() - result.last_snapshot)}) "
            f"{(result.last_snapshot_id or '')[:12]}"
        )
    usage = result.lifecycle["usage"]
    echo(
        f"size:      {format_size(usage['size'])} (cap {format_size(usage['max_size'])}; "
        f"{format_size(usage['free'])} free on its disk, floor {format_size(usage['min_free'])})"
    )
    gc = result.lifecycle["last_gc"]
    if gc and gc.get("reason") != "start":
        outcome = (
            f"kept {gc.get('kept')}, dropped {gc.get('dropped')}"
            if gc.get("ok")
            else paint(f"FAILED: {gc.get('error')}", "failed")
        )
        echo(f"last gc:   {format_time(gc['ts'])} ({format_age(time.time() - gc['ts'])}): {outcome}")
    else:
        echo("last gc:   never")
    push = result.lifecycle["last_push"]
    if push:
        outcome = "ok" if push.get("ok") else paint(f"FAILED: {push.get('error')}", "failed")
        age = format_age(time.time() - push["ts"])
        echo(f"last push: {push['remote']} {format_time(push['ts'])} ({age}): {outcome}")
    w = result.watcher
    state = f"running (pid {w.get('pid')})" if w.get("running") else "not running"
    if w.get("running") and "heartbeat_age" in w:
        state += f", heartbeat {w['heartbeat_age']}s ago, {w.get('pending', 0)} pending"
    echo(f"watcher:   {state}")
    echo(f"capture:   {_capture_line(result.capture)}")
    in_force = "the accepted copy (see warning)" if result.policy_pending else "guardian.yaml as accepted"
    echo(f"policy:    {in_force}")
    for g in result.grants:
        echo(f"grant:     {g['id']} {g['operation']} {', '.join(g['paths'])} until {format_time(g['expires'])}")
    for e in result.enforced:
        echo(f"enforced:  {format_iso_text(e['ts'])} {e.get('summary') or ', '.join(e['paths'])}")
    for note in result.notes:
        echo(f"note: {note}")
    for warning in result.warnings:
        echo(f"{paint('warning:', 'suspect', err=True)} {warning}", err=True)
    return EXIT_OK


def _capture_line(capture: dict[str, object]) -> str:
    """'ok', or how many captures failed in a row and how many paths are skipped (the warnings say which)."""
    failed, skipping = capture.get("failed_in_a_row") or 0, capture.get("skipping") or 0
    last = capture.get("last_error")
    parts = [paint(f"{failed} failed in a row", "failed")] if failed else []
    if skipping:
        parts.append(paint(f"{skipping} path(s) not captured", "skip"))
    if isinstance(last, dict) and not failed:
        parts.append(f"last failure {format_time(float(last.get('ts', 0)))}, recovered since")
    return ", ".join(parts) or "ok"


def print_snapshot(ctx: Context, result: SnapshotResult) -> None:
    if result.snapshot is None:
        echo("nothing changed since the last snapshot")
    else:
        bad = f", {len(result.bad)} not valid" if result.bad else ""
        echo(f"snapshot {result.snapshot[:12]} ({len(result.files)} file(s){bad})")
    lines = [
        f"  {f.change:<7} {f.path} {format_size(f.size)}{verdict_mark(f.verdict, f.reason)}" for f in result.files
    ]
    bad_lines = [line for line, f in zip(lines, result.files, strict=True) if f.verdict != "valid"]
    good_lines = [line for line, f in zip(lines, result.files, strict=True) if f.verdict == "valid"]
    file_lines(ctx, good_lines, bad_lines + [f"  skipped {path}: {reason}" for path, reason in result.skipped])


@cli.command()
@click.option("-m", "message", default=None, help="A note stored with the snapshot (shown by 'guardian log').")
@click.argument("paths", nargs=-1, shell_complete=complete_paths)
@json_option
@pass_ctx
def snapshot(ctx: Context, message: str | None, paths: tuple[str, ...], as_json: bool) -> int:
    """Take a snapshot now (of PATHS, or of the whole tree) and print the verdicts."""
    from guardian.ops.snapshot import take_snapshot
    from guardian.paths import to_relative
    from guardian.query.paths import require_known_or_present

    project = ctx.project()
    rels = [to_relative(project.root, p, ctx.cwd) for p in paths] or None
    if rels:
        require_known_or_present(project, rels, paths)
    progress = Progress("snapshot", ctx)
    try:
        result = take_snapshot(project, rels, "manual", note=message, progress=progress)
    finally:
        progress.finish()
    if as_json:
        emit_json(result.to_json())
    else:
        print_snapshot(ctx, result)
    return EXIT_OK


@cli.command()
@click.argument("paths", nargs=-1, required=True, shell_complete=complete_paths)
@json_option
@pass_ctx
def accept(ctx: Context, paths: tuple[str, ...], as_json: bool) -> int:
    """Record that the current version of PATHS is intended (e.g. a deliberate large deletion)."""
    from guardian.errors import OperationFailed
    from guardian.ops.snapshot import take_snapshot
    from guardian.paths import to_relative
    from guardian.util.fs import lstat_at

    project = ctx.project()
    rels = [to_relative(project.root, p, ctx.cwd) for p in paths]
    # Accepting a deleted path records that the deletion is intended (the guardrail stops flagging it).
    deleted = [r for r in rels if lstat_at(project.root, r) is None]
    with project.reader() as (_repo, catalog):
        unknown = [t for r, t in zip(rels, paths, strict=True) if r in deleted and not catalog.known_path(r)]
    if unknown:
        raise OperationFailed(f"cannot accept '{unknown[0]}': it does not exist and never did in any snapshot")
    result = take_snapshot(project, rels, "accept", accept=[r for r in rels if r not in deleted])
    project.events.append("accept", rels, result.snapshot, "accept", {"deleted": deleted} if deleted else {})
    if as_json:
        emit_json(result.to_json())
    else:
        file_lines(ctx, [f"accepted {rel} as valid in snapshot {(result.snapshot or '')[:12]}" for rel in rels])
    return EXIT_OK


@cli.command()
@json_option
def projects(as_json: bool) -> int:
    """List every project with a store under GUARDIAN_HOME, and where each was moved from."""
    from guardian.query.status import list_projects

    found = list_projects()
    if as_json:
        emit_json([p.to_json() for p in found])
        return EXIT_OK
    if not found:
        echo("no guarded projects (run 'guardian init' in a project)")
    for p in found:
        if p.replaced:
            exists = f"  (a new project took that path {format_iso_text(str(p.replaced.get('ts', '')))}; kept here)"
        else:
            exists = "" if p.root_exists else "  (root is gone)"
        last = format_time(p.last_snapshot) if p.last_snapshot else "never"
        echo(f"{p.root}  {p.snapshots} snapshot(s), last {last}{exists}")
        for move in p.moved_from:
            echo(f"  moved from {move.get('root')} ({format_iso_text(str(move.get('ts', '')))})")
    return EXIT_OK


@cli.command()
@click.option(
    "--repair", is_flag=True, help="Rebuild derived data from git, clear dead locks, return to the last good snapshot."
)
@json_option
@pass_ctx
def verify(ctx: Context, repair: bool, as_json: bool) -> int:
    """Check the store: objects, ref, catalog, locks, and a test restore of the latest snapshot."""
    from guardian.ops.verify import verify as do_verify

    report = do_verify(ctx.project(), repair)
    if as_json:
        emit_json(report.to_json())
    else:
        for line in report.repaired:
            echo(f"repaired: {line}")
        for line in report.warnings:
            echo(f"{paint('warning:', 'suspect')} {line}")
        for line in report.problems:
            echo(f"{paint('DAMAGE:', 'damage', err=True)} {line}", err=True)
        if report.ok:
            echo(f"store ok: {report.snapshots} snapshot(s), test restore of {report.test_restored_files} file(s)")
    if not report.ok:
        if not as_json:
            echo("guardian: error: the store is damaged; run 'guardian verify --repair'", err=True)
        return EXIT_STORE_DAMAGED
    return EXIT_OK if report.ok else EXIT_FAILED
