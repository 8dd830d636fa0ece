"""Content the store already found valid at a path is not parsed again; the heuristics still run.

The python check is observed where it really happens: ``compile()`` raises the ``compile``
audit event with the file's path, and nothing else guardian does compiles under that name.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from guardian.capture.validate import checks_for, judge
from guardian.ops.initialize import init_project
from guardian.ops.snapshot import take_snapshot
from guardian.project import Project
from guardian.trust.policy import accepted_path

SMALL = b"x = 1\n"
BIG = b"".join(b"def f%d(a, b):\n    return a + b * %d\n\n\n" % (i, i) for i in range(600))
REL = "pkg/mod.py"

_compiled: list[str] = []


def _count_compiles(event: str, args: tuple[Any, ...]) -> None:
    if event == "compile" and len(args) > 1 and args[1] == REL:
        _compiled.append(REL)


sys.addaudithook(_count_compiles)  # audit hooks cannot be removed: it counts only REL


def _project(tmp_path: Path) -> Project:
    root = tmp_path / "proj"
    (root / "pkg").mkdir(parents=True)
    (root / REL).write_bytes(SMALL)
    init_project(root)
    proj = Project.find(root)
    # The policy in force was accepted a while ago: init's verdicts were given under it.
    past = time.time() - 100
    for path in (accepted_path(proj.paths.store), proj.paths.policy_file):
        os.utime(path, (past, past))
    return proj


def _capture(proj: Project, data: bytes) -> tuple[str, str, int]:
    (proj.root / REL).write_bytes(data)
    before = len(_compiled)
    result = take_snapshot(proj, [REL], "manual")
    [captured] = [f for f in result.files if f.path == REL]
    return captured.verdict, captured.reason, len(_compiled) - before


def _full_judgement(proj: Project, data: bytes, last_valid_size: int | None) -> tuple[str, str]:
    verdict = judge(
        REL,
        data,
        checks_for(REL, proj.policy.validate),
        last_valid_size=last_valid_size,
        suspect=proj.policy.suspect,
    )
    return verdict.verdict, verdict.reason


def test_known_content_is_not_compiled_again_and_the_verdict_is_the_same(tmp_path: Path) -> None:
    proj = _project(tmp_path)
    assert _capture(proj, BIG) == ("valid", "", 1)  # new content: compiled once
    # Back to init's content: known valid, so not compiled; the shrink heuristic still says suspect.
    verdict, reason, compiles = _capture(proj, SMALL)
    assert compiles == 0
    assert (verdict, reason) == _full_judgement(proj, SMALL, len(BIG))
    assert verdict == "suspect" and reason.startswith(f"shrank {len(BIG)} -> {len(SMALL)} bytes")
    assert _capture(proj, BIG) == ("valid", "", 0)  # BIG again: known, nothing to compile
    # A catalog row like any other: the version's verdict is what a full check gives.
    rows = proj.open_catalog().versions_of(REL)
    assert [(r.verdict, r.blob is not None) for r in rows][-1] == ("valid", True)


def test_content_never_judged_valid_at_this_path_is_compiled(tmp_path: Path) -> None:
    proj = _project(tmp_path)
    broken = b"def f(:\n"
    verdict, _reason, compiles = _capture(proj, broken)
    assert (verdict, compiles) == ("invalid", 1)
    verdict, _, compiles = _capture(proj, broken + b"\n")  # another broken content
    assert (verdict, compiles) == ("invalid", 1)
    (proj.root / "other.py").write_bytes(BIG)  # BIG at another path says nothing about REL
    take_snapshot(proj, ["other.py"], "manual")
    assert _capture(proj, BIG) == ("valid", "", 1)


def test_a_policy_accepted_since_has_known_content_checked_again(tmp_path: Path) -> None:
    proj = _project(tmp_path)
    assert _capture(proj, BIG)[2] == 1
    assert _capture(proj, SMALL)[2] == 0
    later = time.time() + 5  # the policy in force changed after both verdicts
    os.utime(accepted_path(proj.paths.store), (later, later))
    assert _capture(proj, BIG) == ("valid", "", 1)
