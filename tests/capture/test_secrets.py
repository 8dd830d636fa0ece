"""Secrets in captured content: detection on realistic fixtures, the record and status line, and push redaction.

Issue 12 / seed 004: a Telegram bot token in source was captured into every snapshot with
no warning and copied to the mirror by every push.  These tests capture real files through
the CLI, push to a real bare mirror and read it back with stock git.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from guardian.capture import secret_record, secrets
from guardian.capture.filters import PathFilter
from guardian.capture.secret_record import read_index
from guardian.capture.secrets import find_secrets, is_secret_name, redacted
from guardian.config import WatchSettings
from guardian.lifecycle import gc as lifecycle
from guardian.lifecycle import mirror, mirror_chain
from guardian.project import Project
from tests.capture.secret_corpus import AWS_ID, AWS_SECRET, LOOKALIKES, RSA_BODY, SECRETS, TELEGRAM
from tests.conftest import fsck, git, run_cli

# What detect-secrets (as guardian runs it) cannot see in the fixture set: a URL password with a
# '!' (its basic-auth pattern stops at sub-delimiters) and a base64-encoded Kubernetes secret.
KNOWN_MISSES = {"src/db.go", "k8s/api-secret.yaml"}
# A real SHA-256 digest in a test reads as a high-entropy hex string.
KNOWN_FALSE_ALARMS = {"tests/test_hashing.py"}


# --------------------------------------------------------------------------- detection


def test_detection_on_the_fixture_set() -> None:
    detected = {path for path, (content, _needle) in SECRETS.items() if find_secrets(path, content.encode())}
    assert set(SECRETS) - detected == KNOWN_MISSES
    flagged = {path for path, content in LOOKALIKES.items() if find_secrets(path, content.encode())}
    assert flagged == KNOWN_FALSE_ALARMS
    # The figures docs/secrets.md and docs/reliability.md report.
    assert (len(detected), len(SECRETS), len(flagged), len(LOOKALIKES)) == (17, 19, 1, 15)


@pytest.mark.parametrize(
    ("path", "kind", "line"),
    [
        ("src/telegram/direct-telegram.ts", "Telegram Bot Token", 3),
        ("config/bot.py", "Telegram Bot Token", 3),
        ("deploy/aws_config.ini", "AWS Access Key", 3),
        ("app/settings.py", "AWS Access Key", 3),
        ("deploy/tls.yaml", "Private Key", 3),  # the YAML reader reports the "key: |" line
        ("scripts/bootstrap.sh", "Private Key", 3),
        ("docker-compose.yml", "Secret Keyword", 5),
        ("app/db.py", "Secret Keyword", 3),
        ("src/ai.py", "OpenAI Token", 1),
        ("src/slack.py", "Slack Token", 1),
    ],
)
def test_each_kind_is_named_with_its_line(path: str, kind: str, line: int) -> None:
    found = find_secrets(path, SECRETS[path][0].encode())
    assert (kind, line) in {(f.kind, f.line) for f in found}
    assert "value" not in found[0].to_json()


def test_redacted_copies_hold_no_secret_and_keep_the_rest() -> None:
    for path, (content, needle) in SECRETS.items():
        if path in KNOWN_MISSES:
            continue
        copy = redacted(path, content.encode())
        assert copy is not None, path
        assert needle.encode() not in copy.data, path
        assert not find_secrets(path, copy.data), path
    bot = redacted("config/bot.py", SECRETS["config/bot.py"][0].encode())
    assert bot is not None and not bot.whole
    assert bot.data == SECRETS["config/bot.py"][0].replace(TELEGRAM, secrets.MIRROR_MARK).encode()
    aws = redacted("deploy/aws_config.ini", SECRETS["deploy/aws_config.ini"][0].encode())
    assert aws is not None and AWS_ID.encode() not in aws.data and AWS_SECRET.encode() not in aws.data
    assert b"region = eu-west-1" in aws.data
    key = redacted("deploy/tls.yaml", SECRETS["deploy/tls.yaml"][0].encode())
    assert key is not None and RSA_BODY.encode() not in key.data and b"cert: /etc/tls/cert.pem" in key.data


def test_a_secret_file_by_name_is_replaced_whole() -> None:
    copy = redacted(".env", b"DEBUG=1\nLOG_LEVEL=info\n")
    assert copy is not None and copy.whole and copy.kinds == [secrets.NAMED_KIND]
    assert b"DEBUG" not in copy.data and copy.data.startswith(secrets.MIRROR_MARK.encode())


def test_the_allowlist_pragma_is_honoured() -> None:
    line = f'BOT_TOKEN = "{TELEGRAM}"  # pragma: allowlist secret\n'
    assert find_secrets("config/bot.py", line.encode()) == []


def test_what_is_not_scanned() -> None:
    token = f'TOKEN = "{TELEGRAM}"\n'.encode()
    assert find_secrets("a.py", token) != []
    assert find_secrets("a.py", b"\0" + token) == []  # binary
    assert find_secrets("a.py", b"\xff\xfe" + token) == []  # not UTF-8
    big = b"# filler\n" * (secrets.SCAN_MAX_BYTES // 9) + token
    assert len(big) > secrets.SCAN_MAX_BYTES and find_secrets("a.py", big) == []
    assert find_secrets("a.py", big, limit=4 * secrets.SCAN_MAX_BYTES) != []  # the mirror scans further


def test_the_line_prefilter_finds_what_detect_secrets_scan_file_finds(tmp_path: Path) -> None:
    """The whole-text prefilter is an optimisation only: the library's own scan_file finds the same.

    Both run with guardian's settings; what scan_file finds beyond guardian must be one of
    guardian's three amendments (a digest, a label, an indirect reference: _Detector._kept).
    """
    from detect_secrets.core import scan as ds_scan

    files = {path: content for path, (content, _needle) in SECRETS.items()} | LOOKALIKES
    repo_root = Path(__file__).resolve().parents[2]
    for source in sorted((repo_root / "guardian").rglob("*.py")):
        files[str(source.relative_to(repo_root))] = source.read_text(encoding="utf-8")
    for path, content in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(content, encoding="utf-8")
    find_secrets("warm.py", b"x = 1\n")  # configures detect-secrets the way guardian runs it
    detector = secrets._Detector.instance()
    plugins = {plugin.secret_type: plugin for plugin in detector.plugins}
    os.chdir(tmp_path)
    amended = 0
    for path, content in files.items():
        ours = {(f.kind, f.line) for f in find_secrets(path, content.encode())}
        theirs = {(s.type, s.line_number, s.secret_value) for s in ds_scan.scan_file(path)}
        assert ours <= {(kind, line) for kind, line, _value in theirs}, path
        lines = content.splitlines()
        for kind, line, value in theirs:
            if (kind, line) not in ours:
                assert not detector._kept(plugins[kind], value, lines[line - 1]), (path, kind, line)
                amended += 1
    assert amended >= 2  # the fixture set's integrity digest and password label at least


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n\n",
        "# only a comment\n; and another\n",
        "[server]\npassword = hunter2hunter2\n",
        "\n  # comment\n\n   [indented]\nkey = value\n",
        "; comment\r\n[crlf]\r\ntoken = abcdef0123456789\r\n",
        "\u00a0\n\x0c\n[after odd blanks]\nk = v\n",
        "[a]b\nk = v\n",
        "[]\nk = v\n",
        "key = value before any section\n[late]\nk = v\n",
        "import os\n\nAPI_KEY = 'x'\n",
        '{\n  "password": "hunter2hunter2"\n}\n',
        "[dup]\n[dup]\n",
        "[unterminated\nk = v\n",
    ],
)
@pytest.mark.parametrize("name", ["settings.ini", "notes.md", "app.py", "conf.yaml"])
def test_the_config_reader_shortcut_matches_detect_secrets(text: str, name: str) -> None:
    """_Detector._transformed skips only a config reading that detect-secrets' own would reject."""
    from detect_secrets.transformers import get_transformed_file

    find_secrets("warm.py", b"x = 1\n")
    detector = secrets._Detector.instance()
    for eager in (False, True):
        ours = detector._transformed(secrets._NamedText(text, name), text, eager=eager)
        theirs = get_transformed_file(secrets._NamedText(text, name), use_eager_transformers=eager)
        assert ours == theirs, (name, eager)


