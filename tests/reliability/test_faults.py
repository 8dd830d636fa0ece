"""Case 4: ENOSPC, EIO and EFBIG during a snapshot and a restore.

The way SQLite tests its I/O: make the n-th I/O call fail, for n = 1, 2, ...,
until the operation finishes without reaching the fault.  Three ways in:

* ``RLIMIT_FSIZE`` set in the child (SIGXFSZ ignored): every file write past the
  limit gets EFBIG, inside libgit2, SQLite and guardian alike.  Works anywhere.
* the Python seam (``seam/sitecustomize.py`` on the child's PYTHONPATH): the
  n-th ``os.write`` / ``os.fsync`` issued by guardian fails.  Works anywhere.
* libfiu (``fiu-run -x``, Debian package fiu-utils): the n-th ``write``,
  ``pwrite``, ``fsync`` or ``fdatasync`` issued beneath a guardian call fails at
  the libc level, inside libgit2 and SQLite.  Skipped, with the reason, where
  fiu-run is not installed.

After every faulty run: no traceback escapes (exit 0, 1 or 5 with one
``guardian: error:`` line, never 70), the store passes ``git fsck --strict``,
the user's files are untouched (a restore target is old or new, never torn, no
temp file left), and a clean re-run succeeds: a commit that landed despite the
error is recognised (listed, logged, not duplicated) and nothing is lost.
"""

from __future__ import annotations

import itertools
import json
import os
import resource
import shutil
import signal
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from guardian.project import ProjectPaths
from tests.conftest import run_cli
from tests.reliability.harness import (
    LONG,
    chain,
    clean_error,
    expected_tree,
    fsck_problems,
    guardian_argv,
    head,
    init_project,
    ledger_problems,
    record,
    store_git,
    temp_files,
    tree_files,
    tree_state,
)

SEAM_DIR = Path(__file__).parent / "seam"
FIU_RUN = shutil.which("fiu-run")
NO_FIU = "fiu-run is not installed (Debian: apt-get install fiu-utils); the libc-level variants are skipped"
ERRNO_CLASS = {"ENOSPC": "ENOSPC", "EIO": "EIO", "EFBIG": "EFBIG"}
MAX_SWEEP = 150  # a sweep stops by itself once a run no longer reaches the fault


def _payload(n: int, size: int, seed: int) -> bytes:
    """Incompressible content (so blobs stay large on disk), distinct per file and trial."""
    import random

    return random.Random(seed * 1000 + n).randbytes(size)


@dataclass
class Tally:
    fault: str
    injected: int = 0
    handled: int = 0
    escaped: int = 0
    landed: int = 0
    failed_runs: int = 0
    problems: list[str] = field(default_factory=list)

    def record(self) -> None:
        record(
            "4",
            **{
                f"faults_{self.fault}_injected": self.injected,
                f"faults_{self.fault}_handled": self.handled,
                f"faults_{self.fault}_escaped": self.escaped,
            },
            commits_landed_despite_error=self.landed,
            fault_trials=self.injected,
            fault_trial_failures=self.failed_runs,
        )


# --------------------------------------------------------------------------- operations under fault


class Scenario:
    """A project and one operation (snapshot or restore) that can be run again and again."""

    def __init__(self, root: Path, op: str) -> None:
        self.root = root
        self.op = op
        self.trial = 0
        files = {f"f{i}.bin": _payload(i, 96 * 1024, 0) for i in range(3)}
        files["notes/a.txt"] = b"notes\n" * 100
        files["target.dat"] = _payload(99, 300 * 1024, 0)
        self.paths: ProjectPaths = init_project(root, files)
        (root / "target.dat").chmod(0o640)
        assert run_cli("snapshot", cwd=root).exit_code == 0
        self.good = (root / "target.dat").read_bytes()
        snap = head(self.paths)
        assert snap is not None
        self.good_snap = snap

    def prepare(self) -> None:
        """Make the change the next run has to capture (snapshot) or undo (restore)."""
        self.trial += 1
        if self.op == "snapshot":
            for i in range(3):
                (self.root / f"f{i}.bin").write_bytes(_payload(i, 96 * 1024, self.trial))
            (self.root / "notes" / f"n{self.trial}.txt").write_text(f"trial {self.trial}\n")
        elif self.op == "burst":
            # 120 new files: enough objects that the snapshot reaches the store as a pack (store.STAGED_LOOSE_LIMIT).
            burst = self.root / f"burst{self.trial}"
            burst.mkdir()
            for i in range(120):
                (burst / f"b{i}.txt").write_text(f"trial {self.trial} file {i}\n")
        else:
            (self.root / "target.dat").write_bytes(b"clobbered %d\n" % self.trial)

    @property
    def snapshots(self) -> bool:
        return self.op in ("snapshot", "burst")

    def args(self) -> list[str]:
        if self.snapshots:
            return ["snapshot"]
        return ["restore", "--at", self.good_snap, "target.dat"]


