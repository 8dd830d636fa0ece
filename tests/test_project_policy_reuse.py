"""guardian.project.load_policy_reusing: guardian.yaml parsed once, reused while its bytes stay the same."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from guardian.config import load_policy
from guardian.errors import ConfigError
from guardian.ops.initialize import init_project
from guardian.project import PARSED_POLICY_FILE, Project, load_policy_reusing, policy_from_json, policy_to_json

EVERY_SECTION = """\
version: 1
watch:
  include: [".env.example"]
  exclude: ["build/", "*.log"]
  gitignore: false
  max_file_size: 2MB
validate:
  - paths: ["*.py"]
    checks: [python]
  - paths: ["conf/*.cfg"]
    checks:
      - command: ["true", "{path}"]
        timeout: 5s
suspect:
  shrink_ratio: 0.4
  min_shrink_bytes: 100
protect:
  - paths: [db/, "*.sql"]
    delete: block
    modify: allow
    reason: the database
  - paths: [agents/]
guardrail:
  interval: 10m
retention:
  keep_last: 50
store:
  max_size: 1GB
mirror:
  interval: 1h
  remote: origin
"""


@pytest.fixture
def store(project: Path) -> Path:
    (project / "guardian.yaml").write_text(EVERY_SECTION)
    init_project(project)
    return Project.find(project).paths.store


def test_every_section_reads_back_equal(project: Path, store: Path) -> None:
    policy = load_policy(project / "guardian.yaml")
    assert policy_from_json(json.loads(json.dumps(policy_to_json(policy)))) == policy
    assert policy.validate[1].checks[0].command == ("true", "{path}")


def test_the_second_load_reuses_the_parse_and_a_change_is_parsed_again(project: Path, store: Path) -> None:
    path = (project / "guardian.yaml").resolve()
    first = load_policy_reusing(path, store)
    kept = json.loads((store / PARSED_POLICY_FILE).read_text())
    assert policy_from_json(kept["policy"]) == first == load_policy(path)
    # What is kept is what is returned: a planted parse under the same key is used as is.
    planted = {**kept["policy"], "suspect": {"shrink_ratio": 0.9, "min_shrink_bytes": 1}}
    (store / PARSED_POLICY_FILE).write_text(json.dumps({"key": kept["key"], "policy": planted}))
    assert load_policy_reusing(path, store).suspect.shrink_ratio == 0.9
    # New bytes: parsed again, and kept under the new key.
    path.write_text(EVERY_SECTION.replace("shrink_ratio: 0.4", "shrink_ratio: 0.3"))
    assert load_policy_reusing(path, store).suspect.shrink_ratio == 0.3
    assert json.loads((store / PARSED_POLICY_FILE).read_text())["key"] != kept["key"]


@pytest.mark.parametrize("kept", ["", "{not json", '{"key": 1}', '{"key": "x", "policy": {}}', "[]"])
def test_a_torn_or_foreign_file_is_parsed_again(project: Path, store: Path, kept: str) -> None:
    path = (project / "guardian.yaml").resolve()
    (store / PARSED_POLICY_FILE).write_text(kept)
    assert load_policy_reusing(path, store) == load_policy(path)


def test_a_broken_policy_fails_as_it_always_did(project: Path, store: Path) -> None:
    path = (project / "guardian.yaml").resolve()
    load_policy_reusing(path, store)
    for text in ("version: 1\nprotcet: []\n", "version: [\n", b"\xff\xfe"):
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
        with pytest.raises(ConfigError) as expected:
            load_policy(path)
        with pytest.raises(ConfigError) as reused:
            load_policy_reusing(path, store)
        assert str(reused.value) == str(expected.value)
    path.unlink()
    with pytest.raises(ConfigError, match="no policy file"):
        load_policy_reusing(path, store)
