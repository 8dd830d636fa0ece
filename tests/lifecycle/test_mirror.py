"""The off-machine mirror: remotes, push (bare repo on disk and a real git daemon), init --from, restore."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from guardian.errors import OperationFailed, UsageError
from guardian.lifecycle import gc as lifecycle
from guardian.lifecycle import mirror
from guardian.ops import remote as remote_ops
from guardian.project import Project
from guardian.query.status import store_report
from guardian.util.git import GitResult
from guardian.watch.maintenance import Maintenance
from tests.conftest import fsck, git, run_cli
from tests.lifecycle.test_gc import NOW, History, empty_project

PY_GOOD = "def main():\n    return 'ok'\n"


@pytest.fixture
def bare_remote(tmp_path: Path) -> Path:
    remote = tmp_path / "mirror.git"
    git("init", "--bare", "--quiet", str(remote), cwd=tmp_path)
    return remote


class Machines:
    """Several "machines": each its own GUARDIAN_HOME and host name, switched in turn."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tmp_path = tmp_path
        self.monkeypatch = monkeypatch

    def use(self, name: str) -> Path:
        home = self.tmp_path / f"home-{name}"
        self.monkeypatch.setenv("GUARDIAN_HOME", str(home))
        self.monkeypatch.setattr(socket, "gethostname", lambda: f"{name}.example.org")
        return home


@pytest.fixture
def machines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Machines:
    return Machines(tmp_path, monkeypatch)


def _work_tree(root: Path) -> Project:
    """A project with a file that is valid at first and broken in the latest snapshot."""
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text(PY_GOOD)
    (root / "config.json").write_text('{"retries": 3}\n')
    (root / "run.sh").write_text("#!/bin/sh\necho run\n")
    (root / "run.sh").chmod(0o755)
    assert run_cli("init", cwd=root).exit_code == 0
    (root / "config.json").write_text('{"retries": \n')
    assert run_cli("snapshot", cwd=root).exit_code == 0
    return Project.find(root)


def _remote_ref(remote: Path, ref: str) -> str:
    return git("--git-dir", str(remote), "rev-parse", ref, cwd=remote).stdout.strip()


# --------------------------------------------------------------------------- names and remotes


