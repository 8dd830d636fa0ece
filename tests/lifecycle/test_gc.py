"""Store lifecycle: retention rules, chain rewriting, gc under concurrent capture, size cap, disk full."""

from __future__ import annotations

import errno
import itertools
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from guardian.capture import budget as store_budget
from guardian.config import RetentionSettings
from guardian.errors import OperationFailed
from guardian.lifecycle import gc as lifecycle
from guardian.lifecycle.retention import SnapshotFacts, plan_retention
from guardian.lifecycle.rewrite import rewritten_message, rewritten_to
from guardian.project import Project, ProjectPaths, make_store_dir, write_project_meta
from guardian.query.status import store_report
from guardian.store.repo import ShadowRepo
from guardian.store.trailers import format_message, original_ids, parse_message
from guardian.store.tree import MODE_FILE, Entry
from guardian.util.times import format_size
from guardian.watch.maintenance import Maintenance
from tests.conftest import fsck, run_cli

HOUR = 3600.0
DAY = 86400.0
# 00:30 UTC: no snapshot of the synthetic histories below sits on an hour or day boundary.
NOW = 1_800_000_000 - 1_800_000_000 % 86400 + 1800.0


@pytest.fixture
def no_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    """Synthetic histories of hundreds of commits need no durability; real captures keep theirs."""
    monkeypatch.setattr("guardian.store.refs.sync_store", lambda _git_dir: None)
    monkeypatch.setattr("guardian.store.repo.sync_store", lambda _git_dir: None)
    monkeypatch.setattr("os.fsync", lambda _fd: None)
    for module in ("refs", "packs", "integrity"):
        monkeypatch.setattr(f"guardian.store.{module}.fsync_dir", lambda _path: None)
    monkeypatch.setattr("guardian.events.os.fsync", lambda _fd: None)


