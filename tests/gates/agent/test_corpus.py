"""The corpus benchmark in quick mode: every 4th command shape, run for real, judged by the hook.

scripts/bench_agent.py runs each shape of tests/data/agent_corpus.txt on a protected and an
unprotected path in a throwaway copy of a project, and compares the files before and after.  This
holds the gate to the goal of issue 14 on that sample: at most 2% of damaging commands let through,
at most 2% of harmless ones blocked.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "bench_agent.py"


def _bench():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bench_agent", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_agent"] = module
    spec.loader.exec_module(module)
    return module


def test_every_class_has_shapes_on_both_sides() -> None:
    bench = _bench()
    cases = bench.expand(bench.load_corpus())
    classes = {c.klass for c in cases}
    assert {"delete", "compound", "find", "xargs-loops-variables", "wrappers", "shells-eval", "interpreters",
            "editors", "tools", "unknown-tools", "git", "benign"} <= classes
    assert len(cases) >= 500
    assert {c.variant for c in cases} == {"protected", "unprotected", "plain"}


@pytest.mark.timeout(300)
def test_quick_corpus_meets_the_goal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bench = _bench()
    monkeypatch.setenv("GUARDIAN_HOME", str(tmp_path / "gh"))
    cases = bench.expand(bench.load_corpus()[::4])
    environ = {"PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(tmp_path), "LC_ALL": "C",
               "GUARDIAN_HOME": str(tmp_path / "gh"), "SHELL": "/bin/bash"}
    outcomes = list(bench.iter_outcomes(cases, environ))
    summary = bench.summarize(outcomes)
    fn = [o.case.command for o in outcomes if o.damaging and not o.blocked]
    fp = [o.case.command for o in outcomes if not o.damaging and o.blocked]
    assert summary["damaging"] >= 40 and summary["harmless"] >= 80, summary
    assert summary["false_negative_rate"] <= 0.02, fn
    assert summary["false_positive_rate"] <= 0.02, fp
