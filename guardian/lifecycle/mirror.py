"""The off-machine mirror: push the snapshot ref to any git remote, and recover files from one.

Each store pushes its ``refs/heads/snapshots`` to ``refs/guardian/<host>/<project>`` on the
remote (host: this machine's name; project: the store's directory name), so many machines
and projects share one bare repository without touching each other's refs.  The push is
forced: gc rewrites history, and the ref belongs to this store alone.

Transfers use the git command, not libgit2: ssh URLs then work exactly as ``git push`` does
for the user (their ssh config, agent, known_hosts, credential helpers), where pygit2 would
need credential callbacks and has no ssh config support.  The remotes themselves live in the
store repository's own git config (``remote.<name>.url``), so stock git sees them too.

The watcher never waits for a push: ``maybe_push`` runs on the maintenance thread
(lifecycle.Maintenance), bounded by a timeout, and failed pushes are retried with backoff.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guardian.errors import GuardianError, LockHeld, OperationFailed, PathRefused, UsageError
from guardian.lifecycle.gc import catalog_for, maintenance_lock
from guardian.project import Project, ProjectPaths, make_store_dir, write_project_meta
from guardian.util.fs import atomic_write_file, lstat_at

if TYPE_CHECKING:
    from guardian.ops.restore import RestoreReport
    from guardian.store.repo import Entry, ShadowRepo

REF_ROOT = "refs/guardian"
PUSH_TIMEOUT = 600.0  # one `guardian push`
BACKGROUND_TIMEOUT = 300.0  # one push from the watcher
FETCH_TIMEOUT = 600.0
PUSH_ATTEMPTS = 3
PUSH_BACKOFF = 2.0  # seconds before the second attempt; doubles
RETRY_BASE = 30.0  # the watcher's first retry after a failed push; doubles up to mirror.interval
MAINTENANCE_WAIT = 30.0

_REMOTE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_SCP_LIKE = re.compile(r"^[^/:]+:")  # host:path or user@host:path, as git reads it
_REF_PART = re.compile(r"[^A-Za-z0-9._-]+")


# --------------------------------------------------------------------------- names


def _ref_component(text: str, fallback: str) -> str:
    part = re.sub(r"\.{2,}", ".", _REF_PART.sub("-", text))
    while True:  # git refuses a component that starts with '.' or ends with '.lock'
        trimmed = part.strip(".-").removesuffix(".lock")
        if trimmed == part:
            return part or fallback
        part = trimmed


def host_name() -> str:
    return _ref_component(socket.gethostname(), "host")


def mirror_ref(project: Project) -> str:
    """This store's ref on a remote: refs/guardian/<host>/<project>."""
    return f"{REF_ROOT}/{host_name()}/{_ref_component(project.paths.store.name, 'project')}"


def check_remote_name(name: str) -> str:
    if not _REMOTE_NAME.match(name) or name.endswith(".lock"):
        raise UsageError(f"'{name}' is not a usable remote name; use letters, digits, '.', '_' or '-' (e.g. backup)")
    return name


def normalize_url(url: str, cwd: Path) -> str:
    """A URL git can use from any directory: relative local paths become absolute."""
    if not url.strip() or url.startswith("-") or any(c in url for c in "\n\r\0"):
        raise UsageError(f"'{url}' is not a git URL; give a path, ssh://host/path, host:path or git://host/path")
    if "://" in url or _SCP_LIKE.match(url):
        return url
    path = Path(url).expanduser()
    return os.path.normpath(path if path.is_absolute() else cwd / path)


# --------------------------------------------------------------------------- running git


def _git(
    args: Sequence[str],
    *,
    git_dir: Path | None = None,
    timeout: float,
    interactive: bool = False,
) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("git")
    if exe is None:
        raise OperationFailed("the mirror needs the git command, which is not installed; install git and retry")
    command = [exe, *(["--git-dir", str(git_dir)] if git_dir is not None else []), *args]
    env = dict(os.environ)
    if not interactive:
        env["GIT_TERMINAL_PROMPT"] = "0"  # a background push must fail, not wait for a password
    try:
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            env=env,
            stdin=None if interactive else subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise OperationFailed(f"git {args[0]} gave no answer within {timeout:.0f}s; check the remote") from None