def _run_faulty(
    scenario: Scenario, env: dict[str, str], prefix: list[str], preexec: Callable[[], None] | None = None
) -> tuple[subprocess.CompletedProcess[str], int]:
    log = scenario.root.parent / "fault.log"
    log.unlink(missing_ok=True)
    full_env = {**os.environ, **env, "GUARDIAN_FAULT_LOG": str(log)}
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SEAM_DIR), full_env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(
        [*prefix, *guardian_argv(*scenario.args())],
        cwd=scenario.root,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=preexec,
    )
    fired = 0
    if log.exists():
        for line in log.read_text().splitlines():
            fired += int(json.loads(line)["fired"])
    return proc, fired


def _check_run(
    scenario: Scenario,
    tally: Tally,
    where: str,
    run: Callable[[], tuple[subprocess.CompletedProcess[str], int]],
    fired_hint: bool | None = None,
) -> bool:
    """One faulty run and its recovery; returns whether the fault was reached."""
    before = len(tally.problems)
    try:
        return _check_one(scenario, tally, where, run, fired_hint)
    finally:
        tally.failed_runs += int(len(tally.problems) > before)


def _check_one(
    scenario: Scenario,
    tally: Tally,
    where: str,
    run: Callable[[], tuple[subprocess.CompletedProcess[str], int]],
    fired_hint: bool | None,
) -> bool:
    paths, root = scenario.paths, scenario.root
    scenario.prepare()
    before_state = tree_state(root)
    before_chain = chain(paths)
    before_head = head(paths)
    target_before = (root / "target.dat").read_bytes()
    proc, fired = run()
    reached = fired > 0 if fired_hint is None else fired_hint
    if not reached:
        if proc.returncode != 0:
            tally.problems.append(f"{where}: failed without any fault injected ({proc.returncode}): {proc.stderr}")
        return False
    tally.injected += 1
    escaped = proc.returncode not in (0, 1, 5) or "Traceback" in proc.stderr
    message = clean_error(proc.stderr) if proc.returncode != 0 else None
    if escaped or message:
        tally.escaped += 1
        tally.problems.append(f"{where}: exit {proc.returncode}: {message or ''} {proc.stderr.strip()[:300]}")
    else:
        tally.handled += 1
    complaint = fsck_problems(paths)
    if complaint:
        tally.problems.append(f"{where}: git fsck --strict: {complaint[:300]}")
    # The user's files: untouched by a snapshot; for a restore, the target is old or new, never torn.
    after_state = tree_state(root)
    if scenario.snapshots:
        if after_state != before_state:
            tally.problems.append(f"{where}: the snapshot changed the user's files")
    else:
        content = (root / "target.dat").read_bytes()
        if content not in (target_before, scenario.good):
            tally.problems.append(f"{where}: the restore target is torn ({len(content)} bytes)")
        if stat.S_IMODE((root / "target.dat").stat().st_mode) != 0o640:
            tally.problems.append(f"{where}: the restore target lost its mode")
        others = {k: v for k, v in after_state.items() if k != b"target.dat"}
        if others != {k: v for k, v in before_state.items() if k != b"target.dat"}:
            tally.problems.append(f"{where}: the restore changed other files")
    if temp_files(root):
        tally.problems.append(f"{where}: temp files left behind: {temp_files(root)}")
    if not set(before_chain) <= set(chain(paths)):
        tally.problems.append(f"{where}: acknowledged snapshots lost")
    landed = head(paths) != before_head and proc.returncode != 0
    if landed:
        tally.landed += 1
    # Recovery: the same operation, without faults, in process.
    r = run_cli(*scenario.args(), cwd=root)
    if r.exit_code != 0:
        tally.problems.append(f"{where}: the clean re-run failed ({r.exit_code}): {r.stderr.strip()[:300]}")
        return True
    tally.problems.extend(f"{where}: {p}" for p in ledger_problems(paths, root))
    commits = chain(paths)
    trees = [store_git(paths, "rev-parse", f"{c}^{{tree}}").decode().strip() for c in commits[:6]]
    if any(a == b for a, b in itertools.pairwise(trees)):
        tally.problems.append(f"{where}: a snapshot was duplicated (two consecutive commits with the same tree)")
    if scenario.snapshots and tree_files(paths) != expected_tree(root):
        tally.problems.append(f"{where}: after the re-run the latest snapshot is not the work tree")
    if scenario.op == "restore" and (root / "target.dat").read_bytes() != scenario.good:
        tally.problems.append(f"{where}: after the re-run the target is not restored")
    return True


