"""Secrets in captured content: finding them (detect-secrets), and the copies that may leave the machine.

A file that holds a secret is still captured (the user's work matters more than a clean
store), but guardian says so: guardian.capture.secret_record records and logs each version
found holding one, ``guardian status`` lists them, the mirror only ever gets :func:`redacted`
copies (guardian.lifecycle.mirror_chain) and ``guardian forget`` purges the local versions.

Detection is Yelp's detect-secrets: maintained, plugin-based (about 25 detectors, Telegram
bot tokens and AWS keys among them, plus keyword and entropy heuristics with filters for
UUIDs, lockfiles, templates and sequences), fully offline (its optional verification is
never turned on here), and its scan steps work on lines handed to them, not only on files
on disk.  Its per-line dependency injection costs about 0.5 ms a line, too much for every
capture, so :class:`_Detector` first runs each detector's own expressions over the whole
text once and hands detect-secrets only the lines where one could match; on those lines
every detector and filter runs as ``detect-secrets scan`` runs them, with the three
amendments that :meth:`_Detector._kept` explains.  A line marked ``pragma: allowlist
secret`` is never reported.

Only text is scanned (no NUL byte in the first 8 KiB, valid UTF-8), up to ``SCAN_MAX_BYTES``
at capture.  The library is imported on first use: captures of binary files, and the hook
fast paths, never load it.
"""

from __future__ import annotations

import bisect
import io
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

# SCAN_MAX_BYTES lives with the filter so that a capture which only queues its versions reads
# it without this module; it is this module's limit, and named here as ever.
from guardian.capture.filters import SCAN_MAX_BYTES as SCAN_MAX_BYTES
from guardian.capture.filters import secret_names

if TYPE_CHECKING:
    import logging


def _log() -> logging.Logger:
    """This module's logger.  logging loads on first use: a git hook's capture never logs (~5 ms of imports)."""
    import logging

    return logging.getLogger("guardian.capture.secrets")


_BINARY_SAMPLE = 8192
NAMED_KIND = "secret file name"
PRIVATE_KEY_KIND = "Private Key"
MIRROR_MARK = "[REDACTED by guardian]"

# Public IP addresses are not credentials, and every config with a server address would be flagged.
_LEFT_OUT_PLUGINS = frozenset({"IPPublicDetector"})
_INDIRECT = "detect_secrets.filters.heuristic.is_indirect_reference"
# These detectors' assignment expressions (keyword = value, any case) are two thirds of the scan
# time, and each names one of these words as its keyword (key, pwd/pw/password, pass, token,
# secret...key): they run only on the lines holding one.
_GATED_PLUGINS = frozenset({"CloudantDetector", "IbmCloudIamDetector", "IbmCosHmacDetector", "SoftlayerDetector"})
_ASSIGNMENT_START = r"(?:(?<=\W)|(?<=^))"
_GATE = re.compile(r"key|pw|pass|token")
_DIGEST_PREFIX = re.compile(r"(?i)(?:sha(?:1|224|256|384|512)|md5)[-:]")
_PEM_BLOCK = re.compile(
    r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----.*?-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----", re.DOTALL
)
_ASCII_LOWER = {code: code + 32 for code in range(ord("A"), ord("Z") + 1)}


def is_secret_name(rel: str) -> bool:
    """Whether rel is a secret file by its name (``.env``, ``*.pem``, ``.aws/credentials``...), in any case."""
    # The capture filter's own spec: compiled once per process, on first use.
    return secret_names().match(rel.lower())


@dataclass(frozen=True)
class Finding:
    """One secret in one version: what kind, on which line.  The value stays in memory, never on disk."""

    kind: str
    line: int
    value: str = field(default="", repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "line": self.line}


def text_of(data: bytes, limit: int = SCAN_MAX_BYTES) -> str | None:
    """data as text when it is scannable: at most limit bytes, no NUL early on, valid UTF-8."""
    if len(data) > limit or b"\0" in data[:_BINARY_SAMPLE]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def find_secrets(rel: str, data: bytes, limit: int = SCAN_MAX_BYTES) -> list[Finding]:
    """The secrets detect-secrets finds in data, read as the file rel; [] for what is not scanned."""
    text = text_of(data, limit)
    if text is None:
        return []
    return _Detector.instance().scan(rel, text)


# --------------------------------------------------------------------------- detect-secrets


class _NamedText(io.StringIO):
    """Content in memory under its file name: detect-secrets picks a format's reader by the name."""

    def __init__(self, text: str, name: str) -> None:
        super().__init__(text)
        self.name = name


