"""The catalog, built from real shadow stores: sync, versions, snapshot rows, and old catalogs.

Snapshots are written with ShadowRepo and the store's own message format, the way the
capture engine writes them; the catalog only ever learns about them through sync.
"""

from __future__ import annotations

import sqlite3
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from guardian.catalog.db import Catalog, FileRow, NewVersion, SnapshotRow, VersionKind, VersionRow
from guardian.store.repo import ShadowRepo
from guardian.store.trailers import format_message
from guardian.store.tree import Entry

FILE, EXEC = 0o100644, 0o100755
T0 = 1_700_000_000.0


@pytest.fixture
def repo(tmp_path: Path) -> ShadowRepo:
    return ShadowRepo.create(tmp_path / "store" / "repo.git")


@pytest.fixture
def catalog(repo: ShadowRepo) -> Iterator[Catalog]:
    opened = Catalog(repo.git_dir.parent / "catalog.db")
    yield opened
    opened.close()


def _snap(
    repo: ShadowRepo,
    files: dict[str, bytes | None],
    summary: str,
    trigger: str,
    ts: float,
    *,
    verdicts: dict[str, tuple[str, str]] | None = None,
    accepted: tuple[str, ...] = (),
    perms: dict[str, int] | None = None,
    exec_paths: tuple[str, ...] = (),
) -> str:
    changes = {
        path: None if data is None else Entry(repo.write_blob(data), EXEC if path in exec_paths else FILE)
        for path, data in files.items()
    }
    message = format_message(summary, trigger, verdicts or {}, accepted, perms=perms)
    return repo.commit(changes, message, repo.head(), timestamp=ts)


@pytest.fixture
def history(repo: ShadowRepo) -> list[str]:
    """Four snapshots of src/app.py: added, broken (invalid), deleted, accepted-back plus a secret."""
    return [
        _snap(
            repo,
            {"src/app.py": b"print(1)\n", "run.sh": b"#!/bin/sh\n", "notes/app.py": b"# notes\n"},
            "init: 3 added",
            "init",
            T0,
            perms={"run.sh": 0o750},
            exec_paths=("run.sh",),
        ),
        _snap(
            repo,
            {"src/app.py": b"print(\n"},
            "watch: 1 modified",
            "watch",
            T0 + 60,
            verdicts={"src/app.py": ("invalid", "python: '(' was never closed (line 1)")},
        ),
        _snap(repo, {"src/app.py": None}, "manual: 1 deleted", "manual", T0 + 120),
        _snap(
            repo,
            {"secret.env": b"KEY=1\n"},
            "accept: 1 added",
            "accept",
            T0 + 180,
            accepted=("run.sh",),
            perms={"secret.env": 0o600},
        ),
    ]


def test_sync_indexes_new_snapshots_oldest_first(repo: ShadowRepo, catalog: Catalog, history: list[str]) -> None:
    assert catalog.indexed_head is None
    assert catalog.sync(repo) == history
    assert catalog.indexed_head == history[-1]
    assert catalog.sync(repo) == []
    newer = _snap(repo, {"late.txt": b"late\n"}, "manual: 1 added", "manual", T0 + 240)
    assert catalog.sync(repo) == [newer]
    assert catalog.snapshot_count() == 5


def test_snapshot_rows(repo: ShadowRepo, catalog: Catalog, history: list[str]) -> None:
    catalog.sync(repo)
    assert catalog.snapshot(history[1]) == SnapshotRow(2, history[1], T0 + 60, "watch", "watch: 1 modified", 1, 1)
    assert catalog.last_snapshot() == SnapshotRow(4, history[3], T0 + 180, "accept", "accept: 1 added", 2, 0)
    assert [row.id for row in catalog.snapshots()] == list(reversed(history))
    assert [row.id for row in catalog.snapshots(limit=2)] == [history[3], history[2]]
    assert [row.id for row in catalog.snapshots(since=T0 + 60, until=T0 + 120)] == [history[2], history[1]]
    assert [row.id for row in catalog.snapshots(path="src")] == [history[2], history[1], history[0]]
    assert [row.id for row in catalog.snapshots_by_prefix(history[2][:6])] == [history[2]]
    assert catalog.snapshot("f" * 40) is None