def test_mirror_ref_names_are_safe(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (project / "a.txt").write_text("a")
    assert run_cli("init", cwd=project).exit_code == 0
    proj = Project.find(project)
    monkeypatch.setattr(socket, "gethostname", lambda: "..My Laptop (2).lock")
    assert mirror.host_name() == "My-Laptop-2"
    assert mirror.mirror_ref(proj) == f"refs/guardian/My-Laptop-2/{proj.paths.store.name}"
    monkeypatch.setattr(socket, "gethostname", lambda: "///")
    assert mirror.host_name() == "host"
    assert git("check-ref-format", mirror.mirror_ref(proj), cwd=project).returncode == 0


def test_remote_add_list_remove_and_their_errors(project: Path, bare_remote: Path) -> None:
    (project / "a.txt").write_text("a")
    assert run_cli("init", cwd=project).exit_code == 0
    proj = Project.find(project)
    ref = mirror.mirror_ref(proj)
    r = run_cli("remote", "list", cwd=project)
    assert (r.exit_code, r.stdout) == (0, "no remotes (add one with 'guardian remote add NAME URL')\n")
    r = run_cli("remote", "add", "backup", "../mirror.git", cwd=project)
    assert r.exit_code == 0, r.stderr
    assert r.stdout == f"added remote backup {bare_remote}; 'guardian push' sends snapshots to {ref} there\n"
    # Kept in the store's own git config, where stock git sees it too.
    assert git("--git-dir", str(proj.paths.repo), "config", "remote.backup.url", cwd=project).stdout.strip() == str(
        bare_remote
    )
    r = run_cli("remote", "add", "backup", "/elsewhere.git", cwd=project)
    assert (r.exit_code, r.stderr) == (
        2,
        f"guardian: error: remote 'backup' already exists ({bare_remote}); "
        "remove it first with 'guardian remote remove backup'\n",
    )
    r = run_cli("remote", "add", "-bad", "/x.git", cwd=project)
    assert r.exit_code == 2  # click reads -bad as an option
    r = run_cli("remote", "add", "bad name", "/x.git", cwd=project)
    assert (r.exit_code, r.stderr) == (
        2,
        "guardian: error: 'bad name' is not a usable remote name; use letters, digits, '.', '_' or '-' (e.g. backup)\n",
    )
    r = run_cli("remote", "add", "odd", "--", "--upload-pack=evil", cwd=project)
    assert (r.exit_code, r.stderr) == (
        2,
        "guardian: error: '--upload-pack=evil' is not a git URL; give a path, ssh://host/path, host:path "
        "or git://host/path\n",
    )
    assert run_cli("remote", "add", "ssh", "git@example.org:me/mirror.git", cwd=project).exit_code == 0
    r = run_cli("remote", "list", cwd=project)
    assert r.stdout.splitlines() == [
        f"backup\t{bare_remote}\t{ref}\tnever pushed",
        f"ssh\tgit@example.org:me/mirror.git\t{ref}\tnever pushed",
    ]
    r = run_cli("push", cwd=project)
    assert (r.exit_code, r.stderr) == (
        2,
        "guardian: error: 2 remotes are configured (backup, ssh); name one, or set mirror.remote in guardian.yaml\n",
    )
    r = run_cli("push", "nowhere", cwd=project)
    assert (r.exit_code, r.stderr) == (
        2,
        "guardian: error: no remote 'nowhere' (configured: backup, ssh); "
        "add it with 'guardian remote add nowhere URL'\n",
    )
    r = run_cli("remote", "remove", "ssh", cwd=project)
    assert (r.exit_code, r.stdout) == (0, "removed remote ssh git@example.org:me/mirror.git\n")
    r = run_cli("remote", "remove", "ssh", cwd=project)
    assert (r.exit_code, r.stderr) == (
        2,
        "guardian: error: no remote 'ssh' (configured: backup); add it with 'guardian remote add ssh URL'\n",
    )
    assert run_cli("remote", "remove", "backup", cwd=project).exit_code == 0
    r = run_cli("push", cwd=project)
    assert (r.exit_code, r.stderr) == (
        2,
        "guardian: error: no remote to push to; add one with 'guardian remote add NAME URL'\n",
    )


def test_push_with_no_snapshots_is_a_clear_error(tmp_path: Path, bare_remote: Path) -> None:
    proj = empty_project(tmp_path / "proj")
    mirror.add_remote(proj, "origin", str(bare_remote))
    r = run_cli("push", cwd=proj.root)
    assert (r.exit_code, r.stderr) == (
        1,
        "guardian: error: nothing to push: this store has no snapshots yet; run 'guardian snapshot' first\n",
    )


# --------------------------------------------------------------------------- push, then recover on a new machine


def test_push_then_init_from_the_mirror_on_a_new_machine_and_restore(
    tmp_path: Path, bare_remote: Path, machines: Machines
) -> None:
    machines.use("laptop")
    proj = _work_tree(tmp_path / "laptop" / "proj")
    assert run_cli("remote", "add", "origin", str(bare_remote), cwd=proj.root).exit_code == 0
    r = run_cli("push", cwd=proj.root)
    assert r.exit_code == 0, r.stderr
    head = proj.open_repo().head()
    assert head is not None
    ref = mirror.mirror_ref(proj)
    assert ref.startswith("refs/guardian/laptop.example.org/proj-")
    assert r.stdout.startswith(f"pushed {head[:12]} to origin ({bare_remote}) as {ref} in ")
    assert _remote_ref(bare_remote, ref) == head
    r = run_cli("push", cwd=proj.root)
    assert (r.exit_code, r.stdout) == (0, f"origin is up to date ({ref})\n")
    [last] = [e for e in proj.events.read() if e.event == "push"][-1:]
    assert last.details["ok"] is True and last.details["up_to_date"] is True
    assert run_cli("remote", "list", cwd=proj.root).stdout.split("\t")[3].startswith("last push ")

    # The laptop is gone.  On a new machine, with a fresh GUARDIAN_HOME and an empty directory:
    machines.use("desktop")
    fresh = tmp_path / "desktop" / "proj"
    fresh.mkdir(parents=True)
    report = remote_ops.init_from(fresh, str(bare_remote))
    assert (report.ref, report.head) == (ref, head)
    assert sorted(report.restored) == ["config.json", "guardian.yaml", "run.sh", "src/app.py"]
    assert report.older_valid == ["config.json"]  # broken at the head: its last valid version came back
    assert (fresh / "config.json").read_text() == '{"retries": 3}\n'
    assert (fresh / "src" / "app.py").read_text() == PY_GOOD
    assert (fresh / "run.sh").stat().st_mode & 0o111
    new = Project.find(fresh)
    fsck(new.paths.repo)
    assert new.open_repo().remotes() == {"origin": str(bare_remote)}
    log = run_cli("log", cwd=fresh)
    assert log.exit_code == 0 and len(log.stdout.splitlines()) >= 3  # the laptop's history, and this machine's
    (fresh / "src" / "app.py").write_text("")
    r = run_cli("restore", "app.py", cwd=fresh)
    assert r.exit_code == 0, r.stderr
    assert (fresh / "src" / "app.py").read_text() == PY_GOOD
    # This machine mirrors to its own ref, next to the laptop's.
    assert run_cli("push", cwd=fresh).exit_code == 0
    assert _remote_ref(bare_remote, mirror.mirror_ref(new)) == new.open_repo().head()
    assert _remote_ref(bare_remote, ref) == head

    with pytest.raises(OperationFailed) as caught:
        remote_ops.init_from(fresh, str(bare_remote))
    assert str(caught.value) == (
        f"{fresh} already has a store with snapshots ({new.paths.store}); "
        "recover files from the mirror with 'guardian restore --from-remote PATH'"
    )


def test_init_from_keeps_files_already_there(tmp_path: Path, bare_remote: Path, machines: Machines) -> None:
    machines.use("a")
    proj = _work_tree(tmp_path / "a" / "proj")
    mirror.add_remote(proj, "origin", str(bare_remote))
    mirror.push(proj)
    machines.use("b")
    fresh = tmp_path / "b" / "proj"
    (fresh / "src").mkdir(parents=True)
    (fresh / "src" / "app.py").write_text("local work\n")
    (fresh / "run.sh").write_text("#!/bin/sh\necho run\n")
    report = remote_ops.init_from(fresh, str(bare_remote))
    assert report.kept == ["src/app.py"]  # different: left alone; run.sh is the same: nothing to say
    assert "run.sh" not in report.restored
    assert (fresh / "src" / "app.py").read_text() == "local work\n"


def test_two_machines_push_to_one_remote_without_clobbering(
    tmp_path: Path, bare_remote: Path, machines: Machines
) -> None:
    heads: dict[str, str] = {}
    refnames: dict[str, str] = {}
    projects: dict[str, Project] = {}
    for name in ("alpha", "beta"):
        machines.use(name)
        root = tmp_path / name / "proj"  # the same project name on both machines
        root.mkdir(parents=True)
        (root / "who.txt").write_text(f"{name}\n")
        assert run_cli("init", cwd=root).exit_code == 0
        projects[name] = Project.find(root)
        mirror.add_remote(projects[name], "origin", str(bare_remote))
        result = mirror.push(projects[name])
        assert result.ok and result.head is not None
        heads[name] = result.head
        assert result.ref == mirror.mirror_ref(projects[name])
        refnames[name] = result.ref
    refs = git("--git-dir", str(bare_remote), "for-each-ref", "--format=%(refname) %(objectname)", cwd=tmp_path)
    lines = sorted(refs.stdout.splitlines())
    assert len(lines) == 2
    assert lines[0].startswith("refs/guardian/alpha.example.org/proj-") and lines[0].endswith(heads["alpha"])
    assert lines[1].startswith("refs/guardian/beta.example.org/proj-") and lines[1].endswith(heads["beta"])
    machines.use("alpha")
    (projects["alpha"].root / "who.txt").write_text("alpha again\n")
    assert run_cli("snapshot", cwd=projects["alpha"].root).exit_code == 0
    assert mirror.push(projects["alpha"]).head != heads["alpha"]
    assert _remote_ref(bare_remote, refnames["alpha"]) != heads["alpha"]
    assert _remote_ref(bare_remote, refnames["beta"]) == heads["beta"]
    # Recovering needs the ref named when several projects share a name.
    fresh = tmp_path / "gamma" / "proj"
    fresh.mkdir(parents=True)
    machines.use("gamma")
    with pytest.raises(UsageError) as caught:
        remote_ops.init_from(fresh, str(bare_remote))
    alpha = refnames["alpha"].removeprefix("refs/guardian/")
    assert str(caught.value).startswith(
        f"the remote {bare_remote} holds several snapshot refs; pick one with --ref HOST/PROJECT: "
    )
    report = remote_ops.init_from(fresh, str(bare_remote), ref=alpha)
    assert (fresh / "who.txt").read_text() == "alpha again\n" and report.ref.endswith(alpha)


def test_restore_from_remote(tmp_path: Path, bare_remote: Path, machines: Machines) -> None:
    machines.use("a")
    proj = _work_tree(tmp_path / "a" / "proj")
    mirror.add_remote(proj, "origin", str(bare_remote))
    mirror.push(proj)
    pushed = proj.open_repo().head()
    # The local store is lost, the file breaks, and a new store only ever sees it broken.
    shutil.rmtree(proj.paths.store)
    (proj.root / "src" / "app.py").write_text("broken(\n")
    assert run_cli("init", cwd=proj.root).exit_code == 0
    mirror.add_remote(proj, "origin", str(bare_remote))
    r = run_cli("restore", "src/app.py", cwd=proj.root)
    assert (r.exit_code, r.stderr) == (
        1,
        "guardian: error: no valid version of 'src/app.py'; see 'guardian history src/app.py', "
        "then pick one with --at SNAPSHOT\n",
    )
    report = remote_ops.restore_from_remote(proj, ["app.py"], dry_run=True, cwd=proj.root)
    assert [f.path for f in report.files] == ["src/app.py"] and report.pre_snapshot is None
    report = remote_ops.restore_from_remote(proj, ["src/app.py", "config.json"], cwd=proj.root)
    assert (proj.root / "src" / "app.py").read_text() == PY_GOOD
    assert (proj.root / "config.json").read_text() == '{"retries": 3}\n'
    assert report.pre_snapshot is not None and report.post_snapshot is not None
    [event] = [e for e in proj.events.read() if e.event == "restore"]
    assert event.details["from_remote"] == "origin" and event.details["ref"] == mirror.mirror_ref(proj)
    fsck(proj.paths.repo)
    assert pushed is not None
    with pytest.raises(UsageError) as caught:
        remote_ops.restore_from_remote(proj, ["src/app.py"], ref="nobody/nothing")
    assert str(caught.value) == (
        f"the remote {bare_remote} has no refs/guardian/nobody/nothing; it has: "
        f"{mirror.mirror_ref(proj).removeprefix('refs/guardian/')}"
    )


def test_push_after_gc_replaces_the_rewritten_history(tmp_path: Path, bare_remote: Path) -> None:
    # keep_last 1 (the head alone): the default keeps the last 200, so these 101 would all stay.
    proj = empty_project(tmp_path / "proj", "version: 1\nretention:\n  keep_last: 1\n")
    h = History(proj)
    for k in range(100, -1, -1):
        h.commit(NOW - k * 86400, {"a.txt": f"{k}\n".encode()})
    mirror.add_remote(proj, "origin", str(bare_remote))
    first = mirror.push(proj)
    result = lifecycle.gc(proj, now=NOW)
    assert result.dropped > 0 and result.head_after != first.head
    second = mirror.push(proj)
    assert second.ok and _remote_ref(bare_remote, second.ref) == result.head_after


# --------------------------------------------------------------------------- failures, retries, background


def test_push_failures_are_retried_logged_and_reported(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (project / "a.txt").write_text("a")
    assert run_cli("init", cwd=project).exit_code == 0
    proj = Project.find(project)
    missing = project.parent / "no-such-mirror.git"
    mirror.add_remote(proj, "origin", str(missing))
    monkeypatch.setattr(mirror, "PUSH_BACKOFF", 0.01)
    r = run_cli("push", cwd=project)
    assert r.exit_code == 1
    assert r.stderr.startswith(f"guardian: error: push to 'origin' ({missing}) failed after 3 attempt(s): ")
    assert "does not appear to be a git repository" in r.stderr
    [event] = [e for e in proj.events.read() if e.event == "push"]
    assert event.details["ok"] is False and event.details["attempts"] == 3 and len(event.details["errors"]) == 3
    report = store_report(proj)
    assert report.last_push["ok"] is False
    assert report.warnings == [f"the last push to 'origin' failed: {report.last_push['error']}"]


def test_maybe_push_follows_the_interval_and_backs_off(project: Path, bare_remote: Path) -> None:
    (project / "a.txt").write_text("a")
    (project / "guardian.yaml").write_text("version: 1\nmirror:\n  interval: 15m\n  remote: origin\n")
    assert run_cli("init", cwd=project).exit_code == 0
    proj = Project.find(project)
    assert mirror.maybe_push(proj) is None  # no remote yet: nothing to do, no error
    mirror.add_remote(proj, "origin", str(project.parent / "missing.git"))
    now = 1_000_000.0
    failed = mirror.maybe_push(proj, now)
    assert failed is not None and not failed.ok
    assert mirror.read_push_state(proj)["next_attempt"] == now + 30
    assert mirror.maybe_push(proj, now + 29) is None
    assert mirror.maybe_push(proj, now + 30) is not None
    assert mirror.read_push_state(proj)["next_attempt"] == now + 30 + 60  # doubled
    assert [e.details["ok"] for e in proj.events.read() if e.event == "push"] == [False, False]
    mirror.remove_remote(proj, "origin")
    mirror.add_remote(proj, "origin", str(bare_remote))
    ok = mirror.maybe_push(proj, now + 90)
    assert ok is not None and ok.ok
    assert mirror.read_push_state(proj)["next_attempt"] == now + 90 + 900
    assert mirror.read_push_state(proj)["failures"] == 0
    assert mirror.maybe_push(proj, now + 2000) is None  # nothing new since the last good push
    (project / "a.txt").write_text("b")
    assert run_cli("snapshot", cwd=project).exit_code == 0
    assert mirror.maybe_push(proj, now + 2000) is not None


def test_a_hanging_push_never_blocks_capture(project: Path, bare_remote: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from guardian.ops.snapshot import take_snapshot

    (project / "a.txt").write_text("a")
    (project / "guardian.yaml").write_text("version: 1\nmirror:\n  interval: 1m\n")
    assert run_cli("init", cwd=project).exit_code == 0
    proj = Project.find(project)
    mirror.add_remote(proj, "origin", str(bare_remote))
    pushing = threading.Event()
    release = threading.Event()
    real_git = mirror._git

    def slow_git(args: list[str], **kwargs: object) -> GitResult:
        pushing.set()
        release.wait(10)  # a network that hangs (bounded in real life by BACKGROUND_TIMEOUT)
        return real_git(args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(mirror, "_git", slow_git)
    maintenance = Maintenance(proj, check_every=0.0)
    maintenance.poll()
    assert pushing.wait(10)
    for i in range(3):
        (project / "a.txt").write_text(f"edit {i}")
        started = time.monotonic()
        assert take_snapshot(proj, None, "watch").snapshot is not None
        assert time.monotonic() - started < 0.5
    release.set()
    maintenance.close(10)
    assert mirror.read_push_state(proj)["last"]["ok"] is True


# --------------------------------------------------------------------------- a real git daemon


@pytest.fixture
def git_daemon(tmp_path: Path) -> Iterator[str]:
    """git daemon --enable=receive-pack on 127.0.0.1, serving one bare repo; stopped afterwards."""
    base = tmp_path / "served"
    base.mkdir()
    git("init", "--bare", "--quiet", str(base / "mirror.git"), cwd=tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    daemon = subprocess.Popen(
        [
            "git",
            "daemon",
            "--reuseaddr",
            "--enable=receive-pack",
            f"--base-path={base}",
            "--export-all",
            "--listen=127.0.0.1",
            f"--port={port}",
            str(base),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or daemon.poll() is not None:
                    pytest.fail("git daemon did not start")
                time.sleep(0.05)
        yield f"git://127.0.0.1:{port}/mirror.git"
    finally:
        daemon.terminate()
        try:
            daemon.wait(5)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait(5)


def test_git_daemon_push_init_from_and_restore(tmp_path: Path, git_daemon: str, machines: Machines) -> None:
    machines.use("server-side")
    proj = _work_tree(tmp_path / "one" / "proj")
    r = run_cli("remote", "add", "daemon", git_daemon, cwd=proj.root)
    assert r.exit_code == 0, r.stderr
    r = run_cli("push", "daemon", "--json", cwd=proj.root)
    assert r.exit_code == 0, r.stderr
    pushed = json.loads(r.stdout)
    assert pushed["ok"] is True and pushed["url"] == git_daemon
    machines.use("other")
    fresh = tmp_path / "two" / "proj"
    fresh.mkdir(parents=True)
    report = remote_ops.init_from(fresh, git_daemon)
    assert report.head == pushed["head"]
    assert (fresh / "src" / "app.py").read_text() == PY_GOOD
    fsck(Project.find(fresh).paths.repo)
    (fresh / "src" / "app.py").unlink()
    remote_ops.restore_from_remote(Project.find(fresh), ["src/app.py"], ref=pushed["ref"], cwd=fresh)
    assert (fresh / "src" / "app.py").read_text() == PY_GOOD


# --------------------------------------------------------------------------- a fetched policy is not trusted


def test_init_from_never_runs_the_mirrors_command_checks_until_accepted(
    tmp_path: Path, bare_remote: Path, machines: Machines
) -> None:
    machines.use("a")
    root = tmp_path / "a" / "proj"
    root.mkdir(parents=True)
    marker = tmp_path / "ran"
    (root / "guardian.yaml").write_text(
        "version: 1\n"
        "validate:\n"
        f"  - paths: ['*.txt']\n    checks: [not-empty, {{command: ['touch', '{marker}'], timeout: 5s}}]\n"
        "protect:\n  - paths: ['keep.txt']\n    rollback: force\n"
    )
    (root / "keep.txt").write_text("keep\n")
    assert run_cli("init", cwd=root).exit_code == 0
    assert run_cli("remote", "add", "origin", str(bare_remote), cwd=root).exit_code == 0
    assert run_cli("push", cwd=root).exit_code == 0
    marker.unlink()  # the first machine trusted its own check, which ran at init

    machines.use("b")
    fresh = tmp_path / "b" / "proj"
    fresh.mkdir(parents=True)
    remote_ops.init_from(fresh, str(bare_remote))
    (fresh / "notes.txt").write_text("new\n")
    assert run_cli("snapshot", cwd=fresh).exit_code == 0
    assert not marker.exists(), "a command check from the mirror's policy ran before it was accepted"
    status = run_cli("status", cwd=fresh)
    assert "adds command checks that would run programs (touch); run 'guardian policy accept'" in status.stderr
    assert run_cli("gate", "rollback", "keep.txt", cwd=fresh).exit_code == 3  # its protection holds at once
    assert run_cli("policy", "accept", cwd=fresh).exit_code == 0
    (fresh / "notes.txt").write_text("newer\n")
    assert run_cli("snapshot", cwd=fresh).exit_code == 0
    assert marker.exists()


def test_a_command_check_added_on_disk_waits_for_accept(tmp_path: Path) -> None:
    proj = empty_project(tmp_path / "proj")
    marker = tmp_path / "ran"
    text = proj.paths.policy_file.read_text()
    proj.paths.policy_file.write_text(
        text + f"validate:\n  - paths: ['*.txt']\n    checks: [{{command: ['touch', '{marker}']}}]\n"
    )
    (proj.root / "a.txt").write_text("a\n")
    assert run_cli("snapshot", cwd=proj.root).exit_code == 0
    assert not marker.exists()
