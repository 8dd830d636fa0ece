"""Case 17, the hooks part: git hooks while guardian is broken, and hostile names under protected paths.

With ``guardian hooks install`` in place and a protected directory, ``git reset
--hard HEAD~1`` rewinds protected files.  Whatever is wrong with guardian (a
damaged store, a deleted store, a policy that does not parse, the guardian
package gone from the interpreter), the outcome is never a silent pass: either
guardian refuses and undoes the rewind, or git goes on and stderr says that
protected paths were NOT checked.  A guardian.yaml that is gone (``git clean
-fdx``) while the store remains still refuses: the accepted policy is in the store.
Protected files with hostile names (``$(touch pwned)``, newlines, quotes) never get
executed by the shim.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from guardian.project import ProjectPaths
from tests.conftest import run_cli
from tests.reliability.harness import record

POLICY = "version: 1\nprotect:\n  - paths: [core/]\n    rollback: force\n    delete: block\n    reason: core\n"
NAMES = ["core/engine.py", "core/$(touch pwned).py", "core/new\nline.py", 'core/quote\'s "x".py', "core/-rf"]


def _git(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args],
        cwd=root,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    assert _git(root, "init", "-q", "-b", "main").returncode == 0
    (root / "guardian.yaml").write_text(POLICY)
    (root / "core").mkdir()
    for i, name in enumerate(NAMES):
        (root / name).write_text(f"version one {i}\n")
    assert _git(root, "add", "-A").returncode == 0
    assert _git(root, "commit", "-q", "-m", "one").returncode == 0
    for i, name in enumerate(NAMES):
        (root / name).write_text(f"version two {i}\n")
    assert _git(root, "commit", "-q", "-am", "two").returncode == 0
    for args in (("init",), ("hooks", "install")):
        r = run_cli(*args, cwd=root)
        assert r.exit_code == 0, r.stderr
    return root


def _break(kind: str, root: Path, tmp_path: Path) -> dict[str, str]:
    paths = ProjectPaths.for_root(root.resolve())
    if kind == "store-damaged":
        (paths.repo / "refs" / "heads" / "snapshots").write_bytes(b"\0" * 41)
    elif kind == "store-deleted":
        shutil.rmtree(paths.store)
    elif kind == "policy-malformed":
        (root / "guardian.yaml").write_text("protect: [unclosed\n")
    elif kind == "policy-deleted":
        (root / "guardian.yaml").unlink()  # git clean -fdx of an untracked policy: the store still knows it
    elif kind == "package-gone":
        fake = tmp_path / "fake-site" / "guardian"
        fake.mkdir(parents=True)
        (fake / "__init__.py").write_text("raise ImportError('guardian was uninstalled')\n")
        return {"PYTHONPATH": str(fake.parent)}
    return {}


@pytest.mark.parametrize(
    "kind", ["working", "store-damaged", "store-deleted", "policy-malformed", "policy-deleted", "package-gone"]
)
def test_hooks_never_pass_silently_when_guardian_is_broken(tmp_path: Path, kind: str) -> None:
    root = _repo(tmp_path)
    env = _break(kind, root, tmp_path)
    r = _git(root, "reset", "--hard", "HEAD~1", env=env)
    kept = all((root / name).read_text() == f"version two {i}\n" for i, name in enumerate(NAMES))
    refused = r.returncode != 0 and kept
    warned = "NOT checked" in r.stderr or "NOT being checked" in r.stderr
    pwned = [p for p in (root / "pwned", root / "core" / "pwned", tmp_path / "pwned") if p.exists()]
    record("17", hostile_inputs=1, hostile_refused=int((refused or warned) and not pwned))
    assert not pwned, f"a file name was executed: {pwned}"
    assert refused or warned, f"{kind}: git exited {r.returncode}, files kept: {kept}, and nothing said: {r.stderr}"
    if kind != "package-gone":  # there, Python's own "No module named" report comes before the shim's warning
        assert "Traceback" not in r.stderr
    if kind in ("working", "policy-deleted"):
        assert refused, r.stderr
