"""A git hook's snapshot never loads detect-secrets: its versions wait in secrets-pending.json.

The hook is a short process that would pay the library's whole load for one scan, so its
capture queues what it captured, as a watcher capture made before the library is loaded
does, and the next capture with the library (a manual snapshot, the watcher's) scans them,
even when it finds nothing changed.
"""

from __future__ import annotations

from pathlib import Path

from guardian.capture import secret_record, secrets
from guardian.capture.secret_record import read_index
from guardian.ops.snapshot import take_snapshot
from guardian.project import Project
from tests.capture.secret_corpus import TELEGRAM
from tests.conftest import run_cli
from tests.gates.githooks.gitrepo import A, commit_all, g, guard, make_repo, ok, snapshot, write


def _checkout_to_a_secret(tmp_path: Path) -> tuple[Path, str]:
    """A guarded repo whose `git checkout side` brings a protected file holding a secret; git's stderr."""
    repo = make_repo(tmp_path / "repo")
    guard(repo)
    ok(g(repo, "checkout", "-q", "-b", "side"))
    write(repo, A, f'TOKEN = "{TELEGRAM}"\n')
    commit_all(repo, "side holds a secret")
    ok(g(repo, "checkout", "-q", "main"))
    snapshot(repo)  # the store knows main's content: the checkout below changes a protected file
    # Every Python the hooks start prints the modules it imports.
    checkout = g(repo, "checkout", "-q", "side", extra={"PYTHONPROFILEIMPORTTIME": "1"})
    assert checkout.returncode == 0, checkout.stderr
    return repo, checkout.stderr


def _hook_snapshot_of_a(repo: Path) -> str:
    proj = Project.find(repo)
    [event] = [e for e in proj.events.read() if e.event == "snapshot" and e.trigger == "hook" and A in e.paths]
    assert event.snapshot is not None
    return event.snapshot


def test_a_hook_snapshot_queues_its_secret_scan_and_a_manual_snapshot_reports_it(tmp_path: Path) -> None:
    repo, stderr = _checkout_to_a_secret(tmp_path)
    assert "hook-impl" in stderr or "guardian.gates.githooks" in stderr  # the hook's Python did run
    assert "detect_secrets" not in stderr
    assert "guardian.lifecycle" not in stderr  # gc loads only when the store is near a size limit
    proj = Project.find(repo)
    assert secret_record.pending_scans(proj.paths.store) == 1
    assert not [e for e in proj.events.read() if e.event == "secret"]
    taken = _hook_snapshot_of_a(repo)
    r = run_cli("status", cwd=repo)
    assert r.exit_code == 0, r.stderr
    expected = "note: 1 captured version(s) wait for the secret scan: the watcher scans them, or 'guardian snapshot'"
    assert expected in r.stdout.splitlines()

    r = run_cli("snapshot", cwd=repo)  # nothing changed since the hook's snapshot: the queue is scanned all the same
    assert r.exit_code == 0, r.stderr
    [found] = [e for e in proj.events.read() if e.event == "secret"]
    assert found.paths == [A] and found.snapshot == taken and found.trigger == "hook"
    assert secret_record.pending_scans(proj.paths.store) == 0
    assert A in read_index(proj.paths.store)
    assert "wait for the secret scan" not in run_cli("status", cwd=repo).stdout


def test_the_watchers_next_capture_scans_what_a_hook_queued(tmp_path: Path) -> None:
    repo, _ = _checkout_to_a_secret(tmp_path)
    proj = Project.find(repo)
    assert secret_record.pending_scans(proj.paths.store) == 1
    secrets._Detector.instance()  # as in a watcher whose warm-up thread is done
    take_snapshot(proj, None, "watch")  # finds nothing changed: the hook captured the checkout
    [found] = [e for e in proj.events.read() if e.event == "secret"]
    assert found.paths == [A] and found.snapshot == _hook_snapshot_of_a(repo) and found.trigger == "hook"
    assert secret_record.pending_scans(proj.paths.store) == 0
