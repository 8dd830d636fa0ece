"""guardian init's first snapshot, and a large capture's parse workers: what they store and judge.

The verdicts, catalog rows, commit messages and events of a capture do not depend on
whether its parse checks ran in worker processes (``capture.parsepool``) or in the capture's
own process, nor on whether the store had earlier snapshots to compare with; and a
SIGKILLed init leaves no worker behind and a store the next run completes.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import guardian.capture.parsepool as parsepool
from guardian.errors import ConfigError
from guardian.ops.initialize import init_project
from guardian.ops.snapshot import take_snapshot
from guardian.project import Project
from tests.conftest import fsck, guardian_subprocess, run_cli

# A tree of every kind of content a first snapshot meets: (path -> bytes), plus a symlink.
MIXED: dict[str, bytes] = {
    "ok.py": b"def f(x):\n    return x + 1\n",
    "bad.py": b"def f(:\n    pass\n",
    "ret.py": b"return 1\n",
    "nul.py": b"x = 1\x00\n",
    "bom.py": b"\xef\xbb\xbfx = 1\n",
    "pkg/sub/deep.py": b"import os\n\nVALUE = os.sep\n",
    "pkg/sub/big.py": b"".join(b"def f%d(x):\n    return x * %d\n\n" % (i, i) for i in range(120)),
    "cfg.json": b'{"a": [1, 2, 3], "n": 123456789012345678901234567890}\n',
    "broken.json": b'{"a": [1, 2\n',
    "empty.json": b"",
    "latin.json": b'{"a": "\xe9"}\n',
    "conf.yaml": b"a: 1\nb: [x, y]\nc:\n  d: e\n",
    "bad.yaml": b"a: [1, 2\nb: 3\n",
    "tab.yml": b"a:\n\t- 1\n",
    "pyproject.toml": b'[tool.x]\nname = "x"\n',
    "bad.toml": b"[tool\nname = 1\n",
    "merge.md": b"# notes\n<<<<<<< ours\na\n=======\nb\n>>>>>>> theirs\n",
    "notes.md": b"# notes\n\nSome text.\n",
    "empty.txt": b"",
    "run.sh": b"#!/bin/sh\necho hi\n",
    "broken.sh": b"#!/bin/bash\nif then fi (\n",
    "bin/blob.bin": bytes(range(256)) * 8,
    "fake.db": b"SQLite format 3\x00" + b"\x00" * 84 + b"garbage",
    "stub.pyi": b"def f(x: int) -> int: ...\n",
}
POLICY = """version: 1
validate:
  - paths: ["*.md"]
    checks: [no-conflict-markers]
  - paths: ["*.txt"]
    checks: [not-empty]
