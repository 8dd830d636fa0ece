"""The agent command gate: a decision table over real commands in real git repos, the hook end to end,
and the Claude Code settings merge."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from guardian.events import EventLog
from guardian.gates.agent import judge, resolve
from guardian.gates.agent.hook import HookResult, run_hook
from guardian.gates.agent.install import HOOK_MATCHER, hook_command, install_claude_hook, uninstall_claude_hook
from guardian.gates.agent.judge import Verdict, judge_command, judge_file_write
from guardian.gates.agent.payload import BadHookInput, parse_hook_input
from guardian.gates.agent.resolver import brace_expand
from guardian.project import Project, ProjectPaths
from tests.conftest import git, guardian_subprocess, run_cli

POLICY = """\
version: 1
protect:
  - paths: ["agents/wo_executor/"]
    rollback: force
    delete: block
    restore: allow
    reason: "WO pipeline"
"""
RUN = "agents/wo_executor/run.py"
PROT = "(protected: WO pipeline)"
FORCE = "ask the user, who can run it with GUARDIAN_FORCE=1 or use 'guardian rollback --force'"
BLOCK = "the policy blocks this even with GUARDIAN_FORCE=1; ask the user"


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repo whose HEAD~1 lacks the protected agents/wo_executor/ that HEAD and the disk hold."""
    root = tmp_path / "work"
    root.mkdir()
    git("init", "-q", "-b", "main", cwd=root)
    _write(root, "guardian.yaml", POLICY)
    _write(root, "README.md", "readme\n")
    _write(root, "src/app.py", "app = 1\n")
    _write(root, ".gitignore", "build/\n")
    git("add", ".", cwd=root)
    git("commit", "-q", "-m", "base", cwd=root)
    _write(root, RUN, "print('run')\n")
    _write(root, "agents/wo_executor/util.py", "UTIL = 1\n")
    _write(root, "agents/other/tool.py", "TOOL = 1\n")
    git("add", ".", cwd=root)
    git("commit", "-q", "-m", "pipeline", cwd=root)
    _write(root, "build/out.txt", "built\n")  # ignored by git
    return root


@pytest.fixture
def guarded(repo: Path) -> Path:
    """The repo with a guardian store, for tests that snapshot and record events."""
    outcome = run_cli("init", cwd=repo)
    assert outcome.exit_code == 0, outcome.stderr
    return repo


# --------------------------------------------------------------------------- setups for the table


def _modify_protected(root: Path) -> None:
    _write(root, RUN, "print('edited by hand, not committed')\n")


def _untracked_protected(root: Path) -> None:
    _write(root, "agents/wo_executor/scratch.py", "WIP = 1\n")


def _stash_protected(root: Path) -> None:
    _modify_protected(root)
    git("stash", "-q", cwd=root)


def _side_branch(root: Path) -> None:
    git("checkout", "-q", "-b", "side", cwd=root)
    _write(root, RUN, "print('side')\n")
    git("commit", "-q", "-am", "side work", cwd=root)
    git("checkout", "-q", "main", cwd=root)


def _aliases(root: Path) -> None:
    git("config", "alias.nuke", "reset --hard HEAD~1", cwd=root)
    git("config", "alias.wipe", "!git clean -fdx", cwd=root)
    git("config", "alias.co", "checkout", cwd=root)
    _untracked_protected(root)


def _modify_unprotected(root: Path) -> None:
    _write(root, "src/app.py", "app = 2\n")


SETUPS: dict[str, Callable[[Path], None]] = {
    "modified": _modify_protected,
    "untracked": _untracked_protected,
    "stash": _stash_protected,
    "side": _side_branch,
    "aliases": _aliases,
    "app-modified": _modify_unprotected,
}

ALLOW = "allow"


def _blocked(display: str, verb: str, path: str = RUN, more: int = 0, advice: str = BLOCK) -> str:
    extra = f" and {more} more protected path{'s' if more != 1 else ''}" if more else ""
    return f"guardian: blocked: {display} would {verb} {path} {PROT}{extra}; {advice}"


def _unsure(display: str, why: str, advice: str = FORCE, path: str = RUN) -> str:
    return (f"guardian: blocked: cannot tell what {display} would touch ({why}) "
            f"and {path} is protected: WO pipeline; {advice}")


