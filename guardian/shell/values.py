"""What words and substitutions hold: quote removal, and the values guardian can know before a command runs.

:class:`Value` is a word's text with ``dynamic`` set when part of it is only known
at run time.  The functions here are the pure part of the walker: undoing
backslashes as the shell would, finding backquoted commands in a here-document,
the value of ``$(pwd)``, ``$(which x)`` or ``$(cat <<'EOF' ...)``, and what a
pipe's producer feeds the next command (``echo a b`` feeds "a b", ``find build``
feeds paths under ``build``).
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass

from guardian.shell.intent import Intent
from guardian.shell.parser import Feed, is_device
from guardian.shell.words import Word, decode_ansi_c

# Variables that conventionally name a program, for `$PYTHON -m pytest` when the agent's environment
# does not say.  What they run is judged like the program itself.
PROGRAM_VARIABLES = {"PYTHON": "python", "PYTHON3": "python3", "PY": "python", "SHELL": "sh", "BASH": "bash",
                      "NODE": "node", "PAGER": "less", "GIT": "git", "MAKE": "make", "NPM": "npm", "PIP": "pip"}
_PATH_PRODUCERS = frozenset({"find", "fd", "fdfind", "ls", "git", "rg", "grep", "ag"})


@dataclass(frozen=True)
class Value:
    """What a variable or a substitution holds: literal text, or text with run-time parts (``dynamic``)."""

    text: str
    dynamic: bool = False


def unescape(text: str) -> str:
    """An unquoted word: a backslash quotes the next character; backslash-newline disappears."""
    if "\\" not in text:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            if text[i + 1] != "\n":
                out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def unescape_double(text: str) -> str:
    r"""Inside "...": only \$ \` \" \\ and backslash-newline are escapes."""
    if "\\" not in text:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in '$`"\\\n':
            if text[i + 1] != "\n":
                out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def backquoted(text: str) -> list[str]:
    """The commands inside unescaped backquotes in ``text``."""
    found: list[str] = []
    start = -1
    i = 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == "`":
            if start < 0:
                start = i + 1
            else:
                found.append(text[start:i])
                start = -1
        i += 1
    return found


def substitution_value(words: Sequence[Word], feed: Feed | None, cwd: str | None, text: str,
                       tmpdir: str | None = None) -> Value:
    """The value of ``$(...)`` where it can be known: pwd, which, a here-document's text, echo."""
    if not words:
        return Value(text, True)
    name, args = words[0].text, [w for w in words[1:]]
    plain = [a.text for a in args if not a.dynamic]
    if any(a.dynamic for a in args):
        return Value(text, True)
    if name == "pwd":
        return Value(cwd or ".")
    if name == "mktemp" and not any(not p.startswith("-") for p in plain) and tmpdir is not None:
        # A name that did not exist before: nothing there can be lost, whatever the name turns out to be.
        return Value(posixpath.join(tmpdir or "/tmp", "tmp.guardian-mktemp-XXXXXXXXXX"))
    if name in ("which", "command", "type") and plain and plain[-1] != "-v":
        return Value(plain[-1])
    if name == "cat" and not plain and feed is not None and feed.text is not None:
        return Value(feed.text.rstrip("\n"))
    produced = producer_feed(list(words), cwd)
    if produced.text is not None:
        return Value(produced.text.rstrip("\n"))
    if name in ("basename", "dirname") and plain:
        return Value(posixpath.basename(plain[0].rstrip("/")) if name == "basename" else posixpath.dirname(plain[0]))
    if produced.scope is not None:
        return Value(produced.scope, True)
    return Value(text, True)


def producer_feed(words: Sequence[Word], cwd: str | None) -> Feed:
    """What a command prints, when it is literal (echo, printf) or only paths under a directory (find)."""
    if not words:
        return Feed()
    name = posixpath.basename(words[0].text)
    args = list(words[1:])
    if any(a.dynamic for a in args):
        return Feed()
    texts = [a.text for a in args]
    if name == "echo":
        while texts and texts[0] in ("-n", "-e", "-E", "-ne", "-en"):
            texts = texts[1:]
        return Feed(text=" ".join(texts) + "\n")
    if name == "printf" and texts:
        fmt, rest = decode_ansi_c(texts[0]), texts[1:]
        if not rest:
            return Feed(text=fmt.replace("%%", "%"))
        if fmt.count("%") == 1 and "%s" in fmt:
            return Feed(text="".join(fmt.replace("%s", r) for r in rest))
        return Feed()
    if name in _PATH_PRODUCERS:
        dirs = _producer_dirs(name, texts)
        if dirs is not None and len(dirs) == 1:
            return Feed(scope=posixpath.join(dirs[0], "$(" + name + ")"))
    return Feed()


def _producer_dirs(name: str, args: list[str]) -> list[str] | None:
    """The directories a listing command prints paths under, with those paths prefixed (None: not known)."""
    operands = [a for a in args if not a.startswith("-")]
    if name == "find":
        starts = []
        for a in args:
            if a.startswith("-") or a in ("(", "!"):
                break
            starts.append(a)
        return starts or ["."]
    if name == "git":
        if args[:1] == ["ls-files"]:
            paths = [a for a in args[1:] if not a.startswith("-")]
            return paths[:1] or ["."]
        return None
    if name in ("fd", "fdfind"):
        return operands[1:2] or ["."] if len(operands) >= 1 else ["."]
    if name in ("rg", "grep", "ag"):
        if not any(flag in a for a in args if a.startswith("-") and not a.startswith("--") for flag in "lL") and \
                "--files" not in args and "--files-with-matches" not in args:
            return None
        paths = operands[1:] if "--files" not in args else operands
        return paths[:1] or ["."]
    if name == "ls":
        # `ls build` prints bare names (relative to build, not here): only globs print their own paths.
        if operands and all(any(c in o for c in "*?[") for o in operands):
            return [posixpath.dirname(operands[0]) or "."]
        return None
    return None


@dataclass
class Redirect:
    op: str
    fd: str
    target: Word | None
    feed: Feed | None = None  # what a here-document or here-string feeds the command


def redirect_intent(r: Redirect, argv: tuple[str, ...], cwd: str | None) -> Intent | None:
    # ">>" appends and "<>" opens without truncating: neither loses data.  ">",
    # ">|", "&>", "2>" and ">&FILE" truncate the file first.
    if r.op not in (">", ">|", "&>", ">&") or r.target is None:
        return None
    target = r.target.text
    if r.op == ">&" and (target.isdigit() or target == "-" or target.rstrip("-").isdigit()):
        return None  # 2>&1 and >&- duplicate or close a descriptor
    if is_device(target):
        return None
    detail = {"op": r.fd + r.op}
    if r.target.dynamic:
        detail["dynamic"] = "expansion"
    return Intent("redirect", argv, cwd, (target,), detail)
