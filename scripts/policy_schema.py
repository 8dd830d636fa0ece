"""Write docs/guardian.schema.json, the JSON Schema of guardian.yaml, from the schema guardian.config declares.

    python scripts/policy_schema.py          # rewrite docs/guardian.schema.json
    python scripts/policy_schema.py --check  # exit 1 if it is out of date (the tests run this)

The sections and their keys are read from guardian.config itself: the top-level keys
(``_TOP_KEYS``), each plain settings section's keys and converters (the ``fields`` that
``_settings`` closes over), and the records (NamedTuples) behind the sections read by hand
(watch, validate, protect).  Each converter maps to one JSON type below; a converter or a
section this script does not know stops it with a message saying what to teach it, so
the schema cannot silently fall behind the code.  Editors use the file through
yaml-language-server: ``# yaml-language-server: $schema=<path or URL of the file>`` as the
first line of guardian.yaml.
"""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
OUTPUT = REPO / "docs" / "guardian.schema.json"
sys.path.insert(0, str(REPO))

from guardian import config  # noqa: E402 - after the path is set, to read this checkout's config


def _anycase(word: str) -> str:
    """'min' -> '[mM][iI][nN]': JSON Schema patterns (ECMA-262) have no case-insensitive flag."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in word)


_NUMBER = r"\d+(\.\d+)?"
_UNITS = "|".join(_anycase(u) for u in ("ms", "min", "s", "m", "h", "d", "w"))
# parse_duration: '300', '5m', '48h', '1h30m' (every part of a compound names its unit).
DURATION_PATTERN = rf"^\s*({_NUMBER}\s*({_UNITS})?|({_NUMBER}\s*({_UNITS})\s*)+)\s*$"
# parse_size: '512', '50MB', '2GiB', '1.5g'.
SIZE_PATTERN = rf"^\s*{_NUMBER}\s*([kKmMgGtT]?[iI]?[bB]?)?\s*$"

PATTERNS = {
    "description": "A gitignore-style pattern, or a list of them.",
    "anyOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "items": {"type": "string", "minLength": 1}},
    ],
}


def _duration(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "anyOf": [{"type": "number", "minimum": 0}, {"type": "string", "pattern": DURATION_PATTERN}],
    }


def _size(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": SIZE_PATTERN}],
    }


ACTION = {"enum": list(config.ACTIONS)}

# Each converter the policy reader may use, by its function's name, as JSON Schema.
_SHAPES: dict[str, Callable[[str], dict[str, Any]]] = {
    "_as_bool": lambda d: {"type": "boolean", "description": d},
    "_as_size": _size,
    "_as_duration": _duration,
    "_as_ratio": lambda d: {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "description": d},
    "_as_nonneg_int": lambda d: {"type": "integer", "minimum": 0, "description": d},
    "_as_positive_int": lambda d: {"type": "integer", "minimum": 1, "description": d},
    "at_least_one": lambda d: {"type": "integer", "minimum": 1, "description": d},
    "_as_action": lambda d: {**ACTION, "description": d},
    "_as_text": lambda d: {"type": "string", "description": d},
}


def _strict(properties: dict[str, Any], required: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False, **extra}
    if required:
        schema["required"] = required
    return schema


def _fields(cls: type[Any]) -> list[str]:
    return list(cls._fields)


def _watch() -> dict[str, Any]:
    defaults = config.WatchSettings()
    shapes = {
        "include": {**PATTERNS, "description": "Capture only paths matching these (empty: everything)."},
        "exclude": {**PATTERNS, "description": "Never capture paths matching these (added to the built-in ones)."},
        "gitignore": {"type": "boolean", "description": "Honour the project's .gitignore files."},
        "max_file_size": _size(f"Larger files are skipped (default {defaults.max_file_size} bytes)."),
    }
    return _strict(_require_all(shapes, _fields(config.WatchSettings), "watch"))


def _validate() -> dict[str, Any]:
    check = {
        "anyOf": [
            {"enum": list(config.BUILTIN_CHECKS), "description": "A built-in check."},
            _strict(
                {
                    "command": {
                        "description": "argv of your own check; {path} is the file (no shell).",
                        "type": "array",
                        "items": {"type": "string", "minLength": 1},
                        "minItems": 1,
                    },
                    "timeout": _duration("How long the command may run (default 10s)."),
                },
                ["command"],
            ),
        ]
    }
    shapes = {"paths": PATTERNS, "checks": {"type": "array", "items": check}}
    rule = _strict(_require_all(shapes, _fields(config.ValidateRule), "validate"), ["paths", "checks"])
    return {"description": "Extra checks per path.", "type": "array", "items": rule}


def _protect() -> dict[str, Any]:
    shapes: dict[str, Any] = {"paths": PATTERNS}
    for op in ("rollback", "modify", "delete", "restore"):
        shapes[op] = {**ACTION, "description": f"What a {op} of these paths may do."}
    shapes["reason"] = {"type": "string", "description": "Shown with every decision about these paths."}
    rule = _strict(_require_all(shapes, _fields(config.ProtectRule), "protect"), ["paths"])
    return {"description": "Protected paths and what each operation may do to them.", "type": "array", "items": rule}


def _require_all(shapes: dict[str, Any], declared: list[str], section: str) -> dict[str, Any]:
    if set(shapes) != set(declared):
        raise SystemExit(
            f"scripts/policy_schema.py: section '{section}' has keys {sorted(declared)} in guardian.config, "
            f"but this script knows {sorted(shapes)}: teach it the difference"
        )
    return shapes  # in the order the reader lists them, which is the order its errors name them


HAND_READ: dict[str, Callable[[], dict[str, Any]]] = {"watch": _watch, "validate": _validate, "protect": _protect}


def _settings_section(name: str, reader: Callable[..., Any]) -> dict[str, Any]:
    closure = inspect.getclosurevars(reader).nonlocals
    fields = closure.get("fields")
    cls = closure.get("cls")
    if not isinstance(fields, dict) or cls is None:
        raise SystemExit(f"scripts/policy_schema.py: section '{name}' is read by hand: add it to HAND_READ")
    defaults = cls()
    properties = {}
    for key, (convert, fix) in fields.items():
        properties[key] = _shape_of(convert, f"{fix[0].upper()}{fix[1:]} (default: {getattr(defaults, key)!r}).")
    return _strict(properties)


def _shape_of(convert: Callable[[Any], Any], description: str) -> dict[str, Any]:
    """The JSON Schema of one converter, or of the known converter a wrapper (a bound, a minimum) calls."""
    base = _known_converter(convert)
    if base is None:
        raise SystemExit(
            f"scripts/policy_schema.py: the converter {convert.__qualname__} is not known to this script "
            "and wraps none that is: add its name to _SHAPES"
        )
    return _SHAPES[base](description)


def _known_converter(convert: Any, depth: int = 0) -> str | None:
    """convert's name if _SHAPES knows it, else the name of the first known converter its closure holds.

    Wrappers add limits (a minimum interval, a bounded timeout) that guardian checks when it
    reads the policy; the schema gives the value's type and form, which is what an editor needs.
    """
    if not callable(convert) or not hasattr(convert, "__code__"):
        return None
    if convert.__name__ in _SHAPES:
        return str(convert.__name__)
    if depth > 3:
        return None
    for value in inspect.getclosurevars(convert).nonlocals.values():
        found = _known_converter(value, depth + 1)
        if found is not None:
            return found
    return None


def build_schema() -> dict[str, Any]:
    properties: dict[str, Any] = {"version": {"const": 1, "description": "The policy format; this guardian reads 1."}}
    for name in config._TOP_KEYS:
        if name == "version":
            continue
        reader = config._SECTION_READERS[name]
        section = HAND_READ[name]() if name in HAND_READ else _settings_section(name, reader)
        # A section left empty ('watch:') keeps the defaults, as the reader does.
        properties[name] = {"anyOf": [section, {"type": "null"}]}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "guardian.yaml",
        "description": (
            "guardian's policy file. Generated by scripts/policy_schema.py from guardian/config.py. "
            "Limits a value must also meet (a minimum interval, a check's longest timeout) are checked "
            "by guardian when it reads the file."
        ),
        **_strict(properties, ["version"]),
    }


def render() -> str:
    return json.dumps(build_schema(), indent=2) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not OUTPUT.is_file() or OUTPUT.read_text(encoding="utf-8") != text:
            print(f"{OUTPUT.relative_to(REPO)} is out of date; run: python scripts/policy_schema.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