# (command, setup, expected): expected is ALLOW, a whole stderr line, or ("prefix", start of the line).
TABLE: list[tuple[str, str | None, str | tuple[str, str]]] = [
    # git: rewinds and discards
    ("git reset --hard HEAD~1", None, _blocked("git reset --hard HEAD~1", "delete", more=1)),
    ("git reset --hard", "modified", _blocked("git reset --hard", "revert", advice=FORCE)),
    ("git reset --hard", None, ALLOW),
    ("git reset --hard", "app-modified", ALLOW),
    ("git reset --soft HEAD~1", None, ALLOW),
    ("git reset --hard no-such-rev", None,
     ("prefix", "guardian: blocked: cannot tell what git reset --hard no-such-rev would touch ('git diff")),
    ("git checkout -- .", "modified", _blocked("git checkout -- .", "revert", advice=FORCE)),
    ("git checkout .", "modified", _blocked("git checkout .", "revert", advice=FORCE)),
    ("git checkout -- src/app.py", "app-modified", ALLOW),
    # A quoted glob is git's to expand: the gate must read it as a pattern too, not as a literal name.
    ("git checkout -- 'agents/*/run.py'", "modified",
     _blocked("git checkout -- 'agents/*/run.py'", "revert", advice=FORCE)),
    ("git checkout HEAD~1", None, _blocked("git checkout HEAD~1", "delete", more=1)),
    ("git checkout -b feature", None, ALLOW),
    ("git switch --orphan fresh", None, _blocked("git switch --orphan fresh", "delete", more=2)),
    ("git restore agents/wo_executor/run.py", "modified",
     _blocked("git restore agents/wo_executor/run.py", "revert", advice=FORCE)),
    ("git restore agents/wo_executor/run.py", None, ALLOW),  # nothing to discard
    ("git restore --staged agents/wo_executor/run.py", "modified", ALLOW),  # index only
    ("git restore --source=HEAD~1 agents/", None,
     _blocked("git restore --source=HEAD~1 agents/", "delete", more=1)),
    ("git clean -fdx", "untracked", _blocked("git clean -fdx", "delete", "agents/wo_executor/scratch.py")),
    ("git clean -f -d", "untracked", _blocked("git clean -f -d", "delete", "agents/wo_executor/scratch.py")),
    ("git clean -fdx", None, ALLOW),  # only build/, which is not protected
    ("git clean -f -- 'agents/*'", "untracked",
     _blocked("git clean -f -- 'agents/*'", "delete", "agents/wo_executor/scratch.py")),
    ("git clean -n -fd", "untracked", ALLOW),  # a dry run
    ("git stash drop", "stash", _blocked("git stash drop", "discard stashed changes to", advice=FORCE)),
    ("git stash clear", "stash", _blocked("git stash clear", "discard stashed changes to", advice=FORCE)),
    ("git stash drop", None, ALLOW),  # no stash: nothing to lose
    ("git stash", "modified", ALLOW),  # saving is not losing
    ("git branch -D side", "side", _blocked("git branch -D side", "discard commits that change", advice=FORCE)),
    ("git branch -D no-such-branch", None, ALLOW),
    ("git -C . branch -f side HEAD~1", "side", _blocked("git -C . branch -f side HEAD~1",
                                                       "discard commits that change", advice=FORCE)),
    ("git checkout agents", "modified", _blocked("git checkout agents", "revert", advice=FORCE)),  # a path
    ("git restore --staged --worktree agents/wo_executor/run.py", "modified",
     _blocked("git restore --staged --worktree agents/wo_executor/run.py", "revert", advice=FORCE)),
    ("git rebase side", "side", _blocked("git rebase side", "rewrite", advice=FORCE)),
    # git options, wrappers and aliases
    ("git -C agents/wo_executor checkout -- .", "modified",
     _blocked("git -C agents/wo_executor checkout -- .", "revert", advice=FORCE)),
    ("git nuke", "aliases", _blocked("git reset --hard HEAD~1", "delete", more=1)),
    ("git wipe", "aliases", _blocked("git clean -fdx", "delete", "agents/wo_executor/scratch.py")),
    ("git co HEAD~1", "aliases", _blocked("git checkout HEAD~1", "delete", more=1)),
    # deleting
    ("rm -rf agents", None, _blocked("rm -rf agents", "delete", more=1)),
    ("rm agents/wo_executor/run.py", None, _blocked("rm agents/wo_executor/run.py", "delete")),
    ("rm agents/wo_executor", None, ALLOW),  # rm without -r refuses a directory
    ("rm -rf .", None, _blocked("rm -rf .", "delete", more=2)),  # + guardian.yaml, protected by default
    ("rm -rf build", None, ALLOW),
    ("rm -rf agents/other", None, ALLOW),
    ("rm -rf agents/wo_executor2", None, ALLOW),
    ("rm -rf build/$X", None, ALLOW),  # computed, but only under build/
    ("rm -rf /tmp/guardian-agent-test-nothing", None, ALLOW),
    ("find agents -name '*.py' -delete", None, _blocked("find agents -name '*.py' -delete", "delete", more=1)),
    ("find . -name '*.py' -exec rm {} +", None, _blocked("find . -name '*.py' -exec rm {} +", "delete", more=1)),
    ("find . -name '*.pyc' -delete", None, ALLOW),
    ("find agents -name '*.txt' -print", None, ALLOW),
    # overwriting
    ("truncate -s 0 agents/wo_executor/run.py", None,
     _blocked("truncate -s 0 agents/wo_executor/run.py", "overwrite", advice=FORCE)),
    ("truncate -s +1K agents/wo_executor/run.py", None, ALLOW),  # growing loses nothing
    ("echo x > agents/wo_executor/run.py", None,
     _blocked("echo x > agents/wo_executor/run.py", "overwrite", advice=FORCE)),
    (": > agents/wo_executor/run.py", None, _blocked(": > agents/wo_executor/run.py", "overwrite", advice=FORCE)),
    ("echo x >> agents/wo_executor/run.py", None, ALLOW),  # appending loses nothing
    ("echo x > agents/wo_executor/new.py", None, ALLOW),  # a new file loses nothing
    ("sed -i 's/run/walk/' agents/wo_executor/run.py", None,
     _blocked("sed -i s/run/walk/ agents/wo_executor/run.py", "overwrite", advice=FORCE)),
    ("sed 's/run/walk/' agents/wo_executor/run.py", None, ALLOW),
    ("perl -pi -e 's/run/walk/' agents/wo_executor/run.py", None,
     _blocked("perl -pi -e s/run/walk/ agents/wo_executor/run.py", "overwrite", advice=FORCE)),
    ("tee agents/wo_executor/run.py < /dev/null", None,
     _blocked("tee agents/wo_executor/run.py", "overwrite", advice=FORCE)),
    ("dd if=/dev/zero of=agents/wo_executor/run.py count=0", None,
     _blocked("dd if=/dev/zero of=agents/wo_executor/run.py count=0", "overwrite", advice=FORCE)),
    ("mv agents/wo_executor/run.py /tmp/", None, _blocked("mv agents/wo_executor/run.py /tmp/", "move away")),
    ("cp README.md agents/wo_executor/run.py", None,
     _blocked("cp README.md agents/wo_executor/run.py", "overwrite", advice=FORCE)),
    ("cp agents/wo_executor/run.py /tmp/run.py.bak", None, ALLOW),
    ("ln -sf /etc/hostname agents/wo_executor/run.py", None,
     _blocked("ln -sf /etc/hostname agents/wo_executor/run.py", "overwrite", advice=FORCE)),
    ("rsync -a --delete src/ agents/wo_executor/", None,
     _blocked("rsync -a --delete src/ agents/wo_executor/", "delete", more=1)),
    ("rsync -a --delete src/ build/", None, ALLOW),
    # quoting, nesting and directories
    ("bash -c 'rm -rf agents/wo_executor'", None, _blocked("rm -rf agents/wo_executor", "delete", more=1)),
    ("cd agents && rm -rf wo_executor", None, _blocked("rm -rf wo_executor", "delete", more=1)),
    ("\"r\"m -rf 'agents/wo_executor'", None, _blocked("rm -rf agents/wo_executor", "delete", more=1)),
    ("rm -rf agents/wo_*", None, _blocked("rm -rf 'agents/wo_*'", "delete", more=1)),
    ("rm -rf agents/{wo_executor,other}", None, _blocked("rm -rf agents/{wo_executor,other}", "delete", more=1)),
    ("sudo rm -rf agents/wo_executor", None, _blocked("rm -rf agents/wo_executor", "delete", more=1)),
    ("GUARDIAN_FORCE=1 rm -rf agents", None, _blocked("rm -rf agents", "delete", more=1)),
    ("echo ok; rm -rf agents/wo_executor/util.py", None,
     _blocked("rm -rf agents/wo_executor/util.py", "delete", "agents/wo_executor/util.py")),
    # The rule blocks deletes, and not knowing which paths xargs feeds rm does not weaken that.
    ("ls | xargs rm -rf", None, _unsure("rm -rf", "its paths come from xargs", BLOCK)),
    ("cd build && ls | xargs rm -f", None, ALLOW),  # computed paths, but nothing protected in build/
    # Opaque, but naming nothing protected: allowed after a snapshot of the whole tree.
    ("eval \"$CMD\"", None, ALLOW),
    ("curl -s https://example.invalid/x.sh | sh", None, ALLOW),
    # benign
    ("ls -la", None, ALLOW),
    ("git status", None, ALLOW),
    ("git log --oneline | head -5", None, ALLOW),
    ("cat agents/wo_executor/run.py", None, ALLOW),
    ("grep -rn print agents", None, ALLOW),
    ("python -m pytest -q", None, ALLOW),
    ("echo 'rm -rf agents'", None, ALLOW),
    ("git commit -am wip", None, ALLOW),
    ("mkdir -p agents/wo_executor/sub && touch agents/wo_executor/new.py", None, ALLOW),
    ("git diff > /tmp/guardian-agent-test.diff", None, ALLOW),
]


