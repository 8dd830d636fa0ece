"""Case 2: SIGKILL at every named crash point; every state is all-old or all-new.

guardian kills itself (``GUARDIAN_CRASH_AT=<point>``, see guardian/crash.py) at
each step of the snapshot transaction (blob, tree, commit, ref, event) and of
the restore write (temp file written, renamed).  After each kill:

* the store passes ``git fsck --strict``;
* the snapshot ref is either where it was (all-old) or one commit further and
  that commit holds exactly the new tree (all-new); a restored file is either
  its old content or the restored one, never a mix, and keeps its mode;
* after a restart the ref, the event log and the catalog agree, and the next
  command captures the final state of the work tree (nothing lost).

tests/test_snapshot.py has one trial per snapshot point; this is the campaign:
many trials per point, on a tree that changes shape between trials (adds,
modifications, deletions, exec-bit flips), plus the restore and rollback points.
"""

from __future__ import annotations

import os
import random
import signal
import stat
import subprocess
from pathlib import Path

import pytest

from guardian.util.crash import POINTS
from tests.conftest import run_cli
from tests.reliability.harness import (
    LONG,
    chain,
    expected_tree,
    fsck_problems,
    guardian_argv,
    guardian_env,
    head,
    init_project,
    ledger_problems,
    parent_of,
    record,
    store_leftovers,
    temp_files,
    tree_files,
    trials,
)

SNAPSHOT_POINTS = [p for p in POINTS if p.startswith("snapshot-")]
RESTORE_POINTS = [p for p in POINTS if p.startswith("restore-")]


