"""The running watcher follows the policy in force (the last accepted guardian.yaml), not the file on disk.

A guardian.yaml emptied on disk must not switch off what the watcher watches and undoes:
its filters, the protected paths it watches past .gitignore, its guardrail and its
enforcement all keep the accepted policy until 'guardian policy accept'.  Real git (no
hooks), the real watcher, real deletions.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.gates.enforce_repo import FIX, WAIT, A, Repo, explain_state, make_repo, settle
from tests.watch.test_watcher import FAST, running, wait_captured, wait_until

pytestmark = [
    pytest.mark.filterwarnings(r"ignore:Callback with id .* already exists:RuntimeWarning"),
    pytest.mark.timeout(300),
]

IGNORED = "agents/cache.txt"  # in .gitignore, watched only because a protect rule covers it


def _watcher_events(repo: Repo, after: int, action: str) -> list[str]:
    return [
        str(e.details.get("pending"))
        for e in list(repo.project.events.read())[after:]
        if e.event == "watcher" and e.details.get("action") == action
    ]


def _wait_put_back(repo: Repo, after: int, rel: str, want: str) -> None:
    def done() -> bool:
        undone = any(e.details.get("action") == "undone" and rel in e.paths for e in repo.enforce_events(after))
        return undone and repo.read(rel) == want

    try:
        wait_until(done, f"{rel} to be put back", WAIT)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{explain_state(repo, after, rel)}") from None


def test_an_emptied_guardian_yaml_changes_nothing_in_the_watcher_until_accepted(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, extra={".gitignore": "agents/cache.txt\n", IGNORED: "cached\n"})
    with running(repo.project, FAST):
        after = repo.mark()
        repo.write("guardian.yaml", "version: 1\n")
        wait_until(lambda: bool(_watcher_events(repo, after, "policy pending")), "the watcher to note the edit", WAIT)
        [pending] = _watcher_events(repo, after, "policy pending")
        assert "differs from the policy in force and would weaken it" in pending
        assert _watcher_events(repo, after, "reload") == []  # nothing reloaded: the accepted policy holds
        status = run_cli("status", cwd=repo.root)
        assert "policy:    the accepted copy (see warning)" in status.stdout
        assert "run 'guardian policy accept' to put it in force" in status.stderr

        # A protected file is still undone when deleted, one .gitignore hides included.
        (repo.root / A).unlink()
        _wait_put_back(repo, after, A, FIX)
        step = repo.mark()
        (repo.root / IGNORED).unlink()
        _wait_put_back(repo, step, IGNORED, "cached\n")

        # Accepted: the emptied policy is in force, and the same deletion now stands.
        assert run_cli("policy", "accept", cwd=repo.root).exit_code == 0
        step = repo.mark()
        (repo.root / A).unlink()
        wait_captured(repo.project, A, None, WAIT)
        settle(repo)
        assert repo.read(A) is None
        assert [e for e in repo.enforce_events(step) if e.details.get("action") == "undone"] == []
        wait_until(lambda: bool(_watcher_events(repo, step, "reload")), "the watcher to reload the accepted policy")


def test_a_stricter_guardian_yaml_takes_effect_in_the_watcher_at_once(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, extra={"tools/deploy.sh": "echo deploy\n"})
    with running(repo.project, FAST):
        after = repo.mark()
        policy = (repo.root / "guardian.yaml").read_text()
        stricter = policy + '  - paths: ["tools/"]\n    reason: "deploy tooling"\n'
        repo.write("guardian.yaml", stricter)
        wait_until(lambda: bool(_watcher_events(repo, after, "reload")), "the watcher to take the stricter policy")
        assert _watcher_events(repo, after, "policy pending") == []
        (repo.root / "tools" / "deploy.sh").unlink()
        _wait_put_back(repo, after, "tools/deploy.sh", "echo deploy\n")


def test_a_policy_accept_reaches_the_watcher_with_nothing_else_changing(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    with running(repo.project, FAST):
        after = repo.mark()
        repo.write("guardian.yaml", "version: 1\n")
        wait_until(lambda: bool(_watcher_events(repo, after, "policy pending")), "the watcher to note the edit", WAIT)
        step = repo.mark()
        assert run_cli("policy", "accept", cwd=repo.root).exit_code == 0
        # No file in the tree changes: the supervise tick notices the accepted copy.
        reloaded = lambda: bool(_watcher_events(repo, step, "reload"))  # noqa: E731
        wait_until(reloaded, "the watcher to reload the accepted policy", WAIT)
