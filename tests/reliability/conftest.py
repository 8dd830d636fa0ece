"""Fixtures and the mode switch of the reliability campaign.

Short mode (the default, what CI runs) does a handful of trials per case so the
whole directory finishes in a few minutes.  Long mode (``GUARDIAN_LONG=1``, or
``scripts/reliability.py``) raises the trial counts: the same tests run in both
modes, with counts from ``harness.trials(short, long)``.  In long mode the
global 120 s per-test timeout becomes an hour for tests that set none.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.reliability.harness import LONG

LONG_MODE_TIMEOUT = 3600


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not LONG:
        return
    for item in items:
        if "tests/reliability/" in item.nodeid and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(LONG_MODE_TIMEOUT))


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Children a test starts; each is SIGKILLed and reaped at the end, whatever happened."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        try:
            proc.communicate(timeout=30)
        except (subprocess.TimeoutExpired, ValueError):
            pass