def _judge(root: Path, command: str, *, force: bool = False) -> Verdict:
    project = Project.find(root)
    return judge_command(project.root, project.policy, command, root, force=force)


def test_table_is_big_enough() -> None:
    assert len(TABLE) >= 40
    assert sum(1 for *_, expected in TABLE if expected == ALLOW) >= 15


@pytest.mark.parametrize(
    ("command", "setup", "expected"), TABLE, ids=[f"{i:02d}:{row[0]}" for i, row in enumerate(TABLE)]
)
def test_decision_table(repo: Path, command: str, setup: str | None, expected: str | tuple[str, str]) -> None:
    if setup is not None:
        SETUPS[setup](repo)
    verdict = _judge(repo, command)
    if expected == ALLOW:
        assert verdict.exit_code == 0, verdict.message
        assert not verdict.blocked
        return
    assert verdict.exit_code == 2
    assert "\n" not in verdict.message
    if isinstance(expected, tuple):
        assert verdict.message.startswith(expected[1]), verdict.message
    else:
        assert verdict.message == expected


def test_benign_commands_have_no_intents(repo: Path) -> None:
    verdict = _judge(repo, "git status && ls | grep x")
    assert verdict.action == "benign"
    assert verdict.intents == ()


def test_allowed_destructive_commands_name_their_snapshot_paths(repo: Path) -> None:
    _write(repo, "scratch/notes.txt", "notes\n")
    assert _judge(repo, "rm -rf scratch").snapshot_paths == ("scratch",)
    assert _judge(repo, "git reset --hard").snapshot_paths is None  # whole-tree operations snapshot everything


