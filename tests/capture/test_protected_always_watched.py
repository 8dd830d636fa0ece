"""Protected paths are always watched: ``.gitignore`` and ``watch.exclude`` never hide one.

The case from the field: ``g/followup/state/`` in ``.gitignore`` (normal for a state
directory) made guardian record the protected state files as deleted, with no word; the
guardrail then no longer covered them, and ``history`` said "deleted at T", which was false.
Here the same tree runs through init, snapshots, the guardrail, history and the watcher
(real watchdog, in process), and the filter's decisions are checked one by one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from guardian.capture.engine import walk_tree
from guardian.capture.filters import PathFilter, hidden_protected_notes
from guardian.config import Policy, ProtectRule, WatchSettings
from guardian.project import Project
from tests.conftest import run_cli
from tests.watch.test_watcher import FAST, running, wait_captured, wait_until

# watchdog warns when "mkdir -p a/b" makes it add a watch twice (see tests/test_watcher.py): harmless.
pytestmark = pytest.mark.filterwarnings(r"ignore:Callback with id .* already exists:RuntimeWarning")

POLICY = """\
version: 1
watch:
  exclude: ["*.log"]
protect:
  - paths: ["g/followup/state/"]
    rollback: force
    delete: force
    restore: allow
    reason: "follow-up state"
  - paths: ["frontend/"]
    reason: "the app"
