"""guardian.util.git against real git repositories whose own config tries to change git's output.

Each safety setting is checked by configuring a repository the other way and
showing that stock git's output changes while run_git's does not.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from guardian.util.git import (
    GitError,
    GitMissing,
    GitTimeout,
    NameStatus,
    git_ok,
    parse_name_status,
    run_git,
    split_z,
)
from tests.conftest import git

NON_UTF8 = os.fsdecode(b"bad\xff.txt")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with one commit."""
    root = tmp_path / "repo"
    root.mkdir()
    git("init", "-q", cwd=root)
    (root / "base.txt").write_text("base\n")
    git("add", "-A", cwd=root)
    git("commit", "-qm", "base", cwd=root)
    return root


def _commit_all(root: Path, message: str) -> None:
    git("add", "-A", cwd=root)
    git("commit", "-qm", message, cwd=root)


# --------------------------------------------------------------------------- safety settings


def test_quotepath_from_the_repo_config_does_not_quote_names(repo: Path) -> None:
    (repo / "café.txt").write_text("x\n")
    _commit_all(repo, "accent")
    git("config", "core.quotepath", "true", cwd=repo)
    assert '"caf\\303\\251.txt"' in git("ls-files", cwd=repo).stdout.splitlines()
    assert run_git(["ls-files"], cwd=repo).text.splitlines() == ["base.txt", "café.txt"]


def test_pathspecs_are_literal_unless_asked(repo: Path) -> None:
    (repo / "*.py").write_text("star\n")
    (repo / "a.py").write_text("a\n")
    _commit_all(repo, "globs")
    assert run_git(["ls-files", "--", "*.py"], cwd=repo).text.splitlines() == ["*.py"]
    globbed = run_git(["ls-files", "--", "*.py"], cwd=repo, literal_pathspecs=False).text.splitlines()
    assert globbed == ["*.py", "a.py"]


def test_color_and_relative_diff_from_the_repo_config_are_overridden(repo: Path) -> None:
    (repo / "sub").mkdir()
    (repo / "sub" / "s.txt").write_text("one\n")
    _commit_all(repo, "sub")
    (repo / "sub" / "s.txt").write_text("two\n")
    git("config", "color.ui", "always", cwd=repo)
    git("config", "diff.relative", "true", cwd=repo)
    sub = repo / "sub"
    assert "\x1b[" in git("diff", "--stat", cwd=sub).stdout
    assert git("diff", "--name-only", cwd=sub).stdout == "s.txt\n"
    assert b"\x1b" not in run_git(["diff", "--stat"], cwd=sub).stdout
    assert run_git(["diff", "--name-only"], cwd=sub).stdout == b"sub/s.txt\n"


def _git_env_seen(repo: Path, **kwargs: object) -> dict[str, str]:
    git("config", "alias.showenv", "!env", cwd=repo)
    lines = run_git(["showenv"], cwd=repo, **kwargs).text.splitlines()  # type: ignore[arg-type]
    return dict(line.split("=", 1) for line in lines if "=" in line)