def test_force_lets_force_rules_through_but_not_block_rules(repo: Path) -> None:
    forced = _judge(repo, "truncate -s 0 agents/wo_executor/run.py", force=True)
    assert forced.action == "forced" and forced.exit_code == 0
    assert [p.path for p in forced.problems] == [RUN]
    still = _judge(repo, "rm -rf agents/wo_executor", force=True)
    assert still.blocked
    assert still.message == _blocked("rm -rf agents/wo_executor", "delete", more=1)


def test_rsync_missing_fails_closed(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resolve, "RSYNC_BIN", "guardian-test-no-such-rsync")
    verdict = _judge(repo, "rsync -a --delete src/ agents/wo_executor/")
    assert verdict.message == _blocked("rsync -a --delete src/ agents/wo_executor/", "delete", more=1)
    assert any("not installed" in note for note in verdict.notes)
    assert not _judge(repo, "rsync -a --delete src/ build/").blocked  # nothing protected there


def test_no_git_fails_closed_only_where_protected(repo: Path) -> None:
    (repo / ".git").rename(repo / "not-git")
    verdict = _judge(repo, "git reset --hard HEAD~1")
    assert verdict.blocked
    assert verdict.message.startswith("guardian: blocked: cannot tell what git reset --hard HEAD~1 would touch (")
    # A rewind can delete, and the rule blocks deletes: not knowing which files does not weaken it.
    assert verdict.message.endswith(f"and {RUN} is protected: WO pipeline; {BLOCK}")


def test_no_protect_rules_fail_open(repo: Path) -> None:
    (repo / "guardian.yaml").write_text("version: 1\n")
    assert not _judge(repo, "ls | xargs rm -rf").blocked
    assert not _judge(repo, "eval \"$CMD\"").blocked


def test_write_and_edit_tools(repo: Path) -> None:
    project = Project.find(repo)
    verdict = judge_file_write(project.root, project.policy, "Edit", str(repo / RUN), repo)
    assert verdict.message == _blocked("Edit", "overwrite", advice=FORCE)
    new = judge_file_write(project.root, project.policy, "Write", str(repo / "agents/wo_executor/new.py"), repo)
    assert new.exit_code == 0
    plain = judge_file_write(project.root, project.policy, "Write", str(repo / "src/app.py"), repo)
    assert plain.action == "allow" and plain.snapshot_paths == ("src/app.py",)


def test_brace_expansion() -> None:
    assert brace_expand("a/{x,y}/z") == ["a/x/z", "a/y/z"]
    assert brace_expand("{a,b{c,d}}") == ["a", "bc", "bd"]
    assert brace_expand("stash@{0}") == ["stash@{0}"]


# --------------------------------------------------------------------------- the hook end to end


def _payload(command: str | None = None, cwd: Path | None = None, tool: str = "Bash", **tool_input: str) -> str:
    if command is not None:
        tool_input["command"] = command
    return json.dumps({
        "session_id": "sess-1",
        "transcript_path": "/nonexistent/transcript.jsonl",
        "cwd": str(cwd) if cwd else "",
        "permission_mode": "default",
        "hook_event_name": "PreToolUse",
        "tool_name": tool,
        "tool_input": tool_input,
        "tool_use_id": "toolu_1",
    })


def _events(root: Path) -> EventLog:
    return EventLog(ProjectPaths.for_root(root.resolve()).events)


def test_hook_blocks_reset_in_a_real_process(guarded: Path) -> None:
    before = len(list(_events(guarded).read()))
    proc = guardian_subprocess("agent-hook", cwd=guarded, input=_payload("git reset --hard HEAD~1", guarded))
    assert proc.returncode == 2
    assert proc.stderr == _blocked("git reset --hard HEAD~1", "delete", more=1) + "\n"
    assert proc.stdout == ""
    new = list(_events(guarded).read())[before:]
    assert [e.event for e in new] == ["agent", "block"]
    assert new[0].details["decision"] == "block"
    assert new[0].details["command"] == "git reset --hard HEAD~1"
    assert new[0].details["session_id"] == "sess-1"
    assert RUN in new[1].paths
    assert (guarded / RUN).exists()


def test_hook_snapshots_before_allowing(guarded: Path) -> None:
    _write(guarded, "scratch/notes.txt", "precious notes\n")
    proc = guardian_subprocess("agent-hook", cwd=guarded, input=_payload("rm -rf scratch", guarded))
    assert (proc.returncode, proc.stderr) == (0, "")
    events = list(_events(guarded).read())
    snap = [e for e in events if e.event == "snapshot" and e.trigger == "agent"]
    assert snap and "scratch/notes.txt" in snap[-1].paths
    agent_event = [e for e in events if e.event == "agent"][-1]
    assert agent_event.snapshot == snap[-1].snapshot
    assert agent_event.details["decision"] == "allow"
    # The snapshot is what makes the allowed deletion undoable.
    subprocess.run(["rm", "-rf", str(guarded / "scratch")], check=True)
    restored = run_cli("restore", "scratch/notes.txt", cwd=guarded)
    assert restored.exit_code == 0, restored.stderr
    assert (guarded / "scratch/notes.txt").read_text() == "precious notes\n"