"""
STATE = "g/followup/state/tracker.json"
NOTE = "note: g/followup/state/ is in .gitignore but protected; guardian watches it anyway"


def _project(tmp_path: Path, gitignore: str = "g/followup/state/\nnode_modules/\n") -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "guardian.yaml").write_text(POLICY)
    (root / ".gitignore").write_text(gitignore)
    files = {
        STATE: '{"open": 3}\n',
        "g/followup/state/queue.json": '{"items": []}\n',
        "g/logs/run.txt": "log line\n",
        "frontend/app.js": "console.log(1)\n",
        "frontend/node_modules/pkg/index.js": "module.exports = 1\n",
        "src/main.py": "print('hi')\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def _tree(root: Path) -> set[str]:
    project = Project.find(root)
    repo = project.open_repo()
    return {path for path, _entry in repo.iter_tree(repo.head())}


def _changes(root: Path, rel: str) -> list[str]:
    project = Project.find(root)
    catalog = project.open_catalog()
    try:
        return [v.change for v in catalog.versions_of(rel)]
    finally:
        catalog.close()


# --------------------------------------------------------------------------- the filter's decisions


def _filter(root: Path, exclude: tuple[str, ...] = (), *patterns: str) -> PathFilter:
    rules = (ProtectRule(paths=patterns or ("g/followup/state/",)),)
    return PathFilter(root, WatchSettings(exclude=exclude), rules)


@pytest.mark.parametrize(
    ("gitignore", "rel", "is_dir", "kept"),
    [
        # The protected directory itself, hidden by name, anchored, or as a file pattern.
        ("g/followup/state/\n", "g/followup/state", True, True),
        ("g/followup/state/\n", STATE, False, True),
        ("state/\n", STATE, False, True),
        ("*.json\n", STATE, False, True),
        # A directory on the way to it is entered; its other directories stay hidden.
        ("g/\n", "g", True, True),
        ("g/\n", "g/followup", True, True),
        ("g/\n", STATE, False, True),
        ("g/\n", "g/logs", True, False),
        ("g/\n", "g/logs/run.txt", False, False),
        ("g/\n", "g/notes.txt", False, False),
        # Unprotected ignored paths are still ignored.
        ("*.json\n", "other/x.json", False, False),
        ("tmp/\n", "tmp", True, False),
    ],
)
def test_protection_overrides_gitignore_where_it_reaches(
    tmp_path: Path, gitignore: str, rel: str, is_dir: bool, kept: bool
) -> None:
    (tmp_path / ".gitignore").write_text(gitignore)
    assert _filter(tmp_path)(rel, is_dir) is kept


def test_an_ignored_directory_inside_a_protected_one_stays_out(tmp_path: Path) -> None:
    """node_modules/ under a protected frontend/ is not pulled in: the ignore rule is the narrower one."""
    (tmp_path / ".gitignore").write_text("node_modules/\n*.min.js\n")
    keep = _filter(tmp_path, (), "frontend/")
    assert not keep("frontend/node_modules", True)
    assert not keep("frontend/node_modules/pkg/index.js")
    assert keep("frontend/app.min.js")  # the file itself is what the rule hides, and it is protected
    assert not keep("other/app.min.js")


def test_watch_exclude_is_overridden_too_but_not_the_builtin_excludes(tmp_path: Path) -> None:
    keep = _filter(tmp_path, ("g/", "*.log"), "g/followup/state/", "build/", "cache/db.sqlite")
    assert keep("g", True) and keep(STATE)
    assert keep("g/followup/state/run.log")  # protected, though *.log is excluded
    assert not keep("g/other.log")
    # Other tools' stores, caches and SQLite side files are never captured, protected or not.
    assert not keep("build", True)
    assert not keep("cache/db.sqlite-wal")
    assert keep("cache/db.sqlite")


def test_a_name_pattern_does_not_make_the_scan_enter_every_ignored_directory(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("data/\n")
    keep = _filter(tmp_path, (), "*.db")
    assert not keep("data", True)
    assert not keep("data/x.db")  # the walk never enters data/ for it, so the filter agrees
    keep = _filter(tmp_path, (), "*.db", "data/keep/")
    assert keep("data", True)  # entered on the way to data/keep/ ...
    assert keep("data/x.db")  # ... where *.db then counts too
    assert not keep("data/other", True)
    assert keep("data/keep/x.txt")


def test_protection_satisfies_watch_include(tmp_path: Path) -> None:
    rules = (ProtectRule(paths=("state/",)),)
    keep = PathFilter(tmp_path, WatchSettings(include=("src/**",)), rules)
    assert keep("src/a.py")
    assert not keep("docs/a.md")
    assert keep("state/a.json")


def test_the_walk_descends_only_where_protected_files_can_be(tmp_path: Path) -> None:
    root = _project(tmp_path, gitignore="g/\nnode_modules/\n")
    policy = Policy(watch=WatchSettings(exclude=("*.log",)), protect=(ProtectRule(paths=("g/followup/state/",)),))
    keep = PathFilter(root, policy.watch, policy.protect_rules)
    found = {rel for rel, _st in walk_tree(root, keep)}
    assert {STATE, "g/followup/state/queue.json", "src/main.py", "frontend/app.js"} <= found
    assert "g/logs/run.txt" not in found
    assert not any("node_modules" in rel for rel in found)


def test_notes_name_the_rule_and_the_place(tmp_path: Path) -> None:
    root = _project(tmp_path, gitignore="g/\n")
    (root / "g" / ".gitignore").write_text("followup/state/\n")
    policy = Policy(
        watch=WatchSettings(exclude=("*.log",)),
        protect=(
            ProtectRule(paths=("g/followup/state/", "tools/run.log", "*.db")),
            ProtectRule(paths=("build/out.txt", "src/")),
        ),
    )
    assert hidden_protected_notes(root, policy) == [
        "g/followup/state/ is protected but g/ is in .gitignore; guardian watches g/followup/state/ anyway",
        "tools/run.log matches watch.exclude but protected; guardian watches it anyway",
        "build/out.txt is protected but build/ is left out by guardian's built-in excludes: it is not captured",
    ]
    (root / ".gitignore").write_text("")
    assert hidden_protected_notes(root, policy)[0] == (
        "g/followup/state/ is in g/.gitignore but protected; guardian watches it anyway"
    )


# --------------------------------------------------------------------------- the whole path, without the watcher


def test_init_captures_the_hidden_protected_files_and_says_so(tmp_path: Path) -> None:
    root = _project(tmp_path)
    r = run_cli("init", cwd=root)
    assert r.exit_code == 0, r.stderr
    assert f"guardian: {NOTE}" in r.stderr.splitlines()
    assert r.stderr.count("guardian watches it anyway") == 1  # once, not once per file
    tree = _tree(root)
    assert {STATE, "g/followup/state/queue.json", "frontend/app.js", "src/main.py"} <= tree
    assert "g/logs/run.txt" in tree  # g/logs is not ignored here
    assert not any("node_modules" in path for path in tree)
    status = run_cli("status", cwd=root)
    assert NOTE in status.stdout.splitlines()
    notes = json.loads(run_cli("status", "--json", cwd=root).stdout)["notes"]
    # init queued its secret scan for the watcher: status says so in a note of its own
    assert [n for n in notes if "wait for the secret scan" not in n] == [NOTE.removeprefix("note: ")]


def test_adding_the_ignore_rule_later_records_no_deletion_and_the_guardrail_still_covers_them(
    tmp_path: Path,
) -> None:
    """The field sequence: captured first, then the state directory goes into .gitignore."""
    root = _project(tmp_path, gitignore="node_modules/\n")
    assert run_cli("init", cwd=root).exit_code == 0
    (root / ".gitignore").write_text("node_modules/\ng/followup/state/\n")
    (root / "src" / "main.py").write_text("print('changed')\n")
    r = run_cli("snapshot", cwd=root)
    assert r.exit_code == 0, r.stderr
    (root / STATE).write_text('{"open": 4}\n')
    assert run_cli("snapshot", cwd=root).exit_code == 0
    assert _changes(root, STATE) == ["add", "modify"]
    assert _changes(root, "g/followup/state/queue.json") == ["add"]
    history = run_cli("history", STATE, cwd=root)
    assert history.exit_code == 0
    assert "deleted" not in history.stdout
    # The guardrail covers them: a torn state file is drift, and --repair puts the last valid one back.
    (root / STATE).write_text('{"open": ')
    check = run_cli("check", cwd=root)
    assert check.exit_code == 1
    assert f"drift: {STATE} (protected) is invalid" in check.stdout
    assert run_cli("check", "--repair", cwd=root).exit_code == 0
    assert (root / STATE).read_text() == '{"open": 4}\n'
    (root / STATE).unlink()
    check = run_cli("check", cwd=root)
    assert f"drift: {STATE} (protected) is missing: deleted since the last snapshot" in check.stdout


# --------------------------------------------------------------------------- with the watcher running


def test_watcher_captures_hidden_protected_files_and_never_records_them_deleted(tmp_path: Path) -> None:
    root = _project(tmp_path, gitignore="node_modules/\n")
    assert run_cli("init", cwd=root).exit_code == 0
    project = Project.find(root)
    with running(project, FAST) as run:
        rescans = run.watcher.stats.rescans
        (root / ".gitignore").write_text("node_modules/\ng/followup/state/\ng/logs/\n")
        wait_until(lambda: run.watcher.stats.rescans > rescans, "the rescan a .gitignore change starts")
        (root / STATE).write_text('{"open": 5}\n')
        wait_captured(project, STATE, '{"open": 5}\n')
        (root / "g" / "followup" / "state" / "new.json").write_text("{}\n")
        wait_captured(project, "g/followup/state/new.json", "{}\n")
        (root / "g" / "logs" / "run.txt").write_text("ignored now\n")
        (root / "src" / "sentinel.py").write_text("x = 1\n")
        wait_captured(project, "src/sentinel.py", "x = 1\n")
    assert "g/followup/state/queue.json" in _tree(root)
    assert "delete" not in _changes(root, STATE)
    assert _changes(root, "g/followup/state/queue.json") == ["add"]
    # g/logs/ is ignored and not protected: it leaves the snapshot, as before.
    assert _changes(root, "g/logs/run.txt")[-1] == "delete"
    history = run_cli("history", STATE, cwd=root)
    assert "deleted" not in history.stdout


def test_watcher_sees_writes_inside_an_ignored_directory_on_the_way(tmp_path: Path) -> None:
    root = _project(tmp_path, gitignore="g/\n")
    assert run_cli("init", cwd=root).exit_code == 0
    project = Project.find(root)
    assert "g/logs/run.txt" not in _tree(root)
    with running(project, FAST):
        os.makedirs(root / "g" / "followup" / "state" / "deep")
        (root / "g" / "followup" / "state" / "deep" / "x.json").write_text("[]\n")
        wait_captured(project, "g/followup/state/deep/x.json", "[]\n")
        (root / "g" / "logs" / "more.txt").write_text("not captured\n")
        (root / "src" / "sentinel.py").write_text("y = 2\n")
        wait_captured(project, "src/sentinel.py", "y = 2\n")
    assert not any(path.startswith("g/logs/") for path in _tree(root))
