"""Fixtures for the hook tests: each hook starts a Python, so they share one bytecode cache."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def bytecode_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """With PYTHONDONTWRITEBYTECODE set (as in some sandboxes) every hook would recompile guardian."""
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    monkeypatch.setenv("PYTHONPYCACHEPREFIX", str(tmp_path_factory.getbasetemp() / "pycache"))
