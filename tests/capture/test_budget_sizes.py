"""capture.budget.measured_size: the capture budget's store size, counted again only where the store changed.

The budget's size once came from a walk of the whole store every minute; most of a store is
its object directories, whose files are written whole and never rewritten.  measured_size
takes a settled directory whose mtime has not moved from the last measure, and must always
give what the full walk (store_size) gives, on a real store, through captures and a gc.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from guardian.capture import budget
from guardian.project import Project
from tests.conftest import run_cli


def _settle(objects: Path) -> None:
    """Date every object directory a minute back, as if it was last written then."""
    for entry in objects.iterdir():
        past = entry.stat().st_mtime_ns - 60 * 10**9
        os.utime(entry, ns=(past, past))


def test_a_measure_counted_from_the_last_one_is_the_full_walk(project: Path) -> None:
    for i in range(20):
        (project / f"f{i}.txt").write_text(f"file {i}\n" * (i + 1))
    assert run_cli("init", cwd=project).exit_code == 0
    store = Project.find(project).paths.store
    objects = store / "repo.git" / "objects"

    size, known = budget.measured_size(store, {})
    assert size == budget.store_size(store)
    assert known == {}  # every object directory was written just now: none is taken as known yet

    _settle(objects)
    size, known = budget.measured_size(store, {})
    assert size == budget.store_size(store)
    assert "info" not in known and len(known) >= 20  # the settled loose-object directories
    # Known directories are taken as they were, yet the answer is still the full walk's.
    assert budget.measured_size(store, known) == (size, known)

    # New objects land in known directories (their mtime moves) and in new ones.
    for i in range(20):
        (project / f"f{i}.txt").write_text(f"changed {i}\n" * (i + 3))
    assert run_cli("snapshot", cwd=project).exit_code == 0
    size, again = budget.measured_size(store, known)
    assert size == budget.store_size(store)

    # A directory whose count is stale but whose mtime still matches is what the mtime check is
    # for: a changed directory is counted again even when its old count is offered.
    changed = {name: [mtime, count + 4096] for name, (mtime, count) in known.items()}
    assert budget.measured_size(store, changed)[0] == budget.store_size(store) + 4096 * len(
        [n for n in known if n in again and again[n] == known[n]]
    )

    # After a gc packs the loose objects, the directories that went are simply not counted.
    assert run_cli("gc", cwd=project).exit_code == 0
    assert budget.measured_size(store, known)[0] == budget.store_size(store)


def test_the_budget_keeps_the_counts_for_its_next_measure(project: Path) -> None:
    (project / "a.txt").write_text("a\n")
    assert run_cli("init", cwd=project).exit_code == 0
    proj = Project.find(project)
    _settle(proj.paths.store / "repo.git" / "objects")
    (proj.paths.store / "usage.json").unlink(missing_ok=True)
    before = budget.store_size(proj.paths.store)  # measured before the budget records it in usage.json
    usage = budget.measure_usage(proj, budget.USAGE_TTL)
    assert usage.size == before
    record = json.loads((proj.paths.store / "usage.json").read_text())
    assert record["size"] == usage.size and record["objects"]
    # Within the TTL the recorded size is the answer, as before.
    assert budget.measure_usage(proj, budget.USAGE_TTL).size == usage.size
    # Past it, the store is measured again, from the recorded counts.
    record["ts"] -= 2 * budget.USAGE_TTL
    (proj.paths.store / "usage.json").write_text(json.dumps(record))
    before = budget.store_size(proj.paths.store)
    assert budget.measure_usage(proj, budget.USAGE_TTL).size == before