def test_hook_reset_hard_on_unprotected_changes_snapshots_them(guarded: Path) -> None:
    _modify_unprotected(guarded)
    result = run_hook(_payload("git reset --hard", guarded), {}, guarded)
    assert result == HookResult(0, "")
    snap = [e for e in _events(guarded).read() if e.event == "snapshot" and e.trigger == "agent"]
    assert snap and "src/app.py" in snap[-1].paths
    git("reset", "-q", "--hard", cwd=guarded)
    assert run_cli("restore", "src/app.py", cwd=guarded).exit_code == 0
    assert (guarded / "src/app.py").read_text() == "app = 2\n"


def test_benign_hook_is_fast_path_without_pygit2(guarded: Path) -> None:
    before = len(list(_events(guarded).read()))
    code = (
        "import sys\n"
        "from guardian.cli import main\n"
        "rc = main(['agent-hook'])\n"
        "print('pygit2' in sys.modules, file=sys.stderr)\n"
        "sys.exit(rc)\n"
    )
    for command in ("ls -la", "git status", "cat agents/wo_executor/run.py | grep run"):
        proc = subprocess.run(
            [sys.executable, "-c", code], cwd=guarded, input=_payload(command, guarded), capture_output=True,
            text=True, timeout=60, check=False,
        )
        assert (proc.returncode, proc.stderr) == (0, "False\n"), command
    assert len(list(_events(guarded).read())) == before


def test_hook_outside_a_project_is_silent(tmp_path: Path) -> None:
    proc = guardian_subprocess("agent-hook", cwd=tmp_path, input=_payload("rm -rf /tmp/whatever", tmp_path))
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


def test_hook_ignores_other_tools(guarded: Path) -> None:
    result = run_hook(_payload(None, guarded, tool="Read", file_path=str(guarded / RUN)), {}, guarded)
    assert result == HookResult(0, "")


def test_malformed_input_fails_open_and_is_recorded(guarded: Path) -> None:
    proc = guardian_subprocess("agent-hook", cwd=guarded, input="{not json")
    assert proc.returncode == 0
    assert proc.stderr.startswith("guardian: warning: ignoring a malformed hook input: not JSON")
    errors = [e for e in _events(guarded).read() if e.event == "error"]
    assert errors and "malformed hook input" in errors[-1].details["error"]


def test_guardian_force_in_the_environment(guarded: Path) -> None:
    proc = guardian_subprocess(
        "agent-hook", cwd=guarded, env={"GUARDIAN_FORCE": "1"},
        input=_payload("truncate -s 0 agents/wo_executor/run.py", guarded),
    )
    assert (proc.returncode, proc.stderr) == (0, "")
    events = list(_events(guarded).read())
    force = [e for e in events if e.event == "force"]
    assert force and force[-1].paths == [RUN] and force[-1].details["decision"] == "force"
    assert [e for e in events if e.event == "agent"][-1].details["decision"] == "force"
    blocked = guardian_subprocess("agent-hook", cwd=guarded, env={"GUARDIAN_FORCE": "1"},
                                  input=_payload("rm -rf agents", guarded))
    assert blocked.returncode == 2  # delete: block is not overridable


def test_hook_write_and_edit(guarded: Path) -> None:
    edit = run_hook(_payload(None, guarded, tool="Edit", file_path=str(guarded / RUN), old_string="a",
                             new_string="b"), {}, guarded)
    assert edit.exit_code == 2
    assert edit.stderr == _blocked("Edit", "overwrite", advice=FORCE) + "\n"
    new = run_hook(_payload(None, guarded, tool="Write", file_path=str(guarded / "src/new.py"), content="x"),
                   {}, guarded)
    assert new == HookResult(0, "")
    _modify_unprotected(guarded)
    plain = run_hook(_payload(None, guarded, tool="MultiEdit", file_path=str(guarded / "src/app.py")), {}, guarded)
    assert plain == HookResult(0, "")
    last = [e for e in _events(guarded).read() if e.event == "agent"][-1]
    assert last.details["tool"] == "MultiEdit" and last.snapshot is not None


def test_unreadable_policy_fails_closed_for_destructive_commands(guarded: Path) -> None:
    (guarded / "guardian.yaml").write_text("version: 1\nprotcet: []\n")
    bad = run_hook(_payload("rm -rf agents", guarded), {}, guarded)
    assert bad.exit_code == 2
    assert bad.stderr.startswith("guardian: blocked: cannot read the guardian policy (")
    assert run_hook(_payload("ls", guarded), {}, guarded) == HookResult(0, "")
    assert run_hook(_payload("rm -rf agents", guarded), {"GUARDIAN_FORCE": "1"}, guarded).exit_code == 0


def test_parse_hook_input() -> None:
    request = parse_hook_input(_payload("ls", Path("/somewhere")), Path("/fallback"))
    assert (request.tool_name, request.command, request.cwd, request.session_id) == (
        "Bash", "ls", Path("/somewhere"), "sess-1")
    assert parse_hook_input(_payload("ls"), Path("/fallback")).cwd == Path("/fallback")
    with pytest.raises(BadHookInput, match=r"without a 'tool_input\.command'"):
        parse_hook_input(json.dumps({"tool_name": "Bash", "tool_input": {}}), Path("/"))
    with pytest.raises(BadHookInput, match="expected a JSON object"):
        parse_hook_input("[]", Path("/"))


# --------------------------------------------------------------------------- settings.json


def _settings(root: Path) -> Path:
    return root / ".claude" / "settings.json"


def _ours() -> dict[str, object]:
    return {"matcher": HOOK_MATCHER, "hooks": [{"type": "command", "command": hook_command()}]}


