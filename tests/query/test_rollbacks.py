"""``deciding_versions``: classifying a change from a few catalog rows gives what the whole history gives.

Enforcement judges every captured change of a protected path; reading the path's whole
history for that made its cost grow with the number of versions.  The catalog here is a
real one (SQLite, written through ``record_snapshot``) with a long random history:
repeated contents, deletions, accepts, bad versions and a clock that steps back.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from guardian.catalog.db import Catalog, NewVersion
from guardian.query.rollbacks import ContentAges, classify, deciding_versions

PATH = "agents/run.py"
BLOBS = [f"{i:040x}" for i in range(1, 7)]


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    opened = Catalog(tmp_path / "catalog.db")
    yield opened
    opened.close()


def test_the_deciding_versions_classify_as_the_whole_history_does(catalog: Catalog) -> None:
    rng = random.Random(7)
    ts = 1_700_000_000.0
    for n in range(400):
        ts += rng.choice([0.4, 1.0, 3.0, 60.0, -2.0])
        roll = rng.random()
        if roll < 0.1:
            new = NewVersion(PATH, "delete", None, None, None, "valid", "")
        elif roll < 0.15:
            new = NewVersion(PATH, rng.choice(["accept", "settle"]), rng.choice(BLOBS), 0o100644, 3, "valid", "")
        else:
            new = NewVersion(PATH, "modify", rng.choice(BLOBS), 0o100644, 3, "valid", "")
        catalog.record_snapshot(f"{n:040x}", ts, "watch", "s", [new])
    versions = catalog.versions_of(PATH)
    kinds: set[str] = set()
    for index, version in enumerate(versions):
        for before in (None, rng.choice(BLOBS)):
            whole = ContentAges()
            whole.add_versions(versions[: index + 1])
            expected = classify(versions[: index + 1], index, whole, before)
            few = deciding_versions(catalog, PATH, version.snapshot, before)
            assert few[-1] == version and len(few) <= 6
            ages = ContentAges()
            ages.add_versions(few)
            assert classify(few, len(few) - 1, ages, before) == expected, (index, before)
            kinds.add(expected.kind if expected is not None else "none")
    assert kinds == {"edit", "rollback", "delete", "none"}  # every outcome was compared
    assert deciding_versions(catalog, PATH)[-1] == versions[-1]  # no snapshot named: the newest
    assert deciding_versions(catalog, "never/seen.py") == []