class _Detector:
    """detect-secrets configured once per process: every plugin but _LEFT_OUT_PLUGINS, the default filters.

    Its settings are a process-wide singleton and some plugins keep state while they scan,
    so scans are serialised (the watcher scans on its capture and maintenance threads).
    """

    _lock = threading.Lock()
    _made: _Detector | None = None

    @classmethod
    def instance(cls) -> _Detector:
        with cls._lock:
            if cls._made is None:
                cls._made = cls()
            return cls._made

    def __init__(self) -> None:
        import configparser

        from detect_secrets.core import scan as ds_scan
        from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
        from detect_secrets.filters.heuristic import is_indirect_reference
        from detect_secrets.plugins.base import RegexBasedDetector
        from detect_secrets.plugins.high_entropy_strings import HighEntropyStringsPlugin
        from detect_secrets.plugins.keyword import DENYLIST, KeywordDetector
        from detect_secrets.settings import get_filters, get_plugins, get_settings
        from detect_secrets.transformers import get_transformers
        from detect_secrets.transformers.config import ConfigFileTransformer
        from detect_secrets.transformers.exceptions import ParsingError
        from detect_secrets.util.code_snippet import get_code_snippet

        settings = get_settings()
        settings.clear()
        classes: list[type] = list(get_mapping_from_secret_type_to_class().values())
        names = sorted(plugin_class.__name__ for plugin_class in classes)
        settings.configure_plugins([{"name": name} for name in names if name not in _LEFT_OUT_PLUGINS])
        # Content is handed over in memory: "is the file on disk" would drop every scan.  The indirect
        # reference filter is applied per finding instead (see _kept), not to whole lines.
        settings.disable_filters("detect_secrets.filters.common.is_invalid_file", _INDIRECT)
        get_plugins.cache_clear()
        get_filters.cache_clear()
        # detect-secrets' own steps, called as its scan_file calls them (its types want a real file).
        self._filtered: Callable[..., bool] = ds_scan._is_filtered_out
        self._indirect: Callable[[str], bool] = is_indirect_reference
        self._specific = RegexBasedDetector
        self._labels = {word.replace("_?", "").lower() for word in DENYLIST}
        self._transformers: list[Any] = list(get_transformers())
        self._ini = ConfigFileTransformer
        self._section_header: re.Pattern[str] = configparser.ConfigParser.SECTCRE
        self._parsing_error: type[Exception] = ParsingError
        self._snippet: Callable[..., Any] = get_code_snippet
        self.plugins: list[Any] = list(get_plugins())
        # Per plugin, how to find the lines where it could match (see _candidates).
        self._probes: list[tuple[str, Any, list[re.Pattern[str]]]] = []
        # Every keyword expression names one of these words.  Searched in text lowered A-Z only (the
        # offsets stay put) with no IGNORECASE: ten times faster; the one non-ASCII letter is spelt out.
        words = [word.replace("ñ", "[ñÑ]") for word in DENYLIST]
        keyword = re.compile("|".join(words))
        for plugin in self.plugins:
            if isinstance(plugin, RegexBasedDetector):
                gated = [p for p in plugin.denylist if _is_gated(plugin, p)]
                patterns = [re.compile(p.pattern, p.flags | re.MULTILINE) for p in plugin.denylist if p not in gated]
                self._probes.append(("regex", plugin, patterns))
                if gated:
                    self._probes.append(("gated", plugin, gated))
            elif isinstance(plugin, HighEntropyStringsPlugin):
                self._probes.append(("entropy", plugin, [plugin.regex]))
            elif isinstance(plugin, KeywordDetector):
                self._probes.append(("lowered", plugin, [keyword]))
            else:
                self._probes.append(("all", plugin, []))

    def scan(self, rel: str, text: str) -> list[Finding]:
        with self._lock:
            if self._filtered(required_filter_parameters=["filename"], filename=rel):
                return []  # lockfiles, swagger files, non-text extensions: detect-secrets' own rules
            handle = _NamedText(text, rel)
            lines = self._transformed(handle, text) or text.splitlines()
            found = self._scan_lines(rel, lines)
            if not found:
                # As 'detect-secrets scan' does: config formats read a second, more eager way.
                handle.seek(0)
                eager = self._transformed(handle, text, eager=True)
                if eager:
                    found = self._scan_lines(rel, eager)
        return sorted(set(found), key=lambda f: (f.line, f.kind))

    def _transformed(self, handle: _NamedText, text: str, eager: bool = False) -> list[str] | None:
        """detect-secrets' get_transformed_file, minus the .ini reading that must fail.

        Its plain config transformer is tried on every file, and builds a ConfigParser (about
        0.5 ms) only to fail on the first line of nearly every one: content whose first line
        that is neither blank nor a comment is not a ``[section]`` header raises
        MissingSectionHeaderError there.  That line is checked first, as configparser checks it.
        """
        for transformer in self._transformers:
            if not transformer.should_parse_file(handle.name) or transformer.is_eager != eager:
                continue
            if type(transformer) is self._ini and not _opens_with_section(text, self._section_header):
                continue
            try:
                return list(transformer.parse_file(handle))
            except self._parsing_error:
                pass
            finally:
                handle.seek(0)
        return None

    def _candidates(self, lines: list[str]) -> list[int]:
        """Line numbers (1-based) where some plugin could find something: a superset, never fewer.

        Each plugin's own expressions run once over the whole text, each line stripped of
        trailing space as detect-secrets strips it, with ^ and $ at line ends.  A regex match
        may run on past a newline where the line alone would not match, so after each match
        the search resumes one character on: every position where a match starts is seen.
        """
        text = "\n".join(line.rstrip() for line in lines)
        lowered = text.translate(_ASCII_LOWER)
        starts = [0]
        for line in lines[:-1]:
            starts.append(starts[-1] + len(line.rstrip()) + 1)
        hits: set[int] = set()
        gate_lines: list[int] | None = None
        for how, plugin, patterns in self._probes:
            if how == "all":
                return list(range(1, len(lines) + 1))
            if how == "gated":
                if gate_lines is None:
                    gate_lines = sorted({bisect.bisect_right(starts, m.start()) for m in _GATE.finditer(lowered)})
                # Line by line, exactly as detect-secrets runs them, but only where a keyword could be.
                hits.update(n for n in gate_lines if any(p.search(lines[n - 1].rstrip()) for p in patterns))
                continue
            searched = lowered if how == "lowered" else text
            for pattern in patterns:
                for offset in _match_starts(pattern, searched, plugin if how == "entropy" else None):
                    hits.add(bisect.bisect_right(starts, offset))
        return sorted(hits)

    def _scan_lines(self, rel: str, lines: list[str]) -> list[Finding]:
        found: list[Finding] = []
        for number in self._candidates(lines):
            line = lines[number - 1].rstrip()
            context = self._snippet(lines=lines, line_number=number)
            if self._filtered(required_filter_parameters=["line"], filename=rel, line=line, context=context):
                continue
            for plugin in self.plugins:
                for secret in plugin.analyze_line(filename=rel, line=line, line_number=number, context=context):
                    value = secret.secret_value or ""
                    common = {"filename": rel, "secret": value, "plugin": plugin, "line": line}
                    if self._filtered(required_filter_parameters=["secret"], **common):
                        continue
                    if self._filtered(required_filter_parameters=["context"], context=context, **common):
                        continue
                    if self._kept(plugin, value, line):
                        found.append(Finding(str(secret.type), number, value))
        return found

    def _kept(self, plugin: Any, value: str, line: str) -> bool:
        """guardian's three amendments to detect-secrets' filters, each measured on tests/capture/secret_corpus.py.

        * Its indirect-reference filter (``secret = get_secret()``) drops whole lines, so it also
          dropped ``OpenAI(api_key="sk-...")`` and ``connect(password="...")``: here it drops only
          a keyword or entropy finding whose value is not a quoted literal on the line, and never
          a provider's own token format.
        * A subresource-integrity or lockfile digest (``sha384-...``, ``sha256:...``) is a hash.
        * A keyword whose value is the word itself (``"password_label": "Password"``) is a label.
        """
        if isinstance(plugin, self._specific):
            return True
        if value.lower() in self._labels:
            return False
        if _DIGEST_PREFIX.match(value):
            return False
        quoted = any(f"{quote}{value}{quote}" in line for quote in "\"'`")
        return quoted or not self._indirect(line)


