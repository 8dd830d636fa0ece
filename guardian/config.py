"""The policy file, ``guardian.yaml``: its schema, defaults, presets and errors.

The schema is declared once, here.  Loading walks the YAML *node* tree (not the plain data) so that
every error names the file, line, column and key path.  Unknown keys are errors with a "did you mean"
hint, because a typo such as ``protcet:`` silently protecting nothing is the worst failure a policy can have.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from guardian.errors import ConfigError
from guardian.paths import POLICY_FILENAME
from guardian.util.bounds import at_least_one, bounded, check_timeout, guardrail_interval, mirror_interval
from guardian.util.times import parse_duration

if TYPE_CHECKING:
    import yaml
else:
    yaml = None  # PyYAML (~15 ms of imports): parse_policy imports it

PRESETS_DIR = Path(__file__).resolve().parent.parent / "policies"
PACKAGED_PRESETS_DIR = Path(__file__).resolve().parent / "presets"
MAX_POLICY_BYTES = 256 * 1024
MAX_POLICY_DEPTH = 64  # nesting of lists and mappings; yaml.compose recurses once per level

Action = Literal["allow", "force", "block"]
ACTIONS: tuple[str, ...] = ("allow", "force", "block")
BUILTIN_CHECKS: tuple[str, ...] = (
    "python",
    "json",
    "yaml",
    "toml",
    "sqlite",
    "shell",
    "not-empty",
    "no-conflict-markers",
)


# The policy and its records are NamedTuples, not frozen dataclasses: the same fields, defaults, equality,
# hash, repr and immutability, without ~1 ms of generated methods each on every import (history,
# restore and every git hook read the policy).  ``x._replace(a=b)`` is what ``dataclasses.replace`` was.


class CheckSpec(NamedTuple):
    """One validator: a built-in by name, or the user's own command."""

    name: str
    command: tuple[str, ...] = ()
    timeout: float = 10.0


class ValidateRule(NamedTuple):
    paths: tuple[str, ...]
    checks: tuple[CheckSpec, ...]


class ProtectRule(NamedTuple):
    """One ``protect:`` rule: what each operation may do to its paths.

    ``modify`` governs in-place edits of an existing file (the agent gate's
    Write/Edit tools, ``sed -i``, ``>``, ``cp`` onto it).  None means the rule
    does not set it and edits follow ``rollback``, as they did before ``modify``
    existed; :attr:`modify_action` is the action that applies.
    """

    paths: tuple[str, ...]
    rollback: Action = "force"
    delete: Action = "force"
    restore: Action = "allow"
    reason: str = "protected"
    modify: Action | None = None

    @property
    def modify_action(self) -> Action:
        """The action for an in-place edit: ``modify`` when set, else ``rollback``."""
        return self.rollback if self.modify is None else self.modify


class WatchSettings(NamedTuple):
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    gitignore: bool = True
    max_file_size: int = 50 * 1024 * 1024


class SuspectSettings(NamedTuple):
    shrink_ratio: float = 0.5
    min_shrink_bytes: int = 512


class GuardrailSettings(NamedTuple):
    interval: float = 300.0
    repair: bool = False


class RetentionSettings(NamedTuple):
    keep_all: float = 48 * 3600.0
    hourly: float = 14 * 86400.0
    daily: float = 90 * 86400.0
    keep_last: int = 200  # the newest snapshots kept whatever the clock says (a jump can age them all)


class StoreSettings(NamedTuple):
    max_size: int = 2 * 1024**3
    min_free: int = 1024**3


class MirrorSettings(NamedTuple):
    interval: float = 0.0  # seconds between pushes; 0 turns the periodic push off
    remote: str = ""


# guardian.yaml guards the guard: a rollback, an edit (an agent rewriting its own policy) or a
# delete of the policy itself needs --force.  ``modify`` is spelled out, not left to follow
# ``rollback``, so that editing the policy stays gated whatever happens to the rollback action.
# Strictest-wins means a user's ``modify: allow`` on "**" cannot loosen it.
POLICY_FILE_RULE = ProtectRule(
    paths=(POLICY_FILENAME,),
    rollback="force",
    delete="force",
    restore="allow",
    reason="the guardian policy file",
    modify="force",
)


class Policy(NamedTuple):
    version: int = 1
    watch: WatchSettings = WatchSettings()  # one shared default each: a record cannot be changed
    validate: tuple[ValidateRule, ...] = ()
    suspect: SuspectSettings = SuspectSettings()
    protect: tuple[ProtectRule, ...] = ()
    guardrail: GuardrailSettings = GuardrailSettings()
    retention: RetentionSettings = RetentionSettings()
    store: StoreSettings = StoreSettings()
    mirror: MirrorSettings = MirrorSettings()
    source: str = "<defaults>"

    @property
    def protect_rules(self) -> tuple[ProtectRule, ...]:
        """The user's rules plus the built-in rule that protects guardian.yaml."""
        return (*self.protect, POLICY_FILE_RULE)