def test_install_project_creates_settings(repo: Path) -> None:
    out = run_cli("agent", "install", "claude", cwd=repo / "src")
    assert out.exit_code == 0, out.stderr
    path = _settings(repo)
    assert out.stdout.splitlines()[0] == f"installed the hook in {path}"
    assert json.loads(path.read_text()) == {"hooks": {"PreToolUse": [_ours()]}}
    script = Path(sys.executable).parent / "guardian-agent-hook"
    expected = str(script) if script.is_file() else f"{sys.executable} -P -m guardian agent-hook"
    assert hook_command() == expected or " " in sys.executable


def test_install_writes_the_console_script_when_it_is_next_to_the_interpreter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))
    assert hook_command() == f"{bin_dir}/python -P -m guardian agent-hook"
    (bin_dir / "guardian-agent-hook").write_text("#!/bin/sh\n")
    assert hook_command() == f"{bin_dir}/guardian-agent-hook"
    # An entry of either form is ours: installing the script's form replaces the -m form, uninstall removes it.
    path = tmp_path / "settings.json"
    install_claude_hook(path, f"{bin_dir}/python -m guardian agent-hook")
    assert install_claude_hook(path).action == "updated"
    assert json.loads(path.read_text()) == {"hooks": {"PreToolUse": [_ours()]}}
    assert uninstall_claude_hook(path).action == "removed"
    assert json.loads(path.read_text()) == {}


def test_the_console_script_answers_like_python_m(guarded: Path) -> None:
    script = Path(sys.executable).parent / "guardian-agent-hook"
    if not script.is_file():
        pytest.skip("guardian-agent-hook is not installed next to this interpreter (run scripts/setup)")
    for command, code in (("ls -la", 0), ("git reset --hard HEAD~1", 2)):
        payload = _payload(command, guarded)
        proc = subprocess.run([str(script)], cwd=guarded, input=payload, capture_output=True, text=True,
                              check=False, timeout=60)
        expected = guardian_subprocess("agent-hook", cwd=guarded, input=payload)
        assert (proc.returncode, proc.stderr, proc.stdout) == (code, expected.stderr, "")
        assert expected.returncode == code


def test_install_keeps_other_settings_and_is_idempotent(repo: Path) -> None:
    path = _settings(repo)
    path.parent.mkdir()
    mine = {"matcher": "Bash", "hooks": [{"type": "command", "command": "my-linter"}]}
    path.write_text(json.dumps({
        "permissions": {"allow": ["Bash(ls:*)"]},
        "env": {"A": "1"},
        "hooks": {"PreToolUse": [mine], "PostToolUse": [{"matcher": "Write", "hooks": []}]},
    }))
    os.chmod(path, 0o600)
    assert run_cli("agent", "install", "claude", "--project", cwd=repo).exit_code == 0
    first = path.read_bytes()
    data = json.loads(first)
    assert data["permissions"] == {"allow": ["Bash(ls:*)"]} and data["env"] == {"A": "1"}
    assert data["hooks"]["PreToolUse"] == [mine, _ours()]
    assert data["hooks"]["PostToolUse"] == [{"matcher": "Write", "hooks": []}]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = run_cli("agent", "install", "claude", cwd=repo)
    assert again.stdout.splitlines()[0] == f"the hook is already installed in {path}"
    assert path.read_bytes() == first


def test_install_replaces_an_old_guardian_entry(repo: Path) -> None:
    path = _settings(repo)
    path.parent.mkdir()
    old = {"matcher": "Bash", "hooks": [{"type": "command", "command": "/old/venv/bin/python -m guardian agent-hook"},
                                        {"type": "command", "command": "keep-me"}]}
    path.write_text(json.dumps({"hooks": {"PreToolUse": [old]}}))
    out = run_cli("agent", "install", "claude", cwd=repo)
    assert out.stdout.startswith("updated the hook in")
    entries = json.loads(path.read_text())["hooks"]["PreToolUse"]
    assert entries == [{"matcher": "Bash", "hooks": [{"type": "command", "command": "keep-me"}]}, _ours()]


def test_install_user_scope(repo: Path, isolated_home: Path) -> None:
    out = run_cli("agent", "install", "claude", "--user", cwd=repo)
    assert out.exit_code == 0, out.stderr
    path = isolated_home / ".claude" / "settings.json"
    assert json.loads(path.read_text()) == {"hooks": {"PreToolUse": [_ours()]}}
    assert not _settings(repo).exists()


def test_install_refuses_malformed_settings(repo: Path) -> None:
    path = _settings(repo)
    path.parent.mkdir()
    broken = '{\n  "permissions": {},\n  "hooks": {,\n}\n'
    path.write_text(broken)
    out = run_cli("agent", "install", "claude", cwd=repo)
    assert out.exit_code == 2
    assert out.stderr == (
        f"guardian: error: {path}:3:13: not valid JSON (Expecting property name enclosed in double quotes); "
        "fix the file and rerun, guardian left it unchanged\n"
    )
    assert path.read_text() == broken
    path.write_text('{"hooks": []}')
    wrong = run_cli("agent", "install", "claude", cwd=repo)
    assert wrong.exit_code == 2 and "'hooks' must be an object" in wrong.stderr


def test_install_needs_a_project(tmp_path: Path) -> None:
    out = run_cli("agent", "install", "claude", cwd=tmp_path)
    assert out.exit_code == 2
    assert "no guardian.yaml found" in out.stderr


