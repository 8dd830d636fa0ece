"""guardian forget: purge a secret (--text) or a path from every stored version, checked with stock git.

Seed 004's own step is "rotate and remove the token"; before this there was no way to get it
out of the store.  Each test captures real files through the CLI and reads the store (and a
real bare mirror) back with git.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from guardian.capture.secret_record import read_index
from guardian.errors import LockHeld, UsageError
from guardian.lifecycle import gc as lifecycle
from guardian.lifecycle import mirror
from guardian.ops import forget as forget_ops
from guardian.ops.forget import MARK, forget
from guardian.project import Project
from guardian.query.lookup import resolve_snapshot
from tests.capture.secret_corpus import TELEGRAM
from tests.conftest import fsck, git, run_cli

BOT = f'import os\n\nBOT_TOKEN = "{TELEGRAM}"\n\n\ndef send(text):\n    return (BOT_TOKEN, text)\n'
CLEAN_BOT = 'import os\n\nBOT_TOKEN = os.environ["BOT_TOKEN"]\n\n\ndef send(text):\n    return (BOT_TOKEN, text)\n'


def _grep(git_dir: Path, needle: str) -> str:
    """What `git grep NEEDLE $(git rev-list --all)` finds in the store: '' for nothing."""
    revs = git("--git-dir", str(git_dir), "rev-list", "--all", cwd=git_dir).stdout.split()
    proc = subprocess.run(
        ["git", "--git-dir", str(git_dir), "grep", "-F", "-l", needle, *revs],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr
    return proc.stdout


def _objects_holding(git_dir: Path, needle: str) -> list[str]:
    """Every object on disk (loose or packed, reachable or not) whose content holds needle."""
    listing = git("--git-dir", str(git_dir), "cat-file", "--batch-all-objects", "--batch-check", cwd=git_dir).stdout
    ids = [line.split()[0] for line in listing.splitlines()]
    found = []
    for oid in ids:
        proc = subprocess.run(
            ["git", "--git-dir", str(git_dir), "cat-file", "-p", oid], capture_output=True, check=False
        )
        if needle.encode() in proc.stdout:
            found.append(oid)
    return found


def _seed_004(root: Path, snapshots: int = 5) -> tuple[Project, list[str]]:
    """The token in config/bot.py, captured into every snapshot; one note quotes it too."""
    (root / "config").mkdir(parents=True)
    (root / "config" / "bot.py").write_text(BOT)
    (root / "app.py").write_text("print(0)\n")
    assert run_cli("init", cwd=root).exit_code == 0
    for i in range(1, snapshots):
        (root / "app.py").write_text(f"print({i})\n")
        note = f"token is {TELEGRAM}" if i == 2 else "tweak"
        assert run_cli("snapshot", "-m", note, cwd=root).exit_code == 0
    proj = Project.find(root)
    return proj, [c.id for c in proj.open_repo().walk()]


def test_forget_text_rewrites_every_version_and_gc_prunes_the_old_objects(project: Path) -> None:
    proj, old_ids = _seed_004(project)
    repo_dir = proj.paths.repo
    assert _grep(repo_dir, TELEGRAM) != ""
    (project / "config" / "bot.py").write_text(CLEAN_BOT)  # the user removed (and rotated) it first
    r = run_cli("forget", "--text", TELEGRAM, cwd=project)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.splitlines()[0] == "rewrote 1 version(s) of 1 file(s):"
    assert "redacted  config/bot.py" in r.stdout
    assert "rewrote 1 snapshot message(s) that held the text" in r.stdout
    assert f"{len(old_ids)} snapshot(s) got new ids (the old ids still find them)" in r.stdout
    assert TELEGRAM not in r.stdout + r.stderr
    # Locally: no commit reachable from any ref holds it, in a file or a message.
    assert _grep(repo_dir, TELEGRAM) == ""
    log = git("--git-dir", str(repo_dir), "log", "--all", "--format=%B", cwd=repo_dir).stdout
    assert TELEGRAM not in log and MARK in log
    fsck(repo_dir)
    head = proj.open_repo().head()
    assert head is not None
    redacted = git("--git-dir", str(repo_dir), "show", f"{head}:config/bot.py", cwd=repo_dir).stdout
    assert redacted == BOT.replace(TELEGRAM, MARK)
    # Every old snapshot id still finds its snapshot.
    catalog = proj.open_catalog()
    try:
        for old in old_ids:
            assert resolve_snapshot(catalog, old[:12]).id != old
    finally:
        catalog.close()
    # The record and the log hold no trace of the text; status no longer lists the file.
    assert read_index(proj.paths.store) == {}
    assert TELEGRAM not in proj.paths.events.read_text(encoding="utf-8")
    [event] = [e for e in proj.events.read() if e.event == "forget"]
    assert event.paths == ["config/bot.py"] and event.details["versions"] == 1 and event.details["text"] is True
    assert "secrets:" not in run_cli("status", cwd=project).stderr
    # The old objects are still on disk until gc prunes them.
    assert _objects_holding(repo_dir, TELEGRAM) != []
    lifecycle.gc(proj)
    assert _objects_holding(repo_dir, TELEGRAM) == []
    fsck(repo_dir)
    # The history is whole: the latest valid version comes back, redacted.
    (project / "config" / "bot.py").unlink()
    assert run_cli("restore", "config/bot.py", cwd=project).exit_code == 0


def test_forget_refuses_while_the_work_tree_still_holds_it(project: Path) -> None:
    proj, old_ids = _seed_004(project, snapshots=2)
    r = run_cli("forget", "--text", TELEGRAM, cwd=project)
    assert r.exit_code == 1
    assert r.stderr == (
        "guardian: error: config/bot.py still hold(s) that text in the work tree, so the next capture would "
        "store it again: remove it from the file(s) first (and rotate the secret), then run forget again; "
        "nothing was changed\n"
    )
    assert proj.open_repo().head() == old_ids[0]
    assert _grep(proj.paths.repo, TELEGRAM) != ""


def test_forget_dry_run_lists_the_versions_and_changes_nothing(project: Path) -> None:
    proj, old_ids = _seed_004(project, snapshots=3)
    (project / "config" / "bot.py").write_text(f'{BOT}\nBACKUP = "{TELEGRAM}"\n')
    assert run_cli("snapshot", cwd=project).exit_code == 0
    head = proj.open_repo().head()
    r = run_cli("forget", "--text", TELEGRAM, "--dry-run", cwd=project)
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "would rewrite 2 version(s) of 1 file(s):"
    assert lines[1].startswith(f"  {old_ids[-1][:12]}  ") and lines[1].endswith("  redact    config/bot.py")
    assert lines[2].startswith(f"  {head[:12] if head else ''}  ")
    assert "would rewrite 1 snapshot message(s) that held the text" in r.stdout
    assert "a real run would refuse: config/bot.py still hold(s) it in the work tree" in r.stdout
    assert proj.open_repo().head() == head
    data = json.loads(run_cli("forget", "--text", TELEGRAM, "--dry-run", "--json", cwd=project).stdout)
    assert data["dry_run"] is True and len(data["versions"]) == 2 and TELEGRAM not in json.dumps(data)


def test_forget_path_drops_every_version_of_it(project: Path) -> None:
    (project / "notes").mkdir()
    (project / "app.py").write_text("print(0)\n")
    for i in range(3):
        (project / "notes" / "keys.txt").write_text(f"prod password {i}: CANARY-{i}-not-detected\n")
        assert run_cli("init" if i == 0 else "snapshot", cwd=project).exit_code == 0
    proj = Project.find(project)
    r = run_cli("forget", "notes/keys.txt", cwd=project)
    assert r.exit_code == 1
    assert "notes/keys.txt is still in the work tree and would be captured again: delete it, or add it to " in r.stderr
    (project / "notes" / "keys.txt").unlink()
    assert run_cli("snapshot", cwd=project).exit_code == 0
    r = run_cli("forget", "notes", cwd=project)  # a directory: every file ever under it
    assert r.exit_code == 0, r.stderr
    assert r.stdout.splitlines()[0] == "rewrote 3 version(s) of 1 file(s):"
    assert r.stdout.count("dropped   notes/keys.txt") == 3
    assert _grep(proj.paths.repo, "CANARY-") == ""
    repo = proj.open_repo()
    assert all(repo.entry_at(c.id, "notes/keys.txt") is None for c in repo.walk())
    catalog = proj.open_catalog()
    try:
        assert not catalog.known_path("notes/keys.txt")
    finally:
        catalog.close()
    lifecycle.gc(proj)
    assert _objects_holding(proj.paths.repo, "CANARY-") == []
    assert run_cli("history", "app.py", cwd=project).exit_code == 0


def test_forget_then_push_replaces_the_mirrors_history(project: Path, tmp_path: Path) -> None:
    remote = tmp_path / "mirror.git"
    git("init", "--bare", "--quiet", str(remote), cwd=tmp_path)
    secret = "CANARY-internal-token-the-scanner-cannot-know"
    (project / "deploy.txt").write_text(f"token {secret}\n")
    (project / "app.py").write_text("print(0)\n")
    assert run_cli("init", cwd=project).exit_code == 0
    proj = Project.find(project)
    mirror.add_remote(proj, "origin", str(remote))
    mirror.push(proj)
    assert _grep(remote, secret) != ""  # not something any scanner knows: it went out in clear
    (project / "deploy.txt").write_text("token from the vault\n")
    assert run_cli("forget", "--text", secret, cwd=project).exit_code == 0
    result = mirror.push(proj)
    assert result.ok
    revs = git("--git-dir", str(remote), "rev-list", result.ref, cwd=remote).stdout.split()
    grep = subprocess.run(["git", "--git-dir", str(remote), "grep", "-F", secret, *revs], capture_output=True)
    assert grep.returncode == 1
    # The mirror's ref no longer reaches it; its own gc deletes the objects.
    git("--git-dir", str(remote), "gc", "--prune=now", "--quiet", cwd=remote)
    assert _objects_holding(remote, secret) == []


def test_snapshots_taken_while_forget_runs_are_rewritten_too(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from guardian.ops.snapshot import take_snapshot

    proj, _old = _seed_004(project, snapshots=2)
    (project / "config" / "bot.py").write_text(CLEAN_BOT)
    real = forget_ops.catalog_for

    def capture_meanwhile(*args: object, **kwargs: object) -> object:
        # Between the rewrite and the swap (no writer lock held): a capture brings the text back.
        (project / "late.py").write_text(f'LATE = "{TELEGRAM}"\n')
        assert take_snapshot(proj, ["late.py"], "watch").snapshot is not None
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(forget_ops, "catalog_for", capture_meanwhile)
    result = forget(proj, text=TELEGRAM)
    assert result.replayed == 1
    assert _grep(proj.paths.repo, TELEGRAM) == ""
    head = proj.open_repo().head()
    assert head == result.head_after
    assert proj.open_repo().entry_at(head or "", "late.py") is not None


def test_forget_usage_errors_and_locks(project: Path) -> None:
    proj, _old = _seed_004(project, snapshots=1)
    with pytest.raises(UsageError, match="say what to forget"):
        forget(proj)
    with pytest.raises(UsageError, match="give the whole secret"):
        forget(proj, text="abc")
    with pytest.raises(UsageError, match=r"'nope\.txt' has no stored version"):
        forget(proj, paths=["nope.txt"], cwd=project)
    r = run_cli("forget", "--text", "not-stored-anywhere", cwd=project)
    assert r.exit_code == 0 and r.stdout == "nothing stored holds that; nothing to forget\n"
    with lifecycle.maintenance_lock(proj, 0.0), pytest.raises(LockHeld):
        forget(proj, text="not-stored-anywhere", lock_timeout=0.0)