# --------------------------------------------------------------------------- secret file names


@pytest.mark.parametrize(
    "rel",
    [
        ".env",
        ".ENV",
        "config/.env.local",
        "credentials.json",
        "gcp/Credentials.JSON",
        ".aws/credentials",
        "home/.aws/credentials",
        ".docker/config.json",
        "ci/.docker/config.json",
        ".kube/config",
        "ops/.kube/config",
        "terraform.tfstate",
        "infra/prod.TFSTATE",
        ".envrc",
        "staging.env",
        "deploy/Prod.Env",
        ".htpasswd",
        "secrets.yaml",
        "charts/Secrets.YML",
        "keys/ID_RSA",
    ],
)
def test_secret_names_are_not_captured_in_any_case(rel: str) -> None:
    keep = PathFilter(Path("/nonexistent"), WatchSettings())
    assert is_secret_name(rel)
    assert not keep(rel)


@pytest.mark.parametrize("rel", ["env.py", "credentials.py", "secrets.py", "config.json", "kube/config", "aws/creds"])
def test_names_that_only_look_like_secrets_are_captured(rel: str) -> None:
    assert not is_secret_name(rel)
    assert PathFilter(Path("/nonexistent"), WatchSettings())(rel)


# --------------------------------------------------------------------------- capture, the record, status


