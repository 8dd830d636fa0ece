"""The records a cold ``history``, ``restore`` or git hook builds, and the sha256 that names a store.

The policy's records, the catalog's rows, ProjectPaths and Identity were frozen dataclasses and
are NamedTuples now, and Project a slotted class (each dataclass cost ~1 ms of generated methods
on import).  So are the store's tree entries, changes and commit records, the validators'
verdicts, the event log's events and a restore's WAL recovery plan (NamedTuples), a commit
message's trailers (a frozen slotted class: its ``dir_perms`` defaults to a new dict), and a
capture's looks and health (mutable slotted classes): with no dataclass left on restore's and
the hooks' paths, neither imports dataclasses and inspect (~10 ms).  These tests pin what the
dataclasses gave: the field names, order and defaults, equality, repr, immutability (or
mutability), the policy's plain-data form written to ``policy.parsed.json``, and the store's
name, now hashed without importing hashlib (OpenSSL, ~5 ms).
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from typing import Any

import pytest

from guardian import config, paths
from guardian.capture import validate
from guardian.capture.health import CaptureHealth
from guardian.capture.lookahead import Look
from guardian.catalog.db import FileRow, NewVersion, SnapshotRow, VersionRow
from guardian.events import Event
from guardian.ops.sqlite_restore import WalRecovery
from guardian.project import Project, ProjectPaths, policy_to_json
from guardian.store.repo import CommitRecord
from guardian.store.trailers import MessageInfo, format_message, parse_message
from guardian.store.tree import MODE_EXEC, MODE_LINK, Entry, TreeChange
from guardian.util.fs import FileState
from guardian.util.identity import Identity

# Each record's fields in order, with their defaults, as the dataclasses declared them.
FIELDS: dict[type[Any], dict[str, Any]] = {
    config.CheckSpec: {"name": None, "command": (), "timeout": 10.0},
    config.ValidateRule: {"paths": None, "checks": None},
    config.ProtectRule: {
        "paths": None,
        "rollback": "force",
        "delete": "force",
        "restore": "allow",
        "reason": "protected",
        "modify": None,
    },
    config.WatchSettings: {"include": (), "exclude": (), "gitignore": True, "max_file_size": 50 * 1024 * 1024},
    config.SuspectSettings: {"shrink_ratio": 0.5, "min_shrink_bytes": 512},
    config.GuardrailSettings: {"interval": 300.0, "repair": False},
    config.RetentionSettings: {
        "keep_all": 48 * 3600.0,
        "hourly": 14 * 86400.0,
        "daily": 90 * 86400.0,
        "keep_last": 200,
    },
    config.StoreSettings: {"max_size": 2 * 1024**3, "min_free": 1024**3},
    config.MirrorSettings: {"interval": 0.0, "remote": ""},
    SnapshotRow: dict.fromkeys(("seq", "id", "ts", "trigger", "summary", "nchanged", "nbad")),
    VersionRow: {
        **dict.fromkeys(
            ("seq", "snapshot", "ts", "trigger", "path", "change", "blob", "mode", "size", "verdict", "reason")
        ),
        "perm": None,
    },
    FileRow: {**dict.fromkeys(("path", "blob", "mode", "size", "mtime_ns", "ctime_ns", "ino")), "perm": None},
    NewVersion: {**dict.fromkeys(("path", "change", "blob", "mode", "size", "verdict", "reason")), "perm": None},
    ProjectPaths: dict.fromkeys(("root", "store")),
    Identity: {"state": None, "project_id": None, "other_store": None, "other_root": None},
    FileState: {"kind": None, "data": b"", "mode": 0, "st": None},
    # The store's, the validators', the event log's and a restore's records: dataclasses on
    # restore's and the git hooks' paths until session 7.
    Entry: dict.fromkeys(("oid", "mode")),
    TreeChange: dict.fromkeys(("path", "old", "new")),
    CommitRecord: dict.fromkeys(("id", "parent", "time", "message")),
    validate.FileVerdict: {"verdict": None, "reason": ""},
    validate._Finding: dict.fromkeys(("verdict", "reason")),
    Event: dict.fromkeys(("ts", "event", "paths", "snapshot", "trigger", "details")),
    WalRecovery: {
        **dict.fromkeys(("path", "wal", "wal_size", "why", "stored", "replayed", "data")),
        "problem": None,
    },
}


@pytest.mark.parametrize("record", list(FIELDS), ids=lambda record: record.__name__)
def test_a_record_keeps_its_fields_defaults_equality_repr_and_immutability(record: type[Any]) -> None:
    fields = FIELDS[record]
    assert record._fields == tuple(fields)
    required = [name for name in fields if name not in record._field_defaults]
    assert {name: record._field_defaults[name] for name in fields if name not in required} == {
        name: fields[name] for name in fields if name not in required
    }
    values = {name: f"v-{name}" for name in fields}
    one = record(**values)
    assert one == record(*values.values()) and hash(one) == hash(record(**values))
    assert one != one._replace(**{next(iter(fields)): "other"})
    assert repr(one) == f"{record.__name__}(" + ", ".join(f"{k}={v!r}" for k, v in values.items()) + ")"
    with pytest.raises(AttributeError):
        one.__setattr__(next(iter(fields)), "changed")
    assert pickle.loads(pickle.dumps(one)) == one
    partial = record(**{name: f"v-{name}" for name in required})
    assert all(getattr(partial, name) == fields[name] for name in fields if name not in required)


def test_the_policy_defaults_are_the_sections_defaults() -> None:
    policy = config.Policy()
    assert config.Policy._fields == (
        "version",
        "watch",
        "validate",
        "suspect",
        "protect",
        "guardrail",
        "retention",
        "store",
        "mirror",
        "source",
    )
    assert policy._replace(source="a") == config.Policy(source="a") and hash(policy) == hash(config.Policy())
    with pytest.raises(AttributeError):
        policy.__setattr__("source", "b")
    assert policy.watch == config.WatchSettings() and policy.suspect == config.SuspectSettings()
    assert policy.guardrail == config.GuardrailSettings() and policy.retention == config.RetentionSettings()
    assert policy.store == config.StoreSettings() and policy.mirror == config.MirrorSettings()
    assert (policy.version, policy.validate, policy.protect, policy.source) == (1, (), (), "<defaults>")
    assert config.ProtectRule(paths=("a",), rollback="block").modify_action == "block"


def test_the_policy_as_plain_data_is_what_asdict_gave() -> None:
    text = """\
