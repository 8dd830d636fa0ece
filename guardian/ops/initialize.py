"""`guardian init`: the policy file, the store outside the work tree, the first snapshot."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guardian.capture.engine import ProgressFn, SnapshotResult
from guardian.config import parse_policy, preset_text
from guardian.errors import OperationFailed
from guardian.ops.snapshot import take_snapshot
from guardian.paths import POLICY_FILENAME
from guardian.project import (
    Project,
    ProjectPaths,
    accept_disk_policy,
    make_store_dir,
    read_project_meta,
    write_project_meta,
)
from guardian.trust.policy import read_accepted
from guardian.util.fs import write_user_file


@dataclass
class InitReport:
    root: Path
    store: Path
    created_policy: bool
    created_store: bool
    snapshot: SnapshotResult | None

    def to_json(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "store": str(self.store),
            "repo": str(self.store / "repo.git"),
            "created_policy": self.created_policy,
            "created_store": self.created_store,
            "snapshot": self.snapshot.to_json() if self.snapshot else None,
        }


def init_project(root: Path, preset: str = "default", progress: ProgressFn | None = None) -> InitReport:
    if not root.is_dir():
        raise OperationFailed(f"cannot init {root}: not a directory")
    root = root.resolve()
    paths = ProjectPaths.for_root(root)
    policy_file = root / POLICY_FILENAME
    created_policy = False
    if not policy_file.exists():
        text = preset_text(preset)
        parse_policy(text, f"policies/{preset}.yaml")  # never write a preset that would not load
        write_user_file(root, POLICY_FILENAME, text.encode())
        created_policy = True
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
    write_project_meta(paths)
    if created_store or read_accepted(paths.store) is None:
        accept_disk_policy(paths)  # a new store trusts the policy it was made with
    project = Project.find(root)
    # A large first snapshot reaches the store as packs, not loose objects (ShadowRepo.staged_writes).
    snapshot = take_snapshot(project, None, "init", progress=progress)
    if created_store:
        project.events.append("init", [], snapshot.snapshot, "init", {"root": str(root), "preset": preset})
    return InitReport(root, paths.store, created_policy, created_store, snapshot)
