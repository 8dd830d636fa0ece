"""Enforcement, called directly on captures (no watcher): classification, rules, grants, the undo itself.

The routes through real git and real processes with the watcher running are in
test_enforce_routes.py; these pin down the decisions one at a time.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from guardian.catalog.db import VersionRow
from guardian.gates.enforce import Enforcer, enforce_capture
from guardian.ops.initialize import init_project
from guardian.ops.snapshot import take_snapshot
from guardian.project import Project
from guardian.query import userrepo
from guardian.query.rollbacks import ContentAges, classify, explain
from guardian.query.userrepo import UserRepo, parse_reflog_line
from guardian.store.repo import hash_blob
from tests.conftest import run_cli
from tests.gates.enforce_repo import FIX, OLD, A, g, make_repo, write

POLICY = """\
version: 1
protect:
  - paths: ["agents/"]
    reason: "WO pipeline"
  - paths: ["strict/"]
    modify: force
    reason: "no edits without a grant"
"""


def _project(root: Path, files: dict[str, str]) -> Project:
    write(root, "guardian.yaml", POLICY)
    for rel, text in files.items():
        write(root, rel, text)
    init_project(root)
    return Project.find(root)


def _capture(project: Project, paths: list[str] | None = None) -> list[dict[str, object]]:
    result = take_snapshot(project, paths, "manual")
    return [e.details for e in enforce_capture(project, result)]


def _row(seq: int, blob: str | None, trigger: str = "watch", change: str = "modify") -> VersionRow:
    return VersionRow(seq, f"s{seq}", 1000.0 + seq, trigger, "f", change, blob, 0o100644, 1, "valid", "")


# --------------------------------------------------------------------------- classification


def test_content_that_first_appeared_before_what_it_replaced_is_a_rollback() -> None:
    versions = [_row(1, "old"), _row(2, "fix"), _row(3, "old")]
    ages = ContentAges()
    ages.add_versions(versions)
    change = classify(versions, 2, ages)
    assert change is not None and change.kind == "rollback"
    assert change.origin is not None and change.origin.snapshot == "s1"
    forward = classify([*versions, _row(4, "fix")], 3, ages)
    assert forward is not None and forward.kind == "edit"  # the fix again: forward, not back
    new = [*versions, _row(4, "brand new")]
    ages.add_versions(new)
    assert (c := classify(new, 3, ages)) is not None and c.kind == "edit"
    deleted = [*versions, _row(4, None, change="delete")]
    assert (d := classify(deleted, 3, ages)) is not None and d.kind == "delete"
    same = [*versions, _row(4, "old", change="accept")]
    assert classify(same, 3, ages) is None


def test_reflog_lines_are_read_by_what_they_did_to_the_work_tree() -> None:
    line = "a" * 40 + " " + "b" * 40 + " Test User <t@example.com> 1700000000 +0100\treset: moving to HEAD~1"
    entry = parse_reflog_line(line)
    assert entry is not None and (entry.kind, entry.time, entry.action) == ("reset", 1700000000, "reset")
    kinds = {
        "checkout: moving from main to old": "move",
        "commit (amend): x": "commit",
        "rebase (finish): returning to refs/heads/f": "rebase",
        "pull --rebase (start): checkout 1234": "rebase",
        "merge main: Fast-forward": "move",
        "rebase: fast-forward": "rebase",
    }
    for message, kind in kinds.items():
        parsed = parse_reflog_line("0" * 40 + " " + "1" * 40 + " T <t> 1 +0000\t" + message)
        assert parsed is not None and parsed.kind == kind, message


def test_objects_are_found_loose_and_packed_without_running_git(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    user = UserRepo.locate(repo.root)
    assert user is not None
    fix, old = hash_blob(FIX.encode()), hash_blob(OLD.encode())
    assert user.has_object(fix) and user.has_object(old)
    assert not user.has_object(hash_blob(b"never stored\n"))
    g(repo.root, "gc", "-q")
    assert not (user.common_dir / "objects" / fix[:2] / fix[2:]).exists()
    assert user.has_object(fix) and user.has_object(old)
    assert user.blobs([(repo.base, A), (repo.fix, A), (repo.fix, "nope")]) == {
        (repo.base, A): old,
        (repo.fix, A): fix,
        (repo.fix, "nope"): None,
    }


def test_git_explains_a_switch_and_a_stash_but_not_a_reset_to_an_ancestor(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    user = UserRepo.locate(repo.root)
    assert user is not None
    old, fix = hash_blob(OLD.encode()), hash_blob(FIX.encode())
    since = time.time() - 1
    g(repo.root, "branch", "old", repo.base)
    g(repo.root, "switch", "-q", "old")
    switched = explain(user, A, old, fix, since)
    assert switched.explained and switched.process == "git checkout: moving from main to old"
    g(repo.root, "switch", "-q", "main")
    since = time.time() - 1
    write(repo.root, A, "wip\n")
    g(repo.root, "stash", "-q")
    assert explain(user, A, fix, hash_blob(b"wip\n"), since).process == "git stash"
    g(repo.root, "stash", "drop", "-q")
    g(repo.root, "reset", "-q", "--hard", "HEAD~1")
    reset = explain(user, A, old, fix, since)
    assert not reset.explained and reset.process == "git reset: moving to HEAD~1"


# --------------------------------------------------------------------------- rules


def test_an_edit_is_undone_only_where_the_policy_sets_modify(tmp_path: Path) -> None:
    project = _project(tmp_path / "p", {"agents/a.py": "a = 1\n", "strict/s.py": "s = 1\n"})
    write(project.root, "agents/a.py", "a = 2\n")
    assert _capture(project) == []  # agents/ sets no 'modify': an edit is a person's
    assert (project.root / "agents/a.py").read_text() == "a = 2\n"
    write(project.root, "strict/s.py", "s = 2\n")
    [undone] = _capture(project)
    assert (undone["change"], undone["operation"], undone["action"]) == ("edit", "modify", "undone")
    assert (project.root / "strict/s.py").read_text() == "s = 1\n"


def test_guardian_yaml_edits_stand_but_its_deletion_is_undone(tmp_path: Path) -> None:
    project = _project(tmp_path / "p", {"agents/a.py": "a = 1\n"})
    policy = project.root / "guardian.yaml"
    policy.write_text(POLICY + "# a comment\n")
    assert _capture(project) == []
    assert policy.read_text().endswith("# a comment\n")
    policy.unlink()
    [undone] = _capture(project)
    assert undone["change"] == "delete" and policy.read_text().endswith("# a comment\n")


def test_a_deleted_protected_file_comes_back_with_its_mode(tmp_path: Path) -> None:
    project = _project(tmp_path / "p", {"agents/run.sh": "#!/bin/sh\necho hi\n"})
    (project.root / "agents/run.sh").chmod(0o750)
    take_snapshot(project, None, "manual")
    (project.root / "agents/run.sh").unlink()
    [undone] = _capture(project)
    assert undone["change"] == "delete" and undone["operation"] == "delete"
    assert (project.root / "agents/run.sh").stat().st_mode & 0o777 == 0o750


def test_a_temporary_file_the_watcher_alone_saw_is_not_brought_back(tmp_path: Path) -> None:
    project = _project(tmp_path / "p", {"agents/a.py": "a = 1\n"})
    write(project.root, "agents/.a.py.X1b2c3", "a = 0\n")  # rsync's temp file, caught mid-copy
    take_snapshot(project, None, "watch")
    (project.root / "agents/.a.py.X1b2c3").unlink()
    assert _capture(project) == []
    assert not (project.root / "agents/.a.py.X1b2c3").exists()


def test_a_file_changed_again_before_its_undo_is_left_for_its_own_capture(tmp_path: Path) -> None:
    project = _project(tmp_path / "p", {"agents/a.py": "old\n"})
    write(project.root, "agents/a.py", "fix\n")
    take_snapshot(project, None, "manual")
    write(project.root, "agents/a.py", "old\n")
    result = take_snapshot(project, None, "watch")
    write(project.root, "agents/a.py", "newer\n")  # after the capture, before the undo
    assert enforce_capture(project, result) == []
    assert (project.root / "agents/a.py").read_text() == "newer\n"


def test_nothing_protected_changed_costs_no_git_and_little_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path)
    calls: list[Path] = []
    monkeypatch.setattr(userrepo.UserRepo, "locate", classmethod(lambda cls, root: calls.append(root)))
    enforcer = Enforcer(repo.project)
    write(repo.root, "other.txt", "unprotected edit\n")
    result = take_snapshot(repo.project, None, "watch")
    catalog = repo.project.open_catalog()
    try:
        start = time.perf_counter()
        assert enforcer.enforce(result, catalog) == []
        elapsed = time.perf_counter() - start
    finally:
        catalog.close()
    assert calls == [] and elapsed < 0.05


# --------------------------------------------------------------------------- grants and undoing the undo


def test_a_grant_lets_it_stand_and_a_block_rule_ignores_grants(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    assert run_cli("allow", "rollback", A, cwd=repo.root).exit_code == 0
    g(repo.root, "reset", "-q", "--hard", "HEAD~1")
    decided = {d["rule"]["reason"]: d for d in _capture(repo.project)}  # type: ignore[index]
    assert decided["WO pipeline"]["action"] == "granted"
    assert decided["frozen release"]["action"] == "undone" and decided["frozen release"]["outcome"] == "block"
    assert (repo.root / A).read_text() == OLD
    assert (repo.root / "frozen/release.txt").read_text() == "release 2\n"


def test_the_undo_is_itself_undoable_with_the_command_it_names(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    g(repo.root, "reset", "-q", "--hard", "HEAD~1")
    undone = {d["rule"]["reason"]: d for d in _capture(repo.project)}["WO pipeline"]  # type: ignore[index]
    assert (repo.root / A).read_text() == FIX
    words = str(undone["undo_hint"]).split()
    assert words[:3] == ["guardian", "restore", "--at"]
    r = run_cli(*words[1:], cwd=repo.root)
    assert r.exit_code == 0, r.stderr
    assert (repo.root / A).read_text() == OLD
    # guardian's own write is captured under the writer lock: nothing is left for enforcement to see
    assert take_snapshot(repo.project, None, "watch").snapshot is None


def test_the_same_rollback_twice_is_undone_twice_though_guardian_first_saw_the_old_content_late(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path, capture_old=False)  # "old" is known to git only
    for _ in range(2):
        write(repo.root, A, OLD)  # the second time, the snapshots have "old" after "fix": git says older
        decided = {d["rule"]["reason"]: d for d in _capture(repo.project)}  # type: ignore[index]
        assert decided["WO pipeline"]["action"] == "undone"
        went_to = decided["WO pipeline"]["to_version"]
        assert isinstance(went_to, dict) and went_to["commit"] == repo.base
        assert (repo.root / A).read_text() == FIX