def test_versions_of_a_path(repo: ShadowRepo, catalog: Catalog, history: list[str]) -> None:
    catalog.sync(repo)
    added, broken, deleted = catalog.versions_of("src/app.py")
    first_entry = repo.entry_at(history[0], "src/app.py")
    assert first_entry is not None
    assert added == VersionRow(
        1, history[0], T0, "init", "src/app.py", "add", first_entry.oid, FILE, 9, "valid", "", None
    )
    assert (broken.change, broken.verdict, broken.reason, broken.size) == (
        "modify",
        "invalid",
        "python: '(' was never closed (line 1)",
        7,
    )
    assert (deleted.change, deleted.blob, deleted.mode, deleted.size, deleted.verdict) == (
        "delete",
        None,
        None,
        None,
        "valid",
    )
    assert catalog.versions_of("nope") == []


def test_latest_valid_skips_bad_versions_and_deletions(repo: ShadowRepo, catalog: Catalog, history: list[str]) -> None:
    catalog.sync(repo)
    latest = catalog.latest_valid("src/app.py")
    assert latest is not None
    assert (latest.snapshot, latest.change, repo.read_blob(latest.blob or "")) == (history[0], "add", b"print(1)\n")
    assert catalog.latest_valid("src/app.py", before=T0) is None
    assert catalog.latest_valid("src/app.py", before=T0 + 1) == latest
    assert catalog.last_valid_size("src/app.py") == 9
    assert catalog.latest_valid("never.txt") is None


def test_accepted_paths_and_permission_trailers(repo: ShadowRepo, catalog: Catalog, history: list[str]) -> None:
    catalog.sync(repo)
    run_versions = catalog.versions_of("run.sh")
    assert [(v.change, v.reason, v.perm, v.mode) for v in run_versions] == [
        ("add", "", 0o750, EXEC),
        ("accept", "accepted by user", None, EXEC),  # the accept snapshot carries no Guardian-Perm for it
    ]
    (secret,) = catalog.versions_of("secret.env")
    assert secret.perm == 0o600
    assert catalog.perm_at("secret.env", 4, secret.blob or "") == 0o600
    assert catalog.perm_at("secret.env", 4, "0" * 40) is None
    assert catalog.perm_at("src/app.py", 1, catalog.versions_of("src/app.py")[0].blob or "") is None


def test_path_lookups(repo: ShadowRepo, catalog: Catalog, history: list[str]) -> None:
    catalog.sync(repo)
    assert catalog.paths_named("app.py") == ["notes/app.py", "src/app.py"]
    assert catalog.known_path("src/app.py") and not catalog.known_path("src")
    assert catalog.paths_under("src") == ["src/app.py"]
    assert catalog.paths_under("src/") == ["src/app.py"]
    assert catalog.paths_under("sr") == []
    assert catalog.deleted_paths() == ["src/app.py"]


def test_file_rows_follow_the_latest_tree(repo: ShadowRepo, catalog: Catalog, history: list[str]) -> None:
    catalog.sync(repo)
    assert sorted(catalog.paths()) == ["notes/app.py", "run.sh", "secret.env"]
    secret = repo.entry_at(history[3], "secret.env")
    assert secret is not None
    assert catalog.file("secret.env") == FileRow("secret.env", secret.oid, FILE, 6, None, None, None, 0o600)
    assert catalog.file("src/app.py") is None
    assert set(catalog.files_named(["run.sh", "src/app.py", "x"])) == {"run.sh"}
    assert catalog.file_count() == 3


def test_rewritten_history_rebuilds_the_catalog(repo: ShadowRepo, catalog: Catalog, history: list[str]) -> None:
    catalog.sync(repo)
    # A new chain that does not contain the indexed head replaces the history (as gc's rewrite does).
    new_root = repo.copy_commit(history[0], None, format_message("init: 3 added", "init", {}))
    repo.reset_ref(new_root)
    assert catalog.sync(repo) == [new_root]
    assert catalog.snapshot_count() == 1
    assert [v.change for v in catalog.versions_of("src/app.py")] == ["add"]
    assert sorted(catalog.paths()) == ["notes/app.py", "run.sh", "src/app.py"]
    assert catalog.versions_of("secret.env") == []


