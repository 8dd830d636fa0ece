"""Case 6: kill -9 during the restore of a 50 MB file.

A real ``guardian restore`` process is SIGKILLed at a random moment while it
brings back a 50 MB file (and, deterministically, right after its temp copy is
written).  The target is always the old content or the new one, never torn,
and keeps its mode; after the next guardian command no ``.guardian-tmp-*``
file is left beside it.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import stat
import subprocess
import time
from pathlib import Path

from tests.conftest import run_cli
from tests.reliability.harness import (
    fsck_problems,
    guardian_argv,
    guardian_env,
    head,
    init_project,
    record,
    temp_files,
    trials,
)

SIZE = 50 * 1024 * 1024
BLOCK = 16 * 1024


def _content(tag: bytes) -> bytes:
    """50 MB that zlib still compresses (so the test stays quick) but no two blocks are equal."""
    block = random.Random(tag).randbytes(BLOCK - 16)
    return b"".join(b"%s%014d" % (tag, i) + block for i in range(SIZE // BLOCK))


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def test_sigkill_during_a_50mb_restore_is_all_or_nothing(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    big = root / "data" / "big.bin"
    big.parent.mkdir()
    versions = {b"AA": _content(b"AA"), b"BB": _content(b"BB")}
    big.write_bytes(versions[b"AA"])
    big.chmod(0o640)
    paths = init_project(root, policy="version: 1\nwatch:\n  max_file_size: 64MB\n")
    snaps = {b"AA": head(paths)}
    big.write_bytes(versions[b"BB"])
    assert run_cli("snapshot", cwd=root).exit_code == 0
    snaps[b"BB"] = head(paths)
    digests = {hashlib.sha256(data).hexdigest(): tag for tag, data in versions.items()}
    del versions
    # One uninterrupted restore to learn how long the window is.
    started = time.monotonic()
    r = subprocess.run(
        guardian_argv("restore", "--at", str(snaps[b"AA"]), "data/big.bin"),
        cwd=root,
        env=guardian_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    duration = time.monotonic() - started
    assert r.returncode == 0, r.stderr
    assert digests[_digest(big)] == b"AA"
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    problems: list[str] = []
    kills = torn = left_after_next = 0
    n = trials(3, 30)
    for trial in range(n):
        current = digests[_digest(big)]
        want = b"BB" if current == b"AA" else b"AA"
        point = rng.random() < 0.2
        env = guardian_env(GUARDIAN_CRASH_AT="restore-after-temp") if point else guardian_env()
        proc = subprocess.Popen(
            guardian_argv("restore", "--at", str(snaps[want]), "data/big.bin"),
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if not point:
            time.sleep(rng.uniform(0.1, duration * 1.1))
            proc.kill()
        _out, err = proc.communicate(timeout=120)
        killed = proc.returncode == -signal.SIGKILL
        kills += int(killed)
        where = f"trial {trial} ({'crash point' if point else 'random kill'})"
        if proc.returncode not in (0, -signal.SIGKILL):
            problems.append(f"{where}: restore exited {proc.returncode}: {err.decode()[-300:]}")
        tag = digests.get(_digest(big))
        if tag is None:
            torn += 1
            problems.append(f"{where}: the target is torn (neither the old nor the new 50 MB)")
        if stat.S_IMODE(big.stat().st_mode) != 0o640:
            problems.append(f"{where}: the mode changed to {oct(big.stat().st_mode)}")
        if fsck_problems(paths) is not None:
            problems.append(f"{where}: git fsck --strict failed")
        # The next guardian command, in process.
        r2 = run_cli("snapshot", cwd=root)
        if r2.exit_code != 0:
            problems.append(f"{where}: the next snapshot failed: {r2.stderr.strip()}")
        left = temp_files(root)
        if left:
            left_after_next += len(left)
            problems.append(f"{where}: {len(left)} temp file(s) left beside the target after the next command")
            for name in left:  # clean up so the next trial starts fresh
                os.unlink(name)
    record(
        "6",
        kill_trials_random=n,
        kill_trial_failures=len({p.split(":")[0] for p in problems}),
        torn_files=torn,
        temp_files_left=left_after_next,
    )
    assert not problems, "\n".join(problems[:20])


def test_temp_file_of_a_killed_restore_is_cleaned_by_the_next_command(tmp_path: Path) -> None:
    """The deterministic form: SIGKILL right after the temp copy is written, then any guardian write."""
    root = tmp_path / "proj"
    paths = init_project(root, {"dir/target.txt": b"good\n" * 1000})
    snap = head(paths)
    assert snap is not None
    (root / "dir" / "target.txt").write_bytes(b"bad\n")
    proc = subprocess.run(
        guardian_argv("restore", "--at", snap, "dir/target.txt"),
        cwd=root,
        env=guardian_env(GUARDIAN_CRASH_AT="restore-after-temp"),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL
    assert temp_files(root), "the crash point did not leave a temp file: the test needs another way in"
    for args in (["snapshot"], ["restore", "--at", snap, "dir/target.txt"]):
        assert run_cli(*args, cwd=root).exit_code == 0
    left = temp_files(root)
    record("6", temp_files_left=len(left), temp_files_cleaned=int(not left))
    assert not left, f"left behind: {left}"
