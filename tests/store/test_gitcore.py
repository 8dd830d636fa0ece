"""guardian.store.gitcore: the store works on pygit2's C core alone, and on the whole package.

Each mode runs in its own process (the choice is made once, at import): a real store round
trip through the CLI (init, snapshot, restore), then the store's own reads, writes and the
paths that need pygit2's Python package (git config, packing) on the core's handles.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from guardian.store import gitcore
from tests.conftest import guardian_subprocess

# Elsewhere (another pygit2 release, another platform) gitcore falls back to the whole package.
# pygit2 itself is imported only inside a test: at module level it would put this whole pytest
# process on the fallback.
CORE_EXPECTED = sys.platform.startswith("linux") and version("pygit2").startswith(gitcore.VERIFIED_RELEASES)

_STORE_SCRIPT = r"""
import json, sys
from pathlib import Path
from guardian.store import gitcore
from guardian.store.repo import ShadowRepo
from guardian.store.tree import Entry, build_tree

repo = ShadowRepo(Path(sys.argv[1]))
head = repo.head()
with repo.staged_writes():
    blob = repo.write_blob(b"core\n")
    new = repo.commit({"sub/c.txt": Entry(blob, 0o100644)}, "core\n", head)
entry = repo.entry_at(new, "sub/c.txt")
before_package = "pygit2" in sys.modules
out = {
    "full": gitcore.FULL_PACKAGE,
    "package_imported": before_package,
    "read_back": repo.read_blob(entry.oid).decode(),
    "mode": entry.mode,
    "changes": [(c.path, c.old is None) for c in repo.changes(new)],
    "files": sorted(path for path, _ in repo.iter_tree(new)),
    "problems": repo.integrity_problems(),
    "ancestor": repo.is_ancestor(head, new),
}
# libgit2's strict object creation is off (durability_mode, through ctypes on the core): a tree
# may name an object that is not stored.  Built staged and dropped, so the store never holds it.
try:
    with repo.staged_writes():
        build_tree(repo._repo, repo.git_dir, None, {"ghost": Entry("1" * 40, 0o100644)})
        out["strict_off"] = True
        raise LookupError
except LookupError:
    pass
repo.set_remote("backup", "/nowhere")
out["remotes"] = repo.remotes()
repo.remove_remote("backup")
out["packed"] = repo.pack()
out["remotes_after"] = repo.remotes()
import pygit2
out["same_classes"] = pygit2.Oid is gitcore.Oid and pygit2.Commit is gitcore.Commit
out["real_enums"] = type(repo._repo.revparse_single(new).tree["sub"].filemode).__name__
print(json.dumps(out))
"""


def _run(args: list[str], cwd: Path, full: bool) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, gitcore.ENV_FULL: "1" if full else "0"}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("full", [False, True], ids=["core", "full"])
def test_store_round_trip_in_both_modes(project: Path, full: bool) -> None:
    mode = {gitcore.ENV_FULL: "1" if full else "0"}
    (project / "f1.py").write_text("x = 1\n")
    (project / "f2.py").write_text("y = 2\n")
    init = guardian_subprocess("init", cwd=project, env=mode)
    assert init.returncode == 0, init.stderr
    (project / "f1.py").write_text("x = 2\n")
    snap = guardian_subprocess("snapshot", cwd=project, env=mode)
    assert snap.returncode == 0, snap.stderr
    (project / "f1.py").write_text("x = 3\n")
    restore = guardian_subprocess("restore", "f1.py", cwd=project, env=mode)
    assert restore.returncode == 0, restore.stderr
    assert (project / "f1.py").read_text() == "x = 2\n"

    [store] = Path(os.environ["GUARDIAN_HOME"]).glob("*/repo.git")
    proc = _run([sys.executable, "-c", _STORE_SCRIPT, str(store)], project, full)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["full"] is (full or not CORE_EXPECTED)
    assert out["package_imported"] is out["full"]  # the core alone never imports the Python package
    assert out["read_back"] == "core\n"
    assert out["mode"] == 0o100644
    assert out["changes"] == [["sub/c.txt", True]]
    assert {"f1.py", "f2.py", "sub/c.txt"} <= set(out["files"])
    assert out["problems"] == []
    assert out["strict_off"] is True
    assert out["ancestor"] is True
    assert out["remotes"] == {"backup": "/nowhere"}
    assert out["remotes_after"] == {}
    assert out["packed"] > 0
    assert out["same_classes"] is True
    assert out["real_enums"] == "FileMode"  # once the package is in, the core hands out its enums again
    check = subprocess.run(
        ["git", "--git-dir", str(store), "fsck", "--strict", "--no-dangling"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_libgit2_values_match_the_package() -> None:
    """The numbers gitcore passes to libgit2 itself are the ones pygit2's enums name."""
    import pygit2

    assert gitcore.OPT_ENABLE_STRICT_OBJECT_CREATION == pygit2.enums.Option.ENABLE_STRICT_OBJECT_CREATION
    assert gitcore.OPT_ENABLE_FSYNC_GITDIR == pygit2.enums.Option.ENABLE_FSYNC_GITDIR
    assert gitcore.REPOSITORY_OPEN_BARE == pygit2.enums.RepositoryOpenFlag.BARE
    assert gitcore.GIT_DELTA_ADDED == pygit2.enums.DeltaStatus.ADDED
    assert gitcore.GIT_DELTA_DELETED == pygit2.enums.DeltaStatus.DELETED


@pytest.mark.skipif(not CORE_EXPECTED, reason="gitcore loads the C core alone only on a verified pygit2, on Linux")
def test_core_alone_is_what_a_store_import_loads(tmp_path: Path) -> None:
    """On the verified pygit2, importing the store loads the C core and not the Python package."""
    script = "import sys, guardian.store.repo; print(sorted(m for m in sys.modules if m.startswith('pygit2')))"
    proc = _run([sys.executable, "-c", script], tmp_path, full=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.replace("'", '"')) == ["pygit2._pygit2"]
    forced = _run([sys.executable, "-c", script], tmp_path, full=True)
    assert "'pygit2.enums'" in forced.stdout
