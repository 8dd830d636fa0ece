"""`guardian init`: the policy file, the store outside the work tree, the first snapshot."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guardian.capture.engine import ProgressFn, SnapshotResult
from guardian.capture.filters import hidden_protected_notes
from guardian.capture.secret_record import pending_scans
from guardian.config import parse_policy, preset_text
from guardian.errors import NotAProject, OperationFailed, UsageError
from guardian.events import now_iso
from guardian.ops.snapshot import take_snapshot
from guardian.paths import POLICY_FILENAME, find_project_root
from guardian.project import (
    Project,
    ProjectPaths,
    accept_disk_policy,
    follow_identity,
    make_store_dir,
    read_project_meta,
    write_project_meta,
)
from guardian.trust.policy import read_accepted
from guardian.util.fs import write_user_file
from guardian.util.identity import identify, new_project_id, read_meta, write_meta


@dataclass
class InitReport:
    root: Path
    store: Path
    created_policy: bool
    created_store: bool
    snapshot: SnapshotResult | None
    notes: list[str] = field(default_factory=list)  # what the user should know: an unused preset, a retired store
    secret_scans_queued: int = 0  # versions whose secret scan waits for the watcher (or 'guardian snapshot')

    def to_json(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "store": str(self.store),
            "repo": str(self.store / "repo.git"),
            "created_policy": self.created_policy,
            "created_store": self.created_store,
            "snapshot": self.snapshot.to_json() if self.snapshot else None,
            "notes": self.notes,
            "secret_scans_queued": self.secret_scans_queued,
        }


def enclosing_project(root: Path) -> Path | None:
    """The guarded project root is inside, if any (a parent with guardian.yaml or its own store)."""
    try:
        return find_project_root(root.parent) if root.parent != root else None
    except NotAProject:
        return None


def retire_store(store: Path) -> Path:
    """Move a store aside for a new project at the same path; it keeps its history and says why."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    retired = store.with_name(f"{store.name}-replaced-{stamp}")
    os.rename(store, retired)
    meta = read_meta(retired) or {}
    meta["replaced"] = {"ts": now_iso(), "reason": "a new project took its root's path"}
    write_meta(retired, meta)
    return retired


def init_project(
    root: Path, preset: str | None = None, progress: ProgressFn | None = None, *, nested: bool = False
) -> InitReport:
    """Guard root: guardian.yaml from preset (if absent), the store, the project id, the first snapshot."""
    if not root.is_dir():
        raise OperationFailed(f"cannot init {root}: not a directory")
    root = root.resolve()
    notes: list[str] = []
    outer = enclosing_project(root)
    if outer is not None and not nested:
        raise UsageError(
            f"{root} is inside the guarded project {outer}, whose snapshots already capture it; "
            f"run guardian there (or with -C {outer}), or 'guardian init --nested' to guard {root} on its own"
        )
    paths = ProjectPaths.for_root(root)
    project_id = _settle_identity(paths, notes)
    policy_file = root / POLICY_FILENAME
    created_policy = False
    if not policy_file.exists():
        name = preset or "default"
        text = preset_text(name)
        parse_policy(text, f"policies/{name}.yaml")  # never write a preset that would not load
        write_user_file(root, POLICY_FILENAME, text.encode())
        created_policy = True
    elif preset is not None:
        preset_text(preset)  # a misspelt preset is still an error, not a silent no-op
        notes.append(
            f"{policy_file} already exists, so --preset {preset} was not used; "
            f"edit it, or remove it and run 'guardian init --preset {preset}' again"
        )
    meta = read_project_meta(paths.store)
    if meta is not None and meta.get("root") != str(root):
        raise OperationFailed(
            f"the store {paths.store} belongs to {meta.get('root')}, not {root}; set GUARDIAN_HOME to another directory"
        )
    created_store = not paths.repo.is_dir()
    make_store_dir(paths.store)
    if created_store:
        from guardian.store.repo import ShadowRepo

        ShadowRepo.create(paths.repo)
    write_project_meta(paths, project_id)
    if created_store or read_accepted(paths.store) is None:
        accept_disk_policy(paths)  # a new store trusts the policy it was made with
    project = Project.find(root)
    # A large first snapshot reaches the store as packs, not loose objects (ShadowRepo.staged_writes).
    snapshot = take_snapshot(project, None, "init", progress=progress)
    queued = pending_scans(paths.store)  # most of a first snapshot's CPU: left to the watcher
    notes.extend(hidden_protected_notes(root, project.policy))  # protected paths .gitignore would have hidden
    if created_store:
        project.events.append(
            "init", [], snapshot.snapshot, "init", {"root": str(root), "preset": preset or "default"}
        )
    return InitReport(root, paths.store, created_policy, created_store, snapshot, notes, queued)


def _settle_identity(paths: ProjectPaths, notes: list[str]) -> str | None:
    """Before init writes the store: retire another project's store at this path, follow a move,
    and give a copy an id of its own.  Returns the id to record (None: keep or make one)."""
    found = identify(paths.root, paths.store)
    if found.state == "replaced":
        retired = retire_store(paths.store)
        notes.append(
            f"the store {paths.store} belonged to an earlier project at this path (the directory was "
            f"re-created since); it is kept as {retired}, and this project gets a new store"
        )
        found = identify(paths.root, paths.store)
    if found.state == "moved":
        follow_identity(paths)  # adopts the store and says so
        return None
    if found.state == "copy":
        notes.append(
            f"{paths.root} carried the id of the project at {found.other_root} (a copy?); "
            "it gets an id and a store of its own"
        )
        return new_project_id()
    return None
