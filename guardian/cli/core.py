"""Core commands: init, status, snapshot, log, history, show, diff, restore, accept, events, projects, verify."""

from __future__ import annotations

import base64
import sys
import time

import click

from guardian.cli.base import Context, DelayedProgress, cli, emit_json, json_option, pass_ctx
from guardian.errors import EXIT_FAILED, EXIT_OK, EXIT_STORE_DAMAGED
from guardian.util.times import format_age, format_size, format_time, parse_time


@cli.command()
@click.option(
    "--preset", default="default", show_default=True, help="Policy preset from policies/ for a new guardian.yaml."
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
@json_option
@pass_ctx
def init(ctx: Context, preset: str, from_url: str | None, ref: str | None, as_json: bool) -> int:
    """Create guardian.yaml (if absent) and the store, and take the first snapshot."""
    from guardian.ops.initialize import init_project

    if from_url is not None:
        return _init_from(ctx, from_url, ref, as_json)
    if ref is not None:
        from guardian.errors import UsageError

        raise UsageError("--ref only goes with --from URL")

    progress = DelayedProgress("first snapshot")
    report = init_project(ctx.cwd, preset, progress=progress)
    progress.finish()
    if as_json:
        emit_json(report.to_json())
        return EXIT_OK
    click.echo(f"{'created' if report.created_policy else 'kept existing'} {report.root / 'guardian.yaml'}")
    click.echo(f"{'created' if report.created_store else 'kept existing'} store {report.store}")
    snap = report.snapshot
    if snap and snap.snapshot:
        click.echo(f"snapshot {snap.snapshot[:12]}: {len(snap.files)} file(s) captured")
    else:
        click.echo("nothing changed since the last snapshot")
    return EXIT_OK


def _init_from(ctx: Context, url: str, ref: str | None, as_json: bool) -> int:
    from guardian.ops.remote import init_from

    report = init_from(ctx.cwd, url, ref=ref, cwd=ctx.cwd)
    if as_json:
        emit_json(report.to_json())
        return EXIT_OK
    click.echo(f"fetched {report.ref} ({report.head[:12]}) from {report.url} into {report.store}")
    click.echo(f"restored {len(report.restored)} file(s) into {report.root}")
    for path in report.older_valid:
        click.echo(f"  {path}: its latest snapshot is not valid; restored its last valid version")
    for path in report.kept:
        click.echo(f"  kept {path}: it already exists and differs (compare with 'guardian diff {path}')")
    for path, reason in report.refused:
        click.echo(f"  refused {path}: {reason}")
    return EXIT_OK


@cli.command()
@json_option
@pass_ctx
def status(ctx: Context, as_json: bool) -> int:
    """Show the root, store, snapshots, store size and watcher health."""
    from guardian.query.status import status as get_status

    result = get_status(ctx.project())
    if as_json:
        emit_json(result.to_json())
        return EXIT_OK
    click.echo(f"root:      {result.root}")
    click.echo(f"store:     {result.store}")
    click.echo(f"repo:      {result.repo}")
    click.echo(f"snapshots: {result.snapshots} ({result.files} files tracked)")
    if result.last_snapshot:
        click.echo(
            f"last:      {format_time(result.last_snapshot)} ({format_age(time.time() - result.last_snapshot)}) "
            f"{(result.last_snapshot_id or '')[:12]}"
        )
    usage = result.lifecycle["usage"]
    click.echo(
        f"size:      {format_size(usage['size'])} (cap {format_size(usage['max_size'])}; "
        f"{format_size(usage['free'])} free on its disk, floor {format_size(usage['min_free'])})"
    )
    gc = result.lifecycle["last_gc"]
    if gc and gc.get("reason") != "start":
        outcome = (
            f"kept {gc.get('kept')}, dropped {gc.get('dropped')}" if gc.get("ok") else f"FAILED: {gc.get('error')}"
        )
        click.echo(f"last gc:   {format_time(gc['ts'])} ({format_age(time.time() - gc['ts'])}): {outcome}")
    else:
        click.echo("last gc:   never")
    push = result.lifecycle["last_push"]
    if push:
        outcome = "ok" if push.get("ok") else f"FAILED: {push.get('error')}"
        click.echo(
            f"last push: {push['remote']} {format_time(push['ts'])} ({format_age(time.time() - push['ts'])}): {outcome}"
        )
    w = result.watcher
    state = f"running (pid {w.get('pid')})" if w.get("running") else "not running"
    if w.get("running") and "heartbeat_age" in w:
        state += f", heartbeat {w['heartbeat_age']}s ago, {w.get('pending', 0)} pending"
    click.echo(f"watcher:   {state}")
    in_force = "the accepted copy (see warning)" if result.policy_pending else "guardian.yaml as accepted"
    click.echo(f"policy:    {in_force}")
    for g in result.grants:
        click.echo(f"grant:     {g['id']} {g['operation']} {', '.join(g['paths'])} until {format_time(g['expires'])}")
    for e in result.enforced:
        click.echo(f"enforced:  {e['ts'][:19]} {e.get('summary') or ', '.join(e['paths'])}")
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    return EXIT_OK


def _print_snapshot(result: object) -> None:
    from guardian.capture.engine import SnapshotResult

    assert isinstance(result, SnapshotResult)
    if result.snapshot is None:
        click.echo("nothing changed since the last snapshot")
    else:
        click.echo(f"snapshot {result.snapshot[:12]} ({len(result.files)} file(s))")
    for f in result.files:
        mark = "" if f.verdict == "valid" else f"  {f.verdict.upper()}: {f.reason}"
        click.echo(f"  {f.change:<7} {f.path} {format_size(f.size)}{mark}")
    for path, reason in result.skipped:
        click.echo(f"  skipped {path}: {reason}")


@cli.command()
@click.option("-m", "message", default=None, help="A note stored with the snapshot.")
@click.argument("paths", nargs=-1)
@json_option
@pass_ctx
def snapshot(ctx: Context, message: str | None, paths: tuple[str, ...], as_json: bool) -> int:
    """Take a snapshot now (of PATHS, or of the whole tree) and print the verdicts."""
    from guardian.ops.snapshot import take_snapshot
    from guardian.paths import to_relative

    project = ctx.project()
    rels = [to_relative(project.root, p, ctx.cwd) for p in paths] or None
    progress = DelayedProgress("snapshot")
    result = take_snapshot(project, rels, "manual", note=message, progress=progress)
    progress.finish()
    if as_json:
        emit_json(result.to_json())
    else:
        _print_snapshot(result)
    return EXIT_OK


@cli.command()
@click.argument("path", required=False)
@click.option("-n", "limit", type=click.IntRange(min=1), default=None, help="Show at most N snapshots.")
@click.option("--since", default=None, help="Only snapshots at or after this time (e.g. 2h, 2026-11-21T10:00).")
@click.option("--until", default=None, help="Only snapshots at or before this time.")
@json_option
@pass_ctx
def log(ctx: Context, path: str | None, limit: int | None, since: str | None, until: str | None, as_json: bool) -> int:
    """List snapshots, newest first; with --since/--until, say what changed in that window."""
    from guardian.query.history import log as get_log

    t_since = parse_time(since, "--since") if since else None
    t_until = parse_time(until, "--until") if until else None
    entries, window = get_log(ctx.project(), path, cwd=ctx.cwd, limit=limit, since=t_since, until=t_until)
    if as_json:
        emit_json({"snapshots": [e.to_json() for e in entries], "window": window.to_json() if window else None})
        return EXIT_OK
    for e in entries:
        s = e.snapshot
        mark = f"  !{len(e.bad)} not valid" if e.bad else ""
        click.echo(f"{s.id[:12]}  {format_time(s.ts)}  {s.trigger:<11} {s.nchanged:>5} file(s){mark}  {s.summary}")
        for v in e.bad:
            click.echo(f"    {v.verdict}: {v.path}: {v.reason}")
    if window is not None:
        click.echo(
            f"\nin this window: {len(window.changed)} changed, {len(window.deleted)} deleted, "
            f"{len(window.became_bad)} not valid"
        )
        for p in window.deleted:
            click.echo(f"  deleted  {p}")
        for p, verdict, reason in window.became_bad:
            click.echo(f"  {verdict:<8} {p}: {reason}")
    return EXIT_OK


@cli.command()
@click.argument("path")
@json_option
@pass_ctx
def history(ctx: Context, path: str, as_json: bool) -> int:
    """Show a file's timeline and a one-line diagnosis: never worked, or worked then broke."""
    from guardian.query.history import file_history

    h = file_history(ctx.project(), path, ctx.cwd)
    if as_json:
        emit_json(h.to_json())
        return EXIT_OK
    click.echo(f"{h.path}  {h.sparkline}")
    for v in h.versions:
        from guardian.query.history import _event_word

        mark = "" if v.verdict == "valid" else f"  {v.verdict.upper()}: {v.reason}"
        click.echo(
            f"  {format_time(v.ts)}  {v.snapshot[:12]}  {_event_word(v):<8} {format_size(v.size):>9}  "
            f"({v.trigger}){mark}"
        )
    if h.git_commits:
        click.echo("git commits touching it:")
        for line in h.git_commits:
            click.echo(f"  {line}")
    click.echo(f"diagnosis: {h.diagnosis}")
    return EXIT_OK


@cli.command()
@click.argument("path")
@click.option("--at", "at", metavar="SNAP", default=None, help="Snapshot id (default: the latest valid version).")
@json_option
@pass_ctx
def show(ctx: Context, path: str, at: str | None, as_json: bool) -> int:
    """Print a snapshotted version of PATH."""
    from guardian.query.history import show as get_show

    rel, snap, data = get_show(ctx.project(), path, at, ctx.cwd)
    if as_json:
        try:
            payload = {"encoding": "utf-8", "content": data.decode("utf-8")}
        except UnicodeDecodeError:
            payload = {"encoding": "base64", "content": base64.b64encode(data).decode()}
        emit_json({"path": rel, "snapshot": snap, "size": len(data), **payload})
        return EXIT_OK
    sys.stdout.buffer.write(data)
    sys.stdout.flush()
    return EXIT_OK


@cli.command()
@click.argument("path")
@click.option("--at", "at", metavar="SNAP", default=None, help="Snapshot id (default: the latest valid version).")
@json_option
@pass_ctx
def diff(ctx: Context, path: str, at: str | None, as_json: bool) -> int:
    """Unified diff from a snapshotted version of PATH to the working file."""
    from guardian.query.history import diff as get_diff

    text = get_diff(ctx.project(), path, at, ctx.cwd)
    if as_json:
        emit_json({"path": path, "diff": text, "identical": text == ""})
        return EXIT_OK
    click.echo(text, nl=False)
    return EXIT_OK


@cli.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--at", "at", metavar="SNAP", default=None, help="Restore from this snapshot instead.")
@click.option("--before", default=None, help="Latest valid version before this time (e.g. 2h, 2026-11-21T10:00).")
@click.option("--dry-run", is_flag=True, help="Say what would be restored, change nothing.")
@click.option("--force", is_flag=True, help="Restore protected paths whose policy says restore: force.")
@click.option("--from-remote", is_flag=True, help="Pick versions from the mirror's history (see 'guardian push').")
@click.option("--remote", "remote", metavar="NAME", default=None, help="With --from-remote: which remote.")
@click.option("--ref", metavar="HOST/PROJECT", default=None, help="With --from-remote: another machine's snapshots.")
@json_option
@pass_ctx
def restore(
    ctx: Context,
    paths: tuple[str, ...],
    at: str | None,
    before: str | None,
    dry_run: bool,
    force: bool,
    from_remote: bool,
    remote: str | None,
    ref: str | None,
    as_json: bool,
) -> int:
    """Bring back the latest valid version of each PATH (a bare file name is found anywhere in history)."""
    from guardian.errors import UsageError
    from guardian.ops.restore import restore as do_restore

    if at and before:
        raise UsageError("--at and --before cannot be used together; pick one")
    if (remote or ref) and not from_remote:
        raise UsageError("--remote and --ref only go with --from-remote")
    t_before = parse_time(before, "--before") if before else None
    if from_remote:
        from guardian.ops.remote import restore_from_remote

        report = restore_from_remote(
            ctx.project(),
            paths,
            remote=remote,
            ref=ref,
            cwd=ctx.cwd,
            at=at,
            before=t_before,
            dry_run=dry_run,
            force=force,
        )
    else:
        report = do_restore(ctx.project(), paths, cwd=ctx.cwd, at=at, before=t_before, dry_run=dry_run, force=force)
    if as_json:
        emit_json(report.to_json())
        return EXIT_OK
    verb = "would restore" if dry_run else "restored"
    for f in report.files:
        click.echo(
            f"{verb} {f.path} from snapshot {f.snapshot[:12]} ({format_time(f.time)}): "
            f"{format_size(f.size_before) if f.size_before is not None else 'missing'} -> {format_size(f.size_after)}"
        )
    if report.pre_snapshot:
        click.echo(f"the state before this restore is snapshot {report.pre_snapshot[:12]} (undo with --at it)")
    return EXIT_OK


@cli.command()
@click.argument("paths", nargs=-1, required=True)
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
        for rel in rels:
            click.echo(f"accepted {rel} as valid in snapshot {(result.snapshot or '')[:12]}")
    return EXIT_OK


@cli.command()
@click.option("-n", "limit", type=click.IntRange(min=1), default=50, show_default=True, help="Show the last N events.")
@click.option("--kind", default="", help="Comma-separated kinds, e.g. rollback,force,block,hook,agent.")
@click.option("--path", "path", default=None, help="Only events about this path (or under this directory).")
@json_option
@pass_ctx
def events(ctx: Context, limit: int, kind: str, path: str | None, as_json: bool) -> int:
    """Show the append-only event log: who did what, when, and what was decided."""
    from guardian.events import check_kinds

    project = ctx.project()
    kinds = check_kinds([k.strip() for k in kind.split(",") if k.strip()])
    records = project.events.tail(limit, kinds, path)
    if as_json:
        emit_json([r.to_json() for r in records])
        return EXIT_OK
    for r in records:
        snap = (r.snapshot or "")[:12]
        who = r.details.get("user", "?")
        paths = ", ".join(r.paths[:5]) + (f" (+{len(r.paths) - 5})" if len(r.paths) > 5 else "")
        what = r.details.get("summary") or r.details.get("message") or r.details.get("reason") or ""
        if not what:
            extra = {k: v for k, v in r.details.items() if k not in ("user", "pid", "argv", "decision", "files")}
            what = " ".join(f"{k}={v}" for k, v in list(extra.items())[:4])
        click.echo(f"{r.ts}  {who:<8} {r.event:<14} {r.trigger or '-':<11} {snap:<12} {paths}  {what}".rstrip())
    return EXIT_OK


@cli.command()
@json_option
def projects(as_json: bool) -> int:
    """List every project with a store under GUARDIAN_HOME."""
    from guardian.query.status import list_projects

    found = list_projects()
    if as_json:
        emit_json([p.to_json() for p in found])
        return EXIT_OK
    if not found:
        click.echo("no guarded projects (run 'guardian init' in a project)")
    for p in found:
        exists = "" if p.root_exists else "  (root is gone)"
        last = format_time(p.last_snapshot) if p.last_snapshot else "never"
        click.echo(f"{p.root}  {p.snapshots} snapshot(s), last {last}{exists}")
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
            click.echo(f"repaired: {line}")
        for line in report.warnings:
            click.echo(f"warning: {line}")
        for line in report.problems:
            click.echo(f"DAMAGE: {line}", err=True)
        if report.ok:
            click.echo(
                f"store ok: {report.snapshots} snapshot(s), test restore of {report.test_restored_files} file(s)"
            )
    if not report.ok:
        if not as_json:
            click.echo("guardian: error: the store is damaged; run 'guardian verify --repair'", err=True)
        return EXIT_STORE_DAMAGED
    return EXIT_OK if report.ok else EXIT_FAILED
