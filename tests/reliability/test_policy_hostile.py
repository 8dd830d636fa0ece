"""Case 19: a policy file that is malformed, huge, an anchor bomb, deeply nested, or of the wrong types.

Each one is written as ``guardian.yaml`` in a project that already has a store,
and guardian runs as a real process with a timeout (a hang fails the test).
It must exit 2 with one ``guardian: error:`` line that names the policy file,
never hang, never print a traceback, never run anything the YAML names.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.reliability.harness import clean_error, guardian_argv, guardian_env, init_project, record

TIMEOUT = 20.0

LAUGHS = 'version: 1\na: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
)

HOSTILE: dict[str, bytes] = {
    # malformed
    "unclosed-list": b"version: 1\nwatch:\n  exclude: [a, b\n",
    "tab-indent": b"version: 1\nwatch:\n\texclude: [a]\n",
    "bad-indent": b"version: 1\nwatch:\n  exclude: [a]\n   include: [b]\n",
    "unclosed-quote": b'version: 1\nprotect:\n  - paths: ["core/]\n',
    "flow-garbage": b"{{{{{{{{ ]]]] ::: ,,,\n",
    "two-documents": b"version: 1\n---\nversion: 1\n",
    "only-comments": b"# nothing here\n",
    "scalar-root": b"hello\n",
    "list-root": b"- version: 1\n",
    "null-root": b"null\n",
    # bytes that are not text
    "nul-byte": b"version: 1\x00\nwatch: {}\n",
    "non-utf8": b"version: 1\nwatch:\n  exclude: ['\xff\xfe']\n",
    "control-chars": b"version: 1\x07\x1b[31m\n",
    # size and shape
    "huge": b"version: 1\n" + b"# padding padding padding padding padding\n" * 8000,
    "huge-list": b"version: 1\nwatch:\n  exclude:\n" + b"".join(b"    - 'dir%06d/'\n" % i for i in range(20000)),
    "anchor-bomb": LAUGHS.encode(),
    "merge-key": b"version: 1\nbase: &b {repair: true}\nguardrail:\n  <<: *b\n",
    "deep-list": b"version: 1\nwatch:\n  exclude: " + b"[" * 600 + b"]" * 600 + b"\n",
    "deep-map": b"version: 1\nwatch: " + b"{a: " * 600 + b"1" + b"}" * 600 + b"\n",
    "long-key": b"version: 1\n" + b"k" * 200_000 + b": 1\n",
    # tags
    "python-tag": b'version: !!python/object/apply:os.system ["touch pwned"]\n',
    "python-name": b"version: 1\nwatch: !!python/name:os.system\n",
    "custom-tag": b"version: !secret 1\n",
    # wrong types and values
    "version-text": b'version: "1"\n',
    "version-2": b"version: 2\n",
    "version-missing": b"watch: {}\n",
    "watch-int": b"version: 1\nwatch: 5\n",
    "protect-map": b"version: 1\nprotect: {a: b}\n",
    "protect-paths-int": b"version: 1\nprotect:\n  - paths: 5\n",
    "protect-action": b"version: 1\nprotect:\n  - paths: [a/]\n    rollback: maybe\n",
    "size-list": b"version: 1\nwatch:\n  max_file_size: [1]\n",
    "size-negative": b"version: 1\nwatch:\n  max_file_size: -1\n",
    "size-nan": b"version: 1\nwatch:\n  max_file_size: .nan\n",
    "include-ints": b"version: 1\nwatch:\n  include: [1, 2]\n",
    "interval-bool": b"version: 1\nguardrail:\n  interval: true\n",
    "ratio-big": b"version: 1\nsuspect:\n  shrink_ratio: 7\n",
    "unknown-key": b"version: 1\nprotcet:\n  - paths: [a/]\n",
    "duplicate-key": b"version: 1\nprotect:\n  - paths: [a/]\nprotect:\n  - paths: [b/]\n",
    "check-unknown": b"version: 1\nvalidate:\n  - paths: ['*.py']\n    checks: [pyhton]\n",
    "check-empty-command": b"version: 1\nvalidate:\n  - paths: ['*.sh']\n    checks: [{command: []}]\n",
    "bad-glob-include": b"version: 1\nwatch:\n  include: ['[z-a]']\n",
    "bad-glob-exclude": b"version: 1\nwatch:\n  exclude: ['[z-a]']\n",
    "bad-glob-protect": b"version: 1\nprotect:\n  - paths: ['[z-a]']\n",
}


def _project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    init_project(root, {"a.txt": b"a\n", "run.sh": b"echo hi\n"})
    return root


def _run(root: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    proc = subprocess.run(
        guardian_argv(*args), cwd=root, env=guardian_env(), capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    return proc, time.monotonic() - started


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_policy_is_a_clean_usage_error(tmp_path: Path, kind: str) -> None:
    root = _project(tmp_path)
    (root / "guardian.yaml").write_bytes(HOSTILE[kind])
    problems: list[str] = []
    for args in (["status"], ["snapshot"]):
        try:
            proc, elapsed = _run(root, *args)
        except subprocess.TimeoutExpired:
            problems.append(f"guardian {' '.join(args)} hung for {TIMEOUT}s")
            continue
        if proc.returncode != 2:
            problems.append(f"guardian {' '.join(args)}: exit {proc.returncode}, not 2: {proc.stderr.strip()[:300]}")
        complaint = clean_error(proc.stderr)
        if complaint:
            problems.append(f"guardian {' '.join(args)}: {complaint}")
        elif "guardian.yaml" not in proc.stderr:
            problems.append(f"guardian {' '.join(args)}: the message does not name the policy file: {proc.stderr}")
        if elapsed > 5:
            problems.append(f"guardian {' '.join(args)} took {elapsed:.1f}s")
    pwned = [p for p in (root / "pwned", tmp_path / "pwned", Path("pwned")) if p.exists()]
    if pwned:
        problems.append(f"the YAML ran a command: {pwned}")
    record("19", hostile_inputs=1, hostile_refused=int(not problems))
    assert not problems, "\n".join(problems)


def test_oversized_sparse_policy_is_refused_without_reading_it(tmp_path: Path) -> None:
    root = _project(tmp_path)
    policy = root / "guardian.yaml"
    with open(policy, "wb") as handle:
        handle.write(b"version: 1\n")
        handle.truncate(4 * 1024**3)  # 4 GB, sparse: reading it would take all memory
    proc, elapsed = _run(root, "status")
    record("19", hostile_inputs=1, hostile_refused=int(proc.returncode == 2 and elapsed < 5))
    assert proc.returncode == 2, proc.stderr
    assert clean_error(proc.stderr) is None
    assert elapsed < 5


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory", "dangling"])
def test_policy_that_is_not_a_regular_file_never_hangs(tmp_path: Path, kind: str) -> None:
    root = _project(tmp_path)
    policy = root / "guardian.yaml"
    policy.unlink()
    if kind == "fifo":
        os.mkfifo(policy)
    elif kind == "dev-zero":
        policy.symlink_to("/dev/zero")
    elif kind == "directory":
        policy.mkdir()
    else:
        policy.symlink_to(tmp_path / "nowhere.yaml")
    proc, elapsed = _run(root, "status")
    record("19", hostile_inputs=1, hostile_refused=int(proc.returncode == 2 and elapsed < 5))
    assert proc.returncode == 2, proc.stderr
    assert clean_error(proc.stderr) is None, proc.stderr
    assert elapsed < 5