def _opens_with_section(text: str, header: re.Pattern[str]) -> bool:
    """Whether configparser's default reading of text gets past its first significant line.

    As ``ConfigParser._read`` reads it: lines split at \\n only (a StringIO), a line whose
    stripped form starts with ``#`` or ``;`` is a comment, a blank one is skipped, and the
    first other line must match ``header`` (configparser's ``SECTCRE``), or MissingSectionHeaderError is raised.  Text
    with no such line has no section, which the transformer's reader rejects as well.
    """
    for line in io.StringIO(text):
        value = line.strip()
        if not value or value.startswith(("#", ";")):
            continue
        return header.match(value) is not None
    return False


def _is_gated(plugin: Any, pattern: re.Pattern[str]) -> bool:
    return type(plugin).__name__ in _GATED_PLUGINS and pattern.pattern.startswith(_ASSIGNMENT_START)


def _match_starts(pattern: re.Pattern[str], text: str, entropy: Any | None) -> Iterator[int]:
    """Offsets where pattern matches; for an entropy plugin, only quoted strings over its limit."""
    if entropy is not None:
        # Its quoted strings never span a newline, so the whole text yields exactly the lines' matches.
        limit = entropy.entropy_limit
        for quoted in pattern.finditer(text):
            value = quoted.group(2)
            # n characters carry at most log2(n) bits each: a shorter string cannot pass the limit.
            if len(value) > 2**limit and entropy.calculate_shannon_entropy(value) > limit:
                yield quoted.start()
        return
    position = 0
    while (match := pattern.search(text, position)) is not None:
        yield match.start()
        position = match.start() + 1


