"""guardian log: changed paths, the note, verdict marks, a default limit and --all."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.conftest import run_cli

LINE = re.compile(r"^([0-9a-f]{12})  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d\d:\d\d  (\S+) +(\d+) file\(s\)  (.*)$")


def _init(project: Path) -> None:
    (project / "a.txt").write_text("a\n")
    r = run_cli("init", cwd=project)
    assert r.exit_code == 0, r.stderr


def test_paths_note_and_verdicts(project: Path) -> None:
    _init(project)
    for i in range(5):
        (project / f"f{i}.txt").write_text(f"{i}\n")
    (project / "bad.json").write_text('{"a": ')
    (project / "a.txt").unlink()
    r = run_cli("snapshot", "-m", "before the refactor", cwd=project)
    assert r.exit_code == 0, r.stderr
    r = run_cli("log", cwd=project)
    assert r.exit_code == 0 and r.stderr == ""
    lines = r.stdout.splitlines()
    first = LINE.match(lines[0])
    assert first is not None, lines[0]
    assert first.group(2, 3) == ("manual", "7")
    assert first.group(4) == "!1 not valid  A bad.json [invalid], D a.txt, A f0.txt +4 more"
    assert lines[1] == "    note: before the refactor"
    assert lines[2] == "    invalid: bad.json: json: line 1 column 7: Expecting value"
    init = LINE.match(lines[3])
    assert init is not None and init.group(4) == "A a.txt, A guardian.yaml"
    assert len(lines) == 4
    data = json.loads(run_cli("log", "-n", "1", "--json", cwd=project).stdout)
    entry = data["snapshots"][0]
    assert entry["note"] == "before the refactor"
    assert len(entry["paths"]) == 7
    assert {"path": "bad.json", "change": "add", "verdict": "invalid"} in entry["paths"]
    assert data["more"] is True


def test_default_limit_n_and_all(project: Path) -> None:
    _init(project)
    for i in range(22):
        (project / "a.txt").write_text(f"version {i}\n")
        assert run_cli("snapshot", cwd=project).exit_code == 0
    hint = "guardian: older snapshots not shown; -n N shows N, --all shows every one\n"
    r = run_cli("log", cwd=project)
    assert len(r.stdout.splitlines()) == 20
    assert r.stderr == hint
    r = run_cli("log", "-n", "3", cwd=project)
    assert (len(r.stdout.splitlines()), r.stderr) == (3, hint)
    r = run_cli("log", "--all", cwd=project)
    assert (len(r.stdout.splitlines()), r.stderr) == (23, "")
    r = run_cli("log", "-n", "23", cwd=project)
    assert (len(r.stdout.splitlines()), r.stderr) == (23, "")
    r = run_cli("log", "-n", "3", "--all", cwd=project)
    assert r.exit_code == 2
    assert r.stderr == "guardian: error: -n and --all cannot be used together; pick one\n"