def empty_project(root: Path, policy: str = "version: 1\n") -> Project:
    """A project whose store exists but holds no snapshot, so a test can write history with chosen times."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "guardian.yaml").write_text(policy)
    paths = ProjectPaths.for_root(root.resolve())
    make_store_dir(paths.store)
    ShadowRepo.create(paths.repo)
    write_project_meta(paths)
    return Project.find(root)


class History:
    """Writes snapshot commits with chosen timestamps, with the messages the snapshot engine writes."""

    def __init__(self, project: Project) -> None:
        self.repo = project.open_repo()
        self.head = self.repo.head()

    def commit(
        self,
        ts: float,
        files: dict[str, bytes | None],
        verdicts: dict[str, tuple[str, str]] | None = None,
        trigger: str = "watch",
        accepted: tuple[str, ...] = (),
        source: str | None = None,
    ) -> str:
        changes = {
            path: (Entry(self.repo.write_blob(data), MODE_FILE) if data is not None else None)
            for path, data in files.items()
        }
        message = format_message(f"{trigger}: {len(files)} changed", trigger, verdicts or {}, accepted, source)
        self.head = self.repo.commit(changes, message, self.head, ts)
        return self.head


# --------------------------------------------------------------------------- the rules, as a pure function


def _facts(
    i: int,
    ts: float,
    changed: dict[str, str | None],
    invalid: dict[str, tuple[str, str]] | None = None,
    trigger: str = "watch",
    accepted: frozenset[str] = frozenset(),
    originals: tuple[str, ...] = (),
) -> SnapshotFacts:
    return SnapshotFacts(f"{i:040x}", ts, trigger, "", changed, invalid or {}, accepted, (), originals)


def test_retention_over_120_days_keeps_exactly_what_the_rules_say() -> None:
    step = 1200.0  # a snapshot every 20 minutes for 120 days
    count = int(120 * DAY / step)
    times = [NOW - (count - 1 - i) * step for i in range(count)]

    def at(days: float) -> int:
        """The index of the snapshot taken closest to `days` ago."""
        return min(range(count), key=lambda i: abs(times[i] - (NOW - days * DAY)))

    special = {
        "add old.txt": at(110),
        "delete old.txt": at(100),
        "config valid": at(95),
        "config invalid": at(91),
        "notes invalid": at(98),
        "notes accepted": at(97),
        "notes invalid again": at(96.8),
        "restore source": at(100.5),
        "pre-restore": at(96),
        "renamed by an earlier gc": at(99),
    }
    snaps: list[SnapshotFacts] = []
    for i, ts in enumerate(times):
        changed: dict[str, str | None] = {"src/main.py": f"blob{i}"}
        invalid: dict[str, tuple[str, str]] = {}
        trigger = "watch"
        accepted: frozenset[str] = frozenset()
        originals: tuple[str, ...] = ()
        if i == special["add old.txt"]:
            changed["old.txt"] = "old"
        if i == special["delete old.txt"]:
            changed["old.txt"] = None
        if i == special["config valid"]:
            changed["config.json"] = "good"
        if i == special["config invalid"]:
            changed["config.json"] = "broken"
            invalid["config.json"] = ("invalid", "json: Expecting value")
        if i == special["notes invalid"]:
            changed["notes.md"] = "short"
            invalid["notes.md"] = ("suspect", "shrank by 90%")
        if i == special["notes accepted"]:
            accepted = frozenset({"notes.md"})
        if i == special["notes invalid again"]:
            changed["notes.md"] = "shorter"
            invalid["notes.md"] = ("suspect", "shrank by 50%")
        if i == special["pre-restore"]:
            trigger = "pre-restore"
        if i == special["renamed by an earlier gc"]:
            originals = ("ab" * 20,)
        snaps.append(_facts(i, ts, changed, invalid, trigger, accepted, originals))
    referenced = {snaps[special["restore source"]].id, "ab" * 20, "cd" * 20}  # cd..: a long-gone snapshot

    # keep_last=1 (the head alone): these rules are about time; test_clock covers keep_last.
    plan = plan_retention(snaps, RetentionSettings(keep_last=1), NOW, referenced)

    # An independent reading of the rules: windows by age, newest per UTC hour / day.
    ages = [NOW - t for t in times]
    keep_all = {i for i in range(count) if ages[i] < 48 * HOUR}
    hourly: dict[int, int] = {}
    daily: dict[int, int] = {}
    for i in range(count):
        if 48 * HOUR <= ages[i] < 14 * DAY:
            hourly[int(times[i] // HOUR)] = i  # oldest first: the last one seen is the newest
        elif 14 * DAY <= ages[i] < 90 * DAY:
            daily[int(times[i] // DAY)] = i
    expected = keep_all | set(hourly.values()) | set(daily.values())
    expected |= {
        special["delete old.txt"] - 1,  # the last snapshot holding old.txt
        special["config valid"],  # config.json's latest valid version, held by no other kept snapshot
        special["notes accepted"],  # notes.md became valid when accepted
        # (old.txt's latest valid version is also in the snapshot before its deletion: no extra keep)
        special["restore source"],
        special["pre-restore"],
        special["renamed by an earlier gc"],  # an event names it by its old id
    }
    assert {int(k, 16) for k in plan.keep} == expected
    # The same numbers by hand: 48h of 20-minute snapshots; 12 days of hours plus the one
    # straddling the 48h line; 76 days plus the one straddling 14d; six special snapshots.
    assert len(keep_all) == 144
    assert len(hourly) == 12 * 24 + 1
    assert len(daily) == 77
    assert len(plan.keep) == 144 + 289 + 77 + 6
    assert plan.kept_by_reason() == {
        "head": 1,
        "keep_all": 143,
        "hourly": 289,
        "daily": 77,
        "before-delete": 1,
        "latest-valid": 2,
        "restore": 3,
    }
    assert plan.keep[snaps[special["config valid"]].id] == ["latest-valid"]
    assert plan.keep[snaps[special["delete old.txt"] - 1].id] == ["before-delete"]
    assert len(plan.dropped) == count - len(plan.keep)


def test_retention_windows_follow_the_policy_and_keep_the_head() -> None:
    snaps = [_facts(i, NOW - (200 - i) * DAY, {"a": f"b{i}"}) for i in range(200)]
    plan = plan_retention(snaps, RetentionSettings(keep_all=0, hourly=0, daily=10 * DAY, keep_last=1), NOW)
    # The head is 1 day old; daily keeps days 1..9 ago (the head also holds a's latest valid version).
    assert sorted(int(k, 16) for k in plan.keep) == list(range(191, 200))
    assert plan.keep[snaps[-1].id] == ["head", "daily"]
    assert plan_retention([], RetentionSettings(), NOW).keep == {}


def test_rewritten_message_keeps_first_mentioned_and_previous_ids() -> None:
    first, mentioned, stale, previous = "1" * 40, "2" * 40, "3" * 40, "4" * 40
    message = format_message("watch: 1 modified", "watch", {"a.json": ("invalid", "bad")})
    once = rewritten_message(message, first, [], 2, set())
    assert original_ids(once) == (first,)
    assert "Guardian-Folded: 2" in once
    again = rewritten_message(
        once + f"Guardian-Original: {mentioned}\nGuardian-Original: {stale}\n",
        previous,
        ['Guardian-Accepted: "b"'],
        3,
        {mentioned},
    )
    assert original_ids(again) == (first, mentioned, previous)
    assert again.count("Guardian-Folded:") == 1 and "Guardian-Folded: 5" in again
    info = parse_message(again)
    assert info.verdicts == {"a.json": ("invalid", "bad")}
    assert info.accepted == frozenset({"b"})
    assert info.trigger == "watch"


# --------------------------------------------------------------------------- gc on a real store


@pytest.fixture
def old_history(tmp_path: Path, no_fsync: None) -> Iterator[tuple[Project, dict[str, str]]]:
    """120 days of snapshots every 6 hours, with a deletion, a breakage and folded verdicts.

    retention.keep_last is 1 (the head alone), so the time rules decide; test_clock covers keep_last.
    """
    project = empty_project(tmp_path / "proj", "version: 1\nretention:\n  keep_last: 1\n")
    h = History(project)
    marks: dict[str, str] = {}
    for k in range(480, -1, -1):
        ts = NOW - k * 6 * HOUR
        files: dict[str, bytes | None] = {"src/main.py": f"print({k})\n".encode()}
        verdicts: dict[str, tuple[str, str]] = {}
        if k == 4 * 110:
            files["worker.py"] = b"def work():\n    return 1\n"
        if k == 4 * 104:
            files["worker.py"] = b"def work():\n    return 2\n"
            marks["worker valid"] = "pending"
        if k == 4 * 102:
            files["worker.py"] = b"def work(:\n"
            verdicts["worker.py"] = ("invalid", "python: invalid syntax (line 1)")
        if k == 4 * 100:
            files["worker.py"] = None
        if k == 4 * 95:
            marks["restore source"] = "pending"
        head = h.commit(ts, files, verdicts)
        for key, value in list(marks.items()):
            if value == "pending":
                marks[key] = head
        if k == 20:  # five days ago, in the hourly window: three snapshots in one hour
            marks["folded 1"] = h.commit(ts + 600, {"data.json": b"{"}, {"data.json": ("invalid", "json: bad")})
            marks["folded 2"] = h.commit(ts + 900, {"notes.md": b"n"}, {"notes.md": ("suspect", "tiny")})
            marks["folded 3"] = h.commit(ts + 1000, {}, trigger="accept", accepted=("notes.md",))
            head = marks["kept of the hour"] = h.commit(ts + 1200, {"other.txt": b"o"})
    marks["head"] = head
    # A restore event naming a snapshot 95 days old: it must survive although daily stops at 90 days.
    project.events.append(
        "restore", ["src/main.py"], None, "restore", {"sources": {"src/main.py": marks["restore source"]}}
    )
    yield project, marks


def _message(project: Project, commit_id: str) -> str:
    return project.open_repo().commit_record(commit_id).message


def test_gc_thins_rewrites_and_keeps_what_must_survive(old_history: tuple[Project, dict[str, str]]) -> None:
    project, marks = old_history
    paths = project.paths
    with project.reader() as (_repo, catalog):
        assert catalog.snapshot_count() == 485
    result = lifecycle.gc(project, now=NOW)
    assert (result.snapshots, result.kept, result.dropped) == (485, 136, 349)
    assert result.kept_by_reason == {
        "head": 1,
        "keep_all": 7,
        "hourly": 48,  # 48 hours with a snapshot; the hour with five keeps only its newest
        "daily": 77,
        "before-delete": 1,
        "latest-valid": 1,  # worker.py's last valid version (104 days), broken at 102, deleted at 100
        "restore": 1,
    }
    fsck(paths.repo)
    objects = subprocess.run(
        ["git", "--git-dir", str(paths.repo), "count-objects", "-v"], capture_output=True, text=True, check=True
    ).stdout
    assert "count: 0" in objects and "packs: 1" in objects  # everything packed, nothing loose left
    assert result.size_after < result.size_before / 5
    assert not list(paths.store.glob("gc-tmp-*"))

    repo = project.open_repo()
    head = repo.head()
    assert head == result.head_after != marks["head"]
    assert rewritten_to(paths.store, marks["head"][:12]) == [head]
    with project.reader() as (_repo, catalog):
        assert catalog.snapshot_count() == 136
        assert catalog.indexed_head == head
        # The folded invalid verdict is still known, at the snapshot that kept the hour.
        [data] = catalog.versions_of("data.json")
        kept_hour = rewritten_to(paths.store, marks["kept of the hour"])
        assert data.snapshot == kept_hour[0] and (data.verdict, data.reason) == ("invalid", "json: bad")
        [notes] = catalog.versions_of("notes.md")
        assert (notes.verdict, notes.reason) == ("valid", "accepted by user")
        assert catalog.latest_valid("worker.py") is not None
    message = _message(project, kept_hour[0])
    assert "Guardian-Folded: 4" in message  # the regular snapshot of that hour and three more
    assert f"Guardian-Original: {marks['kept of the hour']}" in message
    assert rewritten_to(paths.store, marks["restore source"]) != []

    # The latest valid version of a file deleted 100 days ago comes back.
    r = run_cli("restore", "worker.py", cwd=project.root)
    assert r.exit_code == 0, r.stderr
    assert (project.root / "worker.py").read_bytes() == b"def work():\n    return 2\n"
    events = [e for e in project.events.read() if e.event == "gc"]
    assert events[-1].details["dropped"] == 349 and events[-1].snapshot == head
    state = lifecycle.read_gc_state(project)
    assert state["ok"] is True and state["snapshots_after"] == 136

    # Nothing more to drop: a second gc only packs the restore's snapshots, a third has nothing to do.
    again = lifecycle.gc(project, now=NOW)
    assert (again.dropped, again.head_after) == (0, repo.head())
    assert lifecycle.gc(project, now=NOW).packed_objects == 0


def test_ids_survive_repeated_gcs_and_stay_bounded(old_history: tuple[Project, dict[str, str]]) -> None:
    project, marks = old_history
    lifecycle.gc(project, now=NOW)
    first = rewritten_to(project.paths.store, marks["kept of the hour"])[0]
    project.events.append("restore", [], None, "restore", {"pre_snapshot": first})  # someone names the new id
    lifecycle.gc(project, now=NOW + 20 * DAY)
    second = rewritten_to(project.paths.store, marks["kept of the hour"])[0]
    assert rewritten_to(project.paths.store, first[:10]) == [second]
    lifecycle.gc(project, now=NOW + 40 * DAY)
    third = rewritten_to(project.paths.store, marks["kept of the hour"])[0]
    message = _message(project, third)
    # Its capture id, the id an event named, and the id from just before this gc; not the second one.
    assert original_ids(message) == (marks["kept of the hour"], first, second)
    lifecycle.gc(project, now=NOW + 60 * DAY)
    fourth = rewritten_to(project.paths.store, marks["kept of the hour"])[0]
    assert original_ids(_message(project, fourth)) == (marks["kept of the hour"], first, third)
    fsck(project.paths.repo)


def test_gc_dry_run_changes_nothing_and_says_what_it_would_do(
    old_history: tuple[Project, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    project, marks = old_history
    monkeypatch.setattr(lifecycle, "_clock", lambda: NOW)
    r = run_cli("gc", "--dry-run", cwd=project.root)
    assert r.exit_code == 0, r.stderr
    assert r.stdout.splitlines()[0] == "would drop 349 of 485 snapshot(s), would keep 136:"
    assert "       1  last version before a deletion" in r.stdout.splitlines()
    assert project.open_repo().head() == marks["head"]
    assert not [e for e in project.events.read() if e.event == "gc"]
    r = run_cli("gc", "--dry-run", "--json", "-v", cwd=project.root)
    data = json.loads(r.stdout)
    assert data["dry_run"] is True and len(data["decisions"]) == 485
    assert data["decisions"][-1]["keep"] == ["head", "keep_all"]
    assert data["decisions"][0]["keep"] == []


def test_gc_refuses_while_another_writer_holds_the_lock(old_history: tuple[Project, dict[str, str]]) -> None:
    project, marks = old_history
    with project.writer_lock():
        r = run_cli("gc", cwd=project.root)
    assert r.exit_code == 1
    assert r.stderr == (
        f"guardian: error: the store {project.paths.store} is locked by pid {os.getpid()}; "
        "wait for it to finish or stop it\n"
    )
    assert project.open_repo().head() == marks["head"]


def test_gc_cli_output(old_history: tuple[Project, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    project, _marks = old_history
    monkeypatch.setattr(lifecycle, "_clock", lambda: NOW)
    r = run_cli("gc", cwd=project.root)
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:8] == [
        "dropped 349 of 485 snapshot(s), kept 136:",
        "       1  the head",
        "       7  younger than retention.keep_all",
        "      48  newest of its hour (retention.hourly)",
        "      77  newest of its day (retention.daily)",
        "       1  last version before a deletion",
        "       1  latest valid version of a file",
        "       1  restore/rollback point or source",
    ]
    assert lines[8].startswith("packed ") and lines[9].startswith("store ")


def test_a_failed_gc_leaves_the_store_intact(
    old_history: tuple[Project, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    project, marks = old_history
    cancel = threading.Event()
    cancel.set()  # the watcher stops while its gc runs
    with pytest.raises(lifecycle.GcCancelled) as cancelled:
        lifecycle.gc(project, now=NOW, cancel=cancel)
    assert str(cancelled.value) == "gc was cancelled before it finished; the store is unchanged"
    assert project.open_repo().head() == marks["head"]

    def disk_full(*_args: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ShadowRepo, "write_pack", disk_full)
    with pytest.raises(OSError, match="No space left"):
        lifecycle.gc(project, now=NOW)
    assert project.open_repo().head() == marks["head"]
    assert not list(project.paths.store.glob("gc-tmp-*"))
    fsck(project.paths.repo)
    report = store_report(project)
    assert report.warnings[-1] == "the last gc failed: [Errno 28] No space left on device"
    monkeypatch.undo()
    assert lifecycle.gc(project, now=NOW).dropped == 349
    fsck(project.paths.repo)


# --------------------------------------------------------------------------- capture during gc


def test_capture_keeps_working_during_gc(tmp_path: Path, no_fsync: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from guardian.ops.snapshot import take_snapshot

    project = empty_project(tmp_path / "proj")
    h = History(project)
    for k in range(1000, 0, -1):
        h.commit(NOW - k * 1800, {f"pkg/mod{k % 200}.py": f"x = {k}\n".encode()})
    with project.reader():
        pass  # index it now, so the gc below measures gc and not a first catalog build
    monkeypatch.undo()  # captures below fsync as usual
    done = threading.Event()
    outcome: dict[str, object] = {}

    def run_gc() -> None:
        try:
            outcome["result"] = lifecycle.gc(project, now=NOW)
        except BaseException as exc:  # pragma: no cover - reported below
            outcome["error"] = exc
        finally:
            done.set()

    # The watcher's captures are warm when its gc runs: the process's first capture (compiling the
    # filters, measuring the store, starting the secret scanner's load) is not a stall gc causes.
    (project.root / "live.txt").write_text("before gc\n")
    warm = take_snapshot(project, ["live.txt"], "watch").snapshot
    assert warm is not None
    stalls: list[float] = []
    taken: list[str] = [warm]
    worker = threading.Thread(target=run_gc)
    worker.start()
    for n in itertools.count():
        (project.root / "live.txt").write_text(f"edit {n}\n")
        started = time.monotonic()
        snap = take_snapshot(project, ["live.txt"], "watch")
        stalls.append(time.monotonic() - started)
        assert snap.snapshot is not None
        taken.append(snap.snapshot)
        if done.is_set() and n >= 3:
            break
        time.sleep(0.02)  # a busy watcher: 50 captures a second at most, each after its debounce
    worker.join(30)
    assert "error" not in outcome, outcome
    result = outcome["result"]
    assert isinstance(result, lifecycle.GcResult)
    print(f"\n{len(stalls)} captures during a {result.duration:.2f}s gc; longest stall {max(stalls):.3f}s")
    # A loaded machine stretches every step, gc's own included, so the bound is 1 s or a tenth of
    # gc's run, whichever is longer.  A gc holding the writer lock through one of its long phases
    # (catalog, pack, unlink, prune: measured at 11-30 % of its run each) stalls a capture for longer.
    limit = max(1.0, result.duration / 10)
    assert max(stalls) < limit
    assert result.longest_lock < limit
    fsck(project.paths.repo)
    with project.reader() as (repo, catalog):
        # Every capture survived, replayed onto the new chain or taken after the swap.
        assert len(catalog.versions_of("live.txt")) == len(taken)
        head = repo.head()
        assert head is not None
        entry = repo.entry_at(head, "live.txt")
        assert entry is not None and repo.read_blob(entry.oid) == (project.root / "live.txt").read_bytes()


# --------------------------------------------------------------------------- size cap and disk full


def _policy(max_size: int, min_free: int = 0) -> str:
    return (
        "version: 1\n"
        "protect:\n  - paths: [core/]\n    reason: critical\n"
        f"store:\n  max_size: {max_size}\n  min_free: {min_free}\n"
    )


def test_tiny_cap_gcs_first_then_skips_the_largest_files(project: Path) -> None:
    (project / "guardian.yaml").write_text(_policy(10**9))
    (project / "core").mkdir()
    (project / "core" / "settings.py").write_text("DEBUG = False\n" * 200)
    for i in range(30):
        (project / f"note{i}.txt").write_text(f"note {i}\n")
    assert run_cli("init", cwd=project).exit_code == 0
    proj = Project.find(project)
    (proj.paths.store / "usage.json").unlink(missing_ok=True)  # no size cached by earlier captures
    size = store_budget.measure_usage(proj, store_budget.USAGE_TTL).size  # measured now, and cached for the budget
    # Within 10% of the cap: the budget gcs first, which packs the loose objects and makes room.
    (project / "guardian.yaml").write_text(_policy(size + size // 20))
    # A lower cap weakens the policy in force: it applies once accepted, as a person would.
    assert run_cli("policy", "accept", cwd=project).exit_code == 0
    proj = Project.find(project)
    assert store_budget.measure_usage(proj, store_budget.USAGE_TTL).state == "tight"
    budget = lifecycle.capture_budget_with_room(proj)
    assert [e.details["reason"] for e in proj.events.read() if e.event == "gc"] == ["size"]
    assert budget.usage.state == "ok" and budget("big.bin", 10**8) is None
    fsck(proj.paths.repo)

    # Not enough even after gc (and no second gc within GC_MIN_INTERVAL): large files are skipped.
    size = store_budget.measure_usage(proj, store_budget.USAGE_TTL).size  # as the budget sees it: measured by that gc
    (project / "guardian.yaml").write_text(_policy(size + 8192))
    assert run_cli("policy", "accept", cwd=project).exit_code == 0
    proj = Project.find(project)
    budget = lifecycle.capture_budget_with_room(proj)
    assert budget.usage.state == "tight"
    assert len([e for e in proj.events.read() if e.event == "gc"]) == 1
    assert budget("notes/small.txt", 60 * 1024) is None
    assert budget("core/settings.py", 900 * 1024) is None  # protected and small: still captured
    reason = budget("data/big.bin", 200 * 1024)
    assert reason == (
        f"not captured: the store uses {format_size(budget.usage.size)} of its "
        f"{format_size(size + 8192)} cap (store.max_size); files over 64.0 KB are skipped "
        "until 'guardian gc' or higher store limits make room"
    )

    # Over the cap: only small files, and protected ones up to 1 MB.
    (project / "guardian.yaml").write_text(_policy(size // 2))
    assert run_cli("policy", "accept", cwd=project).exit_code == 0
    proj = Project.find(project)
    budget = store_budget.capture_budget(proj)
    assert budget.usage.state == "over"
    assert budget("a.txt", 64 * 1024) is None and budget("a.txt", 64 * 1024 + 1) is not None
    assert budget("core/db.sqlite", 1024 * 1024) is None and budget("core/db.sqlite", 1024 * 1024 + 1) is not None
    report = store_report(proj)
    [warning] = report.warnings
    assert warning.startswith(f"the store uses {format_size(report.usage.size)} of its {format_size(size // 2)} cap")
    assert warning.endswith(
        "files over 64.0 KB are not captured (protected files up to 1.0 MB are); "
        "see 'guardian events --kind skip', run 'guardian gc' or raise the store limits"
    )
    fsck(proj.paths.repo)


def test_free_space_floor_and_a_truly_full_disk(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from guardian.ops.snapshot import take_snapshot

    gb = 1024**3
    (project / "a.txt").write_text("a\n")
    (project / "guardian.yaml").write_text(_policy(10 * gb, min_free=10 * gb))
    assert run_cli("init", cwd=project).exit_code == 0
    proj = Project.find(project)
    free = {"bytes": 12 * gb}
    monkeypatch.setattr(store_budget, "disk_free", lambda _path: free["bytes"])
    assert store_budget.measure_usage(proj).state == "ok"
    free["bytes"] = 10 * gb + 500 * 1024**2  # "near" is within 10% of store.max_size of the floor
    assert store_budget.measure_usage(proj).state == "tight"
    free["bytes"] = 9 * gb
    budget = store_budget.capture_budget(proj)
    assert budget.usage.state == "over"
    assert budget("big.iso", 10**8) == (
        "not captured: only 9.0 GB is free on the store's disk (store.min_free is 10.0 GB); files over 64.0 KB "
        "are skipped until 'guardian gc' or higher store limits make room"
    )
    free["bytes"] = 1024**2
    budget = store_budget.capture_budget(proj)
    with pytest.raises(OperationFailed) as caught:
        budget("a.txt", 10)
    assert str(caught.value) == (
        "the store's disk is full (1.0 MB free); nothing was captured and the store is unchanged; "
        "free some space and the next snapshot catches up"
    )
    assert caught.value.exit_code == 1
    assert store_report(proj).warnings == [str(caught.value)]
    # Space comes back: the next capture takes what changed meanwhile.
    free["bytes"] = 20 * gb
    (project / "a.txt").write_text("changed while the disk was full\n")
    assert lifecycle.capture_budget_with_room(proj)("a.txt", 40) is None
    assert take_snapshot(proj, None, "watch").snapshot is not None
    fsck(proj.paths.repo)


# --------------------------------------------------------------------------- scheduling


def test_maybe_gc_waits_until_due(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from guardian.ops.snapshot import take_snapshot

    (project / "a.txt").write_text("a\n")
    assert run_cli("init", cwd=project).exit_code == 0
    proj = Project.find(project)
    assert lifecycle.maybe_gc(proj) is None  # the first look starts the clock
    assert lifecycle.read_gc_state(proj)["snapshots_after"] == 1
    for i in range(3):
        (project / "a.txt").write_text(f"a{i}\n")
        take_snapshot(proj, None, "watch")
    assert lifecycle.maybe_gc(proj) is None
    monkeypatch.setattr(lifecycle, "GC_EVERY_SNAPSHOTS", 3)
    result = lifecycle.maybe_gc(proj)
    assert result is not None and result.reason == "snapshots"
    assert lifecycle.maybe_gc(proj) is None
    assert lifecycle.maybe_gc(proj, now=time.time() + lifecycle.GC_EVERY_SECONDS + 1) is None  # nothing new
    (project / "a.txt").write_text("later\n")
    take_snapshot(proj, None, "watch")
    later = lifecycle.maybe_gc(proj, now=time.time() + lifecycle.GC_EVERY_SECONDS + 1)
    assert later is not None and later.reason == "time"
    with proj.writer_lock():
        monkeypatch.setattr(lifecycle, "GC_EVERY_SNAPSHOTS", 0)
        assert lifecycle.maybe_gc(proj) is None  # busy: tried again on the next round, no error


def test_many_packs_make_gc_due(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from guardian.ops.snapshot import take_snapshot

    (project / "a.txt").write_text("a\n")
    assert run_cli("init", cwd=project).exit_code == 0
    proj = Project.find(project)
    assert lifecycle.maybe_gc(proj) is None  # the first look starts the clock
    monkeypatch.setattr(lifecycle, "GC_MAX_PACKS", 3)
    for burst in range(3):  # each burst of 120 new files is written as a pack of its own
        for i in range(120):
            (project / f"b{burst}-{i}.txt").write_text(f"{burst} {i}\n")
        take_snapshot(proj, None, "watch")
    packs = proj.paths.repo / "objects" / "pack"
    assert len(list(packs.glob("*.pack"))) == 3
    result = lifecycle.maybe_gc(proj)
    assert result is not None and result.reason == "packs"
    assert len(list(packs.glob("*.pack"))) == 1
    assert lifecycle.maybe_gc(proj) is None
    fsck(proj.paths.repo)


def test_maintenance_runs_off_the_capture_loop(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (project / "a.txt").write_text("a\n")
    assert run_cli("init", cwd=project).exit_code == 0
    proj = Project.find(project)
    release = threading.Event()
    calls: list[str] = []

    def slow_gc(_project: Project, **_kwargs: object) -> None:
        calls.append("gc")
        release.wait(10)

    monkeypatch.setattr("guardian.watch.maintenance.maybe_gc", slow_gc)
    maintenance = Maintenance(proj, check_every=0.0)
    started = time.monotonic()
    assert maintenance.poll() is True
    assert time.monotonic() - started < 0.1
    assert maintenance.poll() is False  # one round at a time
    assert maintenance.budget("a.txt", 10) is None
    release.set()
    maintenance.close(5)
    assert calls == ["gc"] and not maintenance.busy()

    def broken_gc(_project: Project, **_kwargs: object) -> None:
        raise RuntimeError("simulated")

    monkeypatch.setattr("guardian.watch.maintenance.maybe_gc", broken_gc)
    maintenance = Maintenance(proj, check_every=0.0)
    maintenance.poll()
    maintenance.close(5)
    assert maintenance.last_error == "RuntimeError: simulated"
    assert [e.details["error"] for e in proj.events.read() if e.trigger == "maintenance"] == ["RuntimeError: simulated"]