"""

# What the first snapshot of MIXED records, path -> (verdict, start of the reason); every other
# path is valid with no reason.  Python's own messages vary between versions, so only their start.
EXPECTED_FIRST: dict[str, tuple[str, str]] = {
    "bad.py": ("invalid", "python: SyntaxError line 1: "),
    "ret.py": ("invalid", "python: SyntaxError line 1: 'return' outside function"),
    "nul.py": ("invalid", "python: "),
    "broken.json": ("invalid", "json: line 2 column 1: Expecting ',' delimiter"),
    "empty.json": ("invalid", "json: empty"),
    "latin.json": ("invalid", "json: not UTF-8 text (bad byte at offset 7)"),
    "bad.yaml": ("invalid", "yaml: line 2 column 2: did not find expected ',' or ']'"),
    "tab.yml": ("invalid", "yaml: line 2 column 1: found character that cannot start any token"),
    "bad.toml": ("invalid", "toml: Expected ']' at the end of a table declaration (at line 1, column 6)"),
    "merge.md": ("invalid", "no-conflict-markers: merge conflict markers from line 2"),
    "empty.txt": ("invalid", "not-empty: file is empty"),
    "broken.sh": ("invalid", "shell: line 2: syntax error near unexpected token `then'"),
    "fake.db": ("invalid", "sqlite: bad page size 0 in the header; sqlite: file is not a database"),
}
# The second snapshot, after mutate(): verdicts that need the first one's versions.
EXPECTED_SECOND: dict[str, tuple[str, str]] = {
    "ok.py": ("invalid", "python: SyntaxError line 2: "),
    "conf.yaml": ("suspect", "a strict prefix of the last valid version (5 of 25 bytes): torn or truncated write"),
    "pkg/sub/big.py": ("suspect", "shrank 3740 -> 87 bytes (-97%) since last valid version"),
}


def build_mixed(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for rel, data in MIXED.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "run.sh").chmod(0o755)
    (root / "bin" / "blob.bin").chmod(0o600)
    (root / "link.py").symlink_to("ok.py")
    db = sqlite3.connect(root / "real.sqlite")
    db.execute("CREATE TABLE t(x)")
    db.execute("INSERT INTO t VALUES (1)")
    db.commit()
    db.close()
    (root / "guardian.yaml").write_text(POLICY)


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def recorded(project: Project) -> dict[str, Any]:
    """Everything a capture leaves behind that does not depend on when or where it ran."""
    catalog = project.open_catalog()
    repo = project.open_repo()
    snapshots = []
    for row in catalog.snapshots():
        commit = repo.commit_record(row.id)
        versions = [
            (v.path, v.change, v.blob, v.mode, v.size, v.verdict, v.reason, v.perm)
            for v in catalog.versions_in(row.seq)
        ]
        snapshots.append((row.trigger, row.summary, row.nchanged, row.nbad, commit.message, versions))
    files = sorted((f.path, f.blob, f.mode, f.size, f.perm) for f in catalog.files())
    events = [
        (e.event, e.paths, e.trigger, {k: v for k, v in e.details.items() if k not in ("pid", "user", "root")})
        for e in project.events.read()
    ]
    tree = sorted((path, entry.oid, entry.mode) for path, entry in repo.iter_tree(repo.head()))
    return {"snapshots": snapshots, "files": files, "events": events, "tree": tree}


def mutate(root: Path) -> None:
    """Changes whose verdicts need the earlier versions: shrunk, torn, broken, fixed, gone, new."""
    big = MIXED["pkg/sub/big.py"]
    (root / "pkg/sub/big.py").write_bytes(big[: big.index(b"def f3(")])  # shrunk: a strict prefix
    (root / "ok.py").write_bytes(b"def f(x):\n    return x +\n")
    (root / "bad.py").write_bytes(b"def f():\n    pass\n")
    (root / "conf.yaml").write_bytes(b"a: 1\n")
    (root / "cfg.json").unlink()
    (root / "new.json").write_bytes(b"[]\n")
    (root / "pkg/sub/deep.py").write_bytes(b"import os\n\nVALUE = os.sep\n")  # same content, new stat


def init_and_change(root: Path) -> dict[str, Any]:
    """A first snapshot of MIXED, then a second one of mutate(): what each recorded."""
    build_mixed(root)
    init_project(root)
    project = Project.find(root)
    fsck(project.paths.repo)  # each blob once, though two files are empty (a fresh store is not looked up)
    first = recorded(project)
    mutate(root)
    take_snapshot(project, None, "manual")
    fsck(project.paths.repo)
    return {"first": first, "second": recorded(project)}


def force_workers(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make every capture use parse workers; returns the list the number of jobs each batch sent is added to."""
    if parsepool.worker_count(parsepool.MIN_FILES) == 0:
        pytest.skip("parse workers need Linux, two CPUs and a single-threaded test process")
    monkeypatch.setattr(parsepool, "MIN_FILES", 1)
    sent: list[int] = []
    submit = parsepool.ParsePool.submit

    def counting(self: parsepool.ParsePool, jobs: list[parsepool.ParseJob]) -> Any:
        sent.append(len(jobs))
        return submit(self, jobs)

    monkeypatch.setattr(parsepool.ParsePool, "submit", counting)
    return sent


def by_path(versions: list[tuple[Any, ...]]) -> dict[str, tuple[Any, ...]]:
    return {v[0]: v for v in versions}


