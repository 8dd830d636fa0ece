"""guardian.util.gitfile, paths.check_relative and the path codec on a worktree's ``.git`` pointer file.

The pointer is the one ``.git`` guardian reads or writes: a file (never a directory), in a
subdirectory (never the project's own), holding one ``gitdir:`` line that leads into git's
own admin area or to a bare repository's worktree entry outside the project.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from guardian.errors import PathRefused
from guardian.paths import check_relative
from guardian.util.gitfile import parse_pointer, pointer_refusal, pointer_target, worktree_main
from guardian.util.pathcodec import decode_path, encode_path


@pytest.mark.parametrize(
    ("data", "gitdir"),
    [
        (b"gitdir: /main/.git/worktrees/a\n", "/main/.git/worktrees/a"),
        (b"gitdir: ../.git/modules/sub", "../.git/modules/sub"),
        (b"gitdir: /x\r\n\n", "/x"),
        (b"gitdir: \n", None),
        (b"gitdir:/x\n", None),
        (b"gitdir: /x\n[core]\n", None),
        (b"gitdir: /x\0\n", None),
        (b"[core]\n\tbare = false\n", None),
        (b"gitdir: /" + b"x" * 5000, None),
    ],
)
def test_parse_pointer(data: bytes, gitdir: str | None) -> None:
    assert parse_pointer(data) == gitdir


def _entry(at: Path) -> Path:
    at.mkdir(parents=True)
    (at / "HEAD").write_text("ref: refs/heads/x\n")
    (at / "commondir").write_text("../..\n")
    return at


def test_where_a_pointer_may_lead(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    inside_git = _entry(root / ".git" / "worktrees" / "a")
    assert pointer_refusal(root, "wt/a/.git", f"gitdir: {inside_git}\n".encode()) is None
    assert pointer_refusal(root, "wt/a/.git", b"gitdir: ../../.git/worktrees/a\n") is None  # relative
    assert pointer_refusal(root, "wt/b/.git", b"gitdir: ../../.git/worktrees/gone\n") is None  # pruned: harmless
    assert pointer_refusal(root, "sub/.git", b"gitdir: ../.git/modules/sub\n") is None  # a submodule
    bare = _entry(tmp_path / "bare.git" / "worktrees" / "w")
    assert pointer_refusal(root, "w/.git", f"gitdir: {bare}\n".encode()) is None
    # Refused: the main git directory itself, anything else inside the project, a lookalike outside.
    main = pointer_refusal(root, "sub/.git", b"gitdir: ../.git\n")
    assert main is not None and "a repository's own git directory" in main
    assert pointer_refusal(root, "sub/.git", b"gitdir: ../.git/.\n") == main
    crafted = _entry(root / "evil" / "worktrees" / "x")  # a snapshot could have written all of this
    assert "neither inside a .git directory" in (pointer_refusal(root, "s/.git", f"gitdir: {crafted}\n".encode()) or "")
    lookalike = _entry(tmp_path / "elsewhere")
    assert pointer_refusal(root, "s/.git", f"gitdir: {lookalike}\n".encode()) is not None
    assert pointer_refusal(root, "s/.git", b"gitdir: /nonexistent/worktrees/x\n") is not None
    assert pointer_refusal(root, "s/.git", b"[core]\n") is not None
    # Symlinks are resolved first: a link that leads into .git counts as .git, one out of it does not.
    (root / "alias").symlink_to(root / ".git")
    assert pointer_target(root, "s/.git", "../alias/worktrees/a") == str(inside_git)
    assert pointer_refusal(root, "s/.git", b"gitdir: ../alias/worktrees/a\n") is None
    (root / ".git" / "out").symlink_to(root / "evil")
    assert pointer_refusal(root, "s/.git", b"gitdir: ../.git/out/worktrees/x\n") is not None


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a directory another user owns")
def test_a_pointer_to_another_users_git_directory_is_refused(tmp_path: Path) -> None:
    entry = _entry(tmp_path / "proj" / ".git" / "worktrees" / "a")
    os.chown(entry, 12345, 12345)
    why = pointer_refusal(tmp_path / "proj", "wt/.git", f"gitdir: {entry}\n".encode())
    assert why is not None and "another user owns" in why


def test_worktree_main() -> None:
    assert worktree_main("/m/.git/worktrees/a") == "/m"
    assert worktree_main("/srv/repo.git/worktrees/a") == "/srv/repo.git"
    assert worktree_main("/m/.git/modules/sub") is None


@pytest.mark.parametrize("rel", ["wt/.git", ".worktrees/agent-2-ws-22/.git", "a/b/c/.git"])
def test_check_relative_lets_a_subdirectory_pointer_through(rel: str) -> None:
    assert check_relative(rel) == rel


@pytest.mark.parametrize("rel", [".git", ".git/config", "wt/.git/config", "wt/.GIT", "wt/.Git", "a/.git/b/.git"])
def test_check_relative_still_refuses_every_other_git_path(rel: str) -> None:
    with pytest.raises(PathRefused, match="guardian never reads or writes inside a"):
        check_relative(rel)


def test_the_codec_stores_a_pointer_under_an_escaped_name_and_only_as_a_leaf() -> None:
    encoded = encode_path("wt/.git")
    assert encoded != "wt/.git" and ".git" not in encoded.split("/")  # git refuses a ".git" tree entry
    assert decode_path(encoded) == "wt/.git"
    escaped = encoded.rsplit("/", 1)[1]
    assert decode_path(f"wt/{escaped}/config") == f"wt/{escaped}/config"  # never a directory on the way
    assert encode_path("wt/.GIT").rsplit("/", 1)[1].startswith(".guardian-bytes-")
    assert decode_path(encode_path("wt/.GIT")) == encode_path("wt/.GIT")  # kept as stored: never written
