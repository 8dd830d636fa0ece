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
(guardian.watch.maintenance), bounded by a timeout, and failed pushes are retried with backoff.

No secret leaves the machine: what is pushed is guardian.lifecycle.mirror_chain's copy of the
chain, in which every version holding a secret is redacted (the local chain keeps it), and the
push says which versions it redacted.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guardian.errors import LockHeld, OperationFailed, UsageError
from guardian.lifecycle.gc import maintenance_lock
from guardian.lifecycle.mirror_chain import mirror_chain
from guardian.project import Project
from guardian.util.fs import atomic_write_file
from guardian.util.git import GitError, GitMissing, GitResult, GitTimeout, run_git

if TYPE_CHECKING:
    from guardian.store.repo import ShadowRepo

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
) -> GitResult:
    """git for the mirror: a non-zero exit is returned, for _git_error to explain; no answer raises."""
    try:
        return run_git(
            args, git_dir=git_dir, timeout=timeout, interactive=interactive, check=False, literal_pathspecs=False
        )
    except GitMissing:
        raise OperationFailed(
            "the mirror needs the git command, which is not installed; install git and retry"
        ) from None
    except GitTimeout:
        raise OperationFailed(f"git {args[0]} gave no answer within {timeout:.0f}s; check the remote") from None
    except GitError as exc:
        raise OperationFailed(str(exc)) from None


def _output(result: GitResult) -> str:
    return result.stdout.decode("utf-8", "replace")


def _git_error(result: GitResult) -> str:
    lines = [line.strip() for line in (result.error_text or _output(result)).splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("fatal:", "error:", "!", "remote: error"))]
    useful = errors[:3] or [line for line in lines if not line.startswith(("hint:", "To ", "Done"))][-3:]
    text = "; ".join(useful) or f"git exited with status {result.returncode}"
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
    pushed: str | None = None  # the commit sent: head itself, or its copy with secrets redacted
    redacted: list[dict[str, Any]] = field(default_factory=list)  # versions redacted by this push (first 1000)
    redacted_versions: int = 0
    still_redacted: list[str] = field(default_factory=list)  # paths whose copy in the pushed head is redacted

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
            "pushed": self.pushed,
            "redacted": self.redacted,
            "redacted_versions": self.redacted_versions,
            "still_redacted": self.still_redacted[:1000],
        }

    def redaction_note(self) -> str | None:
        """One line on the secrets this push kept off the mirror, or None."""
        if not self.redacted:
            if not self.still_redacted:
                return None
            return f"secrets kept off the mirror: its copies of {len(self.still_redacted)} file(s) stay redacted"
        files: dict[str, set[str]] = {}
        for version in self.redacted:
            files.setdefault(version["path"], set()).update(version["kinds"])
        shown = [f"{path} ({', '.join(sorted(kinds)) or 'secret'})" for path, kinds in sorted(files.items())[:5]]
        more = f" and {len(files) - 5} more file(s)" if len(files) > 5 else ""
        return (
            f"secrets kept off the mirror: {self.redacted_versions} version(s) of {len(files)} file(s) pushed "
            f"redacted: {', '.join(shown)}{more}; the local store keeps them ('guardian forget' purges them)"
        )


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
        chain = mirror_chain(project, repo, result.head)
        result.pushed = chain.head
        result.redacted = [v.to_json() for v in chain.redacted[:1000]]
        result.redacted_versions = len(chain.redacted)
        result.still_redacted = chain.still_redacted
        for attempt in range(1, attempts + 1):
            result.attempts = attempt
            try:
                proc = _git(
                    ["push", "--porcelain", remote, f"+{chain.head}:{ref}"],
                    git_dir=project.paths.repo,
                    timeout=timeout,
                    interactive=interactive,
                )
            except OperationFailed as exc:
                error = str(exc)
            else:
                if proc.returncode == 0:
                    result.ok = True
                    result.up_to_date = "[up to date]" in _output(proc)
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
    for line in _output(proc).splitlines():
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


def fetch_snapshot(repo: ShadowRepo, url: str, ref: str, oid: str) -> None:
    proc = _git(["fetch", "--no-tags", "--quiet", url, ref], git_dir=repo.git_dir, timeout=FETCH_TIMEOUT)
    (repo.git_dir / "FETCH_HEAD").unlink(missing_ok=True)
    if proc.returncode != 0:
        raise OperationFailed(f"cannot fetch {ref} from {url}: {_git_error(proc)}")
    if repo.resolve(oid) != oid:
        raise OperationFailed(f"the fetch from {url} did not bring snapshot {oid[:12]}; is the remote changing?")