# --------------------------------------------------------------------------- parsing helpers

_SIZE = r"(?i)^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B?)?\s*$"  # compiled by re on first use, not on import
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
# parse_policy's last (text, Policy): a text parses the same bar its source, and init reads one text 4 times.
_last_parse: tuple[str, Policy] | None = None


def parse_size(text: str | int) -> int:
    """'50MB', '2GB', '512' -> bytes (binary multiples, as du and ls -h use)."""
    if isinstance(text, int):
        return text
    match = re.match(_SIZE, text)
    if not match:
        raise ValueError(f"not a size: {text!r} (use e.g. 512, 50MB, 2GB)")
    unit = (match.group(2) or "").lower().replace("i", "").rstrip("b") or ""
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


# --------------------------------------------------------------------------- node walking


class _Ctx:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, node: yaml.Node | None, keypath: str, problem: str, fix: str) -> ConfigError:
        where = self.source
        if node is not None:
            where += f":{node.start_mark.line + 1}:{node.start_mark.column + 1}"
        key = f" {keypath}:" if keypath else ""
        return ConfigError(f"{where}:{key} {problem}; {fix}")


def _scalar(ctx: _Ctx, node: yaml.Node, keypath: str) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise ctx.fail(node, keypath, f"expected a single value, got a {_kind(node)}", "write a plain value")
    try:
        return yaml.safe_load(yaml.serialize(node))
    except yaml.YAMLError:  # e.g. ConstructorError for a tag such as !secret
        raise ctx.fail(node, keypath, f"unsupported YAML tag {node.tag}", "remove the tag") from None


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "mapping"
    if isinstance(node, yaml.SequenceNode):
        return "list"
    return "value"


