"""The shadow store and snapshot engine, with real pygit2 stores and stock git reading them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from guardian.capture.filters import PathFilter
from guardian.capture.reading import _RACY_NS, WHOLE_FIRST, FileReader
from guardian.capture.walk import DirectoryModes, walk_tree
from guardian.errors import OperationFailed
from guardian.ops.snapshot import take_snapshot
from guardian.project import Project, ProjectPaths
from guardian.store.repo import ShadowRepo
from guardian.store.trailers import parse_message
from guardian.store.tree import MODE_EXEC, MODE_FILE, Entry
from tests.conftest import fsck, guardian_subprocess, run_cli


def _init(root: Path) -> ProjectPaths:
    r = run_cli("init", cwd=root)
    assert r.exit_code == 0, r.stderr
    return ProjectPaths.for_root(root.resolve())


def _git(paths: ProjectPaths, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(paths.repo), *args], capture_output=True, text=True, check=True
    ).stdout


def test_store_location_mode_and_stock_git(project: Path) -> None:
    (project / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (project / "run.sh").chmod(0o755)
    paths = _init(project)
    home = Path(os.environ["GUARDIAN_HOME"])
    assert paths.store.parent == home
    assert paths.store.name.startswith("proj-")
    assert oct(paths.store.stat().st_mode & 0o777) == "0o700"
    assert not (project / ".git").exists()  # nothing is added to the work tree but guardian.yaml
    assert sorted(p.name for p in project.iterdir()) == ["guardian.yaml", "run.sh"]
    assert "init: 2 added" in _git(paths, "log", "--format=%s")
    assert _git(paths, "ls-tree", "HEAD", "run.sh").startswith("100755 blob")
    assert _git(paths, "config", "gc.auto").strip() == "0"
    assert _git(paths, "symbolic-ref", "HEAD").strip() == "refs/heads/snapshots"
    fsck(paths.repo)


def test_init_twice_reports_what_exists(project: Path) -> None:
    _init(project)
    r = run_cli("init", cwd=project)
    assert r.exit_code == 0
    assert "kept existing" in r.stdout
    assert "nothing changed since the last snapshot" in r.stdout


def test_project_found_by_walking_up_and_with_C(project: Path, tmp_path: Path) -> None:
    (project / "deep" / "er").mkdir(parents=True)
    (project / "deep" / "er" / "f.txt").write_text("x\n")
    _init(project)
    r = run_cli("status", "--json", cwd=project / "deep" / "er")
    assert json.loads(r.stdout)["root"] == str(project.resolve())
    r = run_cli("-C", str(project), "status", "--json", cwd=tmp_path)
    data = json.loads(r.stdout)
    assert {"root", "store", "repo"} <= data.keys()
    assert data["repo"].endswith("repo.git")
    r = run_cli("status", cwd=tmp_path)
    assert r.exit_code == 2
    assert r.stderr.strip() == (
        f"guardian: error: no guardian.yaml found in {tmp_path} or any parent; "
        "run 'guardian init' there, or pass -C DIR"
    )
    r = run_cli("-C", str(tmp_path / "nope"), "status", cwd=tmp_path)
    assert r.exit_code == 2
    assert "-C " in r.stderr and "not a directory; give an existing project directory" in r.stderr


def test_secrets_never_reach_a_blob(project: Path) -> None:
    os.umask(0o022)
    canaries = {
        ".env": "API_KEY=CANARY-ENV",
        ".env.local": "CANARY-ENVLOCAL",
        "id_rsa": "CANARY-RSA",
        "certs/server.pem": "CANARY-PEM",
        "keys/app.key": "CANARY-KEY",
        ".netrc": "CANARY-NETRC",
    }
    for rel, text in canaries.items():
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text(text)
    (project / "app.py").write_text("print('hi')\n")
    paths = _init(project)
    take_snapshot(Project.find(project), None, "manual")
    blobs = subprocess.run(
        ["git", "--git-dir", str(paths.repo), "cat-file", "--batch-all-objects", "--batch"],
        capture_output=True,
        check=True,
    ).stdout
    for text in canaries.values():
        assert text.encode() not in blobs
    assert b"print('hi')" in blobs
    for d in [paths.store, *paths.store.parent.iterdir()]:
        if d.is_dir() and d == paths.store:
            assert d.stat().st_mode & 0o777 == 0o700


def test_secret_captured_only_when_explicitly_included(project: Path) -> None:
    (project / "guardian.yaml").write_text("version: 1\nwatch:\n  include: ['**', '.env.example']\n")
    (project / ".env.example").write_text("EXAMPLE=1\n")
    (project / ".env").write_text("REAL=CANARY\n")
    paths = _init(project)
    files = _git(paths, "ls-tree", "-r", "--name-only", "HEAD").split()
    assert ".env.example" in files and ".env" not in files


def test_default_excludes_and_gitignore(project: Path) -> None:
    for rel in (
        "node_modules/x/index.js",
        ".venv/lib/site.py",
        "pkg/__pycache__/m.pyc",
        "build/out.o",
        "src/keep.py",
        "logs/today.log",
        "src/gen/file.txt",
    ):
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text("x\n")
    (project / ".gitignore").write_text("logs/\n")
    (project / "src" / ".gitignore").write_text("gen/\n")
    paths = _init(project)
    files = set(_git(paths, "ls-tree", "-r", "--name-only", "HEAD").split())
    assert files == {".gitignore", "guardian.yaml", "src/.gitignore", "src/keep.py"}


def test_oversized_file_is_skipped_and_logged(project: Path) -> None:
    (project / "guardian.yaml").write_text("version: 1\nwatch:\n  max_file_size: 1KB\n")
    (project / "big.bin").write_bytes(b"x" * 4096)
    (project / "small.txt").write_text("ok\n")
    paths = _init(project)
    files = set(_git(paths, "ls-tree", "-r", "--name-only", "HEAD").split())
    assert "big.bin" not in files and "small.txt" in files
    skips = [json.loads(x) for x in paths.events.read_text().splitlines() if '"skip"' in x]
    assert skips[0]["paths"] == ["big.bin"]
    assert "over watch.max_file_size" in skips[0]["details"]["reason"]


def test_verdicts_and_trailers(project: Path) -> None:
    (project / "ok.json").write_text('{"a": 1}\n')
    (project / "bad.json").write_text('{"a": ')
    (project / "mod.py").write_text("def f(:\n")
    paths = _init(project)
    message = _git(paths, "log", "-1", "--format=%B")
    info = parse_message(message)
    assert info.trigger == "init"
    assert info.verdicts["bad.json"][0] == "invalid"
    assert info.verdicts["mod.py"][0] == "invalid"
    assert "ok.json" not in info.verdicts
    r = run_cli("log", cwd=project)
    assert "!2 not valid" in r.stdout


def test_incremental_snapshot_rebuilds_only_the_changed_path(project: Path) -> None:
    for d in range(5):
        for f in range(20):
            (project / f"d{d}").mkdir(exist_ok=True)
            (project / f"d{d}" / f"f{f}.txt").write_text(f"{d}-{f}\n")
    paths = _init(project)
    before = {line.split()[3]: line.split()[2] for line in _git(paths, "ls-tree", "HEAD").splitlines()}
    (project / "d3" / "f7.txt").write_text("changed\n")
    result = take_snapshot(Project.find(project), ["d3/f7.txt"], "manual")
    assert [f.path for f in result.files] == ["d3/f7.txt"]
    after = {line.split()[3]: line.split()[2] for line in _git(paths, "ls-tree", "HEAD").splitlines()}
    assert {k for k in before if before[k] != after[k]} == {"d3"}
    fsck(paths.repo)


def test_ref_moves_by_compare_and_swap(project: Path) -> None:
    (project / "a.txt").write_text("a\n")
    paths = _init(project)
    repo = ShadowRepo(paths.repo)
    head = repo.head()
    assert head is not None
    blob = repo.write_blob(b"new\n")
    repo.commit({"b.txt": Entry(blob, MODE_FILE)}, "manual: 1 added\n", head)
    with pytest.raises(OperationFailed, match="the snapshot ref moved under us"):
        repo.commit({"c.txt": Entry(blob, MODE_EXEC)}, "manual: stale parent\n", head)
    lock = paths.repo / "refs" / "heads" / "snapshots.lock"
    lock.write_text("held by a live git\n")
    with pytest.raises(OperationFailed, match="the snapshot ref is locked by another writer"):
        repo.commit({"c.txt": Entry(blob, MODE_EXEC)}, "m\n", repo.head())
    lock.unlink()
    fsck(paths.repo)


def test_deletion_and_directory_replaced_by_file(project: Path) -> None:
    (project / "d").mkdir()
    (project / "d" / "x.txt").write_text("x\n")
    paths = _init(project)
    (project / "d" / "x.txt").unlink()
    (project / "d").rmdir()
    (project / "d").write_text("now a file\n")
    take_snapshot(Project.find(project), ["d"], "manual")
    assert set(_git(paths, "ls-tree", "-r", "--name-only", "HEAD").split()) == {"d", "guardian.yaml"}
    fsck(paths.repo)


def test_accept_records_intent(project: Path) -> None:
    f = project / "big.py"
    f.write_text("x = 1\n" * 500)
    _init(project)
    f.write_text("x = 1\n")
    assert run_cli("snapshot", cwd=project).exit_code == 0
    r = run_cli("accept", "big.py", cwd=project)
    assert r.exit_code == 0, r.stderr
    h = json.loads(run_cli("history", "--json", "big.py", cwd=project).stdout)
    assert h["timeline"][-1]["event"] == "accepted"
    assert h["diagnosis"].endswith("no changes since")
    r = run_cli("accept", "missing.py", cwd=project)
    assert r.exit_code == 1
    assert r.stderr.strip() == (
        "guardian: error: cannot accept 'missing.py': it does not exist and never did in any snapshot"
    )


@pytest.mark.parametrize(
    "point",
    [
        "snapshot-after-blob",
        "snapshot-after-tree",
        "snapshot-after-commit",
        "snapshot-after-ref",
        "snapshot-after-event",
    ],
)
def test_crash_points_leave_all_old_or_all_new(project: Path, point: str) -> None:
    (project / "a.txt").write_text("one\n")
    paths = _init(project)
    old_head = _git(paths, "rev-parse", "HEAD").strip()
    (project / "a.txt").write_text("two\n")
    proc = guardian_subprocess("snapshot", cwd=project, env={"GUARDIAN_CRASH_AT": point})
    assert proc.returncode == -signal.SIGKILL
    head = _git(paths, "rev-parse", "HEAD").strip()
    content = _git(paths, "show", "HEAD:a.txt")
    assert (head == old_head and content == "one\n") or (head != old_head and content == "two\n")
    fsck(paths.repo)
    # After a restart the catalog and the event log agree with the ref.
    r = run_cli("log", "--json", cwd=project)
    assert r.exit_code == 0, r.stderr
    snaps = json.loads(r.stdout)["snapshots"]
    assert snaps[0]["snapshot"] == head
    logged = {json.loads(x)["snapshot"] for x in paths.events.read_text().splitlines() if '"snapshot"' in x}
    assert head in logged
    r = run_cli("snapshot", cwd=project)
    assert r.exit_code == 0
    assert _git(paths, "show", "HEAD:a.txt") == "two\n"
    fsck(paths.repo)


def test_stale_ref_lock_of_dead_writer_is_cleared(project: Path) -> None:
    (project / "a.txt").write_text("one\n")
    paths = _init(project)
    (paths.repo / "refs" / "heads" / "snapshots.lock").write_text("left by a killed git\n")
    (project / "a.txt").write_text("two\n")
    r = run_cli("snapshot", cwd=project)
    assert r.exit_code == 0, r.stderr
    assert not (paths.repo / "refs" / "heads" / "snapshots.lock").exists()
    assert any('"cleared_locks"' in line for line in paths.events.read_text().splitlines())


def test_live_lock_holder_is_respected(project: Path) -> None:
    (project / "a.txt").write_text("one\n")
    paths = _init(project)
    lock = paths.repo / "refs" / "heads" / "snapshots.lock"
    with open(lock, "w") as handle:
        holder = subprocess.Popen(["sleep", "30"], stdin=handle)  # the child keeps the lock file open
    try:
        (project / "a.txt").write_text("two\n")
        r = run_cli("snapshot", cwd=project)
        assert r.exit_code == 1
        assert "the snapshot ref is locked by another writer" in r.stderr
        assert lock.exists()
    finally:
        holder.kill()
        holder.wait()
    assert run_cli("snapshot", cwd=project).exit_code == 0


def test_writer_lock_names_the_holder(project: Path) -> None:
    (project / "a.txt").write_text("one\n")
    paths = _init(project)
    from guardian.util.lock import FileLock

    with FileLock(paths.writer_lock, "the store"):
        proj = Project.find(project)
        with pytest.raises(OperationFailed, match=f"is locked by pid {os.getpid()}"):
            take_snapshot(proj, None, "manual", lock_timeout=0.2)


def test_odd_file_names_round_trip(project: Path) -> None:
    names = [b"bad\xffname.txt", b"new\nline.txt", b"sp ace.txt", b"$(touch pwned)", b".guardian-bytes-real.txt"]
    for raw in names:
        with open(os.path.join(os.fsencode(project), raw), "wb") as handle:
            handle.write(b"content of " + raw)
    paths = _init(project)
    for raw in names:
        os.remove(os.path.join(os.fsencode(project), raw))
    assert run_cli("snapshot", cwd=project).exit_code == 0
    head = _git(paths, "rev-parse", "HEAD~1").strip()
    for raw in names:
        r = run_cli("restore", "--at", head, os.fsdecode(raw), cwd=project)
        assert r.exit_code == 0, r.stderr
        with open(os.path.join(os.fsencode(project), raw), "rb") as handle:
            assert handle.read() == b"content of " + raw
    assert not (project / "pwned").exists()
    assert not (project.parent / "pwned").exists()
    fsck(paths.repo)


def test_user_command_check_runs_from_the_project_root(project: Path, tmp_path: Path) -> None:
    (project / "scripts").mkdir()
    checker = project / "scripts" / "check.sh"
    checker.write_text('#!/bin/sh\ngrep -q FORBIDDEN "$1" && { echo "found FORBIDDEN" >&2; exit 1; }\nexit 0\n')
    checker.chmod(0o755)
    (project / "guardian.yaml").write_text(
        "version: 1\nvalidate:\n  - paths: ['*.cfg']\n    checks: [{command: ['./scripts/check.sh', '{path}']}]\n"
    )
    (project / "good.cfg").write_text("ok\n")
    (project / "bad.cfg").write_text("FORBIDDEN\n")
    # Run from elsewhere: the relative program path must still resolve against the root.
    assert run_cli("-C", str(project), "init", cwd=tmp_path).exit_code == 0
    paths = ProjectPaths.for_root(project.resolve())
    r = run_cli("-C", str(project), "log", "--json", cwd=tmp_path)
    bad = json.loads(r.stdout)["snapshots"][0]["not_valid"]
    assert bad == [{"path": "bad.cfg", "verdict": "invalid", "reason": "command './scripts/check.sh': found FORBIDDEN"}]
    fsck(paths.repo)


# --------------------------------------------------------------------------- staged object writes


def _loose_objects(paths: ProjectPaths) -> list[str]:
    objects = paths.repo / "objects"
    return [f"{d.name}{f.name}" for d in objects.iterdir() if len(d.name) == 2 for f in d.iterdir()]


def _packs(paths: ProjectPaths) -> list[str]:
    return sorted(p.name for p in (paths.repo / "objects" / "pack").glob("*.pack"))


def _many_files(root: Path, count: int, tag: str = "") -> None:
    for i in range(count):
        folder = root / f"d{i % 7}"
        folder.mkdir(exist_ok=True)
        (folder / f"f{i}.txt").write_text(f"{tag}file {i}\n")


def test_large_snapshot_reaches_the_store_as_one_pack(project: Path) -> None:
    _many_files(project, 300)
    paths = _init(project)
    # Every object of the first snapshot is in a pack: not one loose file was made.
    assert _loose_objects(paths) == []
    assert len(_packs(paths)) == 1
    assert len(_git(paths, "ls-tree", "-r", "HEAD").splitlines()) == 301  # and guardian.yaml
    assert _git(paths, "show", "HEAD:d3/f10.txt") == "file 10\n"
    fsck(paths.repo)


def test_small_snapshot_is_written_loose(project: Path) -> None:
    _many_files(project, 300)
    paths = _init(project)
    (project / "d1" / "f1.txt").write_text("changed\n")
    result = take_snapshot(Project.find(project), ["d1/f1.txt"], "manual")
    assert result.snapshot is not None
    # A blob, two trees and a commit: too few for a pack of their own (git's unpackLimit rule).
    assert len(_loose_objects(paths)) == 4
    assert len(_packs(paths)) == 1
    assert _git(paths, "show", "HEAD:d1/f1.txt") == "changed\n"
    fsck(paths.repo)


def test_staged_objects_past_the_memory_budget_go_out_in_several_packs(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import guardian.store.staged

    monkeypatch.setattr(guardian.store.staged, "STAGED_FLUSH_BYTES", 6000)
    _many_files(project, 400, tag="x" * 40)
    paths = _init(project)
    # 400 blobs of ~50 bytes, flushed every 6000 bytes (~120 blobs): three packs, and the
    # rest (under STAGED_LOOSE_LIMIT objects) loose at the commit.
    assert len(_packs(paths)) == 3
    assert 0 < len(_loose_objects(paths)) < 100
    assert len(_git(paths, "ls-tree", "-r", "HEAD").splitlines()) == 401
    fsck(paths.repo)


def test_staged_objects_are_dropped_when_the_snapshot_fails(project: Path) -> None:
    (project / "a.txt").write_text("a\n")
    paths = _init(project)
    repo = ShadowRepo(paths.repo)
    before = set(_loose_objects(paths))
    with pytest.raises(RuntimeError, match="boom"), repo.staged_writes():
        oid = repo.write_blob(b"never committed\n")
        assert repo.has_object(oid)  # reads inside see the staged object
        raise RuntimeError("boom")
    assert set(_loose_objects(paths)) == before
    assert not repo.has_object(oid)
    fsck(paths.repo)


def test_kill_while_installing_a_staged_pack_leaves_the_old_snapshot(project: Path) -> None:
    (project / "a.txt").write_text("one\n")
    paths = _init(project)
    old_head = _git(paths, "rev-parse", "HEAD").strip()
    packs_before = _packs(paths)
    _many_files(project, 200)
    proc = guardian_subprocess("snapshot", cwd=project, env={"GUARDIAN_CRASH_AT": "pack-staged-written"})
    assert proc.returncode == -signal.SIGKILL
    assert _git(paths, "rev-parse", "HEAD").strip() == old_head
    assert _packs(paths) == packs_before
    left = [p for p in (paths.repo / "objects").iterdir() if p.name.startswith(".guardian-tmp-")]
    assert len(left) == 1 and any(left[0].glob("*.pack"))  # the half-done pack's work directory
    fsck(paths.repo)
    r = run_cli("snapshot", cwd=project)
    assert r.exit_code == 0, r.stderr
    assert not [p for p in (paths.repo / "objects").iterdir() if p.name.startswith(".guardian-tmp-")]
    assert any('"cleared_temp"' in line for line in paths.events.read_text().splitlines())
    assert _git(paths, "show", "HEAD:d5/f5.txt") == "file 5\n"
    fsck(paths.repo)


# --------------------------------------------------------------------------- reading a file the walk saw


def _reader(project: Path, max_file_size: int | None = None) -> FileReader:
    _init(project)
    reader = FileReader(Project.find(project))
    if max_file_size is not None:
        reader.max_size = max_file_size
    return reader


@pytest.mark.parametrize("size", [0, 5, WHOLE_FIRST - 1, WHOLE_FIRST, WHOLE_FIRST + 7])
def test_a_file_read_with_the_walks_stat_reads_as_the_long_way(project: Path, size: int) -> None:
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    (project / "f.bin").write_bytes(data)
    os.utime(project / "f.bin", ns=(1_000_000_000, 1_000_000_000))
    reader = _reader(project)
    quick = reader.read_checked("f.bin", os.lstat(project / "f.bin"))
    assert quick[:2] == ("file", data)
    assert quick[:3] == reader.read_checked("f.bin")[:3]


def test_what_replaced_a_file_since_the_walk_is_read_for_what_it_is_now(project: Path) -> None:
    # The walk saw regular files; since then one became a symlink (out of the root), one a FIFO,
    # one too large: each is classified as the long way does, and nothing is followed or waited on.
    outside = project.parent / "outside.txt"
    outside.write_text("secret\n")
    for name in ("link", "fifo", "big"):
        (project / name).write_text("small\n")
    seen = {name: os.lstat(project / name) for name in ("link", "fifo", "big")}
    (project / "link").unlink()
    (project / "link").symlink_to(outside)
    (project / "fifo").unlink()
    os.mkfifo(project / "fifo")
    (project / "big").write_bytes(b"b" * 100)
    reader = _reader(project, max_file_size=50)
    assert reader.read_checked("link", seen["link"])[:2] == ("symlink", os.fsencode(outside))
    assert reader.read_checked("fifo", seen["fifo"])[:2] == ("other", b"")
    assert reader.read_checked("big", seen["big"])[::3] == ("toolarge", "changed")  # it grew since the walk
    assert reader.read_checked("big")[::3] == ("toolarge", None)  # looked at now: simply too large


def test_a_file_that_grew_since_the_walk_is_read_to_its_end(project: Path) -> None:
    (project / "log.txt").write_bytes(b"line\n" * 10)
    reader = _reader(project)
    seen = os.lstat(project / "log.txt")
    with open(project / "log.txt", "ab") as grower:
        grower.write(b"more\n")
    kind, data, st, _distrust = reader.read_checked("log.txt", seen)
    assert (kind, data) == ("file", b"line\n" * 10 + b"more\n") and st is not None and st.st_size == len(data)


def test_directory_modes_from_the_walk_answer_as_a_look_at_each_directory(project: Path) -> None:
    for directory, bits in (("a", 0o700), ("a/b", 0o750), ("a/b/c", 0o755), ("d", 0o711)):
        (project / directory).mkdir()
        (project / directory / "f.txt").write_text("x\n")
        os.chmod(project / directory, bits)
    _init(project)
    walked: dict[str, int] = {}
    keep = PathFilter(project, Project.find(project).policy.watch)
    files = [rel for rel, _st in walk_tree(project, keep, dirs=walked)]
    assert walked["a"] == 0o700 and walked["a/b"] == 0o750 and walked["d"] == 0o711
    quick, looked = DirectoryModes(project, walked), DirectoryModes(project)
    assert {rel: quick.above(rel) for rel in files} == {rel: looked.above(rel) for rel in files}
    assert quick.above("a/b/c/f.txt") == {"a": 0o700, "a/b": 0o750}


def test_a_full_scan_looks_only_at_files_whose_stat_differs_from_the_catalog(project: Path) -> None:
    from guardian.capture.engine import Capture

    odd = os.fsdecode(b"bad\xffname.txt")  # stored encoded in the catalog: the lookup decodes it
    for name in ("same.txt", "edited.txt", "made_exec.sh", odd):
        (project / name).write_bytes(os.fsencode(name) + b"\n")
    # A file changed within _RACY_NS of its capture gets no stat row and is looked at again (racily
    # clean, as in git): wait that window out, so the first scan finds every file as the catalog has it.
    time.sleep(3 * _RACY_NS / 1e9)
    _init(project)
    proj = Project.find(project)
    catalog = proj.open_catalog()
    try:
        capture = Capture(proj, proj.open_repo(), catalog)
        present, rows, gone = capture.scan()
        assert (present, rows, gone) == ({}, {}, set())  # everything as the catalog has it
        (project / "edited.txt").write_text("edited\n")
        os.chmod(project / "made_exec.sh", 0o755)
        (project / odd).write_text("changed too\n")
        (project / "new.txt").write_text("new\n")
        (project / "same.txt").rename(project / "moved.txt")
        present, rows, gone = capture.scan()
        assert sorted(present) == sorted(["edited.txt", "made_exec.sh", odd, "new.txt", "moved.txt"])
        assert {rel: row.path if row else None for rel, row in rows.items()} == {
            "edited.txt": "edited.txt",
            "made_exec.sh": "made_exec.sh",
            odd: odd,
            "new.txt": None,
            "moved.txt": None,
        }
        assert gone == {"same.txt"}
    finally:
        catalog.close()
