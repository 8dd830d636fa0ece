"""A guardian project: a root with a guardian.yaml, and its store outside the work tree.

Store layout (``$GUARDIAN_HOME/<dirname>-<hash>/``, mode 0700)::

    repo.git/        the shadow bare git repository (the source of truth)
    catalog.db       derived index, rebuilt from repo.git when needed
    events.jsonl     append-only event log (events.1.jsonl ... when rotated; events.jsonl.lock)
    project.json     which root this store belongs to, the project's id, where it moved from
    writer.lock      flock held for each write transaction
    watcher.lock     flock held by the running watcher for its lifetime
    watcher.json     the watcher's heartbeat
    watcher.log      the watcher's rotating log (watcher.out: a background watcher's stdout/stderr)
    guardrail.json   the drift already logged (guardrail.lock serialises its updates)
    gc.json          the last gc: time, counts, sizes, errors (maintenance.lock: one gc or push at a time)
    usage.json       the store's size, measured recently
    mirror.json      what was last pushed to each remote
    capture.json     captures failed in a row, the last failure, the paths not being captured
    policy.parsed.json  guardian.yaml as last parsed, keyed by its sha256 (see load_policy_reusing)
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from guardian.config import (
    MAX_POLICY_BYTES,
    CheckSpec,
    GuardrailSettings,
    MirrorSettings,
    Policy,
    ProtectRule,
    RetentionSettings,
    StoreSettings,
    SuspectSettings,
    ValidateRule,
    WatchSettings,
    load_policy,
    parse_policy,
    preset_text,
)
from guardian.errors import GuardianError, OperationFailed, StoreDamaged
from guardian.paths import ENV_HOME, POLICY_FILENAME, find_project_root, sha256_hex, store_dir_for
from guardian.trust.policy import trusted_policy, write_accepted
from guardian.util.fs import atomic_write_file
from guardian.util.identity import (
    identify,
    new_project_id,
    read_meta,
    root_inode,
    write_meta,
    write_root_id,
)
from guardian.util.lock import FileLock
from guardian.util.records import Record

if TYPE_CHECKING:
    from guardian.catalog.db import Catalog
    from guardian.events import EventLog
    from guardian.store.repo import ShadowRepo

WRITER_LOCK_TIMEOUT = 30.0


class ProjectPaths(NamedTuple):
    """A project's root and its store, and the files inside the store.

    A NamedTuple, not a frozen dataclass: the same fields, equality, hash, repr and
    immutability, without ~1 ms of generated methods on every command that finds its project.
    """

    root: Path
    store: Path

    @property
    def policy_file(self) -> Path:
        return self.root / POLICY_FILENAME

    @property
    def repo(self) -> Path:
        return self.store / "repo.git"

    @property
    def catalog(self) -> Path:
        return self.store / "catalog.db"

    @property
    def events(self) -> Path:
        return self.store / "events.jsonl"

    @property
    def meta(self) -> Path:
        return self.store / "project.json"

    @property
    def writer_lock(self) -> Path:
        return self.store / "writer.lock"

    @property
    def watcher_lock(self) -> Path:
        return self.store / "watcher.lock"

    @property
    def heartbeat(self) -> Path:
        return self.store / "watcher.json"

    @property
    def watcher_log(self) -> Path:
        return self.store / "watcher.log"

    @classmethod
    def for_root(cls, root: Path) -> ProjectPaths:
        root = root.absolute()
        return cls(root=root, store=store_dir_for(root))


class Project(Record):
    """A found project: its paths and the policy in force (and why the file on disk is not, if so).

    A Record (guardian.util.records), not a dataclass (~1 ms of generated methods on every
    command), and mutable: the watcher updates ``policy_pending``.
    """

    __slots__ = ("paths", "policy", "policy_pending")
    __match_args__ = ("paths", "policy", "policy_pending")

    def __init__(self, paths: ProjectPaths, policy: Policy, policy_pending: str | None = None) -> None:
        self.paths = paths
        self.policy = policy
        # Why guardian.yaml on disk is not the policy in force (see guardian.trust.policy); None when it is.
        self.policy_pending = policy_pending

    @property
    def root(self) -> Path:
        return self.paths.root

    @property
    def events(self) -> EventLog:
        from guardian.events import EventLog  # here: a read such as history writes no event

        return EventLog(self.paths.events)

    @classmethod
    def find(cls, start: Path) -> Project:
        root = find_project_root(start)
        # The root is resolved once: every later path check is relative to the real directory.
        paths = ProjectPaths.for_root(root.resolve())
        follow_identity(paths)
        if not paths.repo.is_dir():
            return cls(paths, load_policy(paths.policy_file))
        trusted = trusted_policy(paths.policy_file, paths.store, lambda path: load_policy_reusing(path, paths.store))
        if trusted is not None:
            project = cls(paths, trusted.policy, trusted.pending)
            if trusted.accepted_now:
                project.events.append(
                    "policy", [POLICY_FILENAME], None, "policy", {"action": "accept", "why": trusted.accepted_now}
                )
            if not os.path.lexists(paths.policy_file):
                sys.stderr.write(
                    f"guardian: warning: {paths.policy_file} is missing (removed by a tool such as 'git clean -fdx'?); "
                    f"using the accepted policy; bring it back with 'guardian restore {POLICY_FILENAME}'\n"
                )
            return project
        if not os.path.lexists(paths.policy_file):
            # Removed by a tool (git clean -fdx, rsync --delete): the store still knows the project.
            return cls(paths, _policy_from_store(paths))
        # A store made before the trusted policy existed: what is on disk now becomes the accepted policy.
        policy = load_policy(paths.policy_file)
        accept_disk_policy(paths)
        return cls(paths, policy)

    def require_store(self) -> None:
        if not self.paths.repo.is_dir():
            raise OperationFailed(f"no store for {self.root} at {self.paths.store}; run 'guardian init' in {self.root}")

    def writer_lock(self, timeout: float = WRITER_LOCK_TIMEOUT) -> FileLock:
        return FileLock(self.paths.writer_lock, f"the store {self.paths.store}", timeout)

    def open_repo(self) -> ShadowRepo:
        from guardian.store.repo import ShadowRepo

        self.require_store()
        return ShadowRepo(self.paths.repo)

    def open_catalog(self) -> Catalog:
        import sqlite3

        from guardian.catalog.db import Catalog

        try:
            return Catalog(self.paths.catalog)
        except sqlite3.Error as exc:
            denied = store_access_problem(self.paths.store)
            if denied is not None:
                raise OperationFailed(denied) from None  # not damage: `verify --repair` could not help
            raise StoreDamaged(f"the catalog {self.paths.catalog} is unreadable: {exc}") from None

    def sweep_store(self, repo: ShadowRepo, trigger: str, *, deep: bool = False) -> list[str]:
        """Clear what a killed writer left (git locks, temp objects) and log it.  Hold the writer lock.

        Every writer calls this on entry, through ``ops.session.write_session`` or the
        watcher's long-lived session, so a leftover is cleared and logged the same way
        whichever command meets it first.
        """
        from guardian.store.repair import clear_stale_git_locks, clear_temp_objects

        locks = [str(p) for p in clear_stale_git_locks(repo)]
        temps = [str(p) for p in clear_temp_objects(repo, deep=deep)]
        if locks or temps:
            details: dict[str, Any] = {}
            if locks:
                details["cleared_locks"] = locks
            if temps:
                details["cleared_temp"] = temps[:100]
            self.events.append("repair", [], None, trigger, details)
        return locks + temps

    @contextmanager
    def reader(self) -> Iterator[tuple[ShadowRepo, Catalog]]:
        """Open a catalog that agrees with the repo, for read-only questions.

        The repo is opened (and pygit2 imported, ~100 ms) only if the caller touches
        it or the catalog is behind: history and log answer from the catalog alone.
        """
        self.require_store()
        catalog = self.open_catalog()
        try:
            head = read_ref_file(self.paths.repo)
            repo = _LazyRepo(self)
            if head is None or catalog.indexed_head != head:
                # Catching up writes to the catalog, so take the writer lock for it.
                with self.writer_lock():
                    from guardian.catalog.sync import sync_catalog

                    sync_catalog(self.events, repo.real, catalog)
            yield cast("ShadowRepo", repo), catalog
        finally:
            catalog.close()


SNAPSHOT_REF_FILE = "refs/heads/snapshots"


def read_ref_file(git_dir: Path) -> str | None:
    """The snapshot ref's commit id, read from git's ref files without pygit2.

    Returns None when the ref is missing or unreadable; callers then fall back to
    pygit2, which reports damage properly.
    """
    try:
        text = (git_dir / SNAPSHOT_REF_FILE).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        text = ""
    if not text:
        try:
            for line in (git_dir / "packed-refs").read_text(encoding="ascii").splitlines():
                if line.endswith(" " + SNAPSHOT_REF_FILE):
                    text = line.split(" ", 1)[0]
        except (OSError, UnicodeDecodeError):
            return None
    if len(text) == 40 and all(c in "0123456789abcdef" for c in text):
        return text
    return None


class _LazyRepo:
    """Stands in for ShadowRepo and opens it on first use."""

    def __init__(self, project: Project) -> None:
        self._project = project
        self._real: ShadowRepo | None = None

    @property
    def real(self) -> ShadowRepo:
        if self._real is None:
            self._real = self._project.open_repo()
        return self._real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


PARSED_POLICY_FILE = "policy.parsed.json"


def load_policy_reusing(path: Path, store: Path) -> Policy:
    """``config.load_policy(path)``, reusing the parse kept in the store when the file's bytes are the same.

    Parsing guardian.yaml imports PyYAML and walks its nodes, a third of a ``guardian history``.
    The store keeps the last parse (``policy.parsed.json``) under the sha256 of the bytes, the
    file's path and a stamp of this guardian's schema; anything else, or a file that is not a
    plain readable one, goes through ``load_policy`` and its errors as before.  A parse is kept
    only if it reads back equal to itself.
    """
    import json

    raw: bytes | None = None
    try:
        st = path.stat()
        raw = path.read_bytes() if stat.S_ISREG(st.st_mode) and st.st_size <= MAX_POLICY_BYTES else None
        text = raw.decode("utf-8") if raw is not None else None
    except (OSError, UnicodeDecodeError):
        text = None
    if raw is None or text is None:
        return load_policy(path)  # the error, or the odd file, exactly as it always was
    key = f"{sha256_hex(raw)} {path} {_schema_stamp()}"
    kept = store / PARSED_POLICY_FILE
    try:
        cached = json.loads(kept.read_text(encoding="utf-8"))
        if isinstance(cached, dict) and cached.get("key") == key:
            return policy_from_json(cached["policy"])
    except (OSError, ValueError, KeyError, TypeError):
        pass  # missing, torn or from another schema: parse again
    policy = parse_policy(text, str(path))
    encoded = policy_to_json(policy)
    try:
        if policy_from_json(json.loads(json.dumps(encoded))) == policy:
            atomic_write_file(kept, json.dumps({"key": key, "policy": encoded}).encode(), 0o600)
    except (OSError, ValueError, KeyError, TypeError):
        pass  # a read-only store: parse every time
    return policy


def _schema_stamp() -> str:
    """Changes whenever this guardian's policy schema may have: its version and config.py's size and mtime."""
    from guardian import __version__, config

    try:
        st = os.stat(config.__file__)
    except OSError:
        return f"{__version__} ?"
    return f"{__version__} {st.st_size} {st.st_mtime_ns}"


def policy_to_json(policy: Policy) -> dict[str, Any]:
    """The policy as plain data: each record a dict of its fields in order, tuples kept (as dataclasses.asdict did)."""
    plain: dict[str, Any] = _plain(policy)
    return plain


def _plain(value: Any) -> Any:
    """A policy value with every record (a NamedTuple) turned into a dict, recursively."""
    if isinstance(value, tuple):
        if hasattr(value, "_fields"):
            return {name: _plain(item) for name, item in zip(value._fields, value, strict=True)}
        return tuple(_plain(item) for item in value)
    return value


def policy_from_json(data: dict[str, Any]) -> Policy:
    """The Policy policy_to_json wrote (lists back to tuples); KeyError or TypeError when it is not one."""

    def plain(cls: type[Any], fields: dict[str, Any]) -> Any:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})

    return Policy(
        version=data["version"],
        watch=plain(WatchSettings, data["watch"]),
        validate=tuple(
            ValidateRule(tuple(rule["paths"]), tuple(plain(CheckSpec, check) for check in rule["checks"]))
            for rule in data["validate"]
        ),
        suspect=plain(SuspectSettings, data["suspect"]),
        protect=tuple(plain(ProtectRule, rule) for rule in data["protect"]),
        guardrail=plain(GuardrailSettings, data["guardrail"]),
        retention=plain(RetentionSettings, data["retention"]),
        store=plain(StoreSettings, data["store"]),
        mirror=plain(MirrorSettings, data["mirror"]),
        source=data["source"],
    )


_POLICY_SEARCH_LIMIT = 1000  # snapshots to look back through for the last guardian.yaml


def _policy_from_store(paths: ProjectPaths) -> Policy:
    """The policy of a project whose guardian.yaml is gone: the newest snapshotted one, else the defaults.

    Warns on stderr on every use, with the way to bring the file back.
    """
    policy: Policy | None = None
    where = "the default policy"
    try:
        from guardian.store.repo import ShadowRepo

        repo = ShadowRepo(paths.repo)
        for count, record in enumerate(repo.walk()):
            if count >= _POLICY_SEARCH_LIMIT:
                break
            entry = repo.entry_at(record.id, POLICY_FILENAME)
            if entry is None or entry.is_link:
                continue
            text = repo.read_blob(entry.oid).decode("utf-8")
            policy = parse_policy(text, f"{POLICY_FILENAME} of snapshot {record.id[:12]}")
            where = f"the policy of snapshot {record.id[:12]} in the store {paths.store}"
            break
    except (GuardianError, OSError, ValueError, KeyError):
        policy = None  # unreadable or invalid: the defaults below
        where = "the default policy"
    if policy is None:
        try:
            policy = parse_policy(preset_text("default"), "policies/default.yaml")
        except GuardianError:
            policy = Policy()
    sys.stderr.write(
        f"guardian: warning: {paths.policy_file} is missing (removed by a tool such as 'git clean -fdx'?); "
        f"using {where}; bring it back with 'guardian restore {POLICY_FILENAME}'\n"
    )
    return policy


def write_project_meta(paths: ProjectPaths, project_id: str | None = None) -> str:
    """Record which root the store belongs to, and the project's id (kept, or project_id, or new).

    Also sets the id on the root directory (guardian.util.identity).  Returns the id.
    """
    meta = read_meta(paths.store) or {}
    known = meta.get("id")
    pid = project_id or (known if isinstance(known, str) else None) or new_project_id()
    on_root = write_root_id(paths.root, pid)
    meta.update(
        {"root": str(paths.root), "version": 1, "id": pid, "id_on_root": on_root, "root_ino": root_inode(paths.root)}
    )
    write_meta(paths.store, meta)
    return pid


def read_project_meta(store: Path) -> dict[str, Any] | None:
    return read_meta(store)


def follow_identity(paths: ProjectPaths) -> None:
    """Make the store under paths the project's own: adopt it after a move, refuse another project's.

    See guardian.util.identity.  A store made before ids existed gets one here.
    """
    found = identify(paths.root, paths.store)
    if found.state == "same":
        if paths.repo.is_dir() and found.project_id is None:
            write_project_meta(paths)
    elif found.state == "moved":
        assert found.other_store is not None
        adopt_moved_store(paths, found.other_store, found.other_root or "")
    elif found.state == "copy":
        _note(
            f"{paths.root} carries the id of the project at {found.other_root} (a copy made with its "
            "attributes, such as cp -a?); run 'guardian init' here to give it a store of its own"
        )
    elif found.state == "replaced":
        raise OperationFailed(
            f"{paths.root} is not the project the store {paths.store} was made for: the directory was "
            "re-created or replaced since; run 'guardian init' to give it a store of its own "
            "(the old history is kept)"
        )


def adopt_moved_store(paths: ProjectPaths, old_store: Path, old_root: str) -> None:
    """The project moved from old_root: move its store to the name of the new root, and say so."""
    from guardian.events import EventLog, now_iso
    from guardian.util.lock import is_locked, read_holder_pid

    if is_locked(old_store / "watcher.lock"):
        pid = read_holder_pid(old_store / "watcher.lock")
        raise OperationFailed(
            f"this project moved from {old_root}, and a watcher still runs there (pid {pid}); "
            f"stop it (kill {pid}) and run the command again"
        )
    with contextlib.suppress(OSError):
        paths.store.rmdir()  # an empty leftover directory of that name
    os.rename(old_store, paths.store)
    meta = read_meta(paths.store) or {}
    moves = [m for m in meta.get("moved_from") or [] if isinstance(m, dict)]
    moves.append({"root": old_root, "ts": now_iso()})
    meta.update({"root": str(paths.root), "root_ino": root_inode(paths.root), "moved_from": moves, "id_on_root": True})
    write_meta(paths.store, meta)
    EventLog(paths.events).append(
        "move", [], None, None, {"from": old_root, "to": str(paths.root), "old_store": str(old_store)}
    )
    _note(f"this project moved from {old_root}; its history moved with it to {paths.store}")


def _note(text: str) -> None:
    sys.stderr.write(f"guardian: note: {text}\n")
    sys.stderr.flush()


def make_store_dir(store: Path) -> None:
    store.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    store.mkdir(mode=0o700, exist_ok=True)
    # mkdir's mode is filtered by umask; the store holds copies of private files, so force 0700.
    os.chmod(store, 0o700)


def accept_disk_policy(paths: ProjectPaths) -> str:
    """Make guardian.yaml on disk the accepted policy (``guardian policy accept``, ``guardian init``).

    Parses it first, so a broken file is never accepted.  Returns the accepted text.
    """
    load_policy(paths.policy_file)
    text = paths.policy_file.read_text(encoding="utf-8")
    write_accepted(paths.store, text)
    return text


def store_access_problem(store: Path) -> str | None:
    """Why this user cannot write the store (another owner, read-only), or None when it can.

    Asked before calling a store damaged: a permission problem needs a chown or another
    user, and 'verify --repair' would only fail on it too.
    """
    try:
        st = store.stat()
    except OSError:
        return None
    if os.geteuid() != 0 and st.st_uid != os.geteuid():
        owner = _user_name(st.st_uid)
        return (
            f"the store {store} belongs to user {owner}, not to you; run guardian as {owner}, "
            f"or set {ENV_HOME} to a directory of your own"
        )
    writable = os.access(store, os.W_OK) and all(
        os.access(p, os.W_OK) for p in (store / "catalog.db", store / "repo.git") if p.exists()
    )
    if not writable:
        return (
            f"the store {store} is read-only (mode {stat.S_IMODE(st.st_mode):04o}); "
            f"make it writable again with 'chmod -R u+w {store}'"
        )
    return None


def _user_name(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return f"uid {uid}"