def _git_error(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [line.strip() for line in (proc.stderr or proc.stdout).splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("fatal:", "error:", "!", "remote: error"))]
    useful = errors[:3] or [line for line in lines if not line.startswith(("hint:", "To ", "Done"))][-3:]
    text = "; ".join(useful) or f"git exited with status {proc.returncode}"
    if "non-fast-forward" in text or "denyNonFastForwards" in text:
        text += (
            " (guardian's gc rewrites history, so the mirror must accept forced updates: "
            "run 'git config receive.denyNonFastForwards false' in the mirror repository)"
        )
    return text


# --------------------------------------------------------------------------- remotes


@dataclass(frozen=True)
class RemoteInfo:
    name: str
    url: str
    ref: str
    last_push: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "ref": self.ref, "last_push": self.last_push}


def add_remote(project: Project, name: str, url: str, cwd: Path | None = None) -> RemoteInfo:
    check_remote_name(name)
    url = normalize_url(url, cwd or Path.cwd())
    repo = project.open_repo()
    existing = repo.remotes()
    if name in existing:
        raise UsageError(
            f"remote '{name}' already exists ({existing[name]}); remove it first with 'guardian remote remove {name}'"
        )
    with project.writer_lock():
        repo.set_remote(name, url)
    return RemoteInfo(name, url, mirror_ref(project))


def remove_remote(project: Project, name: str) -> RemoteInfo:
    repo = project.open_repo()
    existing = repo.remotes()
    if name not in existing:
        raise UsageError(_no_such_remote(name, existing))
    with project.writer_lock():
        repo.remove_remote(name)
    return RemoteInfo(name, existing[name], mirror_ref(project))


def list_remotes(project: Project) -> list[RemoteInfo]:
    state = read_push_state(project).get("remotes", {})
    ref = mirror_ref(project)
    return [RemoteInfo(name, url, ref, state.get(name)) for name, url in project.open_repo().remotes().items()]


def _no_such_remote(name: str, existing: dict[str, str]) -> str:
    known = f" (configured: {', '.join(existing)})" if existing else ""
    return f"no remote '{name}'{known}; add it with 'guardian remote add {name} URL'"


def choose_remote(project: Project, name: str | None) -> tuple[str, str]:
    """(name, URL): the one named, else mirror.remote from the policy, else the only one."""
    remotes = project.open_repo().remotes()
    wanted = name or project.policy.mirror.remote or None
    if wanted is not None:
        if wanted not in remotes:
            where = "" if name else " (mirror.remote in guardian.yaml)"
            raise UsageError(_no_such_remote(wanted, remotes) + where)
        return wanted, remotes[wanted]
    if not remotes:
        raise UsageError("no remote to push to; add one with 'guardian remote add NAME URL'")
    if len(remotes) > 1:
        raise UsageError(
            f"{len(remotes)} remotes are configured ({', '.join(remotes)}); name one, "
            "or set mirror.remote in guardian.yaml"
        )
    return next(iter(remotes.items()))


# --------------------------------------------------------------------------- push


@dataclass
class PushResult:
    remote: str
    url: str
    ref: str
    head: str | None
    ok: bool
    up_to_date: bool = False
    attempts: int = 0
    duration: float = 0.0
    error: str | None = None
    errors: list[str] = field(default_factory=list)
    ts: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "remote": self.remote,
            "url": self.url,
            "ref": self.ref,
            "head": self.head,
            "ok": self.ok,
            "up_to_date": self.up_to_date,
            "attempts": self.attempts,
            "duration": round(self.duration, 3),
            "error": self.error,
            "ts": self.ts,
        }


def _push_state_path(project: Project) -> Path:
    return project.paths.store / "mirror.json"