@pytest.mark.parametrize("workers", [False, True])
def test_first_and_second_snapshot_record_the_known_verdicts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: bool
) -> None:
    sent = force_workers(monkeypatch) if workers else []
    got = init_and_change(tmp_path / "tree")
    if workers:
        assert sum(sent) >= 15  # every .py, .json, .yaml, .toml, .md and .txt file went to a worker
    ((trigger, summary, _n, nbad, _message, versions),) = got["first"]["snapshots"]
    assert trigger == "init"
    assert nbad == len(EXPECTED_FIRST)
    first = by_path(versions)
    assert sorted(first) == sorted([*MIXED, "link.py", "real.sqlite", "guardian.yaml"])
    for path, (_p, change, blob, _mode, size, verdict, reason, _perm) in first.items():
        assert change == "add"
        want_verdict, want_reason = EXPECTED_FIRST.get(path, ("valid", ""))
        assert (verdict, reason[: len(want_reason)]) == (want_verdict, want_reason), path
        assert bool(reason) == bool(want_reason), (path, reason)
        if path in MIXED:
            assert (blob, size) == (git_blob_id(MIXED[path]), len(MIXED[path])), path
    assert first["run.sh"][3] == 0o100755 and first["bin/blob.bin"][7] == 0o600
    assert first["link.py"][2:4] == (git_blob_id(b"ok.py"), 0o120000) and first["link.py"][7] is None
    tree = {path: (oid, mode) for path, oid, mode in got["first"]["tree"]}
    assert tree == {path: (v[2], v[3]) for path, v in first.items()}
    assert f"init: {len(first)} added ({len(EXPECTED_FIRST)} invalid)" == summary

    second = by_path(got["second"]["snapshots"][0][5])
    assert sorted(second) == ["bad.py", "cfg.json", "conf.yaml", "new.json", "ok.py", "pkg/sub/big.py"]
    assert second["cfg.json"][1:3] == ("delete", None) and second["new.json"][5:7] == ("valid", "")
    assert second["bad.py"][5:7] == ("valid", "")
    for path, (want_verdict, want_reason) in EXPECTED_SECOND.items():
        assert (second[path][5], second[path][6][: len(want_reason)]) == (want_verdict, want_reason), path


def test_workers_and_no_workers_record_the_same_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    alone = init_and_change(tmp_path / "alone")
    sent = force_workers(monkeypatch)
    pooled = init_and_change(tmp_path / "pooled")
    assert sum(sent) >= 15
    assert pooled == alone  # commit messages (verdict trailers), catalog rows, events, trees


def test_init_parses_its_policy_text_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The preset check, the accept, the project's load and the hook pathspecs all read the same
    # text: config.parse_policy keeps the last parse, and gives each caller its own source.
    import yaml

    import guardian.config as config

    monkeypatch.setattr(config, "_last_parse", None)
    composed: list[str] = []
    compose = yaml.compose

    def counting(text: str, **kwargs: Any) -> Any:
        composed.append(text)
        return compose(text, **kwargs)

    monkeypatch.setattr(yaml, "compose", counting)
    build_mixed(tmp_path)
    init_project(tmp_path)
    assert len(composed) == 1
    text = (tmp_path / "guardian.yaml").read_text()
    fresh = config.Policy(**{**config.parse_policy(text, "a.yaml")._asdict(), "source": "b.yaml"})
    assert config.parse_policy(text, "b.yaml") == fresh and len(composed) == 1
    with pytest.raises(ConfigError, match=r"c\.yaml"):
        config.parse_policy("version: 2\n", "c.yaml")
    with pytest.raises(ConfigError, match=r"d\.yaml"):  # errors are never kept
        config.parse_policy("version: 2\n", "d.yaml")
    assert config.parse_policy(text, "a.yaml").source == "a.yaml" and len(composed) == 3


def test_a_large_init_judges_in_workers_and_a_small_one_does_not() -> None:
    assert parsepool.worker_count(parsepool.MIN_FILES - 1) == 0
    expected = 0 if not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2 else 1
    assert min(parsepool.worker_count(parsepool.MIN_FILES), 1) == expected


def _children(pid: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            fields = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(name))
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parse workers run on Linux only")
def test_a_killed_init_leaves_no_worker_and_a_store_the_next_init_completes(tmp_path: Path) -> None:
    if parsepool.worker_count(parsepool.MIN_FILES) == 0:
        pytest.skip("parse workers need two CPUs")
    root = tmp_path / "big"
    for i in range(parsepool.MIN_FILES + 1000):
        path = root / f"d{i // 50}" / f"m{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"VALUE_{i} = {i}\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "guardian", "init", "--no-hooks"],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers: list[int] = []
    deadline = time.monotonic() + 60
    try:
        while not workers and proc.poll() is None and time.monotonic() < deadline:
            # A forked worker runs the same command line; a git or check process would not.
            workers = [pid for pid in _children(proc.pid) if _alive(pid) and _cmdline(pid) == _cmdline(proc.pid)]
            time.sleep(0.005)
        assert workers, "init finished or timed out before its parse workers were seen"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(_alive(pid) for pid in workers), "a parse worker outlived the killed init"

    again = guardian_subprocess("init", "--no-hooks", cwd=root, timeout=120)
    assert again.returncode == 0, again.stderr
    project = Project.find(root)
    assert len(list(project.open_catalog().files())) == parsepool.MIN_FILES + 1001  # and guardian.yaml
    fsck(project.paths.repo)
    verify = run_cli("verify", cwd=root)
    assert verify.exit_code == 0, verify.stdout + verify.stderr