def _mapping(
    ctx: _Ctx, node: yaml.Node, keypath: str, allowed: Sequence[str]
) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        raise ctx.fail(node, keypath, f"expected a mapping, got a {_kind(node)}", "write 'key: value' lines")
    out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for key_node, value_node in node.value:
        key = _scalar(ctx, key_node, keypath)
        if not isinstance(key, str):
            raise ctx.fail(key_node, keypath, f"keys must be text, got {key!r}", "quote the key")
        sub = f"{keypath}.{key}" if keypath else key
        if key not in allowed:
            from difflib import get_close_matches  # only on this error path
            close = get_close_matches(key, allowed, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"allowed keys: {', '.join(allowed)}"
            raise ctx.fail(key_node, sub, f"unknown key '{key}'", hint)
        if key in out:
            raise ctx.fail(key_node, sub, f"key '{key}' appears twice", "keep one of them")
        out[key] = (key_node, value_node)
    return out


def _str_list(ctx: _Ctx, node: yaml.Node, keypath: str, *, patterns: bool = True) -> tuple[str, ...]:
    if isinstance(node, yaml.ScalarNode):
        value = _scalar(ctx, node, keypath)
        if isinstance(value, str):
            if patterns:
                _check_pattern(ctx, node, keypath, value)
            return (value,)
    if not isinstance(node, yaml.SequenceNode):
        raise ctx.fail(
            node, keypath, f"expected a list of patterns, got a {_kind(node)}", 'write e.g. ["src/", "*.py"]'
        )
    items: list[str] = []
    for i, item in enumerate(node.value):
        value = _scalar(ctx, item, f"{keypath}[{i}]")
        if not isinstance(value, str) or not value:
            raise ctx.fail(item, f"{keypath}[{i}]", f"expected a non-empty pattern, got {value!r}", "quote it as text")
        if patterns:
            _check_pattern(ctx, item, f"{keypath}[{i}]", value)
        items.append(value)
    return tuple(items)


def _check_pattern(ctx: _Ctx, node: yaml.Node, keypath: str, pattern: str) -> None:
    """Compile a gitignore-style pattern now, so a bad one is a policy error and not a crash later."""
    from guardian.util.globs import compile_pattern  # imported here: the agent hook's path must stay light

    try:
        compile_pattern(pattern)
    except re.error as exc:
        raise ctx.fail(
            node, keypath, f"not a valid pattern {pattern!r}: {exc.msg}", "fix the bracket expression, e.g. [a-z]"
        ) from None
    except ValueError as exc:  # a pattern that cannot be read, such as a lone "!"
        fix = "write a gitignore-style pattern such as 'dir/' or '*.py'"
        raise ctx.fail(node, keypath, f"not a valid pattern {pattern!r}: {exc}", fix) from None


def _typed(ctx: _Ctx, node: yaml.Node, keypath: str, convert: Callable[[Any], Any], fix: str) -> Any:
    raw = _scalar(ctx, node, keypath)
    try:
        return convert(raw)
    except (ValueError, TypeError) as exc:
        raise ctx.fail(node, keypath, str(exc), getattr(exc, "fix", fix)) from None  # OutOfBounds has its own


def _as_bool(raw: Any) -> bool:
    if not isinstance(raw, bool):
        raise ValueError(f"expected true or false, got {raw!r}")
    return raw


def _as_size(raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, (int, str)):
        raise ValueError(f"expected a size, got {raw!r}")
    size = parse_size(raw)
    if size < 0:
        raise ValueError("a size cannot be negative")
    return size


def _as_duration(raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise ValueError(f"expected a duration, got {raw!r}")
    seconds = parse_duration(raw)
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def _as_ratio(raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not 0 < raw < 1:
        raise ValueError(f"expected a number between 0 and 1, got {raw!r}")
    return float(raw)


def _as_nonneg_int(raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise ValueError(f"expected a whole number >= 0, got {raw!r}")
    return raw


def _as_action(raw: Any) -> str:
    if raw not in ACTIONS:
        raise ValueError(f"expected one of allow, force, block, got {raw!r}")
    return str(raw)


def _as_text(raw: Any) -> str:
    if not isinstance(raw, str):
        raise ValueError(f"expected text, got {raw!r}")
    return raw


def _watch(ctx: _Ctx, node: yaml.Node) -> WatchSettings:
    keys = _mapping(ctx, node, "watch", ("include", "exclude", "gitignore", "max_file_size"))
    d = WatchSettings()
    return WatchSettings(
        include=_str_list(ctx, keys["include"][1], "watch.include") if "include" in keys else d.include,
        exclude=_str_list(ctx, keys["exclude"][1], "watch.exclude") if "exclude" in keys else d.exclude,
        gitignore=_typed(ctx, keys["gitignore"][1], "watch.gitignore", _as_bool, "write true or false")
        if "gitignore" in keys
        else d.gitignore,
        max_file_size=_typed(ctx, keys["max_file_size"][1], "watch.max_file_size", _as_size, "write e.g. 50MB")
        if "max_file_size" in keys
        else d.max_file_size,
    )


def _check(ctx: _Ctx, node: yaml.Node, keypath: str) -> CheckSpec:
    if isinstance(node, yaml.ScalarNode):
        name = _scalar(ctx, node, keypath)
        if name not in BUILTIN_CHECKS:
            from difflib import get_close_matches
            close = get_close_matches(str(name), BUILTIN_CHECKS, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"built-in checks: {', '.join(BUILTIN_CHECKS)}"
            raise ctx.fail(node, keypath, f"unknown check {name!r}", hint)
        return CheckSpec(name=str(name))
    keys = _mapping(ctx, node, keypath, ("command", "timeout"))
    if "command" not in keys:
        raise ctx.fail(node, keypath, "a custom check needs 'command'", 'write {command: ["prog", "{path}"]}')
    argv = _str_list(ctx, keys["command"][1], f"{keypath}.command", patterns=False)
    if isinstance(keys["command"][1], yaml.ScalarNode):
        raise ctx.fail(
            keys["command"][1],
            f"{keypath}.command",
            "a command must be a list of arguments (no shell)",
            'write ["prog", "--flag", "{path}"]',
        )
    if not argv:
        raise ctx.fail(
            keys["command"][1],
            f"{keypath}.command",
            "a command needs at least the program to run",
            'write ["prog", "--flag", "{path}"]',
        )
    timeout = 10.0
    if "timeout" in keys:
        convert = bounded(check_timeout, _as_duration)
        timeout = _typed(ctx, keys["timeout"][1], f"{keypath}.timeout", convert, "write e.g. 10s")
    return CheckSpec(name="command", command=argv, timeout=timeout)


def _validate(ctx: _Ctx, node: yaml.Node) -> tuple[ValidateRule, ...]:
    if not isinstance(node, yaml.SequenceNode):
        raise ctx.fail(
            node, "validate", f"expected a list of rules, got a {_kind(node)}", "start each rule with '- paths:'"
        )
    rules: list[ValidateRule] = []
    for i, item in enumerate(node.value):
        kp = f"validate[{i}]"
        keys = _mapping(ctx, item, kp, ("paths", "checks"))
        for required in ("paths", "checks"):
            if required not in keys:
                raise ctx.fail(item, kp, f"missing '{required}'", f"add '{required}:' to this rule")
        checks_node = keys["checks"][1]
        if not isinstance(checks_node, yaml.SequenceNode):
            raise ctx.fail(checks_node, f"{kp}.checks", "expected a list of checks", "write e.g. [shell, not-empty]")
        checks = tuple(_check(ctx, c, f"{kp}.checks[{j}]") for j, c in enumerate(checks_node.value))
        rules.append(ValidateRule(paths=_str_list(ctx, keys["paths"][1], f"{kp}.paths"), checks=checks))
    return tuple(rules)


def _protect(ctx: _Ctx, node: yaml.Node) -> tuple[ProtectRule, ...]:
    if not isinstance(node, yaml.SequenceNode):
        raise ctx.fail(
            node, "protect", f"expected a list of rules, got a {_kind(node)}", "start each rule with '- paths:'"
        )
    rules: list[ProtectRule] = []
    for i, item in enumerate(node.value):
        kp = f"protect[{i}]"
        keys = _mapping(ctx, item, kp, ("paths", "rollback", "modify", "delete", "restore", "reason"))
        if "paths" not in keys:
            raise ctx.fail(item, kp, "missing 'paths'", "add 'paths: [dir/, file]' to this rule")
        d = ProtectRule(paths=())
        values: dict[str, Any] = {}
        # An absent 'modify' stays None (the default): the rule's rollback action then governs edits too.
        for op in ("rollback", "modify", "delete", "restore"):
            values[op] = (
                _typed(ctx, keys[op][1], f"{kp}.{op}", _as_action, "write allow, force or block")
                if op in keys
                else getattr(d, op)
            )
        reason = _typed(ctx, keys["reason"][1], f"{kp}.reason", _as_text, "quote it") if "reason" in keys else d.reason
        rules.append(ProtectRule(paths=_str_list(ctx, keys["paths"][1], f"{kp}.paths"), reason=reason, **values))
    return tuple(rules)


SectionReader = Callable[[_Ctx, "yaml.Node"], Any]


def _settings(name: str, cls: type[Any], fields: dict[str, tuple[Callable[[Any], Any], str]]) -> SectionReader:
    """A reader for a section of plain 'key: value' settings: each key's converter and the fix its error suggests."""

    def read(ctx: _Ctx, node: yaml.Node) -> Any:
        keys = _mapping(ctx, node, name, tuple(fields))
        values = {
            key: _typed(ctx, keys[key][1], f"{name}.{key}", convert, fix)
            for key, (convert, fix) in fields.items()
            if key in keys
        }
        return cls(**values)

    return read


# How each section after 'version' is read, in the schema's order.
_SECTION_READERS: dict[str, SectionReader] = {
    "watch": _watch,
    "validate": _validate,
    "suspect": _settings(
        "suspect",
        SuspectSettings,
        {
            "shrink_ratio": (_as_ratio, "write a number such as 0.5"),
            "min_shrink_bytes": (_as_nonneg_int, "write a number of bytes such as 512"),
        },
    ),
    "protect": _protect,
    "guardrail": _settings(
        "guardrail",
        GuardrailSettings,
        {
            "interval": (bounded(guardrail_interval, _as_duration), "write e.g. 300s or 5m"),
            "repair": (_as_bool, "write true or false"),
        },
    ),
    "retention": _settings(
        "retention",
        RetentionSettings,
        {k: (_as_duration, "write e.g. 48h or 14d") for k in ("keep_all", "hourly", "daily")}
        | {"keep_last": (at_least_one, "write a number of snapshots such as 200")},
    ),
    "store": _settings("store", StoreSettings, {k: (_as_size, "write e.g. 2GB") for k in ("max_size", "min_free")}),
    "mirror": _settings(
        "mirror",
        MirrorSettings,
        {
            "interval": (bounded(mirror_interval, _as_duration), "write e.g. 15m, or 0 to turn it off"),
            "remote": (_as_text, "write the name of a remote added with 'guardian remote add'"),
        },
    ),
}
_TOP_KEYS = ("version", *_SECTION_READERS)


def _reject_aliases(text: str, ctx: _Ctx) -> None:
    # Anchors and aliases let a few hundred bytes expand into gigabytes
    # ("billion laughs"); a policy file never needs them.  Deep nesting is refused
    # here too, before yaml.compose, which recurses once per level.
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                mark = event.start_mark
                where = f"{ctx.source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else ctx.source
                raise ConfigError(
                    f"{where}: YAML anchors and aliases are not "
                    "allowed in a policy file; write the values out in full"
                )
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_POLICY_DEPTH:
                    mark = event.start_mark
                    where = f"{ctx.source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else ctx.source
                    raise ConfigError(
                        f"{where}: lists and mappings are nested more than {MAX_POLICY_DEPTH} levels deep; "
                        "a policy needs only a few levels"
                    )
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError as exc:
        raise _yaml_syntax_error(ctx, exc, text) from None


def _yaml_syntax_error(ctx: _Ctx, exc: yaml.YAMLError, text: str = "") -> ConfigError:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f"{ctx.source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else ctx.source
        return ConfigError(f"{where}: invalid YAML: {exc.problem or exc.context}; fix the syntax at that line")
    if isinstance(exc, yaml.reader.ReaderError):  # a NUL or control character: not text YAML accepts
        pos = exc.position
        where = f"{ctx.source}:{text.count(chr(10), 0, pos) + 1}:{pos - text.rfind(chr(10), 0, pos)}"
        return ConfigError(
            f"{where}: invalid YAML: unacceptable character #x{exc.character:04x} ({exc.reason}); "
            "remove it, a policy file is plain text"
        )
    return ConfigError(f"{ctx.source}: invalid YAML: {exc}; fix the syntax of the policy file")


def parse_policy(text: str, source: str = POLICY_FILENAME) -> Policy:
    """Parse and validate policy text; every error names source:line:col and the key path."""
    global yaml, _last_parse  # yaml is imported here, by the first parse: a policy reused parsed never needs it
    if _last_parse is not None and _last_parse[0] == text:
        return _last_parse[1] if _last_parse[1].source == source else _last_parse[1]._replace(source=source)
    import yaml
    ctx = _Ctx(source)
    if len(text.encode("utf-8", "surrogateescape")) > MAX_POLICY_BYTES:
        raise ConfigError(
            f"{source}: the policy file is larger than {MAX_POLICY_BYTES // 1024} KB; "
            "a policy should be a short list of rules"
        )
    _reject_aliases(text, ctx)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise _yaml_syntax_error(ctx, exc, text) from None
    if root is None:
        raise ConfigError(f"{source}: the policy file is empty; write at least 'version: 1'")
    keys = _mapping(ctx, root, "", _TOP_KEYS)
    if "version" not in keys:
        raise ctx.fail(root, "version", "missing 'version'", "add 'version: 1' at the top")
    version = _scalar(ctx, keys["version"][1], "version")
    if version != 1:
        raise ctx.fail(
            keys["version"][1], "version", f"unsupported version {version!r}", "this guardian reads version 1"
        )

    # Read in the schema's order, so that of several mistakes the same one is always reported first.
    # A section left out, or left empty, keeps Policy's default.
    null = "tag:yaml.org,2002:null"
    sections = {
        name: read(ctx, keys[name][1])
        for name, read in _SECTION_READERS.items()
        if name in keys and not (isinstance(keys[name][1], yaml.ScalarNode) and keys[name][1].tag == null)
    }
    _last_parse = (text, Policy(version=1, **sections, source=source))
    return _last_parse[1]


def load_policy(path: Path) -> Policy:
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
            # A FIFO would block the read and /dev/zero never end it.
            raise ConfigError(
                f"{path}: is not a regular file (a FIFO, a device?); replace it with the policy file, "
                "or run 'guardian init'"
            )
        size = st.st_size
        if size > MAX_POLICY_BYTES:
            raise ConfigError(
                f"{path}: the policy file is {size} bytes, more than {MAX_POLICY_BYTES // 1024} KB; "
                "a policy should be a short list of rules"
            )
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no policy file; run 'guardian init' to create one") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a policy file; remove it and run 'guardian init'") from None
    except PermissionError:
        raise ConfigError(f"{path}: cannot read the policy file; check its permissions") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save the policy file as UTF-8") from None
    return parse_policy(text, str(path))


def presets_dir() -> Path:
    """Presets live in policies/ in a source checkout and are copied into the wheel."""
    return PRESETS_DIR if PRESETS_DIR.is_dir() else PACKAGED_PRESETS_DIR


def list_presets() -> list[str]:
    return sorted(p.stem for p in presets_dir().glob("*.yaml"))


def preset_text(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name) or not (presets_dir() / f"{name}.yaml").is_file():
        raise ConfigError(f"unknown preset '{name}'; choose one of: {', '.join(list_presets())}")
    return (presets_dir() / f"{name}.yaml").read_text(encoding="utf-8")
