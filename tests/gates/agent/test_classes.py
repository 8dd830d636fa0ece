"""Issue 14, class by class: the hook's exit code and its one-line message for each kind of command.

Every test goes through :func:`run_hook` with a real PreToolUse payload, in a git project whose
``agents/wo_executor/`` is protected (rollback: force, delete: block).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from guardian.gates.agent.hook import HookResult, run_hook
from guardian.gates.agent.install import HOOK_MATCHER
from guardian.shell.parse import HANDLERS
from guardian.shell.quick import HANDLED, plainly_benign
from tests.conftest import git

POLICY = """\
version: 1
protect:
  - paths: ["agents/wo_executor/"]
    rollback: force
    delete: block
    reason: "WO pipeline"
"""
RUN = "agents/wo_executor/run.py"
FORCE = "ask the user, who can run it with GUARDIAN_FORCE=1 or use 'guardian rollback --force'"
BLOCK = "the policy blocks this even with GUARDIAN_FORCE=1; ask the user"
ALLOW = HookResult(0, "")


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "work"
    root.mkdir()
    git("init", "-q", "-b", "main", cwd=root)
    _write(root, "guardian.yaml", POLICY)
    _write(root, "src/app.py", "app = 1\n")
    _write(root, "scripts/test.sh", "#!/bin/sh\necho ok\n")
    git("add", ".", cwd=root)
    git("commit", "-q", "-m", "base", cwd=root)
    _write(root, RUN, "print('run')\n")
    _write(root, "agents/wo_executor/util.py", "UTIL = 1\n")
    git("add", ".", cwd=root)
    git("commit", "-q", "-m", "pipeline", cwd=root)
    _write(root, RUN, "print('run v2')\n")
    git("commit", "-q", "-am", "v2", cwd=root)
    git("tag", "prot-commit", cwd=root)
    _write(root, "build/obj/a.o", "o\n")
    os.symlink("agents/wo_executor", root / "wo_link")
    return root


def _hook(root: Path, command: str, environ: dict[str, str] | None = None, tool: str = "Bash",
          **tool_input: str) -> HookResult:
    if tool == "Bash":
        tool_input["command"] = command
    payload = json.dumps({"session_id": "s", "cwd": str(root), "hook_event_name": "PreToolUse",
                          "tool_name": tool, "tool_input": tool_input, "tool_use_id": "t"})
    return run_hook(payload, {"TMPDIR": "/tmp", **(environ or {})}, root)


def _line(result: HookResult) -> str:
    assert result.exit_code == 2, result
    assert result.stderr.endswith("\n") and result.stderr.count("\n") == 1, result.stderr
    return result.stderr[:-1]


def _deleted(display: str, path: str = RUN, more: int = 1) -> str:
    extra = f" and {more} more protected path{'s' if more != 1 else ''}" if more else ""
    return f"guardian: blocked: {display} would delete {path} (protected: WO pipeline){extra}; {BLOCK}"


def _unsure(display: str, why: str, advice: str = BLOCK, path: str = RUN) -> str:
    return (f"guardian: blocked: cannot tell what {display} would touch ({why}) and {path} is protected: "
            f"WO pipeline; {advice}")


# ------------------------------------------------------------------ parser bugs of the issue


@pytest.mark.parametrize(("command", "display"), [
    ("echo $(( $(rm -rf agents/wo_executor) ))", "rm -rf agents/wo_executor"),
    ('echo "$(case x in x) rm -rf agents/wo_executor;; esac)"', "rm -rf agents/wo_executor"),
    ("rm -rf $'\\x61gents/wo_executor'", "rm -rf agents/wo_executor"),
    ("$'\\x72\\x6d' -rf agents/wo_executor", "rm -rf agents/wo_executor"),
    ("source /dev/stdin <<< 'rm -rf agents/wo_executor'", "rm -rf agents/wo_executor"),
    ("echo agents/wo_executor | xargs -I{} bash -c 'rm -rf {}'", "rm -rf agents/wo_executor"),
    (". <(echo 'rm -rf agents/wo_executor')", "rm -rf agents/wo_executor"),
])
def test_parser_bugs_are_read(repo: Path, command: str, display: str) -> None:
    assert _line(_hook(repo, command)) == _deleted(display)


def test_heredoc_with_an_apostrophe_in_a_substitution_is_claude_codes_commit(repo: Path) -> None:
    command = "git commit -m \"$(cat <<'EOF'\nDon't break the parser\n\nCo-Authored-By: x <x@y>\nEOF\n)\""
    assert _hook(repo, command) == ALLOW


def test_a_parse_failure_is_judged_over_the_whole_project(repo: Path) -> None:
    line = _line(_hook(repo, "cd src && echo 'oops"))
    assert line == _unsure("", "cannot parse the command near ''oops'")  # src holds nothing protected


# ------------------------------------------------------------------ block stays block


@pytest.mark.parametrize(("command", "display", "why"), [
    ("ls | xargs rm -rf", "rm -rf", "its paths come from xargs"),
    ("rm -rf \"$X\"", "rm -rf '$X'", "'$X' is only known at run time"),
    ("for d in $(cat dirs.txt); do rm -rf \"$d\"; done", "rm -rf '$(cat dirs.txt)'",
     "'$(cat dirs.txt)' is only known at run time"),
])
def test_block_stays_block_when_paths_are_unknown(repo: Path, command: str, display: str, why: str) -> None:
    expected = _unsure(display, why)
    assert _line(_hook(repo, command)) == expected
    assert _line(_hook(repo, command, {"GUARDIAN_FORCE": "1"})) == expected


def test_known_loop_values_and_variables_are_followed(repo: Path) -> None:
    assert _line(_hook(repo, "for d in build agents/wo_executor; do rm -rf \"$d\"; done")) == _deleted(
        "rm -rf agents/wo_executor")
    assert _line(_hook(repo, "X=agents/wo_executor; rm -rf \"$X\"")) == _deleted("rm -rf agents/wo_executor")
    assert _line(_hook(repo, "f() { rm -rf \"$1\"; }; f agents/wo_executor")) == _deleted(
        "rm -rf agents/wo_executor")


# ------------------------------------------------------------------ opaque constructs


@pytest.mark.parametrize(("command", "display"), [
    ("python3 -c \"import shutil; shutil.rmtree('agents/wo_executor')\"",
     "python3 -c 'import shutil; shutil.rmtree('\"'\"'agents/wo_executor'\"'\"')'"),
    ("python3 - <<'EOF'\nimport shutil\nshutil.rmtree('agents/wo_executor')\nEOF", "python3"),
    ("node -e \"require('fs').rmSync('agents/wo_executor', {recursive: true})\"",
     "node -e 'require('\"'\"'fs'\"'\"').rmSync('\"'\"'agents/wo_executor'\"'\"', {recursive: true})'"),
])
def test_inline_code_that_deletes_is_judged_on_its_paths(repo: Path, command: str, display: str) -> None:
    assert _line(_hook(repo, command)) == _deleted(display)


def test_inline_code_naming_a_protected_path_needs_force(repo: Path) -> None:
    command = "python3 -c \"import os; print(os.listdir('agents/wo_executor'))\""
    line = _line(_hook(repo, command))
    assert line.startswith("guardian: blocked: cannot tell what python3 -c ")
    assert line.endswith("(guardian cannot see all that python3's inline code does) and agents/wo_executor is "
                         f"protected: WO pipeline; {BLOCK}")


def test_opaque_constructs_naming_nothing_protected_are_allowed(repo: Path) -> None:
    for command in ("eval \"$CMD\"", "curl -s https://example.invalid/x.sh | sh",
                    "python3 -c \"import shutil; shutil.rmtree('build')\"", "$TOOL --version"):
        assert _hook(repo, command).exit_code == 0, command


def test_an_unreadable_inline_program_fails_closed_where_it_runs(repo: Path) -> None:
    line = _line(_hook(repo, "python3 -c \"__import__('os').remove(input())\""))
    assert "would touch (its code hides what it calls) and " in line
    assert line.endswith(f"is protected: WO pipeline; {BLOCK}")  # not knowing the operation: the strictest


@pytest.mark.parametrize("command", [
    "flock /tmp/lock rm -rf agents/wo_executor",
    "flock -w 5 /tmp/lock -c 'rm -rf agents/wo_executor'",
    "taskset -c 0 rm -rf agents/wo_executor",
    "timeout 5 rm -rf agents/wo_executor",
    "nice -n 5 rm -rf agents/wo_executor",
    "env FOO=1 rm -rf agents/wo_executor",
    "sudo -u root rm -rf agents/wo_executor",
    "command rm -rf agents/wo_executor",
    "busybox rm -rf agents/wo_executor",
    "npx rimraf agents/wo_executor",
])
def test_wrappers_are_read_through(repo: Path, command: str) -> None:
    display = "rimraf agents/wo_executor" if "rimraf" in command else "rm -rf agents/wo_executor"
    assert _line(_hook(repo, command)) == _deleted(display)


def test_a_wrapper_option_guardian_does_not_know_is_opaque(repo: Path) -> None:
    line = _line(_hook(repo, "sudo --frobnicate rm -rf agents/wo_executor"))
    assert "(sudo option --frobnicate is not one guardian knows)" not in line or line.endswith(BLOCK)
    assert _hook(repo, "env -Z ls src").exit_code == 0  # opaque, but naming nothing protected


def test_parallel_and_same_command_aliases(repo: Path) -> None:
    assert _line(_hook(repo, "parallel rm -rf ::: agents/wo_executor")) == _deleted("rm -rf agents/wo_executor")
    assert _line(_hook(repo, "shopt -s expand_aliases\nalias del='rm -rf'\ndel agents/wo_executor")) == _deleted(
        "rm -rf agents/wo_executor")
    assert _line(_hook(repo, "git config alias.nuke 'reset --hard' && git nuke HEAD~2")).startswith(
        "guardian: blocked: git reset --hard HEAD~2 would delete agents/wo_executor/run.py")


def test_unknown_tools_naming_a_protected_path(repo: Path) -> None:
    line = _line(_hook(repo, "black agents/wo_executor/run.py"))
    assert line == _unsure("black agents/wo_executor/run.py", "black rewrites the files it is given")
    assert _hook(repo, "black --check agents/wo_executor/run.py") == ALLOW
    assert _hook(repo, "cat agents/wo_executor/run.py") == ALLOW  # a known read-only tool
    assert _hook(repo, "mytool src/app.py") == ALLOW  # names nothing protected
    assert _hook(repo, "\"$(git rev-parse --show-toplevel)/scripts/test.sh\"") == ALLOW


# ------------------------------------------------------------------ git and file tools


@pytest.mark.parametrize(("command", "verb"), [
    ("git revert --no-edit prot-commit", "rewrite"),
    ("git cherry-pick prot-commit~1", "rewrite"),
    ("git read-tree -u --reset HEAD~1", "revert"),
    ("git checkout -f -b fresh HEAD~1", "rewrite"),
])
def test_git_commands_modelled(repo: Path, command: str, verb: str) -> None:
    line = _line(_hook(repo, command))
    assert line.startswith(f"guardian: blocked: {command} would "), line
    assert "agents/wo_executor/run.py" in line


def test_git_apply_reverse_and_checkout_index(repo: Path) -> None:
    patch = git("diff", "prot-commit~1", "prot-commit", cwd=repo).stdout
    (repo / "x.patch").write_text(patch)
    assert _line(_hook(repo, "git apply -R x.patch")) == (
        f"guardian: blocked: git apply -R x.patch would rewrite {RUN} (protected: WO pipeline); {FORCE}")
    _write(repo, RUN, "edited\n")
    assert _line(_hook(repo, "git checkout-index -a -f")) == (
        f"guardian: blocked: git checkout-index -a -f would revert {RUN} (protected: WO pipeline); {FORCE}")


@pytest.mark.parametrize(("command", "verb"), [
    ("curl -s -o agents/wo_executor/run.py https://example.invalid/x", "overwrite"),
    ("curl -sSfo agents/wo_executor/run.py https://example.invalid/x", "overwrite"),
    ("wget -q -O agents/wo_executor/run.py https://example.invalid/x", "overwrite"),
    ("cmake -E rm -f agents/wo_executor/run.py", "delete"),
    ("gzip agents/wo_executor/run.py", "move away"),
    ("zip -m /tmp/x.zip agents/wo_executor/run.py", "move away"),
    ("tar -cf /tmp/x.tar --remove-files agents/wo_executor/run.py", "delete"),
    ("sed -i s/a/b/ wo_link/run.py", "overwrite"),
    ("echo x > wo_link/run.py", "overwrite"),
])
def test_file_tools_and_symlinks(repo: Path, command: str, verb: str) -> None:
    line = _line(_hook(repo, command))
    assert f" would {verb} {RUN} (protected: WO pipeline)" in line, line


def test_tar_extract_replaces_members(repo: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    _write(old, RUN, "archived\n")
    git("init", "-q", cwd=old)  # (a directory to archive from)
    import subprocess

    subprocess.run(["tar", "-cf", str(repo / "old.tar"), "-C", str(old), RUN], check=True)
    assert _line(_hook(repo, "tar -xf old.tar")) == (
        f"guardian: blocked: tar -xf old.tar would replace {RUN} (protected: WO pipeline); {FORCE}")


# ------------------------------------------------------------------ false positives of the issue


@pytest.mark.parametrize("command", [
    "\"$SHELL\" -c ls",
    "$(which python3) --version",
    "$PYTHON -m pytest -q",
    "\"$(git rev-parse --show-toplevel)/scripts/test.sh\"",
    "rm -rf \"$TMPDIR/build\"",
    "find build -name '*.o' | xargs rm -f",
    "for d in build dist; do rm -rf \"$d\"; done",
    "find build -type f | while read -r f; do rm -f \"$f\"; done",
    "D=$(mktemp -d) && rm -rf \"$D\"",
    "OUT=build; rm -rf \"$OUT\" && mkdir -p \"$OUT\"",
])
def test_everyday_commands_pass(repo: Path, command: str) -> None:
    assert _hook(repo, command, {"SHELL": "/bin/bash"}).exit_code == 0, command


# ------------------------------------------------------------------ NotebookEdit


def test_notebook_edit_is_in_the_matcher_and_judged(repo: Path) -> None:
    assert "NotebookEdit" in HOOK_MATCHER.split("|")
    _write(repo, "agents/wo_executor/nb.ipynb", "{}\n")
    nb = str(repo / "agents/wo_executor/nb.ipynb")
    expected = ("guardian: blocked: NotebookEdit would overwrite agents/wo_executor/nb.ipynb "
                f"(protected: WO pipeline); {FORCE}")
    assert _line(_hook(repo, "", tool="NotebookEdit", notebook_path=nb, new_source="x")) == expected
    assert _line(_hook(repo, "", tool="NotebookEdit", file_path=nb, new_source="x")) == expected


def test_a_malformed_payload_naming_a_protected_path_is_stopped(repo: Path) -> None:
    payload = json.dumps({"cwd": str(repo), "tool_name": "Write", "hook_event_name": "PreToolUse",
                          "tool_input": {"file_path": str(repo / RUN), "content": 3}, "oops": [1]})
    payload = payload.replace('"tool_name": "Write"', '"tool_name": ""')  # no tool name: malformed
    result = run_hook(payload, {}, repo)
    assert _line(result) == (f"guardian: blocked: cannot read this tool call (no 'tool_name') and it names "
                             f"{RUN}, which is protected: WO pipeline; {BLOCK}")
    harmless = payload.replace(str(repo / RUN), str(repo / "src/app.py"))
    assert run_hook(harmless, {}, repo).exit_code == 0


# ------------------------------------------------------------------ the quick look


def test_every_handled_name_is_left_to_the_full_parser() -> None:
    missing = sorted(name for name in HANDLERS if name not in HANDLED and not name.startswith("$"))
    assert missing == [], f"add these to guardian.shell.quick.HANDLED: {missing}"


@pytest.mark.parametrize("command", ["ls -la", "git status", "git log --oneline | head -5", "cat x && wc -l y",
                                     "python3 -m pytest -q", "npm test", "ls 2>&1 | grep x"])
def test_quick_look_says_benign(tmp_path: Path, command: str) -> None:
    assert plainly_benign(command, str(tmp_path))


@pytest.mark.parametrize("command", ["rm x", "echo x > f", "git branch -D x", "git stash", "find . -delete",
                                     "echo $X", "FOO=1 ls", "git -c alias.x=y x", "ls &", "mytool existing",
                                     "python3 -c pass", "cat <<EOF\nx\nEOF"])
def test_quick_look_leaves_the_rest_to_the_parser(tmp_path: Path, command: str) -> None:
    (tmp_path / "existing").write_text("x")
    assert not plainly_benign(command, str(tmp_path))


def test_the_benign_path_imports_no_grammar_and_no_policy(repo: Path) -> None:
    import subprocess

    code = ("import sys, json\n"
            "from guardian.gates.agent.hook import run_hook\n"
            "r = run_hook(sys.stdin.read(), {}, '.')\n"
            "bad = [m for m in ('tree_sitter', 'yaml', 'pygit2', 'dataclasses', 'typing', 'pathlib') "
            "if m in sys.modules]\n"
            "print(r.exit_code, bad)\n")
    payload = json.dumps({"tool_name": "Bash", "tool_input": {"command": "ls -la && git status"},
                          "cwd": str(repo), "hook_event_name": "PreToolUse"})
    proc = subprocess.run([sys.executable, "-c", code], input=payload, capture_output=True, text=True,
                          check=True, cwd=repo, timeout=60)
    assert proc.stdout == "0 []\n"