def test_uninstall_removes_only_ours(repo: Path) -> None:
    path = _settings(repo)
    path.parent.mkdir()
    mine = {"matcher": "Bash", "hooks": [{"type": "command", "command": "my-linter"}]}
    path.write_text(json.dumps({"model": "x", "hooks": {"PreToolUse": [mine]}}))
    assert run_cli("agent", "install", "claude", cwd=repo).exit_code == 0
    out = run_cli("agent", "uninstall", "claude", cwd=repo)
    assert out.stdout == f"removed the hook from {path}\n"
    assert json.loads(path.read_text()) == {"model": "x", "hooks": {"PreToolUse": [mine]}}
    assert run_cli("agent", "uninstall", "claude", cwd=repo).stdout == f"no guardian hook in {path}\n"
    path.write_text(json.dumps({"model": "x"}))
    run_cli("agent", "install", "claude", cwd=repo)
    run_cli("agent", "uninstall", "claude", cwd=repo)
    assert json.loads(path.read_text()) == {"model": "x"}


def test_agent_check_command(repo: Path) -> None:
    out = run_cli("agent", "check", "git reset --hard HEAD~1", cwd=repo)
    assert out.exit_code == 4
    assert out.stdout == _blocked("git reset --hard HEAD~1", "delete", more=1) + "\n"
    assert run_cli("agent", "check", "ls", cwd=repo).stdout == "allow: nothing destructive\n"
    as_json = json.loads(run_cli("agent", "check", "--json", "rm -rf build", cwd=repo).stdout)
    assert as_json["action"] == "allow"


def test_gate_bug_fails_closed_only_with_protect_rules(guarded: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object, **_kwargs: object) -> Verdict:
        raise RuntimeError("boom")

    monkeypatch.setattr(judge, "judge_intents", broken)
    result = run_hook(_payload("rm -rf build", guarded), {}, guarded)
    assert result == HookResult(
        2, f"guardian: blocked: internal error while checking this command (RuntimeError: boom); {FORCE}\n"
    )
    errors = [e for e in _events(guarded).read() if e.event == "error"]
    assert errors[-1].details["error"] == "RuntimeError: boom"
    assert run_hook(_payload("ls", guarded), {}, guarded).exit_code == 0  # benign never reaches the judge
    (guarded / "guardian.yaml").write_text("version: 1\n")
    assert run_cli("policy", "accept", cwd=guarded).exit_code == 0  # without protect rules, a bug fails open
    assert run_hook(_payload("rm -rf build", guarded), {}, guarded).exit_code == 0


def test_other_hook_events_are_ignored(guarded: Path) -> None:
    payload = json.loads(_payload("rm -rf agents", guarded))
    payload["hook_event_name"] = "PostToolUse"
    assert run_hook(json.dumps(payload), {}, guarded) == HookResult(0, "")


def test_without_a_store_blocks_still_say_one_line(repo: Path) -> None:
    # guardian.yaml but no `guardian init`: the gate still judges; it just cannot snapshot or log.
    blocked = run_hook(_payload("rm -rf agents", repo), {}, repo)
    assert blocked == HookResult(2, _blocked("rm -rf agents", "delete", more=1) + "\n")
    _write(repo, "scratch/x.txt", "x\n")
    allowed = run_hook(_payload("rm -rf scratch", repo), {}, repo)
    assert allowed.exit_code == 0
    assert allowed.stderr.startswith("guardian: warning: no snapshot before this command: no store for")


# --------------------------------------------------------------------------- modify: edits vs rollbacks

EDIT_POLICY = POLICY.replace("    rollback: force\n", "    rollback: force\n    modify: allow\n")
FROZEN_POLICY = POLICY.replace("    rollback: force\n", "    rollback: allow\n    modify: block\n")
EDITS = [
    "sed -i 's/run/walk/' agents/wo_executor/run.py",
    "perl -pi -e 's/run/walk/' agents/wo_executor/run.py",
    "echo x > agents/wo_executor/run.py",
    "tee agents/wo_executor/run.py < /dev/null",
    "dd if=/dev/zero of=agents/wo_executor/run.py count=0",
    "truncate -s 0 agents/wo_executor/run.py",
    "cp README.md agents/wo_executor/run.py",
    "ln -sf /etc/hostname agents/wo_executor/run.py",
]


def _use_policy(root: Path, text: str) -> None:
    """Commit a new policy, so that git rewinds judge only the protected files, not guardian.yaml too."""
    assert text != POLICY
    _write(root, "guardian.yaml", text)
    git("commit", "-q", "-am", "policy", cwd=root)
    if run_cli("status", cwd=root).exit_code == 0:
        # A guarded project keeps its accepted policy until the person accepts the laxer one.
        assert run_cli("policy", "accept", cwd=root).exit_code == 0


@pytest.mark.parametrize("command", EDITS)
def test_modify_allow_lets_edits_through(repo: Path, command: str) -> None:
    _use_policy(repo, EDIT_POLICY)
    verdict = _judge(repo, command)
    assert (verdict.action, verdict.message, verdict.snapshot_paths) == ("allow", "", (RUN,))
    assert [(p["path"], p["operation"], p["outcome"]) for p in verdict.to_json()["protected"]] == [
        (RUN, "modify", "allow")
    ]


