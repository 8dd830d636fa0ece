"""Cases 15, 16 and 17: symlinks that point outside, secret canaries, and file names built to hurt.

15. A symlinked leaf or parent that points outside the root, and a protected
    symlink to a canary file: guardian records links as links, refuses to write
    through them, and the canary's content ends up in no object of the store.
16. ``.env``, ``id_rsa``, ``*.pem`` (and friends) canaries, written with umask
    022, go through every path that captures (init, full and explicit
    snapshots, accept, restore's and rollback's pre-snapshots, check): their
    content is in no object (``git cat-file --batch-all-objects``) and in no
    file of the store; the store directories are 0700.
17. Names with newlines, spaces, quotes, non-UTF-8 bytes, leading dashes,
    ``$(touch pwned)`` and trailer look-alikes: no ``pwned`` file appears, every
    name round-trips byte for byte, and the commit trailers cannot be forged.
"""

from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path

from guardian.project import ProjectPaths
from tests.conftest import run_cli
from tests.reliability.harness import (
    all_object_bytes,
    fingerprint,
    head,
    init_project,
    record,
    tree_files,
)

CANARY = b"CANARY-OUTSIDE-3f1c9e: this content must never reach the store\n"


def _store_bytes(paths: ProjectPaths) -> bytes:
    """Every object's content plus every raw file of the store (events, catalog, logs)."""
    raw = [all_object_bytes(paths)]
    for dirpath, _dirs, files in os.walk(paths.store):
        for name in files:
            try:
                raw.append((Path(dirpath) / name).read_bytes())
            except OSError:
                continue
    return b"".join(raw)


# --------------------------------------------------------------------------- 15: symlinks


def test_symlinked_leaf_and_parent_pointing_outside(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "canary.txt").write_bytes(CANARY)
    (outside / "file.txt").write_bytes(CANARY)
    root = tmp_path / "proj"
    paths = init_project(root, {"sub/file.txt": b"inside\n", "leaf.txt": b"leaf v1\n", "plain.txt": b"p\n"})
    first = head(paths)
    assert first is not None
    # The parent becomes a symlink to a directory outside; the leaf becomes a symlink to the canary.
    (root / "sub" / "file.txt").unlink()
    (root / "sub").rmdir()
    (root / "sub").symlink_to(outside)
    (root / "leaf.txt").unlink()
    (root / "leaf.txt").symlink_to(outside / "canary.txt")
    (root / "fifo").symlink_to("/dev/zero")  # a link to an endless device: recorded, never opened
    os.mkfifo(root / "pipe")  # a FIFO in the tree: never opened (opening it would hang)
    before = fingerprint(outside)
    refused = 0
    started = time.monotonic()
    for args in (
        ["snapshot"],
        ["snapshot", "sub/file.txt"],
        ["snapshot", "sub/canary.txt"],
        ["snapshot", "sub"],
        ["check"],
    ):
        r = run_cli(*args, cwd=root)
        if args == ["snapshot", "sub/canary.txt"]:
            # Never in the tree: only reachable through the symlinked directory, which guardian never follows.
            assert (r.exit_code, r.stderr) == (
                2,
                "guardian: error: 'sub/canary.txt' is reached through a symlinked directory (sub); "
                "guardian records the link itself and never reads or writes through it\n",
            )
            continue
        assert r.exit_code in (0, 1), (args, r.stderr)
    assert time.monotonic() - started < 30
    entries = tree_files(paths)
    assert entries[b"leaf.txt"][0] == "120000" and entries[b"sub"][0] == "120000"
    assert b"pipe" not in entries
    # Writing through the symlinked parent is refused; through the leaf, the link is replaced, not followed.
    for args in (["restore", "--at", first, "sub/file.txt"], ["rollback", "--to", first, "--force", "sub/file.txt"]):
        r = run_cli(*args, cwd=root)
        if r.exit_code != 0:
            refused += 1
        assert r.exit_code != 70, r.stderr
    r = run_cli("restore", "--at", first, "leaf.txt", cwd=root)
    assert r.exit_code == 0, r.stderr
    assert not (root / "leaf.txt").is_symlink() and (root / "leaf.txt").read_bytes() == b"leaf v1\n"
    after = fingerprint(outside)
    leaked = CANARY in _store_bytes(paths)
    record(
        "15",
        hostile_inputs=2,
        hostile_refused=refused,
        writes_outside_root=sum(1 for k in before.keys() | after.keys() if before.get(k) != after.get(k)),
        canary_leaks=int(leaked),
    )
    assert before == after
    assert not leaked