def _killed_run(root: Path, point: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        guardian_argv(*args),
        cwd=root,
        env=guardian_env(GUARDIAN_CRASH_AT=point),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _mutate(root: Path, rng: random.Random, trial: int) -> None:
    """One trial's worth of change: modify, add, delete and flip the exec bit."""
    (root / "a.txt").write_text(f"a.txt at trial {trial}: {rng.random()}\n")
    folder = root / "d" / f"sub{trial % 3}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"n{trial}.json").write_text(f'{{"trial": {trial}}}\n')
    existing = sorted(p for p in (root / "d").rglob("*.json") if p.name != f"n{trial}.json")
    if existing and rng.random() < 0.6:
        rng.choice(existing).unlink()
    script = root / "run.sh"
    script.chmod(0o755 if script.stat().st_mode & 0o100 == 0 else 0o644)
    if rng.random() < 0.3:
        (root / "big.bin").write_bytes(rng.randbytes(256 * 1024))


@pytest.mark.parametrize("point", SNAPSHOT_POINTS)
def test_snapshot_crash_point_campaign(tmp_path: Path, point: str) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    root = tmp_path / "proj"
    paths = init_project(
        root,
        {"a.txt": b"first\n", "run.sh": b"#!/bin/sh\necho hi\n", "d/sub0/n-1.json": b"{}\n", "big.bin": b"\0" * 10},
    )
    problems: list[str] = []
    fsck_failures = acked_lost = finals_lost = leftovers_seen = 0
    n = trials(4, 50)
    for trial in range(n):
        before = head(paths)
        before_chain = chain(paths)
        old_tree = tree_files(paths)
        _mutate(root, rng, trial)
        new_tree = expected_tree(root)
        proc = _killed_run(root, point, "snapshot")
        where = f"trial {trial} (seed {seed})"
        if proc.returncode != -signal.SIGKILL:
            problems.append(f"{where}: expected SIGKILL at {point}, got {proc.returncode}: {proc.stderr[-300:]}")
            continue
        leftovers_seen += len(store_leftovers(paths))
        after = head(paths)
        if after == before:
            if tree_files(paths) != old_tree:
                problems.append(f"{where}: the ref did not move but its tree changed")
        elif parent_of(paths, after or "") != before:
            problems.append(f"{where}: the ref moved to {after}, whose parent is not the old head {before}")
        elif tree_files(paths) != new_tree:
            problems.append(f"{where}: the new snapshot is not the whole new tree (a partial state)")
        complaint = fsck_problems(paths)
        if complaint:
            fsck_failures += 1
            problems.append(f"{where}: git fsck --strict after the kill: {complaint[:300]}")
        if not set(before_chain) <= set(chain(paths)):
            acked_lost += 1
            problems.append(f"{where}: acknowledged snapshots are no longer reachable")
        # Restart: the next command catches the catalog and the log up with the ref.
        problems.extend(f"{where}: {p}" for p in ledger_problems(paths, root))
        r = run_cli("snapshot", cwd=root)
        if r.exit_code != 0:
            problems.append(f"{where}: the snapshot after the restart failed: {r.stderr.strip()}")
        if tree_files(paths) != new_tree:
            finals_lost += 1
            problems.append(f"{where}: after the restart the latest snapshot is not the work tree")
        if store_leftovers(paths):
            problems.append(f"{where}: left in the store after the restart: {store_leftovers(paths)}")
    record(
        "2",
        kill_trials_crash_point=n,
        kill_trial_failures=len({p.split(":")[0] for p in problems}),
        fsck_failures=fsck_failures,
        acked_snapshots_lost=acked_lost,
        final_states_lost=finals_lost,
        stale_locks_cleaned=leftovers_seen if not store_leftovers(paths) else 0,
    )
    assert not problems, "\n".join(problems[:20])


@pytest.mark.parametrize("point", RESTORE_POINTS)
def test_restore_crash_point_campaign(tmp_path: Path, point: str) -> None:
    root = tmp_path / "proj"
    good = b"".join(b"line %d of the good version\n" % i for i in range(2000))
    target = root / "conf" / "state.txt"
    paths = init_project(root, {"conf/state.txt": good, "other.txt": b"untouched\n"})
    target.chmod(0o640)
    assert run_cli("snapshot", cwd=root).exit_code == 0
    good_snap = head(paths)
    assert good_snap is not None
    problems: list[str] = []
    fsck_failures = finals_lost = temp_left = 0
    n = trials(3, 50)
    for trial in range(n):
        bad = b"clobbered at trial %d\n" % trial
        target.write_bytes(bad)
        before_chain = chain(paths)
        proc = _killed_run(root, point, "restore", "--at", good_snap, "conf/state.txt")
        where = f"trial {trial}"
        if proc.returncode != -signal.SIGKILL:
            problems.append(f"{where}: expected SIGKILL at {point}, got {proc.returncode}: {proc.stderr[-300:]}")
            continue
        content = target.read_bytes()
        if content not in (good, bad):
            problems.append(f"{where}: the target is torn ({len(content)} bytes, neither old nor new)")
        if stat.S_IMODE(target.stat().st_mode) != 0o640:
            problems.append(f"{where}: the mode changed to {oct(target.stat().st_mode)}")
        complaint = fsck_problems(paths)
        if complaint:
            fsck_failures += 1
            problems.append(f"{where}: git fsck --strict after the kill: {complaint[:300]}")
        if not set(before_chain) <= set(chain(paths)):
            problems.append(f"{where}: acknowledged snapshots are no longer reachable")
        # Restart: the same restore again must finish the job.
        r = run_cli("restore", "--at", good_snap, "conf/state.txt", cwd=root)
        if r.exit_code != 0:
            problems.append(f"{where}: the restore after the restart failed: {r.stderr.strip()}")
        if target.read_bytes() != good or stat.S_IMODE(target.stat().st_mode) != 0o640:
            finals_lost += 1
            problems.append(f"{where}: after the restart the target is not the restored version with mode 0640")
        problems.extend(f"{where}: {p}" for p in ledger_problems(paths, root))
        left = temp_files(root)
        if left:
            temp_left += len(left)
            problems.append(f"{where}: temp files left beside the target after the next command: {left}")
            for name in left:  # counted; removed so that the next trial counts only its own
                os.unlink(name)
            if not LONG:
                break  # one trial shows it; the long mode counts them all
        if (root / "other.txt").read_bytes() != b"untouched\n":
            problems.append(f"{where}: a file outside the restore changed")
    record(
        "2",
        kill_trials_crash_point=n,
        kill_trial_failures=len({p.split(":")[0] for p in problems}),
        fsck_failures=fsck_failures,
        final_states_lost=finals_lost,
        temp_files_left=temp_left,
    )
    assert not problems, "\n".join(problems[:20])


def test_rollback_mid_crash_point(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    files = {f"m/f{i}.txt": b"version one of %d\n" % i for i in range(20)}
    paths = init_project(root, files)
    first = head(paths)
    assert first is not None
    for rel in files:
        (root / rel).write_bytes(b"version two\n")
    assert run_cli("snapshot", cwd=root).exit_code == 0
    second_tree = expected_tree(root)
    problems: list[str] = []
    n = trials(3, 50)
    for trial in range(n):
        proc = _killed_run(root, "rollback-mid", "rollback", "--to", first, "--force")
        where = f"trial {trial}"
        if proc.returncode != -signal.SIGKILL:
            problems.append(f"{where}: expected SIGKILL at rollback-mid, got {proc.returncode}: {proc.stderr[-300:]}")
            continue
        for rel, data in files.items():
            content = (root / rel).read_bytes()
            if content not in (data, b"version two\n"):
                problems.append(f"{where}: {rel} is torn")
        complaint = fsck_problems(paths)
        if complaint:
            problems.append(f"{where}: git fsck --strict: {complaint[:300]}")
        r = run_cli("rollback", "--to", first, "--force", cwd=root)
        if r.exit_code != 0:
            problems.append(f"{where}: the rollback after the restart failed: {r.stderr.strip()}")
        if any((root / rel).read_bytes() != data for rel, data in files.items()):
            problems.append(f"{where}: after the restart the tree is not the rolled-back one")
        problems.extend(f"{where}: {p}" for p in ledger_problems(paths, root))
        if temp_files(root):
            problems.append(f"{where}: temp files left: {temp_files(root)}")
        for rel in files:  # back to version two for the next trial
            (root / rel).write_bytes(b"version two\n")
        assert run_cli("snapshot", cwd=root).exit_code == 0
        assert expected_tree(root) == second_tree
    record("2", kill_trials_crash_point=n, kill_trial_failures=len({p.split(":")[0] for p in problems}))
    assert not problems, "\n".join(problems[:20])
