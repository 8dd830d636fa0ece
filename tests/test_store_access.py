"""Stores guardian cannot use: a relative GUARDIAN_HOME, a read-only store, another user's store.

Each gets a message that names the cause and the fix, never "damaged, run verify --repair".
The read-only case drops CAP_DAC_OVERRIDE with setpriv, so it holds when the suite runs as root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from guardian.project import ProjectPaths
from tests.conftest import guardian_subprocess, run_cli

NO_DAC = ["setpriv", "--inh-caps=-dac_override,-dac_read_search", "--bounding-set=-dac_override,-dac_read_search"]


def _init(root: Path) -> Path:
    root.mkdir()
    (root / "guardian.yaml").write_text("version: 1\n")
    (root / "a.txt").write_text("a\n")
    assert run_cli("init", cwd=root).exit_code == 0
    return ProjectPaths.for_root(root.resolve()).store


def test_a_relative_guardian_home_is_refused_with_the_absolute_one_to_use(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "guardian.yaml").write_text("version: 1\n")
    r = guardian_subprocess("init", cwd=root, env={"GUARDIAN_HOME": "state"})
    assert r.returncode == 2
    assert r.stderr == (
        f"guardian: error: GUARDIAN_HOME=state is a relative path; set it to an absolute directory, "
        f"for example GUARDIAN_HOME={root}/state\n"
    )
    assert not (root / "state").exists(), "a store was made inside the work tree"


def _without_dac_override(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*NO_DAC, sys.executable, "-m", "guardian", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux) to drop CAP_DAC_OVERRIDE")
@pytest.mark.skipif(os.geteuid() != 0, reason="as a non-root user a chmod is enough; this path tests root")
def test_a_read_only_store_says_so_instead_of_calling_itself_damaged(tmp_path: Path) -> None:
    store = _init(tmp_path / "p")
    store.chmod(0o500)
    try:
        r = _without_dac_override("snapshot", cwd=tmp_path / "p")
    finally:
        store.chmod(0o700)
    assert r.returncode == 1, r.stderr
    assert r.stderr == (
        f"guardian: error: the store {store} is read-only (mode 0500); "
        f"make it writable again with 'chmod -R u+w {store}'\n"
    )
    assert "verify --repair" not in r.stderr


def test_a_store_of_another_user_names_the_owner(tmp_path: Path) -> None:
    from guardian.project import store_access_problem

    store = _init(tmp_path / "p")
    if os.geteuid() == 0:
        os.chown(store, 65534, 65534)
        try:
            # Root may write anywhere, so guardian only names a permission problem for others.
            assert store_access_problem(store) is None
        finally:
            os.chown(store, 0, 0)
    else:
        assert store_access_problem(store) is None