@pytest.mark.parametrize("tool", ["Write", "Edit", "MultiEdit"])
def test_modify_allow_lets_the_file_tools_through(repo: Path, tool: str) -> None:
    _use_policy(repo, EDIT_POLICY)
    project = Project.find(repo)
    verdict = judge_file_write(project.root, project.policy, tool, str(repo / RUN), repo)
    assert (verdict.action, verdict.snapshot_paths) == ("allow", (RUN,))
    # The policy file keeps its built-in protection: an agent still cannot edit the rules that bind it.
    own = judge_file_write(project.root, project.policy, tool, str(repo / "guardian.yaml"), repo)
    assert own.message == (f"guardian: blocked: {tool} would overwrite guardian.yaml "
                           f"(protected: the guardian policy file); {FORCE}")


@pytest.mark.parametrize(
    ("command", "setup", "verb"),
    [
        ("git checkout -- agents/wo_executor/run.py", "modified", "revert"),
        ("git restore agents/wo_executor/run.py", "modified", "revert"),
        ("git reset --hard", "modified", "revert"),
        ("git stash drop", "stash", "discard stashed changes to"),
        ("git rebase side", "side", "rewrite"),
    ],
)
def test_modify_allow_leaves_rollbacks_needing_force(repo: Path, command: str, setup: str, verb: str) -> None:
    _use_policy(repo, EDIT_POLICY)
    SETUPS[setup](repo)
    verdict = _judge(repo, command)
    assert verdict.message == _blocked(command, verb, advice=FORCE)
    assert {p["operation"] for p in verdict.to_json()["protected"]} == {"rollback"}
    assert _judge(repo, command, force=True).action == "forced"


def test_modify_allow_leaves_rsync_a_rollback(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _use_policy(repo, EDIT_POLICY)
    _write(repo, "incoming/run.py", "print('other version')\n")
    command = "rsync -a incoming/ agents/wo_executor/"
    assert _judge(repo, command).message == _blocked(command, "overwrite", advice=FORCE)
    monkeypatch.setattr(resolve, "RSYNC_BIN", "guardian-test-no-such-rsync")  # the assume-the-worst fallback
    assert _judge(repo, command).message == _blocked(command, "overwrite", more=1, advice=FORCE)


def test_modify_block_blocks_edits_even_with_force(repo: Path) -> None:
    _use_policy(repo, FROZEN_POLICY)
    project = Project.find(repo)
    edit = judge_file_write(project.root, project.policy, "Edit", str(repo / RUN), repo, force=True)
    assert edit.message == _blocked("Edit", "overwrite", advice=BLOCK)
    sed = _judge(repo, "sed -i 's/run/walk/' agents/wo_executor/run.py", force=True)
    assert sed.message == _blocked("sed -i s/run/walk/ agents/wo_executor/run.py", "overwrite", advice=BLOCK)
    _modify_protected(repo)
    assert _judge(repo, "git checkout -- agents/wo_executor/run.py").action == "allow"  # rollback: allow


def test_default_policy_judges_edits_as_modify_with_the_rollback_action(repo: Path) -> None:
    # POLICY sets no 'modify': an edit is judged as 'modify' but gets rollback's force, as before.
    verdict = _judge(repo, "sed -i 's/run/walk/' agents/wo_executor/run.py")
    assert verdict.message == _blocked("sed -i s/run/walk/ agents/wo_executor/run.py", "overwrite", advice=FORCE)
    assert [(p["operation"], p["outcome"]) for p in verdict.to_json()["protected"]] == [("modify", "force")]


def test_hook_lets_an_edit_through_with_modify_allow(guarded: Path) -> None:
    _use_policy(guarded, EDIT_POLICY)
    _modify_protected(guarded)  # an earlier edit, not yet snapshotted: the hook captures it first
    edit = run_hook(_payload(None, guarded, tool="Edit", file_path=str(guarded / RUN), old_string="run",
                             new_string="walk"), {}, guarded)
    assert edit == HookResult(0, "")
    last = [e for e in _events(guarded).read() if e.event == "agent"][-1]
    assert last.details["decision"] == "allow" and last.snapshot is not None
    assert last.details["protected"][0]["operation"] == "modify"
    # Discarding that edit is a rollback of the file, and the rule still wants force for it.
    reset = run_hook(_payload("git checkout -- .", guarded), {}, guarded)
    assert reset == HookResult(2, _blocked("git checkout -- .", "revert", advice=FORCE) + "\n")


def test_agent_check_shows_the_modify_decision(repo: Path) -> None:
    _use_policy(repo, EDIT_POLICY)
    sed = run_cli("agent", "check", "sed -i 's/run/walk/' agents/wo_executor/run.py", cwd=repo)
    assert (sed.exit_code, sed.stdout) == (0, "allow: the hook would snapshot 1 path(s) first\n")
    as_json = json.loads(run_cli("agent", "check", "--json", "echo x > agents/wo_executor/run.py", cwd=repo).stdout)
    assert as_json["action"] == "allow"
    assert as_json["protected"] == [{"path": RUN, "operation": "modify", "change": "modify", "outcome": "allow",
                                     "reason": "WO pipeline", "forced": False}]
    _modify_protected(repo)
    checkout = run_cli("agent", "check", "git checkout -- agents/wo_executor/run.py", cwd=repo)
    assert checkout.exit_code == 4
    assert checkout.stdout == _blocked("git checkout -- agents/wo_executor/run.py", "revert", advice=FORCE) + "\n"