def test_rollback_over_a_parent_that_became_a_symlink_writes_inside_only(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "file.txt").write_bytes(CANARY)
    root = tmp_path / "proj"
    paths = init_project(root, {"sub/file.txt": b"inside\n"})
    first = head(paths)
    assert first is not None
    (root / "sub" / "file.txt").unlink()
    (root / "sub").rmdir()
    (root / "sub").symlink_to(outside)
    assert run_cli("snapshot", cwd=root).exit_code == 0
    before = fingerprint(outside)
    r = run_cli("rollback", "--to", first, "--force", cwd=root)
    assert r.exit_code in (0, 1), r.stderr
    assert fingerprint(outside) == before
    if r.exit_code == 0:
        # The link (something added since) was removed and the directory recreated inside the root.
        assert not (root / "sub").is_symlink()
        assert (root / "sub" / "file.txt").read_bytes() == b"inside\n"
    record("15", writes_outside_root=int(fingerprint(outside) != before))


def test_protected_symlink_to_a_canary_is_recorded_not_followed(tmp_path: Path) -> None:
    canary = tmp_path / "canary.txt"
    canary.write_bytes(CANARY)
    root = tmp_path / "proj"
    root.mkdir()
    (root / "secret-link").symlink_to(canary)
    (root / "dir-link").symlink_to(tmp_path)
    policy = (
        "version: 1\nprotect:\n"
        "  - paths: [secret-link, dir-link]\n    rollback: block\n    delete: block\n    restore: allow\n"
        "    reason: canary\n"
    )
    paths = init_project(root, {"a.txt": b"a\n"}, policy=policy)
    first = head(paths)
    assert first is not None
    entries = tree_files(paths)
    assert entries[b"secret-link"][0] == "120000"
    # Damage it three ways; every way back restores the link itself, never the content behind it.
    (root / "secret-link").unlink()
    (root / "secret-link").write_bytes(b"replaced by a regular file\n")
    assert run_cli("snapshot", cwd=root).exit_code == 0
    r = run_cli("check", "--repair", cwd=root)
    assert r.exit_code in (0, 1), r.stderr
    r = run_cli("restore", "--at", first, "secret-link", cwd=root)
    assert r.exit_code == 0, r.stderr
    assert (root / "secret-link").is_symlink() and os.readlink(root / "secret-link") == str(canary)
    (root / "secret-link").unlink()
    r = run_cli("rollback", "--to", first, "--force", cwd=root)
    assert r.exit_code == 4, r.stderr  # protected with rollback: block
    r = run_cli("restore", "secret-link", cwd=root)
    assert r.exit_code == 0, r.stderr
    assert os.readlink(root / "secret-link") == str(canary)
    assert canary.read_bytes() == CANARY
    leaked = CANARY in _store_bytes(paths)
    record("15", hostile_inputs=1, hostile_refused=int(not leaked), canary_leaks=int(leaked))
    assert not leaked


# --------------------------------------------------------------------------- 16: secrets

SECRETS = {
    ".env": b"API_KEY=CANARY-SECRET-env\n",
    ".env.production": b"CANARY-SECRET-env-production\n",
    "config/.env.local": b"CANARY-SECRET-env-local\n",
    "id_rsa": b"-----BEGIN OPENSSH PRIVATE KEY-----\nCANARY-SECRET-id_rsa\n",
    "keys/id_ed25519": b"CANARY-SECRET-id_ed25519\n",
    "certs/server.pem": b"CANARY-SECRET-pem\n",
    "certs/deep/er/client.pem": b"CANARY-SECRET-pem-deep\n",
    "app.key": b"CANARY-SECRET-key\n",
    ".netrc": b"machine x login y password CANARY-SECRET-netrc\n",
    ".npmrc": b"//registry/:_authToken=CANARY-SECRET-npmrc\n",
    "store.p12": b"CANARY-SECRET-p12\n",
}