def _bot_project(root: Path) -> Project:
    (root / "config").mkdir(parents=True)
    (root / "config" / "bot.py").write_text(SECRETS["config/bot.py"][0])
    (root / "app.py").write_text("print('hi')\n")
    r = run_cli("init", cwd=root)
    assert r.exit_code == 0, r.stderr
    assert "file(s) queued for the watcher (or 'guardian snapshot')" in r.stdout
    r = run_cli("snapshot", cwd=root)  # nothing changed: it scans what init queued
    assert r.exit_code == 0, r.stderr
    return Project.find(root)


def test_capture_keeps_the_file_records_the_secret_and_status_says_so(project: Path) -> None:
    proj = _bot_project(project)
    head = proj.open_repo().head()
    assert head is not None
    # The user's work is captured as it is.
    assert proj.open_repo().entry_at(head, "config/bot.py") is not None
    [event] = [e for e in proj.events.read() if e.event == "secret"]
    assert event.paths == ["config/bot.py"] and event.snapshot == head
    assert event.details["kinds"] == ["Telegram Bot Token"] and event.details["lines"] == [3]
    index = read_index(proj.paths.store)
    assert list(index) == ["config/bot.py"]
    # The value is never written anywhere but the store's own objects.
    for path in (proj.paths.events, secret_record.index_path(proj.paths.store)):
        assert TELEGRAM not in path.read_text(encoding="utf-8")
    r = run_cli("status", cwd=project)
    assert r.exit_code == 0
    assert (
        "warning: secrets: 1 file(s) hold a secret in stored versions: config/bot.py (Telegram Bot Token); "
        "they are pushed only redacted; 'guardian forget --text SECRET' or 'guardian forget PATH' purges them"
    ) in r.stderr
    data = json.loads(run_cli("status", "--json", cwd=project).stdout)
    assert data["secrets"] == [{"path": "config/bot.py", "kinds": ["Telegram Bot Token"], "versions": 1}]


