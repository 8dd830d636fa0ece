from pathlib import Path

from tests.conftest import run_cli


def test_init_and_status(project: Path) -> None:
    (project / "a.txt").write_text("hello\n")
    r = run_cli("init", cwd=project)
    assert r.exit_code == 0, r.stderr
    assert "created" in r.stdout
    r = run_cli("status", "--json", cwd=project)
    assert r.exit_code == 0, r.stderr