def read_push_state(project: Project) -> dict[str, Any]:
    try:
        raw = json.loads(_push_state_path(project).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


def _record_push(project: Project, result: PushResult, next_attempt: float | None = None) -> None:
    state = read_push_state(project)
    state["last"] = result.to_json()
    state.setdefault("remotes", {})[result.remote] = result.to_json()
    state["failures"] = 0 if result.ok else int(state.get("failures", 0)) + 1
    if next_attempt is not None:
        state["next_attempt"] = next_attempt
    try:
        atomic_write_file(_push_state_path(project), (json.dumps(state, indent=2) + "\n").encode())
    except OSError:
        pass  # the event below still records it
    details = result.to_json()
    if result.errors:
        details["errors"] = result.errors
    project.events.append("push", [], result.head, "push", details)


def push(
    project: Project,
    name: str | None = None,
    *,
    attempts: int | None = None,
    backoff: float | None = None,
    timeout: float = PUSH_TIMEOUT,
    interactive: bool = True,
    lock_timeout: float = MAINTENANCE_WAIT,
    record: bool = True,
    check: bool = True,
) -> PushResult:
    """Push the snapshot ref to refs/guardian/<host>/<project> on a remote, retrying with backoff.

    With check, a push that failed every attempt raises OperationFailed (after it is recorded).
    """
    attempts = PUSH_ATTEMPTS if attempts is None else attempts
    backoff = PUSH_BACKOFF if backoff is None else backoff
    remote, url = choose_remote(project, name)
    repo = project.open_repo()
    ref = mirror_ref(project)
    result = PushResult(remote, url, ref, repo.head(), ok=False, ts=time.time())
    if result.head is None:
        raise OperationFailed("nothing to push: this store has no snapshots yet; run 'guardian snapshot' first")
    started = time.monotonic()
    with maintenance_lock(project, lock_timeout):
        for attempt in range(1, attempts + 1):
            result.attempts = attempt
            try:
                proc = _git(
                    ["push", "--porcelain", remote, f"+refs/heads/snapshots:{ref}"],
                    git_dir=project.paths.repo,
                    timeout=timeout,
                    interactive=interactive,
                )
            except OperationFailed as exc:
                error = str(exc)
            else:
                if proc.returncode == 0:
                    result.ok = True
                    result.up_to_date = "[up to date]" in proc.stdout
                    result.error = None
                    break
                error = _git_error(proc)
            result.error = error
            result.errors.append(error)
            if attempt < attempts:
                time.sleep(backoff * 2 ** (attempt - 1))
    result.duration = time.monotonic() - started
    if record:
        _record_push(project, result)
    if check and not result.ok:
        raise OperationFailed(f"push to '{remote}' ({url}) failed after {result.attempts} attempt(s): {result.error}")
    return result


def maybe_push(project: Project, now: float | None = None) -> PushResult | None:
    """Push if mirror.interval says it is time (or a retry is due); None when nothing was tried.

    Bounded by BACKGROUND_TIMEOUT and never interactive; a failure schedules the next try
    RETRY_BASE seconds later, doubling up to mirror.interval.
    """
    interval = project.policy.mirror.interval
    if interval <= 0:
        return None
    try:
        remote, _url = choose_remote(project, None)
    except UsageError:
        return None  # no (unambiguous) remote yet; status says so
    now = time.time() if now is None else now
    state = read_push_state(project)
    if now < float(state.get("next_attempt", 0.0)):
        return None
    last = state.get("remotes", {}).get(remote) or {}
    head = project.open_repo().head()
    if head is None or (last.get("ok") and last.get("head") == head):
        return None  # nothing new since the last good push
    try:
        result = push(
            project,
            remote,
            attempts=1,
            timeout=BACKGROUND_TIMEOUT,
            interactive=False,
            lock_timeout=0.0,
            record=False,
            check=False,
        )
    except LockHeld:
        return None  # a gc is running; try on the next round
    failures = 0 if result.ok else int(state.get("failures", 0)) + 1
    delay = interval if result.ok else min(max(interval, RETRY_BASE), RETRY_BASE * 2 ** (failures - 1))
    _record_push(project, result, next_attempt=now + delay)
    return result


# --------------------------------------------------------------------------- fetching


def remote_refs(url: str) -> dict[str, str]:
    """ref -> commit id for every refs/guardian/* ref on the remote."""
    proc = _git(["ls-remote", url, f"{REF_ROOT}/*"], timeout=FETCH_TIMEOUT)
    if proc.returncode != 0:
        raise OperationFailed(f"cannot read the remote {url}: {_git_error(proc)}")
    refs: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        oid, _, name = line.partition("\t")
        if name.startswith(REF_ROOT + "/") and len(oid) == 40:
            refs[name] = oid
    return refs


def choose_ref(refs: dict[str, str], url: str, project_dir: str, own: str | None, wanted: str | None) -> str:
    """The ref to recover from: the one asked for, this store's own, or the only one for this project."""
    if wanted is not None:
        full = wanted if wanted.startswith(REF_ROOT + "/") else f"{REF_ROOT}/{wanted}"
        if full not in refs:
            raise UsageError(f"the remote {url} has no {full}; it has: {_ref_list(refs)}")
        return full
    if own is not None and own in refs:
        return own
    if not refs:
        raise OperationFailed(f"the remote {url} holds no guardian snapshots (no {REF_ROOT}/* refs)")
    if len(refs) == 1:
        return next(iter(refs))
    prefix = _ref_component(project_dir, "project") + "-"
    same_name = [r for r in refs if r.rsplit("/", 1)[-1].startswith(prefix)]
    if len(same_name) == 1:
        return same_name[0]
    raise UsageError(
        f"the remote {url} holds several snapshot refs; pick one with --ref HOST/PROJECT: {_ref_list(refs)}"
    )


def _ref_list(refs: dict[str, str]) -> str:
    return ", ".join(r[len(REF_ROOT) + 1 :] for r in sorted(refs)) or "no guardian refs"


def _fetch(repo: ShadowRepo, url: str, ref: str, oid: str) -> None:
    proc = _git(["fetch", "--no-tags", "--quiet", url, ref], git_dir=repo.git_dir, timeout=FETCH_TIMEOUT)
    (repo.git_dir / "FETCH_HEAD").unlink(missing_ok=True)
    if proc.returncode != 0:
        raise OperationFailed(f"cannot fetch {ref} from {url}: {_git_error(proc)}")
    if repo.resolve(oid) != oid:
        raise OperationFailed(f"the fetch from {url} did not bring snapshot {oid[:12]}; is the remote changing?")


# --------------------------------------------------------------------------- init --from


@dataclass
class InitFromReport:
    root: Path
    store: Path
    url: str
    ref: str
    head: str
    restored: list[str] = field(default_factory=list)
    older_valid: list[str] = field(default_factory=list)  # restored from an earlier, valid version
    kept: list[str] = field(default_factory=list)  # already present and different: left alone
    refused: list[tuple[str, str]] = field(default_factory=list)
    snapshot: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "store": str(self.store),
            "url": self.url,
            "ref": self.ref,
            "head": self.head,
            "restored": self.restored,
            "older_valid": self.older_valid,
            "kept": self.kept,
            "refused": [{"path": p, "reason": r} for p, r in self.refused],
            "snapshot": self.snapshot,
        }


