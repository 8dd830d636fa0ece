"""ShadowRepo through its public methods, on real pygit2 stores that stock git reads back.

Only ``ShadowRepo`` and the names ``guardian.store.repo`` exports are used; git modes
are written as the octal numbers git itself stores, so stock git is an independent check.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from guardian.errors import OperationFailed, StoreDamaged
from guardian.store.repo import ShadowRepo, hash_blob
from guardian.store.tree import Entry
from tests.conftest import fsck

FILE, EXEC, LINK = 0o100644, 0o100755, 0o120000
REF = "refs/heads/snapshots"
DAMAGE_HINT = "; run 'guardian verify' for details and 'guardian verify --repair' to fix"


def _git(repo: ShadowRepo, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(repo.git_dir), *args], capture_output=True, text=True, check=True, timeout=60
    ).stdout


def _blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _loose(repo: ShadowRepo, oid: str) -> Path:
    return repo.git_dir / "objects" / oid[:2] / oid[2:]


@pytest.fixture
def repo(tmp_path: Path) -> ShadowRepo:
    return ShadowRepo.create(tmp_path / "store" / "repo.git")


@pytest.fixture
def two_snapshots(repo: ShadowRepo) -> tuple[str, str]:
    """First: a.txt, bin/run (exec), docs/x/readme, link (symlink).  Second: a.txt changed, link deleted."""
    first = repo.commit(
        {
            "a.txt": Entry(repo.write_blob(b"a1\n"), FILE),
            "bin/run": Entry(repo.write_blob(b"#!/bin/sh\n"), EXEC),
            "docs/x/readme": Entry(repo.write_blob(b"read me\n"), FILE),
            "link": Entry(repo.write_blob(b"a.txt"), LINK),
        },
        "first\n",
        None,
        timestamp=1_700_000_000,
    )
    second = repo.commit(
        {"a.txt": Entry(repo.write_blob(b"a2\n"), FILE), "link": None}, "second\n", first, timestamp=1_700_000_060
    )
    return first, second


# --------------------------------------------------------------------------- create and open


def test_create_makes_a_bare_repository_stock_git_reads(repo: ShadowRepo) -> None:
    assert _git(repo, "rev-parse", "--is-bare-repository").strip() == "true"
    assert _git(repo, "symbolic-ref", "HEAD").strip() == REF
    assert _git(repo, "config", "gc.auto").strip() == "0"
    assert _git(repo, "config", "core.logAllRefUpdates").strip() == "false"
    assert _git(repo, "config", "guardian.version").strip() == "1"
    assert repo.head() is None
    assert list(repo.walk()) == []
    assert list(repo.iter_tree(None)) == []


def test_opening_an_existing_store_sees_its_snapshots(repo: ShadowRepo, two_snapshots: tuple[str, str]) -> None:
    again = ShadowRepo(repo.git_dir)
    assert again.head() == two_snapshots[1]


def test_opening_something_that_is_not_a_store_fails_closed(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here"
    with pytest.raises(StoreDamaged) as info:
        ShadowRepo(missing)
    message = str(info.value)
    assert message.startswith(f"cannot open the shadow repository {missing}: ")
    assert message.endswith(DAMAGE_HINT)
    assert info.value.exit_code == 5


# --------------------------------------------------------------------------- blobs


def test_blobs_are_plain_git_blobs(repo: ShadowRepo) -> None:
    data = b"hello\x00world\n"
    oid = repo.write_blob(data)
    assert oid == _blob_id(data)
    assert repo.write_blob(data) == oid  # content-addressed: written once
    assert repo.read_blob(oid) == data
    assert repo.blob_size(oid) == len(data)
    assert repo.has_object(oid)
    assert _git(repo, "cat-file", "-p", oid) == data.decode()
    absent = _blob_id(b"never written")
    assert not repo.has_object(absent)
    with pytest.raises(StoreDamaged) as info:
        repo.read_blob(absent)
    assert str(info.value).startswith(f"blob {absent} is missing or unreadable in {repo.git_dir}: ")
    with pytest.raises(StoreDamaged) as info:
        repo.blob_size(absent)
    assert str(info.value).startswith(f"blob {absent} is missing or unreadable in {repo.git_dir}: ")


def test_read_blob_of_a_commit_is_refused(repo: ShadowRepo, two_snapshots: tuple[str, str]) -> None:
    with pytest.raises(StoreDamaged) as info:
        repo.read_blob(two_snapshots[0])
    assert str(info.value) == f"object {two_snapshots[0]} in {repo.git_dir} is not a blob{DAMAGE_HINT}"


# --------------------------------------------------------------------------- commits and trees


def test_commits_build_the_tree_stock_git_sees(repo: ShadowRepo, two_snapshots: tuple[str, str]) -> None:
    first, second = two_snapshots
    assert repo.head() == second
    assert _git(repo, "rev-parse", REF).strip() == second
    assert _git(repo, "ls-tree", "-r", "--format=%(objectmode) %(path)", first).splitlines() == [
        "100644 a.txt",
        "100755 bin/run",
        "100644 docs/x/readme",
        "120000 link",
    ]
    assert _git(repo, "ls-tree", "-r", "--name-only", second).splitlines() == ["a.txt", "bin/run", "docs/x/readme"]
    # Only the changed path is rebuilt: untouched subtrees are the same objects.
    assert _git(repo, "rev-parse", f"{first}:docs") == _git(repo, "rev-parse", f"{second}:docs")
    assert _git(repo, "log", "--format=%s %ct %an <%ae>", REF).splitlines() == [
        "second 1700000060 guardian <guardian@localhost>",
        "first 1700000000 guardian <guardian@localhost>",
    ]
    fsck(repo.git_dir)


def test_commit_records_and_walk(repo: ShadowRepo, two_snapshots: tuple[str, str]) -> None:
    first, second = two_snapshots
    record = repo.commit_record(second)
    assert (record.id, record.parent, record.time, record.message) == (second, first, 1_700_000_060.0, "second\n")
    assert repo.commit_record(first).parent is None
    assert [r.id for r in repo.walk()] == [second, first]
    assert [r.id for r in repo.walk(first)] == [first]
    assert repo.is_ancestor(first, second) and not repo.is_ancestor(second, first)
    assert repo.is_ancestor(first, first)


def test_entry_at(repo: ShadowRepo, two_snapshots: tuple[str, str]) -> None:
    first, second = two_snapshots
    assert repo.entry_at(first, "a.txt") == Entry(_blob_id(b"a1\n"), FILE)
    assert repo.entry_at(second, "a.txt") == Entry(_blob_id(b"a2\n"), FILE)
    run = repo.entry_at(first, "bin/run")
    assert run is not None and run.executable and not run.is_link
    link = repo.entry_at(first, "link")
    assert link is not None and link.is_link and repo.read_blob(link.oid) == b"a.txt"
    assert repo.entry_at(second, "link") is None  # deleted in the second snapshot
    assert repo.entry_at(first, "docs/x") is None  # a directory is not an entry
    assert repo.entry_at(first, "a.txt/under") is None
    assert repo.entry_at(first, "nope") is None


def test_iter_tree_and_changes(repo: ShadowRepo, two_snapshots: tuple[str, str]) -> None:
    first, second = two_snapshots
    assert dict(repo.iter_tree(second)) == {
        "a.txt": Entry(_blob_id(b"a2\n"), FILE),
        "bin/run": Entry(_blob_id(b"#!/bin/sh\n"), EXEC),
        "docs/x/readme": Entry(_blob_id(b"read me\n"), FILE),
    }
    changes = {c.path: (c.old, c.new) for c in repo.changes(second)}
    assert changes == {
        "a.txt": (Entry(_blob_id(b"a1\n"), FILE), Entry(_blob_id(b"a2\n"), FILE)),
        "link": (Entry(_blob_id(b"a.txt"), LINK), None),
    }
    initial = {c.path: (c.old, c.new) for c in repo.changes(first)}
    assert sorted(initial) == ["a.txt", "bin/run", "docs/x/readme", "link"]
    assert all(old is None for old, _new in initial.values())


def test_a_file_replaces_a_directory_and_back(repo: ShadowRepo) -> None:
    blob = repo.write_blob(b"x")
    first = repo.commit({"d/one": Entry(blob, FILE), "d/two": Entry(blob, FILE)}, "dir\n", None)
    second = repo.commit({"d": Entry(blob, FILE), "d/one": None, "d/two": None}, "file\n", first)
    assert dict(repo.iter_tree(second)) == {"d": Entry(blob, FILE)}
    third = repo.commit({"d": None, "d/three": Entry(blob, EXEC)}, "dir again\n", second)
    assert dict(repo.iter_tree(third)) == {"d/three": Entry(blob, EXEC)}
    fsck(repo.git_dir)


def test_deleting_everything_leaves_an_empty_tree(repo: ShadowRepo) -> None:
    first = repo.commit({"only/f": Entry(repo.write_blob(b"x"), FILE)}, "one\n", None)
    second = repo.commit({"only/f": None}, "none\n", first)
    assert list(repo.iter_tree(second)) == []
    assert _git(repo, "ls-tree", second) == ""


def test_names_that_are_not_utf8_round_trip(repo: ShadowRepo) -> None:
    name = "dir/" + os.fsdecode(b"report\xff.txt")
    blob = repo.write_blob(b"bytes")
    commit = repo.commit({name: Entry(blob, FILE)}, "odd\n", None)
    assert dict(repo.iter_tree(commit)) == {name: Entry(blob, FILE)}
    assert repo.entry_at(commit, name) == Entry(blob, FILE)
    assert [c.path for c in repo.changes(commit)] == [name]
    stored = _git(repo, "ls-tree", "-r", "--name-only", commit).strip()
    assert stored.startswith("dir/") and stored != name  # git holds an encoded, valid UTF-8 name
    fsck(repo.git_dir)


def test_resolve(repo: ShadowRepo, two_snapshots: tuple[str, str]) -> None:
    first, _second = two_snapshots
    assert repo.resolve(first[:8]) == first
    assert repo.resolve(first) == first
    assert repo.resolve(_blob_id(b"a1\n")) is None  # a blob is not a snapshot
    assert repo.resolve("zzzz") is None
    assert repo.resolve("0000000") is None


# --------------------------------------------------------------------------- the ref


def test_the_ref_moves_only_from_the_expected_commit(repo: ShadowRepo, two_snapshots: tuple[str, str]) -> None:
    first, second = two_snapshots
    with pytest.raises(OperationFailed) as info:
        repo.update_ref(first, first)
    assert str(info.value) == f"the snapshot ref moved under us (expected {first}, found {second}); retry the operation"
    with pytest.raises(OperationFailed) as info:
        repo.commit({"b.txt": Entry(repo.write_blob(b"b"), FILE)}, "stale parent\n", first)
    assert str(info.value) == f"the snapshot ref moved under us (expected {first}, found {second}); retry the operation"
    assert repo.head() == second
    assert not (repo.git_dir / f"{REF}.lock").exists()
    repo.update_ref(first, second)
    assert repo.head() == first
    assert (repo.git_dir / REF).read_text() == f"{first}\n"


def test_a_held_ref_lock_is_respected_and_kept(repo: ShadowRepo, two_snapshots: tuple[str, str]) -> None:
    first, second = two_snapshots
    lock = repo.git_dir / f"{REF}.lock"
    lock.write_text("someone else\n")
    with pytest.raises(OperationFailed) as info:
        repo.update_ref(first, second)
    assert str(info.value) == (
        f"the snapshot ref is locked by another writer ({lock}); if no git or guardian process is "
        "running on this store, run 'guardian verify --repair'"
    )
    assert lock.read_text() == "someone else\n"  # not ours to remove
    assert repo.head() == second
    assert repo.stale_git_locks() == [lock]


def test_reset_ref_forces_the_ref(repo: ShadowRepo, two_snapshots: tuple[str, str]) -> None:
    first, _second = two_snapshots
    (repo.git_dir / f"{REF}.lock").write_text("left by a killed writer\n")
    repo.reset_ref(first)
    assert repo.head() == first
    assert not (repo.git_dir / f"{REF}.lock").exists()


# --------------------------------------------------------------------------- staged writes


def test_staged_objects_reach_disk_only_when_the_block_ends(repo: ShadowRepo) -> None:
    other = ShadowRepo(repo.git_dir)  # a second handle reads only what is on disk
    with repo.staged_writes():
        oid = repo.write_blob(b"staged")
        assert repo.read_blob(oid) == b"staged"  # visible inside
        assert not other.has_object(oid)
        with repo.staged_writes():  # re-entering is a no-op
            inner = repo.write_blob(b"inner")
        assert not other.has_object(inner)
    assert other.has_object(oid) and other.has_object(inner)


def test_staged_objects_are_dropped_on_error(repo: ShadowRepo) -> None:
    other = ShadowRepo(repo.git_dir)
    with pytest.raises(RuntimeError), repo.staged_writes():
        oid = repo.write_blob(b"doomed")
        raise RuntimeError("capture failed")
    assert not other.has_object(oid)
    assert not repo.has_object(oid)


def test_a_commit_inside_staged_writes_is_on_disk_before_the_ref_moves(repo: ShadowRepo) -> None:
    with repo.staged_writes():
        commit = repo.commit({"f": Entry(repo.write_blob(b"f"), FILE)}, "staged\n", None)
        assert ShadowRepo(repo.git_dir).read_blob(_blob_id(b"f")) == b"f"
    assert ShadowRepo(repo.git_dir).head() == commit
    fsck(repo.git_dir)


def test_a_large_staged_batch_arrives_as_one_pack(repo: ShadowRepo) -> None:
    with repo.staged_writes():
        changes = {f"f{i:03d}": Entry(repo.write_blob(b"file %d\n" % i), FILE) for i in range(150)}
        commit = repo.commit(changes, "many\n", None)
    loose, packs = repo.object_files()
    assert loose == []
    assert len(packs) == 1
    assert len(dict(repo.iter_tree(commit))) == 150
    assert ShadowRepo(repo.git_dir).read_blob(changes["f042"].oid) == b"file 42\n"
    fsck(repo.git_dir)


def test_new_blobs_go_straight_to_the_staged_objects_and_read_back_as_git_wrote_them(repo: ShadowRepo) -> None:
    # write_new_blob skips libgit2's existence check (a pack directory rescan per miss): the ids are
    # still git's own, a repeat is staged once, and the pack it makes passes git fsck.
    with repo.staged_writes():
        oids = [repo.write_new_blob(b"new file %d\n" % i) for i in range(150)]
        assert repo.write_new_blob(b"new file 7\n") == oids[7]
        assert repo.read_blob(oids[42]) == b"new file 42\n"  # visible inside, like write_blob's
        commit = repo.commit({f"f{i:03d}": Entry(oid, FILE) for i, oid in enumerate(oids)}, "new\n", None)
    assert oids == [hash_blob(b"new file %d\n" % i) for i in range(150)]
    assert len(repo.object_files()[1]) == 1
    assert len(dict(repo.iter_tree(commit))) == 150
    assert ShadowRepo(repo.git_dir).read_blob(oids[149]) == b"new file 149\n"
    assert repo.write_new_blob(b"outside\n") == repo.write_blob(b"outside\n")  # no staging: write_blob
    fsck(repo.git_dir)


def test_pack_moves_loose_objects_into_a_pack(repo: ShadowRepo, two_snapshots: tuple[str, str]) -> None:
    loose_before, packs_before = repo.object_files()
    assert len(loose_before) == 12 and packs_before == []  # 5 blobs, 4 + 1 trees, 2 commits
    assert repo.pack() == 12
    loose, packs = repo.object_files()
    assert loose == [] and len(packs) == 1
    assert repo.read_blob(_blob_id(b"a2\n")) == b"a2\n"
    assert repo.integrity_problems() == []


# --------------------------------------------------------------------------- integrity


def _zero_loose(repo: ShadowRepo, oid: str) -> Path:
    path = _loose(repo, oid)
    path.chmod(0o644)
    path.write_bytes(b"\0" * 20)
    return path


def test_a_damaged_blob_is_found_reported_quarantined_and_healed(
    repo: ShadowRepo, two_snapshots: tuple[str, str]
) -> None:
    first, second = two_snapshots
    oid = _blob_id(b"read me\n")
    _zero_loose(repo, oid)

    problems = repo.integrity_problems()
    assert len(problems) == 1
    assert problems[0].startswith(f"blob {oid} (readme) is missing or unreadable: ")
    assert repo.integrity_problems(deep=False) == []  # a shallow check reads commits only
    assert repo.unreadable_loose_objects() == [oid]
    assert not repo.commit_readable(first) and not repo.commit_readable(second)
    with pytest.raises(StoreDamaged) as info:
        repo.read_blob(oid)
    assert str(info.value).startswith(f"blob {oid} is missing or unreadable in {repo.git_dir}: ")
    assert str(info.value).endswith(DAMAGE_HINT)

    # has_object moves the damaged copy aside, so writing the content again can heal the store.
    assert repo.has_object(oid) is False
    assert [p.name for p in repo.quarantine_dir.iterdir()] == [oid]
    assert (repo.quarantine_dir / oid).read_bytes() == b"\0" * 20
    assert not _loose(repo, oid).exists()
    assert repo.write_blob(b"read me\n") == oid
    fresh = ShadowRepo(repo.git_dir)
    assert fresh.integrity_problems() == []
    assert fresh.read_blob(oid) == b"read me\n"
    assert fresh.commit_readable(first)
    fsck(repo.git_dir)


def test_quarantine_keeps_every_damaged_copy(repo: ShadowRepo) -> None:
    oid = repo.write_blob(b"twice damaged")
    _zero_loose(repo, oid)
    assert repo.quarantine([oid, "0" * 40]) == [repo.quarantine_dir / oid]  # an absent object is skipped
    assert repo.write_blob(b"twice damaged") == oid
    _zero_loose(repo, oid)
    assert repo.quarantine([oid]) == [repo.quarantine_dir / f"{oid}.1"]
    assert sorted(p.name for p in repo.quarantine_dir.iterdir()) == [oid, f"{oid}.1"]
    assert repo.quarantine_dir == repo.git_dir.parent / "quarantine"


def test_a_missing_commit_is_reported(repo: ShadowRepo, two_snapshots: tuple[str, str]) -> None:
    first, second = two_snapshots
    _loose(repo, first).unlink()
    fresh = ShadowRepo(repo.git_dir)  # the first handle may still hold the commit in its cache
    problems = fresh.integrity_problems()
    assert len(problems) == 1
    assert problems[0].startswith(f"snapshot {first} is missing or unreadable in {repo.git_dir}: ")
    assert problems[0].endswith(DAMAGE_HINT)
    with pytest.raises(StoreDamaged):
        list(fresh.walk())
    assert fresh.commit_readable(second) and not fresh.commit_readable(first)
    assert second in fresh.raw_commit_ids_from_reflog_or_objects()
    assert first not in fresh.raw_commit_ids_from_reflog_or_objects()


def test_a_missing_tree_is_reported(repo: ShadowRepo, two_snapshots: tuple[str, str]) -> None:
    _first, second = two_snapshots
    docs = _git(repo, "rev-parse", f"{second}:docs/x").strip()
    _loose(repo, docs).unlink()
    problems = ShadowRepo(repo.git_dir).integrity_problems()
    assert len(problems) == 1
    assert problems[0].startswith(f"tree {docs} is missing or unreadable: ")


def test_a_corrupt_ref_is_reported(repo: ShadowRepo, two_snapshots: tuple[str, str]) -> None:
    ref = repo.git_dir / REF
    ref.write_text("not a commit id\n")
    assert ShadowRepo(repo.git_dir).integrity_problems() == [
        f"the snapshot ref {ref} is corrupt (holds b'not a commit id')"
    ]


# --------------------------------------------------------------------------- remotes


def test_remotes_live_in_the_stores_own_config(repo: ShadowRepo) -> None:
    assert repo.remotes() == {}
    repo.set_remote("zeta", "/srv/mirror-z.git")
    repo.set_remote("alpha", "ssh://host/a.git")
    assert repo.remotes() == {"alpha": "ssh://host/a.git", "zeta": "/srv/mirror-z.git"}
    assert _git(repo, "config", "remote.alpha.url").strip() == "ssh://host/a.git"
    repo.remove_remote("zeta")
    assert repo.remotes() == {"alpha": "ssh://host/a.git"}