def test_a_crafted_tree_never_offers_unsafe_paths(repo: ShadowRepo, catalog: Catalog) -> None:
    def git(*args: str, stdin: str | None = None) -> str:
        return subprocess.run(
            ["git", "--git-dir", str(repo.git_dir), *args], input=stdin, capture_output=True, text=True, check=True
        ).stdout.strip()

    blob = repo.write_blob(b"payload\n")
    inner = git("mktree", stdin=f"100644 blob {blob}\thooks-post-checkout\n")
    root = git("mktree", stdin=f"100644 blob {blob}\t..\n040000 tree {inner}\t.git\n100644 blob {blob}\tgood.txt\n")
    commit = git("commit-tree", root, "-m", format_message("crafted", "manual", {}))
    repo.update_ref(commit, None)
    assert catalog.sync(repo) == [commit]
    assert [v.path for v in catalog.versions_in(1)] == ["good.txt"]
    assert catalog.paths_named("..") == [] and catalog.paths_named("hooks-post-checkout") == []
    assert not catalog.known_path(".git/hooks-post-checkout")


def test_an_emptied_ref_resets_the_catalog(repo: ShadowRepo, catalog: Catalog, history: list[str]) -> None:
    catalog.sync(repo)
    (repo.git_dir / "refs" / "heads" / "snapshots").unlink()
    assert catalog.sync(ShadowRepo(repo.git_dir)) == []
    assert catalog.snapshot_count() == 0 and catalog.file_count() == 0
    assert catalog.indexed_head is None


# --------------------------------------------------------------------------- schema


_OLD_SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE snapshots(
    seq INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, ts REAL NOT NULL, trigger TEXT NOT NULL,
    summary TEXT NOT NULL, nchanged INTEGER NOT NULL, nbad INTEGER NOT NULL);
CREATE TABLE versions(
    seq INTEGER NOT NULL, path TEXT NOT NULL, name TEXT NOT NULL, change TEXT NOT NULL,
    blob TEXT, mode INTEGER, size INTEGER, verdict TEXT NOT NULL, reason TEXT NOT NULL);
CREATE TABLE files(
    path TEXT PRIMARY KEY, blob TEXT NOT NULL, mode INTEGER NOT NULL, size INTEGER NOT NULL,
    mtime_ns INTEGER, ctime_ns INTEGER, ino INTEGER);
INSERT INTO meta VALUES('head', 'aaaa000000000000000000000000000000000000');
INSERT INTO snapshots VALUES(1, 'aaaa000000000000000000000000000000000000', 1700000000.0, 'init', 'init: 1 added',
    1, 0);
INSERT INTO versions VALUES(1, 'a.txt', 'a.txt', 'add', 'bbbb000000000000000000000000000000000000', 33188, 4,
    'valid', '');