def _sweep_points() -> list[int]:
    """n = 1, 2, 3, ... in the long mode; a spread of early and late points in the short mode."""
    if LONG:  # every call up to 30, then every third one (the late calls are the commit and the log)
        return list(range(1, 31)) + list(range(32, MAX_SWEEP + 1, 3))
    return [1, 3, 8, 21]


def _sweep(
    tmp_path: Path, op: str, fault: str, seam: str, prefix: list[str], extra_env: dict[str, str], once: bool
) -> Tally:
    scenario = Scenario(tmp_path / "proj", op)
    tally = Tally(fault)
    for n in _sweep_points():
        spec = f"{seam}:{n}:{fault}" + (":once" if once else "")
        env = {"GUARDIAN_FAULT": spec, **extra_env}

        def run(env: dict[str, str] = env) -> tuple[subprocess.CompletedProcess[str], int]:
            return _run_faulty(scenario, env, prefix)

        if not _check_run(scenario, tally, f"{spec} {op}", run):
            break  # the operation now finishes before the n-th call: the sweep is complete
        if not LONG and len(tally.problems) > 10:
            break
    return tally


# --------------------------------------------------------------------------- the Python seam (CI-friendly)


@pytest.mark.parametrize("op", ["snapshot", "restore"])
@pytest.mark.parametrize(
    ("seam", "fault", "once"),
    [
        ("py-write", "ENOSPC", False),
        ("py-write", "EIO", True),
        ("py-write", "EFBIG", False),
        ("py-fsync", "EIO", True),
        ("py-fsync", "ENOSPC", False),
        ("py-pwrite", "ENOSPC", False),
    ],
)
def test_python_seam_faults(tmp_path: Path, op: str, seam: str, fault: str, once: bool) -> None:
    tally = _sweep(tmp_path, op, fault, seam, [], {}, once)
    tally.record()
    assert tally.injected, "the sweep never reached a fault: the seam is not wired"
    assert not tally.problems, "\n".join(tally.problems[:15])


# --------------------------------------------------------------------------- RLIMIT_FSIZE (CI-friendly)


def _limit(nbytes: int) -> Callable[[], None]:
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))

    return apply


@pytest.mark.parametrize("op", ["snapshot", "restore"])
def test_rlimit_fsize_efbig(tmp_path: Path, op: str) -> None:
    scenario = Scenario(tmp_path / "proj", op)
    tally = Tally("EFBIG")
    limits = [1, 100, 4096, 32 * 1024, 64 * 1024, 128 * 1024, 200 * 1024, 299 * 1024] if LONG else [1, 64 * 1024]
    for limit in limits:
        # Reached when anything guardian writes (objects, the temp copy, the catalog) passes the limit.
        def run(limit: int = limit) -> tuple[subprocess.CompletedProcess[str], int]:
            return _run_faulty(scenario, {}, [], _limit(limit))

        _check_run(scenario, tally, f"RLIMIT_FSIZE={limit} {op}", run, fired_hint=True)
    tally.record()
    assert not tally.problems, "\n".join(tally.problems[:15])


# --------------------------------------------------------------------------- a snapshot written as a pack


@pytest.mark.parametrize(
    ("seam", "fault", "once"),
    [("py-fsync", "EIO", True), ("py-fsync", "ENOSPC", False), ("py-write", "ENOSPC", False)],
)
def test_faults_while_a_burst_is_written_as_a_pack(tmp_path: Path, seam: str, fault: str, once: bool) -> None:
    """A burst goes to the store as one pack (fsynced file by file, then renamed in): a fault anywhere
    there must leave the old snapshot, no half-installed pack and no work directory behind."""
    tally = _sweep(tmp_path, "burst", fault, seam, [], {}, once)
    tally.record()
    assert tally.injected, "the sweep never reached a fault: the seam is not wired"
    assert not tally.problems, "\n".join(tally.problems[:15])
    objects = ProjectPaths.for_root((tmp_path / "proj").resolve()).repo / "objects"
    assert [p.name for p in objects.iterdir() if p.name.startswith(".guardian-tmp-")] == []


