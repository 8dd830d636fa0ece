"""Times people type: yesterday, today, 16:38, 1h30m, '2 hours ago', ISO, @epoch; and --before wherever --at is."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from guardian.util.times import TIME_FORMS, _parse, format_time, parse_time
from tests.conftest import run_cli


@pytest.fixture
def new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


# 2026-12-05 18:00:00 UTC = 13:00 in New York (EST, -05:00).
NOW = dt.datetime(2026, 12, 5, 18, 0, 0, tzinfo=dt.UTC).timestamp()


def _local(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


@pytest.mark.usefixtures("new_york")
@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("yesterday", "2026-12-04T00:00:00-05:00"),
        ("today", "2026-12-05T00:00:00-05:00"),
        ("16:38", "2026-12-05T16:38:00-05:00"),
        ("01:50", "2026-12-05T01:50:00-05:00"),
        ("yesterday 16:38", "2026-12-04T16:38:00-05:00"),
        ("1h30m", "2026-12-05T11:30:00-05:00"),
        ("2 hours ago", "2026-12-05T11:00:00-05:00"),
        ("1 day ago", "2026-12-04T13:00:00-05:00"),
        ("90m", "2026-12-05T11:30:00-05:00"),
        ("2026-11-21", "2026-11-21T00:00:00-05:00"),
        ("2026-11-21T14:30", "2026-11-21T14:30:00-05:00"),
        ("2026-11-21T19:30Z", "2026-11-21T14:30:00-05:00"),
        ("2026-11-22 10:02:11 -05:00", "2026-11-22T10:02:11-05:00"),
        ("@1700000000", "2023-11-14T17:13:20-05:00"),
        ("now", "2026-12-05T13:00:00-05:00"),
    ],
)
def test_accepted_forms(typed: str, expected: str) -> None:
    assert _parse(typed, NOW) == _local(expected)


@pytest.mark.usefixtures("new_york")
def test_format_time_reads_back() -> None:
    shown = format_time(NOW)
    assert shown == "2026-12-05 13:00:00 -05:00"
    assert parse_time(shown) == NOW


@pytest.mark.parametrize("typed", ["pyhton", "1h30", "tomorrow", "25:00", "2026-13-01", "@x", ""])
def test_refused_forms_name_the_option_and_the_forms(typed: str) -> None:
    with pytest.raises(Exception) as caught:
        parse_time(typed, "--since")
    assert str(caught.value) == f"--since: cannot read time '{typed}'; use {TIME_FORMS}"


def _init(project: Path) -> None:
    (project / "a.txt").write_text("one\n")
    r = run_cli("init", cwd=project)
    assert r.exit_code == 0, r.stderr


def test_log_takes_the_new_forms(project: Path) -> None:
    _init(project)
    for since in ("today", "yesterday", "1h30m", "2 hours ago", "00:00"):
        r = run_cli("log", "--since", since, "--json", cwd=project)
        assert r.exit_code == 0, (since, r.stderr)
        assert len(json.loads(r.stdout)["snapshots"]) == 1, since
    r = run_cli("log", "--until", "2 hours ago", "--json", cwd=project)
    assert json.loads(r.stdout)["snapshots"] == []


def test_a_bad_time_is_exit_2_with_the_forms(project: Path) -> None:
    _init(project)
    r = run_cli("log", "--since", "pyhton", cwd=project)
    assert r.exit_code == 2
    assert r.stderr == f"guardian: error: --since: cannot read time 'pyhton'; use {TIME_FORMS}\n"
    r = run_cli("rollback", "--before", "soon", cwd=project)
    assert r.exit_code == 2
    assert r.stderr == f"guardian: error: --before: cannot read time 'soon'; use {TIME_FORMS}\n"


def test_show_and_diff_take_before(project: Path) -> None:
    _init(project)
    (project / "a.txt").write_text("two\n")
    r = run_cli("show", "a.txt", "--before", "now", cwd=project)
    assert (r.exit_code, r.stdout) == (0, "one\n")
    r = run_cli("diff", "a.txt", "--before", "now", cwd=project)
    assert r.exit_code == 0
    assert r.stdout.splitlines()[2:] == ["@@ -1 +1 @@", "-one", "+two"]
    r = run_cli("show", "a.txt", "--before", "2 hours ago", cwd=project)
    assert r.exit_code == 1
    assert r.stderr.startswith("guardian: error: no valid version of 'a.txt' before ")
    r = run_cli("diff", "a.txt", "--at", "abcd", "--before", "2h", cwd=project)
    assert r.exit_code == 2
    assert r.stderr == "guardian: error: --at and --before cannot be used together; pick one\n"