INSERT INTO files VALUES('a.txt', 'bbbb000000000000000000000000000000000000', 33188, 4, 11, 22, 33);
"""


def _columns(path: Path, table: str) -> list[str]:
    db = sqlite3.connect(path)
    try:
        return [str(row[1]) for row in db.execute(f"PRAGMA table_info({table})")]
    finally:
        db.close()


def test_an_old_catalog_gets_the_new_columns_on_open(tmp_path: Path) -> None:
    path = tmp_path / "catalog.db"
    db = sqlite3.connect(path)
    db.executescript(_OLD_SCHEMA)
    db.close()
    path.chmod(0o644)
    assert "perm" not in _columns(path, "versions")

    catalog = Catalog(path)
    try:
        (version,) = catalog.versions_of("a.txt")
        assert version == VersionRow(
            1, "aaaa" + "0" * 36, 1_700_000_000.0, "init", "a.txt", "add", "bbbb" + "0" * 36, FILE, 4, "valid", "", None
        )
        assert catalog.file("a.txt") == FileRow("a.txt", "bbbb" + "0" * 36, FILE, 4, 11, 22, 33, None)
        assert catalog.indexed_head == "aaaa" + "0" * 36
    finally:
        catalog.close()
    assert _columns(path, "versions")[-1] == "perm"
    assert _columns(path, "files")[-1] == "perm"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    again = Catalog(path)  # a second open finds the columns and adds nothing
    again.close()
    assert _columns(path, "versions").count("perm") == 1


def test_an_old_catalog_gets_the_blob_index_on_open(tmp_path: Path) -> None:
    path = tmp_path / "catalog.db"
    db = sqlite3.connect(path)
    db.executescript(_OLD_SCHEMA)
    db.close()
    catalog = Catalog(path)
    try:
        first = catalog.first_versions_with("a.txt", ["bbbb" + "0" * 36], 1)
        assert first["bbbb" + "0" * 36].snapshot == "aaaa" + "0" * 36
    finally:
        catalog.close()
    db = sqlite3.connect(path)
    try:
        names = {str(row[0]) for row in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    finally:
        db.close()
    assert "versions_blob" in names


# --------------------------------------------------------------------------- one version at a time


def _random_history(catalog: Catalog, path: str, count: int, seed: int) -> list[VersionRow]:
    """``count`` snapshots of path (plus another path's noise): repeated contents, deletions, bad
    versions, accepts, guardian's own writes, and a clock that sometimes steps back."""
    import random

    rng = random.Random(seed)
    blobs = [f"{i:040x}" for i in range(1, 9)]
    ts = T0
    for n in range(count):
        ts += rng.choice([0.3, 0.7, 1.0, 2.0, 30.0, -5.0])
        roll = rng.random()
        if roll < 0.12:
            version = NewVersion(path, "delete", None, None, None, "valid", "")
        elif roll < 0.18:
            version = NewVersion(path, "accept", rng.choice(blobs), FILE, 3, "valid", "accepted by user")
        else:
            verdict = "invalid" if rng.random() < 0.2 else "valid"
            version = NewVersion(path, "modify", rng.choice(blobs), FILE, 3, verdict, "")
        noise = NewVersion("other.txt", "modify", rng.choice(blobs), FILE, 3, "valid", "")
        trigger = rng.choice(["watch", "watch", "watch", "restore", "snapshot"])
        catalog.record_snapshot(f"{n:040x}", ts, trigger, "s", [version, noise])
    return catalog.versions_of(path)


def test_single_version_queries_match_the_whole_history(catalog: Catalog) -> None:
    versions = _random_history(catalog, "agents/run.py", 300, seed=11)
    assert len(versions) == 300
    for index, version in enumerate(versions):
        earlier = versions[:index]
        assert catalog.newest_versions(version.path, 2, upto=version.snapshot) == [version, *earlier[-1:]]
        assert catalog.newest_version(version.path, before=version.seq) == (earlier[-1] if earlier else None)
        kinds: dict[VersionKind, list[VersionRow]] = {
            "content": [v for v in earlier if v.blob is not None],
            "restorable": [v for v in earlier if v.blob is not None and v.mode is not None],
            "valid": [v for v in earlier if v.blob is not None and v.mode is not None and v.verdict == "valid"],
            "deletion": [v for v in earlier if v.blob is None],
        }
        for kind, chosen in kinds.items():
            got = catalog.newest_version(version.path, before=version.seq, kind=kind)
            assert got == (chosen[-1] if chosen else None), (index, kind)
        contents = {v.blob for v in versions if v.blob is not None}
        firsts = {
            blob: min(same, key=lambda v: (int(v.ts), v.seq))
            for blob in contents
            if (same := [v for v in versions[: index + 1] if v.blob == blob])
        }
        assert catalog.first_versions_with(version.path, contents, version.seq) == firsts
        after = kinds["deletion"][-1].seq if kinds["deletion"] else None
        life = [v for v in earlier if after is None or v.seq > after]
        assert catalog.first_version_between(version.path, after, version.seq) == (life[0] if life else None)
        assert catalog.any_trigger_but(version.path, "watch", after, version.seq) == any(
            v.trigger != "watch" for v in life
        )
    assert catalog.newest_versions("agents/run.py", 3) == versions[:-4:-1]
    assert catalog.newest_versions("agents/run.py", 2, upto="f" * 40) == []
    assert catalog.first_versions_with("agents/run.py", [], versions[-1].seq) == {}
