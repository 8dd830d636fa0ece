"""guardian.gates.githooks.before against real git and a real store: which captures are git's own result.

The git process's start time comes from ``/proc`` in 10 ms ticks, and a file's ctime from
the kernel's coarse clock: git's own write can look a millisecond or two older than git
(2 in 150 ``git reset --hard`` here).  These tests set the hook's ``started`` to where
those clocks can put it, around real captures of real git writes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from guardian.catalog.db import VersionRow
from guardian.gates.githooks.before import versions_before
from guardian.gates.githooks.context import HookContext, make_context
from guardian.project import Project
from guardian.store.repo import hash_blob
from tests.gates.githooks.gitrepo import A, g, guard, make_repo, ok, read, snapshot

NO_HOOKS = ("-c", "core.hooksPath=/nonexistent")


def _context(root: Path, started: float) -> HookContext:
    ctx = make_context("reference-transaction", ["prepared"], b"", root)
    assert ctx is not None
    ctx.started = started
    return ctx


def _before(root: Path, started: float) -> list[VersionRow]:
    ctx = _context(root, started)
    with Project.find(root).reader() as (_repo, catalog):
        return versions_before(ctx, catalog, A, None)


def _edit(root: Path, text: str) -> str:
    with open(root / A, "a") as handle:
        handle.write(text)
    snapshot(root)
    return read(root, A)


def _ctime(root: Path) -> float:
    return os.stat(root / A).st_ctime_ns / 1e9


def test_git_s_write_a_moment_older_than_git_is_still_git_s(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    guard(root)
    edited = _edit(root, "# edit\n")
    ok(g(root, *NO_HOOKS, "reset", "--hard"))  # git writes a.py: a new file
    snapshot(root)  # what the watcher does within a tenth of a second
    # git's start as /proc and the coarse clock can show it: 5 ms after git's own write.
    versions = _before(root, _ctime(root) + 0.005)
    assert versions[-1].blob == hash_blob(edited.encode())


def test_an_edit_a_moment_before_git_started_stays_before_it(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    guard(root)
    edited = _edit(root, "# edit\n")
    edit_ctime = _ctime(root)
    ok(g(root, *NO_HOOKS, "reset", "--hard"))  # git replaces it; no capture of that yet
    versions = _before(root, edit_ctime + 0.005)
    assert versions[-1].blob == hash_blob(edited.encode())


@pytest.mark.parametrize("halfway", ["deleted", "empty"])
def test_a_capture_of_git_halfway_through_a_file_is_not_before_it(tmp_path: Path, halfway: str) -> None:
    root = make_repo(tmp_path / "repo")
    guard(root)
    edited = _edit(root, "# edit\n")
    started = _ctime(root) + 0.001
    # git unlinks the file, then creates and writes it: a capture can land in between.
    if halfway == "deleted":
        (root / A).unlink()
    else:
        (root / A).write_text("")
    snapshot(root)
    ok(g(root, *NO_HOOKS, "reset", "--hard"))
    snapshot(root)
    versions = _before(root, started)
    assert versions[-1].blob == hash_blob(edited.encode())
