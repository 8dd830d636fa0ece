"""One bad file never stops capture (issue 13).

A file guardian cannot read gets its own ``error`` verdict and an event, and every other
change is still captured.  A directory guardian cannot list is never taken as deleted.
``status`` says how many captures failed in a row and which paths are not captured.

Mode 000 means nothing to root, and CI runs the suite as root: guardian runs here with
CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH dropped (setpriv), as a user would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from guardian.project import ProjectPaths
from tests.reliability.harness import read_blob, record, tree_files

NO_DAC = ["setpriv", "--inh-caps=-dac_override,-dac_read_search", "--bounding-set=-dac_override,-dac_read_search"]

needs_setpriv = pytest.mark.skipif(
    os.geteuid() == 0 and shutil.which("setpriv") is None,
    reason="as root, needs setpriv (util-linux) to drop CAP_DAC_OVERRIDE so mode 000 means something",
)


def guardian(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """guardian as a user without the power to read past permissions."""
    prefix = NO_DAC if os.geteuid() == 0 else []
    return subprocess.run(
        [*prefix, sys.executable, "-m", "guardian", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def events(root: Path, kind: str) -> list[dict[str, object]]:
    out = guardian("events", "--kind", kind, "--json", cwd=root)
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    assert isinstance(found, list)
    return found


WATCH_BATCH = """
import json, sys
from pathlib import Path
from guardian.ops.snapshot import take_snapshot
from guardian.project import Project
result = take_snapshot(Project.find(Path.cwd()), sys.argv[1:], "watch")
print(json.dumps({"files": [f.to_json() for f in result.files], "skipped": result.skipped}))
"""


def watch_batch(root: Path, paths: list[str]) -> dict[str, list[Any]]:
    """Capture these paths the way the watcher does (a batch of paths), without DAC powers."""
    prefix = NO_DAC if os.geteuid() == 0 else []
    proc = subprocess.run(
        [*prefix, sys.executable, "-c", WATCH_BATCH, *paths],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert isinstance(found, dict)
    return found


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "p"
    root.mkdir()
    (root / "guardian.yaml").write_text("version: 1\n")
    (root / "a.txt").write_text("a1\n")
    (root / "secret.txt").write_text("s1\n")
    (root / "priv").mkdir()
    (root / "priv" / "inner.txt").write_text("i1\n")
    yield root
    for path in (root / "secret.txt", root / "priv"):  # let pytest clean up
        if path.exists():
            path.chmod(0o755 if path.is_dir() else 0o644)


def blob_of(root: Path, rel: str) -> bytes | None:
    entry = tree_files(ProjectPaths.for_root(root.resolve())).get(rel.encode())
    return None if entry is None else read_blob(ProjectPaths.for_root(root.resolve()), entry[1])


@needs_setpriv
def test_an_unreadable_file_at_init_is_an_error_verdict_and_the_rest_is_captured(project: Path) -> None:
    (project / "secret.txt").chmod(0)
    init = guardian("init", "--json", cwd=project)
    assert init.returncode == 0, init.stderr
    files = {f["path"]: f for f in json.loads(init.stdout)["snapshot"]["files"]}
    assert files["secret.txt"]["verdict"] == "error"
    assert files["secret.txt"]["reason"] == "cannot read: Permission denied"
    assert blob_of(project, "a.txt") == b"a1\n" and blob_of(project, "priv/inner.txt") == b"i1\n"
    assert blob_of(project, "secret.txt") is None
    verdicts = [e for e in events(project, "verdict") if e["paths"] == ["secret.txt"]]
    assert [e["details"]["verdict"] for e in verdicts] == ["error"]  # type: ignore[index]

    status = json.loads(guardian("status", "--json", cwd=project).stdout)
    assert status["capture"]["skipping"] == 1
    assert status["capture"]["problems"][0]["path"] == "secret.txt"
    assert any("secret.txt (cannot read: Permission denied)" in w for w in status["warnings"])
    record("20", unreadable_trials=1, unreadable_stopped_capture=0)


@needs_setpriv
def test_a_file_that_becomes_unreadable_keeps_its_last_version_and_others_are_captured(project: Path) -> None:
    assert guardian("init", cwd=project).returncode == 0
    (project / "secret.txt").write_text("s2\n")
    (project / "secret.txt").chmod(0)
    (project / "a.txt").write_text("a2\n")
    snap = guardian("snapshot", cwd=project)
    assert snap.returncode == 0, snap.stderr
    assert "  error   secret.txt" in snap.stdout and "ERROR: cannot read: Permission denied" in snap.stdout
    assert blob_of(project, "a.txt") == b"a2\n"
    assert blob_of(project, "secret.txt") == b"s1\n", "the unreadable file lost its last version"

    # Nothing else changed: no snapshot, and the same error is not logged again.
    again = guardian("snapshot", cwd=project)
    assert again.returncode == 0 and "nothing changed" in again.stdout
    assert len([e for e in events(project, "verdict") if e["paths"] == ["secret.txt"]]) == 1

    (project / "secret.txt").chmod(0o644)
    healed = guardian("snapshot", cwd=project)
    assert healed.returncode == 0, healed.stderr
    assert blob_of(project, "secret.txt") == b"s2\n"
    status = json.loads(guardian("status", "--json", cwd=project).stdout)
    assert status["capture"]["skipping"] == 0
    record("20", unreadable_trials=1, unreadable_stopped_capture=0, unreadable_versions_lost=0)


@needs_setpriv
def test_an_unreadable_directory_is_never_taken_as_deleted(project: Path) -> None:
    assert guardian("init", cwd=project).returncode == 0
    (project / "priv").chmod(0)
    (project / "a.txt").write_text("a2\n")
    snap = guardian("snapshot", "--json", cwd=project)
    assert snap.returncode == 0, snap.stderr
    result = json.loads(snap.stdout)
    assert not [f for f in result["files"] if f["change"] == "delete"], result["files"]
    assert {
        "path": "priv",
        "reason": "cannot list this directory: Permission denied; the files under it keep their last versions",
    } in result["skipped"]
    assert blob_of(project, "priv/inner.txt") == b"i1\n"
    skips = [e for e in events(project, "skip") if e["paths"] == ["priv"]]
    assert len(skips) == 1

    # The watcher's way in: a batch naming the directory, or a path under it.
    for paths in (["priv"], ["priv/inner.txt"]):
        batch = watch_batch(project, paths)
        assert not [f for f in batch["files"] if f["change"] == "delete"], batch
        assert [p for p, _why in batch["skipped"]] == paths
    assert blob_of(project, "priv/inner.txt") == b"i1\n"
    status = guardian("status", cwd=project)
    assert "capture:   1 path(s) not captured" in status.stdout
    assert "priv (cannot list this directory: Permission denied" in status.stderr
    record("20", unreadable_dir_trials=1, unreadable_dir_files_deleted=0)


def test_whole_capture_failures_are_counted_in_status_until_one_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from guardian.errors import OperationFailed
    from guardian.ops.snapshot import take_snapshot
    from guardian.project import Project
    from guardian.query.status import status
    from guardian.store.repo import ShadowRepo
    from tests.reliability.harness import init_project

    root = tmp_path / "p"
    init_project(root, {"a.txt": b"a1\n"}, policy="version: 1\n")
    project = Project.find(root)

    def disk_full(self: ShadowRepo, data: bytes) -> str:
        raise OSError(28, "No space left on device")

    real_write_blob, real_write_new_blob = ShadowRepo.write_blob, ShadowRepo.write_new_blob
    monkeypatch.setattr(ShadowRepo, "write_blob", disk_full)
    monkeypatch.setattr(ShadowRepo, "write_new_blob", disk_full)  # a capture's new content
    for n in (1, 2):
        (root / "a.txt").write_text(f"a{n + 1}\n")
        with pytest.raises(OperationFailed):
            take_snapshot(project, None, "manual")
    report = status(project)
    assert report.capture["failed_in_a_row"] == 2
    assert "No space left on device" in report.capture["last_error"]["error"]
    assert any(w.startswith("the last 2 capture(s) failed") for w in report.warnings)

    monkeypatch.setattr(ShadowRepo, "write_blob", real_write_blob)  # not undo(): that also undoes the home
    monkeypatch.setattr(ShadowRepo, "write_new_blob", real_write_new_blob)
    take_snapshot(project, None, "manual")
    report = status(project)
    assert report.capture["failed_in_a_row"] == 0 and report.capture["last_error"] is not None
    assert not any("capture(s) failed" in w for w in report.warnings)
    record("20", whole_capture_failures=2, whole_capture_failures_counted=2)


def test_a_check_that_breaks_is_an_error_verdict_that_restore_never_picks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import guardian.capture.engine as engine
    from guardian.ops.snapshot import take_snapshot
    from guardian.project import Project
    from tests.conftest import run_cli
    from tests.reliability.harness import init_project

    root = tmp_path / "p"
    init_project(root, {"conf.json": b'{"v": 1}\n', "b.txt": b"b1\n"}, policy="version: 1\n")
    project = Project.find(root)
    real = engine.judge_content

    def broken(*args: object, **kwargs: object) -> tuple[str, str]:
        if args[4] == "conf.json":
            raise RuntimeError("checker bug")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(engine, "judge_content", broken)
    (root / "conf.json").write_text('{"v": 2}\n')
    (root / "b.txt").write_text("b2\n")
    result = take_snapshot(project, None, "manual")
    monkeypatch.setattr(engine, "judge_content", real)
    verdicts = {f.path: (f.verdict, f.reason) for f in result.files}
    assert verdicts["conf.json"] == ("error", "could not be checked: RuntimeError: checker bug")
    assert verdicts["b.txt"] == ("valid", "")
    assert blob_of(root, "conf.json") == b'{"v": 2}\n'  # the content is kept

    # The guardrail reports it, but does not replace content only a broken check doubted.
    from guardian.gates.guardrail import run_guardrail

    report = run_guardrail(project, repair=True)
    assert [d.problem for d in report.drift if d.path == "conf.json"] == ["error"]
    assert [p for p, _why in report.not_repaired] == ["conf.json"]
    assert (root / "conf.json").read_text() == '{"v": 2}\n'

    (root / "conf.json").write_text("lost\n")
    restored = run_cli("restore", "conf.json", "--force", cwd=root)
    assert restored.exit_code == 0, restored.stderr
    assert (root / "conf.json").read_text() == '{"v": 1}\n', "restore picked the version no check passed"
    record("20", broken_check_trials=1, broken_check_versions_restored=0)