def init_from(root: Path, url: str, *, ref: str | None = None, cwd: Path | None = None) -> InitFromReport:
    """A new store for root from a mirror, then every file of its latest snapshot written back.

    Files already in root are never overwritten (they are listed as kept); each restored
    file is its latest valid version, as 'guardian restore' would pick.
    """
    from guardian.capture.engine import take_snapshot
    from guardian.config import POLICY_FILENAME, preset_text
    from guardian.store.repo import Entry, ShadowRepo
    from guardian.util.fs import write_user_file
    from guardian.util.lock import FileLock

    if not root.is_dir():
        raise OperationFailed(f"cannot init {root}: not a directory")
    root = root.resolve()
    url = normalize_url(url, cwd or root)
    paths = ProjectPaths.for_root(root)
    if paths.repo.is_dir() and ShadowRepo(paths.repo).head() is not None:
        raise OperationFailed(
            f"{root} already has a store with snapshots ({paths.store}); "
            "recover files from the mirror with 'guardian restore --from-remote PATH'"
        )
    refs = remote_refs(url)
    chosen = choose_ref(refs, url, root.name, None, ref)
    head = refs[chosen]
    make_store_dir(paths.store)
    if not paths.repo.is_dir():
        ShadowRepo.create(paths.repo)
    write_project_meta(paths)
    repo = ShadowRepo(paths.repo)
    with FileLock(paths.writer_lock, f"the store {paths.store}", 30.0):
        _fetch(repo, url, chosen, head)
        repo.update_ref(head, None)
        if "origin" not in repo.remotes():
            repo.set_remote("origin", url)
    report = InitFromReport(root, paths.store, url, chosen, head)
    if lstat_at(root, POLICY_FILENAME) is None:
        entry = repo.entry_at(head, POLICY_FILENAME)
        if entry is not None:
            _write_back(root, repo, POLICY_FILENAME, entry, report)
        else:
            write_user_file(root, POLICY_FILENAME, preset_text("default").encode())
    project = Project.find(root)
    catalog = project.open_catalog()
    try:
        with project.writer_lock():
            catalog.sync(repo)  # plain sync: these snapshots were logged on the machine that took them
        for path, entry in repo.iter_tree(head):
            if path == POLICY_FILENAME:
                continue
            version = catalog.latest_valid(path)
            chosen_entry = entry
            if version is not None and version.blob is not None and version.mode is not None:
                chosen_entry = Entry(version.blob, version.mode)
            if _write_back(root, repo, path, chosen_entry, report) and chosen_entry != entry:
                report.older_valid.append(path)
    finally:
        catalog.close()
    report.snapshot = take_snapshot(project, None, "init").snapshot
    project.events.append(
        "init",
        [],
        head,
        "init",
        {"from": url, "ref": chosen, "restored": len(report.restored), "kept": report.kept[:100]},
    )
    return report


