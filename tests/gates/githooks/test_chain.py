"""A hook guardian chains runs under its own name: ``$0`` (or argv[0]) is the hook's, as if git had run it.

Hook managers dispatch on it (husky 9 runs ``.husky/$(basename "$0")``).  A shell
script is sourced by its shell with ``$0`` set to ``<hooks dir>/<hook>``; any other
program runs through the symlink ``.guardian-chained/<hook>``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.conftest import run_cli
from tests.gates.githooks.gitrepo import g, make_repo, ok


def _hook(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


def test_chained_hooks_see_their_own_name(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    hooks = root / ".git" / "hooks"
    log = tmp_path / "names.log"
    _hook(hooks / "post-checkout", f'#!/bin/sh\necho "sh $0 $#" >> {log}\nexit 0\n')
    _hook(
        hooks / "post-merge",
        f"#!{sys.executable}\nimport os, sys\n"
        f"open({str(log)!r}, 'a').write('py ' + os.path.basename(sys.argv[0]) + '\\n')\n",
    )
    assert run_cli("init", cwd=root).exit_code == 0
    assert (hooks / ".guardian-chained" / "post-merge").is_symlink()

    ok(g(root, "checkout", "-q", "--", "other.txt"))
    ok(g(root, "checkout", "-q", "-b", "side"))
    ok(g(root, "commit", "-q", "--allow-empty", "-m", "side"))
    ok(g(root, "checkout", "-q", "main"))
    ok(g(root, "merge", "-q", "--no-ff", "-m", "merge", "side"))
    lines = log.read_text().splitlines()
    assert "sh .git/hooks/post-checkout 3" in lines  # the path git ran the hook by, and git's three arguments
    assert "py post-merge" in lines

    assert run_cli("hooks", "uninstall", cwd=root).exit_code == 0
    assert not (hooks / ".guardian-chained").exists()
    assert (hooks / "post-checkout").read_text().startswith("#!/bin/sh\n")
