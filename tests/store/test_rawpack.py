"""guardian.store.rawpack against stock git: its .idx must be the one ``git index-pack`` makes."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from guardian.store.rawpack import write_raw_pack

BLOB, TREE = 3, 2


def _oid(kind: str, data: bytes) -> bytes:
    return hashlib.sha1(f"{kind} {len(data)}\0".encode() + data).digest()


def test_a_raw_pack_and_its_index_are_what_git_makes(tmp_path: Path) -> None:
    # Sizes across the header's 4- and 7-bit groups, an empty blob, incompressible bytes, a tree.
    blobs = [b"", b"x", b"y" * 15, b"z" * 16, b"w" * 2048, os.urandom(70_000), b"text\n" * 50_000]
    objects = [(_oid("blob", data), BLOB, data) for data in blobs]
    entry = b"100644 f\0" + objects[1][0]
    objects.append((_oid("tree", entry), TREE, entry))
    pack = write_raw_pack(iter(objects), len(objects), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [pack.with_suffix(".idx").name, pack.name]
    ours = pack.with_suffix(".idx").read_bytes()
    theirs = tmp_path / "git.idx"
    subprocess.run(["git", "index-pack", "-o", str(theirs), str(pack)], check=True, capture_output=True, timeout=60)
    assert ours == theirs.read_bytes()
    listed = subprocess.run(
        ["git", "verify-pack", "-v", str(pack.with_suffix(".idx"))], check=True, capture_output=True, text=True
    ).stdout
    assert {raw.hex() for raw, _kind, _data in objects} <= {line.split()[0] for line in listed.splitlines() if line}