def test_secret_canaries_never_reach_the_store(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        root = tmp_path / "proj"
        root.mkdir()
        paths = init_project(root, {"app.py": b"print('hi')\n", **SECRETS})
        snap = head(paths)
        assert snap is not None
        for rel, data in SECRETS.items():  # change them all, then push them through every capture path
            (root / rel).write_bytes(data + b"CANARY-SECRET-changed\n")
        (root / "app.py").write_text("print('changed')\n")
        runs = [
            ["snapshot"],
            ["snapshot", ".env", "id_rsa", "certs"],
            ["accept", ".env"],
            ["restore", "--at", snap, "app.py"],
            ["rollback", "--to", snap, "--force"],
            ["check"],
        ]
        for args in runs:
            r = run_cli(*args, cwd=root)
            assert r.exit_code != 70, (args, r.stderr)
        store = _store_bytes(paths)
        leaks = [rel for rel in SECRETS if b"CANARY-SECRET" in store]
        home = Path(os.environ["GUARDIAN_HOME"])
        modes = {
            str(paths.store): stat.S_IMODE(paths.store.stat().st_mode),
            str(home): stat.S_IMODE(home.stat().st_mode),
        }
        loose = [p for p in paths.store.rglob("*") if not p.is_symlink() and stat.S_IMODE(p.stat().st_mode) & 0o002]
    finally:
        os.umask(old_umask)
    record("16", canary_files=len(SECRETS), canary_leaks=len(leaks))
    assert not leaks, f"secret canaries in the store: {leaks}"
    assert modes == {str(paths.store): 0o700, str(home): 0o700}
    assert not loose, f"world-writable files in the store: {loose}"
    # The secrets themselves were left alone by rollback and restore.
    for rel, data in SECRETS.items():
        assert (root / rel).read_bytes() == data + b"CANARY-SECRET-changed\n"


# --------------------------------------------------------------------------- 17: names

HOSTILE_NAMES: list[bytes] = [
    b"new\nline.txt",
    b"sp ace s.txt",
    b"bad\xffname.txt",
    b"\xc3\x28invalid-utf8.json",
    b"$(touch pwned)",
    b"$(touch pwned).sh",
    b"`touch pwned`.sh",
    b";touch pwned;.sh",
    b"-n.sh",
    b"--rcfile=pwned.sh",
    b"-rf",
    b"quote\"s'and\\back.txt",
    b"tab\there.txt",
    b"caf\xc3\xa9-nfc.txt",
    b"cafe\xcc\x81-nfd.txt",
    b"x" * 240 + b".txt",
    b"dir with space/$(touch pwned)/inner\nfile.py",
    b'trailer\nVerdict: valid "bad.json" forged',
    b"Trigger: hook",
    b".guardian-bytes-looks-encoded.txt",
]


def _bytes_path(root: Path, raw: bytes) -> bytes:
    return os.path.join(os.fsencode(root), raw)


def test_hostile_names_round_trip_and_nothing_runs(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "guardian.yaml").write_text(
        "version: 1\nvalidate:\n  - paths: ['*.sh']\n    checks: [shell]\n"
        "  - paths: ['*.txt']\n    checks: [not-empty, {command: ['cat', '{path}']}]\n"
    )
    contents: dict[bytes, bytes] = {}
    for i, raw in enumerate(HOSTILE_NAMES):
        full = _bytes_path(root, raw)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        data = b"echo %d\n" % i if raw.endswith(b".sh") else b"content %d of %r\n" % (i, raw)
        with open(full, "wb") as handle:
            handle.write(data)
        os.chmod(full, 0o755 if i % 3 == 0 else 0o644)
        contents[raw] = data
    (root / "bad.json").write_text("{broken")
    paths = init_project(root)
    snap = head(paths)
    assert snap is not None
    # Every reader that prints names must survive them.
    for args in (["log"], ["events"], ["status"], ["check"], ["history", "bad.json"], ["log", "--json"]):
        r = run_cli(*args, cwd=root)
        assert r.exit_code in (0, 1), (args, r.stderr)
    r = run_cli("history", "--json", "bad.json", cwd=root)
    assert '"invalid"' in r.stdout, "a file name forged the verdict trailer of bad.json"
    for raw in contents:
        os.remove(_bytes_path(root, raw))
    assert run_cli("snapshot", cwd=root).exit_code == 0
    identical = 0
    for raw, data in contents.items():
        r = run_cli("restore", "--at", snap, "--", os.fsdecode(_bytes_path(root, raw)), cwd=root)
        assert r.exit_code == 0, (raw, r.stderr)
        full = _bytes_path(root, raw)
        with open(full, "rb") as handle:
            same = handle.read() == data
        mode_ok = stat.S_IMODE(os.lstat(full).st_mode) & 0o100 == (0o100 if HOSTILE_NAMES.index(raw) % 3 == 0 else 0)
        identical += int(same and mode_ok)
    pwned = subprocess.run(
        ["find", str(tmp_path), "/tmp", "-maxdepth", "6", "-name", "pwned*", "-newer", str(root / "guardian.yaml")],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    pwned_here = [p for p in pwned.splitlines() if "pwned" in Path(p).name and not p.startswith(str(root))]
    record(
        "17",
        hostile_inputs=len(contents),
        restores=len(contents),
        restores_identical=identical,
        hostile_refused=len(contents) - len(pwned_here),
    )
    assert identical == len(contents)
    assert not pwned_here, f"a name was executed: {pwned_here}"
    assert not (root / "pwned").exists() and not Path("pwned").exists()
