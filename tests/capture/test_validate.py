"""guardian.validate: per-file verdicts, the shrink heuristic and consistent SQLite copies."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from guardian.capture.sqlite import is_sqlite_bytes, sqlite_consistent_copy
from guardian.capture.validate import (
    MAX_PARSE_BYTES,
    FileVerdict,
    checks_for,
    is_in_progress,
    judge,
)
from guardian.config import CheckSpec, SuspectSettings, ValidateRule
from guardian.errors import OperationFailed

DEFAULTS = SuspectSettings()
needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")


def run(rel_path: str, data: bytes, *names: str, last: int | None = None) -> FileVerdict:
    specs = [CheckSpec(name=n) for n in names] if names else list(checks_for(rel_path, ()))
    return judge(rel_path, data, specs, last_valid_size=last, suspect=DEFAULTS)


def command(*argv: str, timeout: float = 10.0) -> CheckSpec:
    return CheckSpec(name="command", command=tuple(argv), timeout=timeout)


def make_db(path: Path, rows: int = 3) -> Path:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        db.executemany("INSERT INTO t (v) VALUES (?)", [(f"row{i}",) for i in range(rows)])
    db.close()
    return path


def rows_in(image: bytes, tmp_path: Path) -> list[str]:
    copy = tmp_path / "inspect" / "image.db"
    copy.parent.mkdir(exist_ok=True)
    copy.write_bytes(image)
    with sqlite3.connect(f"{copy.as_uri()}?mode=ro&immutable=1", uri=True) as db:
        assert db.execute("PRAGMA quick_check").fetchall() == [("ok",)]
        values = [str(r[0]) for r in db.execute("SELECT v FROM t ORDER BY id")]
    db.close()
    return values


# --------------------------------------------------------------------------- checks_for


def names(specs: tuple[CheckSpec, ...]) -> list[str]:
    return [s.name for s in specs]


@pytest.mark.parametrize(
    ("rel_path", "expected"),
    [
        ("a.py", ["python"]),
        ("pkg/stubs.pyi", ["python"]),
        ("data.JSON", ["json"]),
        ("ci.yml", ["yaml"]),
        ("conf/app.yaml", ["yaml"]),
        ("pyproject.toml", ["toml"]),
        ("db/app.sqlite", ["sqlite"]),
        ("x.sqlite3", ["sqlite"]),
        ("x.db", ["sqlite"]),
        ("run.sh", ["shell"]),
        ("lib.bash", ["shell"]),
        ("prompt.zsh", ["shell"]),
        ("README.md", []),
        ("Makefile", []),
        (".bashrc", []),
    ],
)
def test_builtin_checks_by_extension(rel_path: str, expected: list[str]) -> None:
    assert names(checks_for(rel_path, ())) == expected


def test_user_rules_match_gitignore_style_and_dedupe_in_order() -> None:
    custom = command("shellcheck", "{path}")
    rules = (
        ValidateRule(paths=("scripts/",), checks=(CheckSpec("shell"), CheckSpec("not-empty"))),
        ValidateRule(paths=("*.sh", "!legacy.sh"), checks=(custom, CheckSpec("shell"))),
        ValidateRule(paths=("docs/**/*.md",), checks=(CheckSpec("no-conflict-markers"),)),
    )
    assert checks_for("scripts/deploy.sh", rules) == (CheckSpec("shell"), CheckSpec("not-empty"), custom)
    assert checks_for("scripts/sub/tool", rules) == (CheckSpec("shell"), CheckSpec("not-empty"))
    assert checks_for("legacy.sh", rules) == (CheckSpec("shell"),)  # negated, built-in still applies
    assert checks_for("./other.sh", rules) == (CheckSpec("shell"), custom)
    assert names(checks_for("docs/a/b/guide.md", rules)) == ["no-conflict-markers"]
    assert checks_for("src/main.c", rules) == ()


def test_different_commands_are_not_merged() -> None:
    first, second = command("lint", "{path}"), command("lint", "--strict", "{path}")
    rules = (ValidateRule(paths=("*.cfg",), checks=(first, second, first)),)
    assert checks_for("a.cfg", rules) == (first, second)


# --------------------------------------------------------------------------- python


def test_python_valid_and_plain_valid_has_no_reason() -> None:
    assert run("m.py", b"def f(x):\n    return x + 1\n") == FileVerdict("valid", "")


def test_python_syntax_error_names_check_and_line() -> None:
    verdict = run("m.py", b"x = 1\ny = 2\ndef f(:\n    pass\n")
    assert verdict.verdict == "invalid"
    assert verdict.reason.startswith("python: SyntaxError line 3:")


def test_python_compile_stage_errors_are_caught() -> None:
    verdict = run("m.py", b"x = 1\nreturn x\n")
    assert verdict.verdict == "invalid"
    assert "line 2" in verdict.reason
    assert "outside function" in verdict.reason


def test_python_indentation_error_and_null_bytes() -> None:
    assert run("m.py", b"if True:\nprint(1)\n").reason.startswith("python: IndentationError line 2")
    assert run("m.py", b"x = 1\x00\n").verdict == "invalid"


def test_python_coding_cookie_is_honoured() -> None:
    assert run("m.py", b"# -*- coding: latin-1 -*-\ns = '\xe9t\xe9'\n").verdict == "valid"
    assert run("m.py", b"s = '\xe9t\xe9'\n").verdict == "invalid"  # not UTF-8 without a cookie


def test_python_is_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    source = f"open({str(marker)!r}, 'w').close()\nimport os\nos._exit(3)\n".encode()
    assert run("evil.py", source).verdict == "valid"
    assert not marker.exists()


# --------------------------------------------------------------------------- json, yaml, toml


def test_json_valid_invalid_empty() -> None:
    assert run("a.json", b'{"a": [1, 2, {"b": null}]}').verdict == "valid"
    bad = run("a.json", b'{\n  "a": 1\n  "b": 2\n}')
    assert bad.verdict == "invalid"
    assert bad.reason.startswith("json: line 3")
    assert run("a.json", b"") == FileVerdict("invalid", "json: empty")
    assert run("a.json", b"  \n\t ") == FileVerdict("invalid", "json: empty")


def test_json_edge_cases_that_are_still_valid() -> None:
    assert run("a.json", b"\xef\xbb\xbf{}").verdict == "valid"  # UTF-8 BOM
    assert run("a.json", b"[" + b"9" * 10000 + b"]").verdict == "valid"  # beyond int() digit limit


def test_text_checks_reject_non_utf8() -> None:
    for name in ("a.json", "a.yaml", "a.toml"):
        verdict = run(name, b'"caf\xe9"\n' if name.endswith("json") else b"k: caf\xe9\n")
        assert verdict.verdict == "invalid", name
        assert "not UTF-8" in verdict.reason
        assert verdict.reason.startswith(name.split(".")[1] + ":")


def test_yaml_valid_multi_document_and_invalid() -> None:
    assert run("a.yaml", b"a: 1\n---\n- x\n- y\n...\n---\nb: {c: d}\n").verdict == "valid"
    assert run("a.yaml", b"").verdict == "valid"
    bad = run("a.yml", b"a: 1\nb: [1, 2\nc: 3\n")
    assert bad.verdict == "invalid"
    assert bad.reason.startswith("yaml: line")
    assert run("a.yaml", b"a: 1\n  b: 2\n").verdict == "invalid"


def test_yaml_aliases_are_not_expanded() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 30):
        prev = chr(ord("a") + i - 1) if i < 26 else f"z{i - 1}"
        cur = chr(ord("a") + i) if i < 26 else f"z{i}"
        lines.append(f"{cur}: &{cur} [{', '.join(['*' + prev] * 9)}]")
    start = time.monotonic()
    assert run("bomb.yaml", "\n".join(lines).encode()).verdict == "valid"
    assert time.monotonic() - start < 5


def test_toml_valid_and_invalid() -> None:
    assert run("p.toml", b'[tool.x]\nname = "a"\nlist = [1, 2]\n').verdict == "valid"
    bad = run("p.toml", b'[tool.x]\nname = "a\n')
    assert bad.verdict == "invalid"
    assert bad.reason.startswith("toml:")
    assert "line 2" in bad.reason
    assert run("p.toml", b"a = 1\na = 2\n").verdict == "invalid"


# --------------------------------------------------------------------------- sqlite


def test_sqlite_check_valid_db(tmp_path: Path) -> None:
    data = make_db(tmp_path / "ok.db").read_bytes()
    assert is_sqlite_bytes(data)
    assert run("ok.db", data) == FileVerdict("valid", "")
    assert list(tmp_path.iterdir()) == [tmp_path / "ok.db"]


def test_sqlite_check_empty_wrong_header_and_damage(tmp_path: Path) -> None:
    assert run("x.db", b"") == FileVerdict("invalid", "sqlite: empty file")
    assert run("x.db", b"hello world, not a database").reason == "sqlite: not a SQLite database (bad header)"
    assert not is_sqlite_bytes(b"SQLite format 2\x00")

    data = bytearray(make_db(tmp_path / "d.db", rows=500).read_bytes())
    truncated = run("d.db", bytes(data[: len(data) // 2]))
    assert truncated.verdict == "invalid"
    assert truncated.reason.startswith("sqlite:")
    page_size = int.from_bytes(data[16:18], "big")
    data[page_size : page_size + 200] = b"\xff" * 200  # scribble over the first table page
    scribbled = run("d.db", bytes(data))
    assert scribbled.verdict == "invalid"
    assert scribbled.reason.startswith("sqlite:")


# --------------------------------------------------------------------------- shell


@needs_bash
def test_shell_valid_and_invalid() -> None:
    assert run("run.sh", b"#!/bin/bash\nif true; then\n  echo hi\nfi\n").verdict == "valid"
    bad = run("scripts/run.sh", b"#!/bin/bash\nif true; then\n  echo hi\n")
    assert bad.verdict == "invalid"
    assert bad.reason.startswith("shell: line ")
    assert "guardian-check" not in bad.reason  # the temporary path is not leaked


@needs_bash
def test_shell_check_executes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker, startup = tmp_path / "ran", tmp_path / "env.sh"
    startup.write_text(f"touch {marker}\n")
    monkeypatch.setenv("BASH_ENV", str(startup))
    assert run("a.sh", f"touch {marker}\n".encode()).verdict == "valid"
    assert not marker.exists()


def test_shell_missing_interpreter_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert run("a.sh", b"if then fi\n") == FileVerdict("valid", "shell: bash not found, not checked")
    assert run("a.zsh", b"if then fi\n") == FileVerdict("valid", "shell: zsh not found, not checked")


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_uses_zsh() -> None:
    assert run("a.zsh", b"print -P '%F{red}hi%f'\n").verdict == "valid"
    assert run("a.zsh", b"if true; then\n").verdict == "invalid"


# --------------------------------------------------------------------------- not-empty, conflict markers


def test_not_empty() -> None:
    assert run("x", b"", "not-empty") == FileVerdict("invalid", "not-empty: file is empty")
    assert run("x", b"\n", "not-empty").verdict == "valid"


def test_conflict_markers() -> None:
    conflict = b"a\n<<<<<<< HEAD\nmine\n=======\ntheirs\n>>>>>>> feature\nb\n"
    verdict = run("x.txt", conflict, "no-conflict-markers")
    assert verdict == FileVerdict("invalid", "no-conflict-markers: merge conflict markers from line 2")
    assert run("x.txt", conflict.replace(b"\n", b"\r\n"), "no-conflict-markers").verdict == "invalid"


@pytest.mark.parametrize(
    "text",
    [
        b"Title\n=======\n\nbody\n",  # an RST/Markdown underline alone
        b">>>>>>> x\n=======\n<<<<<<< y\n",  # wrong order
        b"<<<<<<< HEAD\nmine\n=======\ntheirs\n",  # no closing marker
        b"<<<<<<< HEAD\n========\n>>>>>>> x\n",  # separator must be exactly seven '='
        b"  <<<<<<< HEAD\n=======\n>>>>>>> x\n",  # markers start a line
    ],
)
def test_conflict_marker_lookalikes_are_fine(text: bytes) -> None:
    assert run("x.md", text, "no-conflict-markers").verdict == "valid"


# --------------------------------------------------------------------------- custom commands

PY = sys.executable


def test_command_pass_gets_a_copy_with_the_same_name(tmp_path: Path) -> None:
    script = (
        "import os, sys; p = sys.argv[1]; "
        "sys.exit(0 if os.path.basename(p) == 'package.json' and open(p).read() == 'ok' else 1)"
    )
    spec = command(PY, "-c", script, "{path}")
    assert judge("web/package.json", b"ok", [spec], last_valid_size=None, suspect=DEFAULTS).verdict == "valid"
    assert judge("web/package.json", b"no", [spec], last_valid_size=None, suspect=DEFAULTS).verdict == "invalid"


def test_command_failure_reports_first_line_with_project_path() -> None:
    script = "import sys; sys.stderr.write(sys.argv[1] + ': line 1: bad thing\\nmore detail\\n'); sys.exit(2)"
    verdict = judge("conf/app.cfg", b"x", [command(PY, "-c", script, "{path}")], last_valid_size=None, suspect=DEFAULTS)
    assert verdict == FileVerdict("invalid", f"command '{PY}': line 1: bad thing")


def test_command_failure_without_output_reports_status() -> None:
    verdict = judge("a.cfg", b"x", [command(PY, "-c", "raise SystemExit(7)")], last_valid_size=None, suspect=DEFAULTS)
    assert verdict == FileVerdict("invalid", f"command '{PY}': exited with status 7")


def test_command_stdout_is_used_when_stderr_is_empty() -> None:
    script = "print('  '); print('E501 line too long'); raise SystemExit(1)"
    verdict = judge("a.cfg", b"x", [command(PY, "-c", script)], last_valid_size=None, suspect=DEFAULTS)
    assert verdict.reason == f"command '{PY}': E501 line too long"


def test_command_timeout_is_suspect_and_kills_the_process_tree() -> None:
    spec = (
        command("bash", "-c", "sleep 30 & sleep 30", timeout=0.5)
        if shutil.which("bash")
        else command(PY, "-c", "import time; time.sleep(30)", timeout=0.5)
    )
    start = time.monotonic()
    verdict = judge("a.cfg", b"x", [spec], last_valid_size=None, suspect=DEFAULTS)
    assert time.monotonic() - start < 5
    assert verdict == FileVerdict("suspect", f"command '{spec.command[0]}' timed out after 0.5s")


def test_command_missing_program_is_valid_with_reason() -> None:
    spec = command("guardian-no-such-checker-xyz", "{path}")
    verdict = judge("a.cfg", b"x", [spec], last_valid_size=None, suspect=DEFAULTS)
    assert verdict == FileVerdict("valid", "check 'guardian-no-such-checker-xyz' not run: not found")


def test_command_gets_no_stdin() -> None:
    spec = command(PY, "-c", "import sys; sys.exit(0 if sys.stdin.read() == '' else 1)", timeout=5)
    assert judge("a.cfg", b"x", [spec], last_valid_size=None, suspect=DEFAULTS).verdict == "valid"


# --------------------------------------------------------------------------- combining, shrink, size

BIG_MODULE = b"".join(f"def function_{i}(x):\n    return x * {i}\n\n\n".encode() for i in range(700))[:20480]
BIG_MODULE = BIG_MODULE[: BIG_MODULE.rindex(b"\n\n\n") + 1]


def test_shrink_to_a_shebang_is_suspect_even_though_it_parses() -> None:
    assert run("tool.py", BIG_MODULE).verdict == "valid"
    shebang = b"#!/usr/bin/env python3\n"
    verdict = run("tool.py", shebang, last=20480)
    assert verdict == FileVerdict("suspect", "shrank 20480 -> 23 bytes (-99%) since last valid version")


def test_small_or_proportionally_small_shrinks_are_not_suspect() -> None:
    assert run("a.py", b"x = 1\n" * 2000, last=20480).verdict == "valid"  # lost 41%
    assert run("a.py", b"x = 1\n", last=500).verdict == "valid"  # lost 98%, but only 494 bytes
    assert run("a.py", b"x = 1\n" * 3, last=None).verdict == "valid"
    assert run("a.py", b"x = 1\n" * 10000, last=100).verdict == "valid"  # growth


def test_min_shrink_bytes_and_ratio_are_respected() -> None:
    strict = SuspectSettings(shrink_ratio=0.5, min_shrink_bytes=100)
    lenient = SuspectSettings(shrink_ratio=0.9, min_shrink_bytes=100)
    data = b"x" * 100
    assert judge("a.txt", data, [], last_valid_size=400, suspect=strict).verdict == "suspect"  # lost 300 (75%)
    assert judge("a.txt", data, [], last_valid_size=400, suspect=lenient).verdict == "valid"
    assert judge("a.txt", data, [], last_valid_size=200, suspect=strict).verdict == "valid"  # lost exactly 100
    assert judge("a.txt", data, [], last_valid_size=201, suspect=strict).verdict == "suspect"
    assert judge("a.txt", b"", [], last_valid_size=20480, suspect=DEFAULTS).reason.endswith(
        "(-100%) since last valid version"
    )


def test_invalid_beats_suspect() -> None:
    verdict = run("tool.py", b"def broken(:\n", last=20480)
    assert verdict.verdict == "invalid"
    assert verdict.reason.startswith("python: SyntaxError line 1")
    assert "shrank" not in verdict.reason


def test_suspect_beats_valid_note() -> None:
    spec = command("guardian-no-such-checker-xyz")
    verdict = judge("a.cfg", b"x", [spec], last_valid_size=20480, suspect=DEFAULTS)
    assert verdict.verdict == "suspect"
    assert verdict.reason.startswith("shrank")


def test_several_failures_are_all_named() -> None:
    verdict = run("a.json", b"", "json", "not-empty")
    assert verdict == FileVerdict("invalid", "json: empty; not-empty: file is empty")


def test_large_files_skip_parse_checks_but_not_cheap_ones() -> None:
    big = b"{" * (MAX_PARSE_BYTES + 1)
    verdict = run("huge.json", big)
    assert verdict.verdict == "valid"
    assert "too large to parse" in verdict.reason
    assert run("huge.json", big, "json", "not-empty").verdict == "valid"
    marked = b"<<<<<<< a\n=======\n>>>>>>> b\n" + big
    assert run("huge.json", marked, "json", "no-conflict-markers").verdict == "invalid"
    assert run("huge.db", big, "sqlite").reason == "sqlite: not a SQLite database (bad header)"


# --------------------------------------------------------------------------- torn writes

MODULE = b'"""Pool."""\n\nimport queue\n\nLIMIT = 8\n' + b"".join(
    b"\n\ndef task_%02d(pool):\n    value = pool.get(%d)\n    return value\n" % (i, i) for i in range(20)
)
DEPLOY = b"".join(
    b"%s:\n  host: %s.example.org\n  port: %d\n" % (k, k, 8000 + n)
    for n, k in enumerate([b"web", b"api", b"db", b"cache", b"queue", b"mail"])
)


def torn(rel_path: str, data: bytes, previous: bytes, *, writer: str | None = None) -> FileVerdict:
    specs = list(checks_for(rel_path, ()))
    return judge(
        rel_path, data, specs, last_valid_size=len(previous), suspect=DEFAULTS, previous=lambda: previous, writer=writer
    )


def test_a_strict_prefix_of_the_last_valid_version_is_suspect_whatever_its_size() -> None:
    for cut in (len(MODULE) - 30, len(MODULE) // 2 + 7, 40):
        verdict = torn("notes.txt", MODULE[:cut], MODULE)
        assert verdict.verdict == "suspect"
        if cut > len(MODULE) // 2:  # the shrink check stays quiet: the prefix check is the one that speaks
            assert verdict.reason == (
                f"a strict prefix of the last valid version ({cut} of {len(MODULE)} bytes): torn or truncated write"
            )
        else:  # a big shrink is already named with its sizes; the prefix is not repeated
            assert verdict.reason.startswith("shrank ") and "strict prefix" not in verdict.reason


def test_losing_only_trailing_whitespace_or_growing_is_not_a_prefix() -> None:
    assert torn("notes.txt", MODULE.rstrip(), MODULE + b"\n\n").verdict == "valid"
    assert torn("notes.txt", MODULE + b"# more\n", MODULE).verdict == "valid"
    assert torn("notes.txt", MODULE, MODULE).verdict == "valid"
    assert torn("notes.txt", b"", b"   \n").verdict == "valid"


def test_a_rewritten_module_cut_short_names_the_lost_definitions() -> None:
    edited = MODULE.replace(b"task_02", b"task_two")  # no longer a prefix of the last valid version
    cut = edited.index(b"    return value\n", edited.index(b"def task_13"))  # task_13 loses its return
    verdict = torn("pool.py", edited[:cut], MODULE)
    assert verdict == FileVerdict(
        "suspect",
        "python: lost 6 top-level definitions the last valid version ended with: task_14, task_15, task_16 "
        "+3 more (torn or truncated write)",
    )
    few = edited.index(b"    return value\n", edited.index(b"def task_18"))
    assert torn("pool.py", edited[:few], MODULE).reason == (
        "python: lost 1 top-level definition the last valid version ended with: task_19 (torn or truncated write)"
    )


def test_a_yaml_file_cut_short_names_the_lost_keys() -> None:
    cut = DEPLOY.index(b"cache.exam") + len(b"cache.exam")
    verdict = torn("deploy.yaml", DEPLOY[:cut], DEPLOY)
    assert verdict.verdict == "suspect"
    assert verdict.reason == (
        f"a strict prefix of the last valid version ({cut} of {len(DEPLOY)} bytes): torn or truncated write; "
        "yaml: lost 2 top-level keys the last valid version ended with: queue, mail (torn or truncated write)"
    )


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(
            lambda m: m.replace(b"\n\ndef task_07(pool):\n    value = pool.get(7)\n    return value\n", b""),
            id="delete-in-the-middle",
        ),
        pytest.param(lambda m: m.replace(b"task_19", b"task_last"), id="rename-the-last"),
        pytest.param(lambda m: m.replace(b"task_05", b"task_5") + b"\n\ndef extra():\n    pass\n", id="rename-and-add"),
        pytest.param(lambda m: m.replace(b"LIMIT = 8", b"LIMIT = 9"), id="edit-a-value"),
        pytest.param(
            lambda m: m[: m.index(b"\n\ndef task_18")] + b'\n\nif __name__ == "__main__":\n    main()\n',
            id="delete-the-last-two-before-a-main-block",
        ),
    ],
)
def test_ordinary_python_edits_stay_valid(edit: Callable[[bytes], bytes]) -> None:
    assert torn("pool.py", edit(MODULE), MODULE) == FileVerdict("valid")


def test_ordinary_yaml_edits_stay_valid() -> None:
    deleted = DEPLOY.replace(b"db:\n  host: db.example.org\n  port: 8002\n", b"")
    assert torn("deploy.yaml", deleted, DEPLOY) == FileVerdict("valid")
    assert torn("deploy.yaml", DEPLOY.replace(b"mail:", b"mailer:"), DEPLOY) == FileVerdict("valid")
    assert torn("deploy.yaml", DEPLOY + b"extra: true\n", DEPLOY) == FileVerdict("valid")


def test_deleting_the_last_definition_is_a_prefix_and_flagged() -> None:
    # It cannot be told from a write killed at that boundary: the docs say so.
    deleted = MODULE[: MODULE.index(b"\n\ndef task_19")] + b"\n"
    assert torn("pool.py", deleted, MODULE).reason.startswith("a strict prefix of the last valid version")


def test_a_torn_json_file_is_invalid_and_only_the_parse_error_is_given() -> None:
    state = json.dumps({"tasks": list(range(50))}, indent=2).encode()
    verdict = torn("state.json", state[:-40], state)
    assert verdict.verdict == "invalid"
    assert verdict.reason.startswith("json: line ") and "prefix" not in verdict.reason


def test_a_file_still_open_for_writing_is_suspect_and_says_who() -> None:
    verdict = torn("pool.py", MODULE, MODULE, writer="pid 42 (python3 gen.py)")
    assert verdict == FileVerdict("suspect", "still open for writing by pid 42 (python3 gen.py)")
    assert is_in_progress(verdict.reason)
    cut = torn("notes.txt", MODULE[:-30], MODULE, writer="pid 42 (x)")
    assert cut.reason.endswith("torn or truncated write; still open for writing by pid 42 (x)")
    assert is_in_progress(cut.reason)
    assert not is_in_progress("a strict prefix of the last valid version (1 of 2 bytes): torn or truncated write")


def test_the_last_valid_version_is_read_only_when_a_torn_write_check_can_apply() -> None:
    reads: list[int] = []

    def load() -> bytes:
        reads.append(1)
        return MODULE

    def judged(rel_path: str, data: bytes) -> str:
        specs = list(checks_for(rel_path, ()))
        return judge(rel_path, data, specs, last_valid_size=len(MODULE), suspect=DEFAULTS, previous=load).verdict

    assert judged("notes.txt", MODULE + b"more\n") == "valid"  # longer: cannot be a strict prefix
    assert judged("state.json", b'{"a": ') == "invalid"  # invalid already
    assert reads == []
    assert judged("notes.txt", MODULE[:-30]) == "suspect"
    assert judged("pool.py", MODULE + b"X = 1\n") == "valid"  # Python: the outline check needs it
    assert reads == [1, 1]


def test_previous_versions_too_large_to_parse_are_not_compared() -> None:
    big = b"x" * (MAX_PARSE_BYTES + 1)
    assert torn("big.txt", big[:-10], big).verdict == "valid"


# --------------------------------------------------------------------------- sqlite_consistent_copy


@pytest.fixture
def wal_db(tmp_path: Path) -> Iterator[tuple[Path, sqlite3.Connection]]:
    path = tmp_path / "live.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    assert db.execute("PRAGMA journal_mode=WAL").fetchone() == ("wal",)
    db.execute("PRAGMA wal_autocheckpoint=0")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    db.execute("INSERT INTO t (v) VALUES ('before')")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.execute("BEGIN")
    db.executemany("INSERT INTO t (v) VALUES (?)", [(f"wal-row-{i}",) for i in range(20)])
    db.execute("COMMIT")
    try:
        yield path, db
    finally:
        db.close()


def test_consistent_copy_includes_committed_wal_content(
    wal_db: tuple[Path, sqlite3.Connection], tmp_path: Path
) -> None:
    path, _db = wal_db
    assert Path(f"{path}-wal").stat().st_size > 0
    assert "wal-row-0" not in rows_in(path.read_bytes(), tmp_path)  # the base file alone lacks them
    image = sqlite_consistent_copy(path)
    assert rows_in(image, tmp_path) == ["before"] + [f"wal-row-{i}" for i in range(20)]
    assert judge("live.sqlite", image, [CheckSpec("sqlite")], last_valid_size=None, suspect=DEFAULTS).verdict == "valid"


def test_consistent_copy_ignores_uncommitted_transaction(
    wal_db: tuple[Path, sqlite3.Connection], tmp_path: Path
) -> None:
    path, db = wal_db
    db.execute("BEGIN")
    db.execute("INSERT INTO t (v) VALUES ('uncommitted')")
    try:
        assert "uncommitted" not in rows_in(sqlite_consistent_copy(path), tmp_path)
    finally:
        db.execute("ROLLBACK")


def test_consistent_copy_of_idle_wal_db_creates_no_files(tmp_path: Path) -> None:
    path = tmp_path / "idle.db"
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    db.execute("INSERT INTO t (v) VALUES ('x')")
    db.commit()
    db.close()
    before = sorted(p.name for p in tmp_path.iterdir())
    assert before == ["idle.db"]
    assert rows_in(sqlite_consistent_copy(path), tmp_path) == ["x"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "inspect") == before


def test_consistent_copy_of_rollback_journal_db(tmp_path: Path) -> None:
    path = make_db(tmp_path / "plain.db", rows=5)
    original = path.read_bytes()
    assert rows_in(sqlite_consistent_copy(path), tmp_path) == [f"row{i}" for i in range(5)]
    assert path.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "inspect") == ["plain.db"]


def test_consistent_copy_rolls_back_a_hot_journal_privately(tmp_path: Path) -> None:
    path = make_db(tmp_path / "crashed.db", rows=4)
    crash = textwrap.dedent(
        f"""
        import os, sqlite3
        db = sqlite3.connect({str(path)!r})
        db.execute("PRAGMA cache_size=1")
        db.execute("BEGIN")
        db.executemany("INSERT INTO t (v) VALUES (?)", [("x" * 1000,) for _ in range(2000)])
        os._exit(0)
        """
    )
    subprocess.run([PY, "-c", crash], check=True)
    journal = Path(f"{path}-journal")
    if not journal.exists() or journal.stat().st_size == 0:
        pytest.skip("could not produce a hot journal on this system")
    base, hot = path.read_bytes(), journal.read_bytes()
    assert rows_in(sqlite_consistent_copy(path), tmp_path) == [f"row{i}" for i in range(4)]
    assert path.read_bytes() == base
    assert journal.read_bytes() == hot


@pytest.mark.parametrize("base_state", ["missing", "empty"])
def test_wal_without_base_file_is_refused_and_never_opened(tmp_path: Path, base_state: str) -> None:
    source = tmp_path / "src.db"
    holder = sqlite3.connect(source, isolation_level=None)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("PRAGMA wal_autocheckpoint=0")
    holder.execute("CREATE TABLE t (v TEXT)")
    holder.execute("INSERT INTO t VALUES ('precious')")
    path = tmp_path / "orphan.db"
    wal = Path(f"{path}-wal")
    shutil.copyfile(f"{source}-wal", wal)
    holder.close()
    if base_state == "empty":
        path.write_bytes(b"")
    wal_bytes = wal.read_bytes()

    with pytest.raises(OperationFailed) as caught:
        sqlite_consistent_copy(path)
    message = str(caught.value)
    assert str(path) in message
    assert "the WAL has no base file" in message
    assert base_state in message
    assert path.exists() == (base_state == "empty")
    if path.exists():
        assert path.stat().st_size == 0
    assert wal.read_bytes() == wal_bytes
    assert not Path(f"{path}-shm").exists()


def test_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("just some text, long enough to look like a header maybe\n" * 10)
    with pytest.raises(OperationFailed, match="not a SQLite database") as caught:
        sqlite_consistent_copy(path)
    assert str(path) in str(caught.value)


def test_damaged_database_is_refused(tmp_path: Path) -> None:
    path = make_db(tmp_path / "bad.db", rows=200)
    data = bytearray(path.read_bytes())
    data[28:32] = b"\xff\xff\xff\xff"  # absurd page count
    data[100:200] = b"\x00" * 100  # and a wrecked schema page header
    path.write_bytes(bytes(data))
    # SQLite may refuse it outright or copy what it can; either way it must not pass as good.
    try:
        image = sqlite_consistent_copy(path)
    except OperationFailed as exc:
        message = str(exc)
    else:
        message = ""
        verdict = judge("bad.db", image, [CheckSpec("sqlite")], last_valid_size=None, suspect=DEFAULTS)
        assert verdict.verdict == "invalid"
    if message:
        assert str(path) in message


def test_missing_and_empty_database(tmp_path: Path) -> None:
    with pytest.raises(OperationFailed, match="no such database file"):
        sqlite_consistent_copy(tmp_path / "nope.db")
    assert not (tmp_path / "nope.db").exists()
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    assert sqlite_consistent_copy(empty) == b""


def test_path_with_uri_metacharacters(tmp_path: Path) -> None:
    folder = tmp_path / "odd ?#% dir"
    folder.mkdir()
    path = make_db(folder / "a?b#c%20.db", rows=2)
    assert rows_in(sqlite_consistent_copy(path), tmp_path) == ["row0", "row1"]
    assert sorted(os.listdir(folder)) == ["a?b#c%20.db"]
