"""A checkout whose protected files differ runs hook-impl, which snapshots them in-process: keep its imports lean.

Every module the hook's Python imports is paid on each such checkout (issue 15, door c).
The hook's capture needs the store, the catalog and the validators for what it captures;
it never needs the CLI, the YAML or TOML parsers (a Python file is captured, and the
accepted policy is read from its parsed cache), the secret scanner's library (the
capture queues its scan), ``tempfile`` (only the sqlite and command checks make
directories), the grants' id generator (``secrets``), ``logging`` (only failures are
logged), the lifecycle layer, or ``dataclasses`` (its records are NamedTuples or slotted
classes; dataclasses brings inspect, ~10 ms).  The hooks run with PYTHONPROFILEIMPORTTIME=1, which
makes every Python they start print the modules it imports on stderr: this test reads
module names, never times.
"""

from __future__ import annotations

from pathlib import Path

from guardian.project import Project
from tests.gates.githooks.gitrepo import A, commit_all, g, guard, make_repo, ok, snapshot, write

# Loaded by none of the post-checkout's steps (see the module doc).
NOT_ON_THE_HOOK_PATH = (
    "click",
    "guardian.cli",
    "yaml",
    "tomllib",
    "detect_secrets",
    "guardian.capture.secrets",  # the scanner's own module: its scans are queued
    "tempfile",
    "secrets",
    "logging",
    "guardian.lifecycle",
    # Its records are NamedTuples or slotted classes: dataclasses imports inspect (with ast, dis, tokenize...).
    "dataclasses",
    "inspect",
    "ast",  # only when a torn-write check compares two Python outlines (capture.torn)
)


def _imported(stderr: str) -> set[str]:
    """The module names in ``-X importtime`` lines ("import time: SELF | CUMULATIVE | NAME")."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                names.add(name)
    return names


def _hook_snapshots_of_a(repo: Path) -> list[str]:
    events = Project.find(repo).events.read()
    return [e.snapshot for e in events if e.event == "snapshot" and e.trigger == "hook" and A in e.paths and e.snapshot]


def test_a_protected_checkout_snapshots_in_process_without_the_heavy_modules(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    guard(repo)
    ok(g(repo, "checkout", "-q", "-b", "side"))
    write(repo, A, "x = 3\n")
    commit_all(repo, "side changes a protected file")
    ok(g(repo, "checkout", "-q", "main"))
    snapshot(repo)
    for branch, content in (("side", "x = 3\n"), ("main", "x = 2\n")):
        before = _hook_snapshots_of_a(repo)
        # Cold: no watcher's warm server may answer the hook from modules it imported already.
        checkout = g(repo, "checkout", "-q", branch, extra={"PYTHONPROFILEIMPORTTIME": "1", "GUARDIAN_WARM": "0"})
        assert checkout.returncode == 0, checkout.stderr
        imported = _imported(checkout.stderr)
        assert "guardian.gates.githooks.hook" in imported  # the shim's fast path did not answer: hook-impl ran
        assert "guardian.ops.snapshot" in imported  # and it snapshotted git's result itself
        assert sorted(imported.intersection(NOT_ON_THE_HOOK_PATH)) == [], f"checkout {branch}"
        # The capture is as complete as before: the protected file's new content is in a hook snapshot.
        after = _hook_snapshots_of_a(repo)
        assert len(after) == len(before) + 1, f"checkout {branch}: no hook snapshot of {A}"
        with Project.find(repo).reader() as (store, catalog):
            [version] = [v for v in catalog.versions_of(A) if v.snapshot == after[-1]]
            assert version.blob is not None and store.read_blob(version.blob) == content.encode()
            assert version.verdict == "valid"