def test_only_changed_files_are_scanned(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proj = _bot_project(project)
    scanned: list[str] = []
    real = secrets.find_secrets

    def counting(rel: str, data: bytes, limit: int = secrets.SCAN_MAX_BYTES) -> list[secrets.Finding]:
        scanned.append(rel)
        return real(rel, data, limit)

    monkeypatch.setattr(secrets, "find_secrets", counting)
    (project / "app.py").write_text("print('bye')\n")
    assert run_cli("snapshot", cwd=project).exit_code == 0
    assert scanned == ["app.py"]
    assert len([e for e in proj.events.read() if e.event == "secret"]) == 1


def test_a_scanner_failure_never_fails_a_capture(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: object, rel: str, text: str) -> list[secrets.Finding]:
        raise RuntimeError("plugin bug")

    monkeypatch.setattr(secrets._Detector, "scan", broken)
    (project / "a.py").write_text(f'TOKEN = "{TELEGRAM}"\n')
    r = run_cli("init", cwd=project)
    assert r.exit_code == 0, r.stderr
    assert Project.find(project).open_repo().head() is not None


def test_a_watch_capture_never_waits_for_the_scanner_to_load(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from guardian.ops.snapshot import take_snapshot

    proj = _bot_project(project)
    monkeypatch.setattr(secrets._Detector, "_made", None)  # as in a watcher that has not scanned yet
    loads: list[str] = []
    monkeypatch.setattr(secret_record, "warm_up", lambda: loads.append("started"))
    (project / "b.py").write_text(f'TOKEN = "{TELEGRAM}"\n')
    deferred = take_snapshot(proj, ["b.py"], "watch").snapshot
    assert loads == ["started"]
    assert [e.paths for e in proj.events.read() if e.event == "secret"] == [["config/bot.py"]]
    assert secret_record.pending_scans(proj.paths.store) == 1
    secrets._Detector.instance()  # the warm-up thread is done
    (project / "app.py").write_text("print('later')\n")
    take_snapshot(proj, ["app.py"], "watch")
    [late] = [e for e in proj.events.read() if e.event == "secret" and e.paths == ["b.py"]]
    assert late.snapshot == deferred and late.trigger == "watch"
    assert secret_record.pending_scans(proj.paths.store) == 0
    assert "b.py" in read_index(proj.paths.store)


# --------------------------------------------------------------------------- push


@pytest.fixture
def bare_remote(tmp_path: Path) -> Path:
    remote = tmp_path / "mirror.git"
    git("init", "--bare", "--quiet", str(remote), cwd=tmp_path)
    return remote


def _grep_all(git_dir: Path, needle: str, refs: list[str] | None = None) -> str:
    """git grep for needle in every commit the refs (default: all) reach; '' when nothing holds it."""
    revs = git("--git-dir", str(git_dir), "rev-list", *(refs or ["--all"]), cwd=git_dir).stdout.split()
    proc = subprocess.run(
        ["git", "--git-dir", str(git_dir), "grep", "-F", "-l", needle, *revs],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr
    return proc.stdout


def _messages(git_dir: Path) -> str:
    return git("--git-dir", str(git_dir), "log", "--all", "--format=%B", cwd=git_dir).stdout


def test_push_sends_every_version_redacted_to_a_real_mirror(project: Path, bare_remote: Path) -> None:
    detected = {p: c for p, c in SECRETS.items() if p not in KNOWN_MISSES}
    for path, (content, _needle) in detected.items():
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).write_text(content)
    (project / "app.py").write_text("print('hi')\n")
    assert run_cli("init", cwd=project).exit_code == 0
    proj = Project.find(project)
    for i in range(3):  # the token rides along in every later snapshot, as in seed 004 (13 of 13)
        (project / "app.py").write_text(f"print({i})\n")
        assert run_cli("snapshot", "-m", "tweak", cwd=project).exit_code == 0
    assert run_cli("remote", "add", "origin", str(bare_remote), cwd=project).exit_code == 0
    r = run_cli("push", cwd=project)
    assert r.exit_code == 0, r.stderr
    assert (
        f"secrets kept off the mirror: {len(detected)} version(s) of {len(detected)} file(s) pushed redacted: "
    ) in r.stdout
    assert "config/bot.py (Telegram Bot Token)" in r.stdout
    ref = mirror.mirror_ref(proj)
    for _path, (_content, needle) in detected.items():
        assert _grep_all(bare_remote, needle) == "", needle
        assert needle not in _messages(bare_remote)
    # Locally every version is kept as captured.
    assert _grep_all(proj.paths.repo, TELEGRAM) != ""
    # The redacted file keeps the rest of the work; a file with no secret is byte for byte the same.
    bot = git("--git-dir", str(bare_remote), "show", f"{ref}:config/bot.py", cwd=bare_remote).stdout
    assert bot == SECRETS["config/bot.py"][0].replace(TELEGRAM, secrets.MIRROR_MARK)
    app = git("--git-dir", str(bare_remote), "show", f"{ref}:app.py", cwd=bare_remote).stdout
    assert app == "print(2)\n"
    # Same number of snapshots, each naming the local one it copies.
    remote_log = git("--git-dir", str(bare_remote), "log", "--format=%B", ref, cwd=bare_remote).stdout
    local_ids = [c.id for c in proj.open_repo().walk()]
    assert [line.split(": ")[1] for line in remote_log.splitlines() if line.startswith("Guardian-Original")] == (
        local_ids
    )
    assert '\nGuardian-Redacted: "config/bot.py" Telegram Bot Token\n' in remote_log
    fsck(bare_remote)
    # The next push copies only what is new, and the mirror's file stays redacted.
    (project / "app.py").write_text("print('again')\n")
    assert run_cli("snapshot", cwd=project).exit_code == 0
    r = run_cli("push", cwd=project)
    assert r.exit_code == 0, r.stderr
    assert f"its copies of {len(detected)} file(s) stay redacted" in r.stdout
    assert _grep_all(bare_remote, TELEGRAM) == ""
    # After gc rewrote the local chain (and pruned the copies) the whole chain is copied again.
    lifecycle.gc(proj)
    result = mirror.push(proj)
    assert result.ok and result.redacted_versions == len(detected)
    assert _grep_all(bare_remote, TELEGRAM, [ref]) == ""
    fsck(proj.paths.repo)


def test_a_store_with_no_secret_pushes_its_own_chain(project: Path, bare_remote: Path) -> None:
    (project / "a.py").write_text("x = 1\n")
    assert run_cli("init", cwd=project).exit_code == 0
    proj = Project.find(project)
    mirror.add_remote(proj, "origin", str(bare_remote))
    result = mirror.push(proj)
    assert result.pushed == result.head and result.redacted == [] and result.redaction_note() is None
    pushed = git("--git-dir", str(bare_remote), "rev-parse", result.ref, cwd=bare_remote).stdout.strip()
    assert pushed == result.head


def test_an_explicitly_included_env_file_is_captured_and_never_pushed(project: Path, bare_remote: Path) -> None:
    (project / "guardian.yaml").write_text("version: 1\nwatch:\n  include: ['.env', '*.py']\n")
    (project / ".env").write_text("DB_PASSWORD=correct-horse-battery\n")
    (project / "a.py").write_text("x = 1\n")
    assert run_cli("init", cwd=project).exit_code == 0
    assert run_cli("snapshot", cwd=project).exit_code == 0  # scans what init queued
    proj = Project.find(project)
    assert proj.open_repo().entry_at(proj.open_repo().head() or "", ".env") is not None
    [event] = [e for e in proj.events.read() if e.event == "secret"]
    assert event.paths == [".env"] and secrets.NAMED_KIND in event.details["kinds"]
    mirror.add_remote(proj, "origin", str(bare_remote))
    result = mirror.push(proj)
    assert [v["path"] for v in result.redacted] == [".env"] and result.redacted[0]["whole"]
    assert _grep_all(bare_remote, "correct-horse-battery") == ""


def test_push_fails_closed_when_the_scanner_fails(
    project: Path, bare_remote: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proj = _bot_project(project)
    mirror.add_remote(proj, "origin", str(bare_remote))

    def broken(self: object, rel: str, text: str) -> list[secrets.Finding]:
        raise RuntimeError("plugin bug")

    monkeypatch.setattr(secrets._Detector, "scan", broken)
    monkeypatch.setattr(mirror_chain, "_clean", set())  # versions found clean earlier in this process
    result = mirror.push(proj)
    assert result.ok
    assert {v["path"] for v in result.redacted} == {"app.py", "config/bot.py", "guardian.yaml"}
    assert _grep_all(bare_remote, TELEGRAM) == ""
