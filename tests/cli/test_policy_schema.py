"""docs/guardian.schema.json: generated from guardian.config, up to date, and in agreement with the parser."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from guardian.config import parse_policy, presets_dir
from guardian.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "docs" / "guardian.schema.json").read_text(encoding="utf-8"))


def _valid(doc: dict[str, Any]) -> bool:
    return jsonschema.Draft202012Validator(SCHEMA).is_valid(doc)


def _parses(text: str) -> bool:
    try:
        parse_policy(text, "guardian.yaml")
    except ConfigError:
        return False
    return True


def test_the_schema_is_up_to_date() -> None:
    r = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "policy_schema.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (r.returncode, r.stderr) == (0, ""), "run: python scripts/policy_schema.py"
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("preset", sorted(p.name for p in presets_dir().glob("*.yaml")))
def test_every_preset_validates(preset: str) -> None:
    text = (presets_dir() / preset).read_text(encoding="utf-8")
    jsonschema.validate(yaml.safe_load(text), SCHEMA, cls=jsonschema.Draft202012Validator)


SAMPLES = [
    "version: 1\n",
    "version: 1\nwatch:\n",
    "version: 1\nwatch: {max_file_size: 50MB, exclude: ['*.log'], gitignore: false}\n",
    "version: 1\nwatch: {include: 'src/'}\n",
    "version: 1\nstore: {max_size: 2GiB, min_free: 512}\n",
    "version: 1\nguardrail: {interval: 1h30m, repair: true}\n",
    "version: 1\nguardrail: {interval: 300}\n",
    "version: 1\nretention: {keep_all: 48h, hourly: 14d, daily: 90d}\n",
    "version: 1\nsuspect: {shrink_ratio: 0.5, min_shrink_bytes: 512}\n",
    "version: 1\nprotect:\n  - paths: [core/]\n    rollback: block\n    reason: frozen\n",
    "version: 1\nvalidate:\n  - paths: ['*.sh']\n"
    "    checks: [shell, {command: [shellcheck, '{path}'], timeout: 10s}]\n",
    # Refused by both:
    "version: 2\n",
    "watch: {}\n",
    "version: 1\nprotcet: []\n",
    "version: 1\nwatch: {max_file_size: fifty}\n",
    "version: 1\nguardrail: {interval: soon}\n",
    "version: 1\nguardrail: {repair: yes please}\n",
    "version: 1\nsuspect: {shrink_ratio: 2}\n",
    "version: 1\nprotect:\n  - paths: [core/]\n    rollback: maybe\n",
    "version: 1\nprotect:\n  - reason: no paths\n",
    "version: 1\nvalidate:\n  - paths: [x]\n    checks: [pyhton]\n",
    "version: 1\nvalidate:\n  - paths: [x]\n    checks: [{timeout: 5s}]\n",
    "version: 1\nvalidate:\n  - paths: [x]\n    checks: [{command: []}]\n",
]


@pytest.mark.parametrize("text", SAMPLES)
def test_schema_and_parser_agree(text: str) -> None:
    assert _valid(yaml.safe_load(text)) == _parses(text)


@pytest.mark.parametrize(
    ("section", "probe"),
    [
        ("watch", "watch: {zzz: 1}"),
        ("suspect", "suspect: {zzz: 1}"),
        ("guardrail", "guardrail: {zzz: 1}"),
        ("retention", "retention: {zzz: 1}"),
        ("store", "store: {zzz: 1}"),
        ("mirror", "mirror: {zzz: 1}"),
        ("protect", "protect: [{zzz: 1}]"),
        ("validate", "validate: [{zzz: 1}]"),
    ],
)
def test_each_section_has_the_keys_the_parser_allows(section: str, probe: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_policy(f"version: 1\n{probe}\n")
    allowed = re.search(r"allowed keys: (.*)$", str(caught.value))
    assert allowed is not None, str(caught.value)
    shape = SCHEMA["properties"][section]["anyOf"][0]
    if shape["type"] == "array":
        shape = shape["items"]
    assert list(shape["properties"]) == allowed.group(1).split(", ")
    assert shape["additionalProperties"] is False


def test_top_level_keys_match() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_policy("version: 1\nzzz: 1\n")
    allowed = re.search(r"allowed keys: (.*)$", str(caught.value))
    assert allowed is not None
    assert list(SCHEMA["properties"]) == allowed.group(1).split(", ")
    assert SCHEMA["required"] == ["version"]