def findings_for(rel: str, data: bytes, limit: int = SCAN_MAX_BYTES) -> list[Finding]:
    """What makes this version a secret: its name (a ``.env`` captured by an explicit include) and its content."""
    named = [Finding(NAMED_KIND, 0)] if is_secret_name(rel) else []
    return named + find_secrets(rel, data, limit)


def kinds_of(findings: Iterable[Finding]) -> list[str]:
    return sorted({f.kind for f in findings})


def detector_ready() -> bool:
    """Whether detect-secrets is loaded in this process (the first scan costs about 0.2 s of imports)."""
    return _Detector._made is not None


_warming: list[threading.Thread] = []
# Not _Detector._lock: the warm-up thread holds that for the whole load, and a capture asking
# again meanwhile (the watcher's, under the writer lock) would wait out the load it must not wait for.
_warming_lock = threading.Lock()


def warm_up() -> None:
    """Load detect-secrets on a thread of its own, once per process, so that no capture waits for it.

    Not a daemon: interpreter shutdown waits the fraction of a second rather than kill it mid-import.
    """
    with _warming_lock:
        if _Detector._made is not None or _warming:
            return
        thread = threading.Thread(target=_load_quietly, name="guardian-secrets-warm-up")
        _warming.append(thread)
    thread.start()


def _load_quietly() -> None:
    try:
        _Detector.instance()
    except Exception as exc:  # noqa: BLE001 - a broken install is reported by the scan that needs it
        _log().warning("could not load the secret scanner: %s: %s", type(exc).__name__, exc)


# --------------------------------------------------------------------------- redacted copies (for the mirror)


@dataclass(frozen=True)
class Redaction:
    """A version's copy for the mirror: its new content, and what was taken out."""

    data: bytes
    kinds: list[str]
    whole: bool  # the whole content was replaced (a secret file, a key, or what a value swap could not clean)


def redacted(rel: str, data: bytes, limit: int = SCAN_MAX_BYTES) -> Redaction | None:
    """The copy of this version that may leave the machine, or None when it holds no secret.

    Each secret value is replaced by MIRROR_MARK, a private key by the mark in place of its
    whole PEM block; the result is scanned again, and if anything is still found (a value
    that a format transformer rewrote, a key with no END line) the whole content goes.  A
    file that is a secret by its name is replaced whole.
    """
    findings = findings_for(rel, data, limit)
    if not findings:
        return None
    kinds = kinds_of(findings)
    text = text_of(data, limit)
    if text is not None and not any(f.kind == NAMED_KIND for f in findings):
        for finding in findings:
            if finding.kind == PRIVATE_KEY_KIND:
                text = _PEM_BLOCK.sub(MIRROR_MARK, text)
            elif finding.value:
                text = text.replace(finding.value, MIRROR_MARK)
        cleaned = text.encode("utf-8")
        if not findings_for(rel, cleaned, limit):
            return Redaction(cleaned, kinds, False)
    return whole_redaction(rel, kinds)


def whole_redaction(rel: str, kinds: list[str]) -> Redaction:
    """A version replaced whole: what stands in its place on the mirror says why, and where the content is."""
    note = (
        f"{MIRROR_MARK} This version of {rel} held a secret ({', '.join(kinds)}); "
        "its content is kept only in the local guardian store.\n"
    )
    return Redaction(note.encode("utf-8"), kinds, True)