def test_rlimit_fsize_while_a_burst_is_written_as_a_pack(tmp_path: Path) -> None:
    scenario = Scenario(tmp_path / "proj", "burst")
    tally = Tally("EFBIG")
    for limit in [1, 2048, 8192] if not LONG else [1, 512, 2048, 4096, 8192, 16384]:
        # libgit2's pack builder writes the pack and its index in C: only the kernel's limit reaches it.
        def run(limit: int = limit) -> tuple[subprocess.CompletedProcess[str], int]:
            return _run_faulty(scenario, {}, [], _limit(limit))

        _check_run(scenario, tally, f"RLIMIT_FSIZE={limit} burst", run, fired_hint=True)
    tally.record()
    assert not tally.problems, "\n".join(tally.problems[:15])
    leftovers = [p.name for p in (scenario.paths.repo / "objects").iterdir() if p.name.startswith(".guardian-tmp-")]
    assert leftovers == []


# --------------------------------------------------------------------------- libfiu (libc level, optional)


@pytest.mark.skipif(FIU_RUN is None, reason=NO_FIU)
@pytest.mark.parametrize("op", ["snapshot", "restore"])
@pytest.mark.parametrize(
    ("seam", "fault", "once", "fsync_mode"),
    [
        ("fiu-write", "ENOSPC", False, "batch"),
        ("fiu-write", "EIO", True, "batch"),
        ("fiu-pwrite", "ENOSPC", False, "batch"),
        ("fiu-pwrite", "EIO", True, "batch"),
        ("fiu-fsync", "EIO", True, "object"),
        ("fiu-fdatasync", "EIO", True, "batch"),
    ],
)
def test_libfiu_faults(tmp_path: Path, op: str, seam: str, fault: str, once: bool, fsync_mode: str) -> None:
    assert FIU_RUN is not None
    tally = _sweep(tmp_path, op, fault, seam, [FIU_RUN, "-x"], {"GUARDIAN_FSYNC": fsync_mode}, once)
    tally.record()
    assert tally.injected, "the sweep never reached a fault: libfiu is not wired"
    assert not tally.problems, "\n".join(tally.problems[:15])


# --------------------------------------------------------------------------- focused regressions


def test_efbig_while_writing_a_blob_is_a_clean_error(tmp_path: Path) -> None:
    """libgit2 reports a failed object write as a GitError; it must become a one-line error, exit 1."""
    scenario = Scenario(tmp_path / "proj", "snapshot")
    scenario.prepare()
    proc, _ = _run_faulty(scenario, {}, [], _limit(64 * 1024))
    assert proc.returncode == 1, proc.stderr
    assert clean_error(proc.stderr) is None, proc.stderr
    assert fsck_problems(scenario.paths) is None


def test_failing_pid_write_of_the_writer_lock_is_a_clean_error(tmp_path: Path) -> None:
    """The writer lock's pid write (os.pwrite) happens before any other I/O; its failure must not escape."""
    scenario = Scenario(tmp_path / "proj", "snapshot")
    scenario.prepare()
    proc, fired = _run_faulty(scenario, {"GUARDIAN_FAULT": "py-pwrite:1:ENOSPC"}, [])
    assert fired
    assert proc.returncode == 1, proc.stderr
    assert clean_error(proc.stderr) is None, proc.stderr


def test_efbig_while_writing_the_restored_file_is_a_clean_error(tmp_path: Path) -> None:
    """An OSError from writing the temp copy must become a one-line error, exit 1; the target stays as it was."""
    scenario = Scenario(tmp_path / "proj", "restore")
    scenario.prepare()
    before = (scenario.root / "target.dat").read_bytes()
    proc, _ = _run_faulty(scenario, {}, [], _limit(200 * 1024))
    assert proc.returncode == 1, proc.stderr
    assert clean_error(proc.stderr) is None, proc.stderr
    assert (scenario.root / "target.dat").read_bytes() == before
    assert not temp_files(scenario.root)


def test_eio_while_installing_a_staged_pack_is_a_clean_error(tmp_path: Path) -> None:
    """The first fsync of a burst's snapshot is the staged pack's, just before it moves into objects/pack."""
    scenario = Scenario(tmp_path / "proj", "burst")
    before = head(scenario.paths)
    scenario.prepare()
    proc, fired = _run_faulty(scenario, {"GUARDIAN_FAULT": "py-fsync:1:EIO:once"}, [])
    assert fired
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == (
        f"guardian: error: cannot write to the store {scenario.paths.repo}: [Errno 5] Input/output error; "
        "check free space and permissions\n"
    )
    assert head(scenario.paths) == before
    objects = scenario.paths.repo / "objects"
    assert [p.name for p in objects.iterdir() if p.name.startswith(".guardian-tmp-")] == []
    assert list((objects / "pack").glob("*.pack")) == []  # Scenario's history is small: all loose
    assert fsck_problems(scenario.paths) is None
    # Without the fault, the same burst is captured.
    r = run_cli("snapshot", cwd=scenario.root)
    assert r.exit_code == 0, r.stderr
    assert len(list((objects / "pack").glob("*.pack"))) == 1
