"""What ``guardian history PATH``, ``log`` and ``restore PATH`` import, as a real process sees it.

These run on every look at a file, so their time is mostly imports (issue 15).  Each module
named here was on one of these paths and is needed only elsewhere (parsing guardian.yaml,
writing an event, a grant, a rollback story, a WAL recovery, click's commands); a change that
brings one back fails here by name, instead of as a slower benchmark nobody runs.  Only names
are asserted, never times.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import git, run_cli

# Not on any of the three paths.
NEVER = {
    "click",
    "yaml",
    "detect_secrets",
    "guardian.capture.secrets",  # the scanner's module: a restore's captures queue their scans
    "tomllib",
    "difflib",
    "guardian.cli.base",
    "guardian.trust.grants",  # only when an edit of guardian.yaml would weaken it
    "guardian.trust.hook_pathspec",  # only when a policy is accepted
    "guardian.query.rollbacks",  # only for a protected path
    "guardian.capture.sqlite_recovery",  # only for a database whose WAL outlived it
    "tempfile",  # only for a database's check or recovery, or a command check
    "concurrent.futures",  # only when a large capture starts its parse workers
    "logging",  # only when the secret scanner runs
}
# history answers from the catalog alone: no store, no events, no capture.
NOT_IN_HISTORY = NEVER | {
    "pygit2",
    "guardian.store.repo",
    "guardian.store.trailers",
    "guardian.events",
    "guardian.query.log",
    "guardian.capture.engine",
    "guardian.ops.session",
    "hashlib",  # OpenSSL, ~5 ms: the store's name and the kept parse's key use the built-in sha256
    # Records are NamedTuples or slotted classes: dataclasses imports inspect (with ast, dis, tokenize...).
    "dataclasses",
    "inspect",
}
# log reads the notes from the store, but writes nothing and captures nothing.
NOT_IN_LOG = NEVER | {
    "guardian.events",
    "guardian.capture.engine",
    "guardian.ops.session",
    "guardian.policy",
    "subprocess",
}
# restore captures, but starts no process: the user's git and command checks are not asked.
NOT_IN_RESTORE = NEVER | {
    "subprocess",
    # The store's, the validators' and the event log's records are NamedTuples or slotted classes too.
    "dataclasses",
    "inspect",
    "ast",  # only when a torn-write check compares two Python outlines (capture.torn)
}


def imported_by(project: Path, *args: str) -> set[str]:
    """The modules ``python -m guardian ARGS`` imports, from ``-X importtime``; the command must succeed."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "guardian", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return {line.split("|")[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}


@pytest.fixture
def snapshotted(project: Path) -> Path:
    """A git project with guardian initialised and a file with two versions, the second one changed since."""
    git("init", "-q", cwd=project)
    (project / "a.py").write_text("x = 1\n")
    git("add", "a.py", cwd=project)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "a", cwd=project)
    assert run_cli("init", cwd=project).exit_code == 0
    (project / "a.py").write_text("x = 2\n")
    assert run_cli("snapshot", cwd=project).exit_code == 0
    (project / "a.py").write_text("x = 3\n")
    imported_by(project, "history", "a.py")  # the first run keeps the parsed policy for the next ones
    return project


@pytest.mark.parametrize(
    ("args", "unwanted"),
    [(("history", "a.py"), NOT_IN_HISTORY), (("log",), NOT_IN_LOG), (("restore", "a.py"), NOT_IN_RESTORE)],
    ids=["history", "log", "restore"],
)
def test_hot_commands_import_only_what_they_need(snapshotted: Path, args: tuple[str, ...], unwanted: set[str]) -> None:
    imported = imported_by(snapshotted, *args)
    assert "guardian.cli.fast" in imported  # answered without click, as these tests mean to check
    assert sorted(unwanted & imported) == []