def _write_back(root: Path, repo: ShadowRepo, rel: str, entry: Entry, report: InitFromReport) -> bool:
    from guardian.ops.restore import write_entry
    from guardian.store.repo import hash_blob

    existing = lstat_at(root, rel)
    if existing is not None:
        from guardian.util.fs import read_state

        try:
            same = hash_blob(read_state(root, rel).data or b"") == entry.oid
        except (OSError, GuardianError):
            same = False
        if not same:
            report.kept.append(rel)
        return False
    try:
        write_entry(root, repo, rel, entry)
    except PathRefused as exc:  # a crafted tree must not steer a write outside the root
        report.refused.append((rel, str(exc)))
        return False
    report.restored.append(rel)
    return True


# --------------------------------------------------------------------------- restore --from-remote


def restore_from_remote(
    project: Project,
    typed_paths: Sequence[str],
    *,
    remote: str | None = None,
    ref: str | None = None,
    cwd: Path | None = None,
    at: str | None = None,
    before: float | None = None,
    dry_run: bool = False,
    force: bool = False,
) -> RestoreReport:
    """Like 'guardian restore', but choosing versions from a mirror's history.

    The mirror ref (this store's own unless --ref names another) is fetched into the
    store's objects; its chain is indexed in a temporary catalog to pick each file's
    latest valid version.  The policy is asked, the current state snapshotted
    (pre-restore) and the files written as any restore does.
    """
    from guardian.capture.engine import Capture, clear_stale_git_locks, sync_catalog
    from guardian.ops.restore import (
        RestoredFile,
        RestoreReport,
        choose_version,
        current_size,
        enforce,
        write_entry,
    )
    from guardian.policy import PathChange, PolicyEngine
    from guardian.query.lookup import resolve_path

    name, url = choose_remote(project, remote)
    repo = project.open_repo()
    root = project.root
    with maintenance_lock(project, MAINTENANCE_WAIT):  # a gc would prune what we fetch before we use it
        refs = remote_refs(url)
        chosen = choose_ref(refs, url, root.name, mirror_ref(project), ref)
        head = refs[chosen]
        _fetch(repo, url, chosen, head)
        with tempfile.TemporaryDirectory(prefix="guardian-remote-") as tmp:
            remote_catalog = catalog_for(repo, head, Path(tmp) / "catalog.db")
            try:
                targets = [
                    choose_version(
                        repo, remote_catalog, resolve_path(root, remote_catalog, typed, cwd), typed, at, before
                    )
                    for typed in typed_paths
                ]
            finally:
                remote_catalog.close()
        changes = [PathChange(t.path, "modify" if lstat_at(root, t.path) is not None else "add") for t in targets]
        decision = PolicyEngine(project.policy.protect_rules).decide("restore", changes, force)
        report = RestoreReport(dry_run=dry_run, decision=decision)
        enforce(decision)
        if dry_run:
            for t in targets:
                report.files.append(
                    RestoredFile(t.path, t.snapshot, t.time, current_size(root, t.path), repo.blob_size(t.entry.oid))
                )
            return report
        with project.writer_lock():
            clear_stale_git_locks(repo)
            catalog = project.open_catalog()
            try:
                sync_catalog(project, repo, catalog)
                capture = Capture(project, repo, catalog)
                paths = [t.path for t in targets]
                report.pre_snapshot = capture.run(paths, "pre-restore").snapshot or repo.head()
                for t in targets:
                    size_before = current_size(root, t.path)
                    size = write_entry(root, repo, t.path, t.entry, perm=t.perm)
                    report.files.append(RestoredFile(t.path, t.snapshot, t.time, size_before, size))
                sources = sorted({t.snapshot for t in targets})
                report.post_snapshot = capture.run(paths, "restore", source=",".join(sources)).snapshot
            finally:
                catalog.close()
            project.events.append(
                "restore",
                paths,
                report.post_snapshot,
                "restore",
                {
                    "from_remote": name,
                    "url": url,
                    "ref": chosen,
                    "sources": {t.path: t.snapshot for t in targets},
                    "pre_snapshot": report.pre_snapshot,
                    "force": force,
                    "decision": decision.to_json(),
                },
            )
        return report