def test_git_runs_with_the_safe_environment(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LC_ALL", "de_DE.UTF-8")
    monkeypatch.setenv("GIT_TERMINAL_PROMPT", "1")
    seen = _git_env_seen(repo)
    assert (seen["GIT_OPTIONAL_LOCKS"], seen["GIT_TERMINAL_PROMPT"], seen["LC_ALL"]) == ("0", "0", "C")
    interactive = _git_env_seen(repo, interactive=True, env={"EXTRA_FOR_TEST": "yes"})
    assert "GIT_TERMINAL_PROMPT" not in interactive  # a person running `guardian push` may be asked
    assert interactive["EXTRA_FOR_TEST"] == "yes"
    assert interactive["GIT_OPTIONAL_LOCKS"] == "0"


def test_input_reaches_git(repo: Path) -> None:
    blob = run_git(["hash-object", "-w", "--stdin"], cwd=repo, input=b"hello\n").text
    assert blob == hashlib.sha1(b"blob 6\0hello\n").hexdigest()
    assert run_git(["cat-file", "blob", blob], cwd=repo).stdout == b"hello\n"


def test_git_dir_reaches_a_repository_from_anywhere(repo: Path, tmp_path: Path) -> None:
    result = run_git(["log", "--format=%s"], cwd=tmp_path, git_dir=repo / ".git")
    assert result.ok and result.text == "base"


# --------------------------------------------------------------------------- failures


def test_git_error_carries_the_last_error_line(repo: Path) -> None:
    with pytest.raises(GitError) as info:
        run_git(["rev-parse", "--verify", "no-such-branch"], cwd=repo)
    assert str(info.value) == "fatal: Needed a single revision"
    assert info.value.returncode == 128
    assert info.value.stderr == "fatal: Needed a single revision\n"

    with pytest.raises(GitError) as info:
        run_git(["fetch", str(repo.parent / "no-such-repo")], cwd=repo)
    # Several lines and a blank one: the last non-blank line is the message.
    assert str(info.value) == "and the repository exists."
    assert "does not appear to be a git repository" in info.value.stderr


def test_failure_without_stderr_names_the_status(repo: Path) -> None:
    (repo / "base.txt").write_text("changed\n")
    with pytest.raises(GitError) as info:
        run_git(["diff", "--quiet"], cwd=repo)
    assert str(info.value) == "git exited with status 1"
    assert info.value.returncode == 1


def test_unchecked_failure_is_returned(tmp_path: Path) -> None:
    result = run_git(["status"], cwd=tmp_path, check=False)
    assert not result.ok and result.returncode == 128
    assert result.error_text == "fatal: not a git repository (or any of the parent directories): .git\n"
    assert git_ok(["status"], cwd=tmp_path) is False


def test_a_hung_git_times_out(repo: Path) -> None:
    git("config", "alias.hang", "!sleep 3", cwd=repo)
    started = time.monotonic()
    with pytest.raises(GitTimeout) as info:
        run_git(["hang"], cwd=repo, timeout=0.3)
    assert time.monotonic() - started < 2.5
    assert str(info.value) == "'git hang' gave no answer within 0.3s"
    assert isinstance(info.value, GitError)
    assert git_ok(["hang"], cwd=repo, timeout=0.3) is False


def test_git_missing_from_path(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    assert git_ok(["status"], cwd=repo) is True
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(GitMissing) as info:
        run_git(["status"], cwd=repo)
    assert str(info.value) == "the git command is not installed or not on PATH"
    assert info.value.returncode is None
    assert git_ok(["status"], cwd=repo) is False


def test_a_cwd_that_is_a_file_is_reported(repo: Path) -> None:
    with pytest.raises(GitError) as info:
        run_git(["status"], cwd=repo / "base.txt")
    assert str(info.value) == "cannot run 'git status': Not a directory"
    assert not isinstance(info.value, GitMissing)


def test_a_missing_cwd_is_not_reported_as_a_missing_git(tmp_path: Path) -> None:
    with pytest.raises(GitError) as info:
        run_git(["status"], cwd=tmp_path / "gone")
    assert not isinstance(info.value, GitMissing)
    assert str(info.value) == f"cannot run git in {tmp_path / 'gone'}: no such directory"


# --------------------------------------------------------------------------- -z output


@pytest.fixture
def odd_history(repo: Path) -> Path:
    """Two commits: a rename to a name with a newline, a copy, a tab name deleted, a non-UTF-8 name added."""
    (repo / "orig.txt").write_text("".join(f"line {i}\n" for i in range(50)))
    (repo / "keep.txt").write_text("".join(f"keep {i}\n" for i in range(50)))
    (repo / "tab\tname.txt").write_text("t\n")
    _commit_all(repo, "one")
    (repo / "orig.txt").rename(repo / "new\nline.txt")
    (repo / "copy.txt").write_bytes((repo / "keep.txt").read_bytes())
    (repo / "tab\tname.txt").unlink()
    (repo / NON_UTF8).write_text("z\n")
    with (repo / "keep.txt").open("a") as handle:
        handle.write("more\n")
    _commit_all(repo, "two")
    return repo


def test_parse_name_status_with_renames_copies_and_odd_names(odd_history: Path) -> None:
    out = run_git(
        ["diff", "--name-status", "-z", "-M", "-C", "--find-copies-harder", "HEAD~1", "HEAD"], cwd=odd_history
    ).stdout
    assert b"R100\0orig.txt\0new\nline.txt\0" in out  # what git really printed
    assert parse_name_status(out) == [
        NameStatus("A", NON_UTF8),
        NameStatus("C", "copy.txt", "keep.txt"),
        NameStatus("M", "keep.txt"),
        NameStatus("R", "new\nline.txt", "orig.txt"),
        NameStatus("D", "tab\tname.txt"),
    ]


def test_parse_name_status_without_renames(odd_history: Path) -> None:
    out = run_git(["diff", "--name-status", "-z", "--no-renames", "HEAD~1", "HEAD"], cwd=odd_history).stdout
    assert parse_name_status(out) == [
        NameStatus("A", NON_UTF8),
        NameStatus("A", "copy.txt"),
        NameStatus("M", "keep.txt"),
        NameStatus("A", "new\nline.txt"),
        NameStatus("D", "orig.txt"),
        NameStatus("D", "tab\tname.txt"),
    ]


def test_parse_name_status_skips_log_format_lines(odd_history: Path) -> None:
    out = run_git(["log", "--format=%H", "--name-status", "-z", "--no-renames"], cwd=odd_history).stdout
    records = parse_name_status(out)
    assert [r.status for r in records] == ["A", "A", "M", "A", "D", "D", "A", "A", "A", "A"]
    assert records[-4:] == [
        NameStatus("A", "keep.txt"),
        NameStatus("A", "orig.txt"),
        NameStatus("A", "tab\tname.txt"),
        NameStatus("A", "base.txt"),
    ]


def test_parse_name_status_of_names_that_look_like_statuses() -> None:
    assert parse_name_status(b"M\0D\0A\0M\0R087\0A\0C\0T\0x\0") == [
        NameStatus("M", "D"),
        NameStatus("A", "M"),
        NameStatus("R", "C", "A"),
        NameStatus("T", "x"),
    ]
    assert parse_name_status(b"") == []
    assert parse_name_status(b"\n\0junk\0M") == []  # a status without its path is dropped


def test_split_z(odd_history: Path) -> None:
    out = run_git(["ls-files", "-z"], cwd=odd_history).stdout
    names = split_z(out)
    assert sorted(names) == sorted(["base.txt", "copy.txt", "keep.txt", "new\nline.txt", NON_UTF8])
    assert os.fsencode(NON_UTF8) == b"bad\xff.txt"
    assert split_z(b"") == []
    assert split_z(b"a\0\0b") == ["a", "b"]