version: 1
watch: {include: ["src/"], gitignore: false}
validate:
  - paths: ["*.py"]
    checks: [python, {command: ["true", "{path}"], timeout: 5s}]
protect:
  - paths: [db/]
    modify: allow
mirror: {remote: origin}
"""
    watch = {"include": ("src/",), "exclude": (), "gitignore": False, "max_file_size": 50 * 1024 * 1024}
    checks = (
        {"name": "python", "command": (), "timeout": 10.0},
        {"name": "command", "command": ("true", "{path}"), "timeout": 5.0},
    )
    protect = {
        "paths": ("db/",),
        "rollback": "force",
        "delete": "force",
        "restore": "allow",
        "reason": "protected",
        "modify": "allow",
    }
    expected = {
        "version": 1,
        "watch": watch,
        "validate": ({"paths": ("*.py",), "checks": checks},),
        "suspect": {"shrink_ratio": 0.5, "min_shrink_bytes": 512},
        "protect": (protect,),
        "guardrail": {"interval": 300.0, "repair": False},
        "retention": {"keep_all": 48 * 3600.0, "hourly": 14 * 86400.0, "daily": 90 * 86400.0, "keep_last": 200},
        "store": {"max_size": 2 * 1024**3, "min_free": 1024**3},
        "mirror": {"interval": 0.0, "remote": "origin"},
        "source": "p.yaml",
    }
    plain = policy_to_json(config.parse_policy(text, "p.yaml"))
    assert plain == expected
    assert list(plain) == list(expected) and list(plain["protect"][0]) == list(protect)  # the order json writes
    assert isinstance(plain["watch"], dict) and isinstance(plain["validate"], tuple)


def test_a_project_compares_by_value_stays_mutable_and_unhashable(tmp_path: Path) -> None:
    where = ProjectPaths(root=tmp_path, store=tmp_path / "store")
    one = Project(where, config.Policy())
    assert one == Project(where, config.Policy(), None) and one != Project(where, config.Policy(), "pending")
    assert one != (where, config.Policy(), None)
    assert repr(one) == f"Project(paths={where!r}, policy={config.Policy()!r}, policy_pending=None)"
    one.policy_pending = "why"
    assert one.policy_pending == "why"
    with pytest.raises(TypeError):
        hash(one)
    with pytest.raises(AttributeError):
        one.other = 1  # type: ignore[attr-defined]


def test_an_entry_keeps_its_properties() -> None:
    assert Entry("a" * 40, MODE_EXEC).executable and not Entry("a" * 40, MODE_EXEC).is_link
    assert Entry("a" * 40, MODE_LINK).is_link and not Entry("a" * 40, MODE_LINK).executable


def _message_info(**changed: Any) -> MessageInfo:
    values: dict[str, Any] = {
        "trigger": "manual",
        "verdicts": {"a.py": ("invalid", "python: bad")},
        "accepted": frozenset({"b.py"}),
        "source": "cli",
        "command": None,
        "note": "n",
        "perms": {"a.py": 0o600},
        "dir_perms": {"keys": 0o700},
    }
    return MessageInfo(**{**values, **changed})


def test_message_info_is_frozen_compares_by_value_and_keeps_the_dataclass_repr() -> None:
    info = _message_info()
    assert info.__match_args__ == (
        "trigger",
        "verdicts",
        "accepted",
        "source",
        "command",
        "note",
        "perms",
        "dir_perms",
    )
    assert info == _message_info() and info != _message_info(note="other")
    assert info != tuple(getattr(info, name) for name in info.__match_args__)
    assert repr(info) == (
        "MessageInfo(trigger='manual', verdicts={'a.py': ('invalid', 'python: bad')}, accepted=frozenset({'b.py'}), "
        "source='cli', command=None, note='n', perms={'a.py': 384}, dir_perms={'keys': 448})"
    )
    with pytest.raises(TypeError):
        hash(info)  # the frozen dataclass hashed its fields, and dicts have no hash
    with pytest.raises(AttributeError):
        info.__setattr__("note", "changed")
    with pytest.raises(AttributeError):
        info.__setattr__("other", 1)
    with pytest.raises(AttributeError):
        info.__delattr__("note")
    assert info.note == "n"
    assert pickle.loads(pickle.dumps(info)) == info
    # dir_perms defaults to a new dict for each record, as field(default_factory=dict) did.
    one, two = (MessageInfo("t", {}, frozenset(), None, None, None, {}) for _ in range(2))
    assert one.dir_perms == {} and one.dir_perms is not two.dir_perms
    assert one == two


def test_message_info_reads_back_what_format_message_writes() -> None:
    message = format_message(
        "s", "manual", {"a.py": ("invalid", "bad")}, ["b.py"], "cli", "rm x", "n", {"c": 0o600}, {"d": 0o700}
    )
    assert parse_message(message) == MessageInfo(
        "manual", {"a.py": ("invalid", "bad")}, frozenset({"b.py"}), "cli", "rm x", "n", {"c": 0o600}, {"d": 0o700}
    )


def test_a_look_keeps_its_defaults_compares_by_value_stays_mutable_and_unhashable() -> None:
    look = Look("a.py", None, "file")
    assert look.__match_args__ == ("rel", "row", "kind", "data", "st", "distrust", "why", "oid", "checks")
    assert (look.data, look.st, look.distrust, look.why, look.oid, look.checks) == (b"", None, None, "", "", None)
    assert look == Look("a.py", None, "file", b"", None, None, "", "", None)
    assert look != Look("a.py", None, "file", oid="x") and look != ("a.py", None, "file", b"", None, None, "", "", None)
    assert repr(look) == (
        "Look(rel='a.py', row=None, kind='file', data=b'', st=None, distrust=None, why='', oid='', checks=None)"
    )
    look.checks = (config.CheckSpec("python"),)
    assert look.checks == (config.CheckSpec("python"),) and look != Look("a.py", None, "file")
    with pytest.raises(TypeError):
        hash(look)
    with pytest.raises(AttributeError):
        look.other = 1  # type: ignore[attr-defined]


def test_capture_health_keeps_its_defaults_compares_by_value_stays_mutable_and_unhashable() -> None:
    health = CaptureHealth()
    assert (health.failed_in_a_row, health.last_error, health.problems) == (0, None, {})
    assert health.problems is not CaptureHealth().problems  # a new dict each, as field(default_factory=dict) gave
    problems = {"a": {"kind": "skip", "reason": "r", "ts": 1.0}}
    assert CaptureHealth(1, {"error": "e"}, problems) == CaptureHealth(1, {"error": "e"}, dict(problems))
    assert health != CaptureHealth(1) and health != (0, None, {})
    assert repr(CaptureHealth(2, None, problems)) == (
        "CaptureHealth(failed_in_a_row=2, last_error=None, problems={'a': {'kind': 'skip', 'reason': 'r', 'ts': 1.0}})"
    )
    health.failed_in_a_row += 1
    health.problems = problems
    assert health == CaptureHealth(1, None, problems)
    with pytest.raises(TypeError):
        hash(health)
    with pytest.raises(AttributeError):
        health.other = 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("size", [0, 1, 55, 56, 63, 64, 65, 1000, 256 * 1024 + 3])
def test_the_store_sha256_is_hashlibs(size: int) -> None:
    data = bytes(range(256)) * (size // 256) + os.urandom(size % 256)
    assert paths.sha256_hex(data) == hashlib.sha256(data).hexdigest()
    assert paths._sha256_constructor()(data).hexdigest() == hashlib.sha256(data).hexdigest()


def test_a_store_is_named_as_before(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(paths.ENV_HOME, str(tmp_path / "home"))
    root = tmp_path / "prøject dir"
    expected = hashlib.sha256(os.fsencode(root)).hexdigest()[:12]
    assert paths.store_dir_for(root) == tmp_path / "home" / f"prøject dir-{expected}"
