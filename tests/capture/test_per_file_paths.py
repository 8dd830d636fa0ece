"""The per-file shortcuts of a capture give the answers of the long way round.

encode_path and decode_path skip splitting a path that needs no escape; checks_for reads a
suffix without pathlib; DirectoryModes answers a directory's files from one lookup; and
FileReader, inside keeping_parents, reuses the descriptor of the directory it read last.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import pytest

from guardian.capture.reading import FileReader
from guardian.capture.validate import _suffix
from guardian.capture.walk import DirectoryModes
from guardian.project import Project
from guardian.util.pathcodec import _decode_component, _encode_component, decode_path, encode_path
from tests.conftest import run_cli

NAMES = [
    "a/b/c.py",
    "plain.txt",
    ".git",
    "sub/.git",
    "sub/.GIT/x",
    "sub/.Git",
    "a.github/x",
    "x/.gitignore",
    ".guardian-bytes-abc",
    "d/.guardian-bytes-/e",
    "caf\u00e9/na\u00efve.md",
    "bad\udcff.txt",
    "dir\udcfe/ok.py",
    "a//b",
    "emoji/\U0001f600.json",
]


@pytest.mark.parametrize("path", NAMES)
def test_encode_and_decode_path_agree_with_the_component_by_component_rule(path: str) -> None:
    slow = "/".join(_encode_component(part) for part in path.split("/"))
    assert encode_path(path) == slow
    parts = slow.split("/")
    back = "/".join(_decode_component(part, i == len(parts) - 1) for i, part in enumerate(parts))
    assert decode_path(slow) == back
    assert decode_path(path) == "/".join(
        _decode_component(part, i == len(path.split("/")) - 1) for i, part in enumerate(path.split("/"))
    )


@pytest.mark.parametrize(
    "rel",
    ["a.py", "a/b.tar.gz", ".bashrc", "a/.bashrc", "x.", "a/x.", "noext", "a/b/", "a/.", "a/..", "..", "a.b/c", "A.PY"],
)
def test_suffix_is_pathlibs(rel: str) -> None:
    assert _suffix(rel) == PurePosixPath(rel).suffix


def test_directory_modes_answer_each_file_as_a_fresh_lookup_would(tmp_path: Path) -> None:
    for rel, mode in (("a", 0o700), ("a/b", 0o755), ("a/b/c", 0o750), ("d", 0o711)):
        (tmp_path / rel).mkdir()
        (tmp_path / rel).chmod(mode)
    files = ["top.py", "a/x.py", "a/b/y.py", "a/b/z.py", "a/b/c/w.py", "a/b/c/v.py", "a/u.py", "d/t.py", "top2.py"]
    cached = DirectoryModes(tmp_path)
    for rel in files:
        assert cached.above(rel) == DirectoryModes(tmp_path).above(rel), rel
    assert cached.above("a/b/c/v.py") == {"a": 0o700, "a/b/c": 0o750}
    cached.above("a/b/c/v.py")["x"] = 1  # a caller's copy: the next answer is not changed by it
    assert cached.above("a/b/c/w.py") == {"a": 0o700, "a/b/c": 0o750}


def test_reads_keeping_the_parent_give_what_fresh_reads_give(project: Path) -> None:
    (project / "d").mkdir()
    (project / "d" / "one.txt").write_bytes(b"one\n")
    (project / "d" / "two.txt").write_bytes(b"two\n")
    (project / "d" / "link").symlink_to("one.txt")
    (project / "e").mkdir()
    (project / "e" / "three.txt").write_bytes(b"three\n")
    (project / "top.txt").write_bytes(b"top\n")
    assert run_cli("init", cwd=project).exit_code == 0
    reader = FileReader(Project.find(project))
    rels = ["d/link", "d/missing", "d/one.txt", "d/two.txt", "e/three.txt", "nodir/x", "top.txt"]
    fresh = [reader.read(rel) for rel in rels]
    with reader.keeping_parents():
        kept = [reader.read(rel) for rel in rels]
        assert reader._parent is not None
    assert reader._parent is None  # the descriptor is closed on the way out
    assert [(k, d) for k, d, _st in kept] == [(k, d) for k, d, _st in fresh]
    assert [(k, d) for k, d, _st in fresh][:4] == [
        ("symlink", b"one.txt"),
        ("missing", b""),
        ("file", b"one\n"),
        ("file", b"two\n"),
    ]


def test_a_directory_swapped_for_a_symlink_is_never_followed(project: Path, tmp_path: Path) -> None:
    (project / "d").mkdir()
    (project / "d" / "a.txt").write_bytes(b"a\n")
    (project / "d" / "b.txt").write_bytes(b"b\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "b.txt").write_bytes(b"secret\n")
    assert run_cli("init", cwd=project).exit_code == 0
    reader = FileReader(Project.find(project))
    with reader.keeping_parents():
        assert reader.read("d/a.txt")[:2] == ("file", b"a\n")
        os.rename(project / "d", project / "moved")
        (project / "d").symlink_to(outside)
        kind, data, _st = reader.read("d/b.txt")
        assert data != b"secret\n"  # the kept descriptor is the directory read from, not the symlink
        assert (kind, data) == ("file", b"b\n")
        assert reader.read("e/x.txt")[0] == "missing"
        assert reader.read("d/b.txt")[:2] == ("missing", b"")  # reached anew: the symlink is refused
