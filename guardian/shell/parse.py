"""Find the destructive intents in a shell command string, without running anything.

Coding agents hand their shell commands to guardian's pre-command hook as one
string.  :func:`parse_command` reads it the way a POSIX shell would (quoting,
``&&``/``||``/``;``/``|``, redirections, ``$(...)``, here-documents, wrapper
commands such as ``sudo``, ``env`` and ``bash -c``) and reports every simple
command that would delete, overwrite or roll back files as an :class:`Intent`.
The hook then resolves ``targets`` against ``cwd`` and asks the policy engine.

Why a hand-written lexer rather than :mod:`shlex`: shlex with
``punctuation_chars`` cannot tell a quoted ``'&&'`` from the operator, splits
``stash@{0}`` and ``$(...)`` into pieces, treats ``#`` inside a word as a
comment, cannot see ``2>`` as one redirection, and would read the body of a
here-document as commands.  Each of those either hides a destructive command
or invents one.  :func:`shlex.quote` is still used to rebuild command lines.

This is a static reading, so it errs towards reporting: a word the shell
computes at run time is marked (``detail["dynamic"]``), a command name it
computes is reported as ``unknown-dynamic``, and text it cannot lex at all is
reported as ``unknown-dynamic`` too.  Scripts that a command runs (``python
x.py``, ``./deploy.sh``) are not opened: nothing here does I/O.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

# Placeholder targets.  Both are documented parts of the contract with the hook.
WORK_TREE = ":/"  # git's own spelling for "the whole work tree": reset --hard, switching branches, rebase
ANY_PATH = "*"  # unknown paths (xargs input, a computed command): as broad as the glob it looks like

KINDS: tuple[str, ...] = (
    "git-reset",
    "git-checkout-paths",
    "git-checkout-rev",
    "git-restore",
    "git-clean",
    "git-stash-drop",
    "git-stash-clear",
    "git-branch-delete",
    "git-branch-force",
    "git-rebase",
    "rsync-delete",
    "rm",
    "find-delete",
    "truncate",
    "redirect",
    "sed-inplace",
    "mv",
    "cp",
    "unknown-dynamic",
)

_MAX_DEPTH = 12  # nested bash -c / eval / $(...) / git aliases; deeper than this is treated as opaque


@dataclass(frozen=True)
class Intent:
    """One simple command that would change files.

    ``argv`` is the effective command after unwrapping ``sudo``/``env``/``xargs``
    and expanding git aliases.  ``targets`` are the paths it would modify or
    delete, as written (globs unexpanded), relative to ``cwd`` (None: the
    directory the command string starts in).  Besides real paths they may hold
    :data:`WORK_TREE` or :data:`ANY_PATH`.  ``detail`` carries extra facts as
    strings, notably ``rev``/``mode`` for git, ``sources`` for ``mv``/``cp``,
    ``deletes`` (newline-separated paths removed besides the targets, e.g. the
    sources of ``mv``) and ``dynamic`` (why some target is only known at run
    time).
    """

    kind: str
    argv: tuple[str, ...]
    cwd: str | None
    targets: tuple[str, ...]
    detail: dict[str, str] = field(default_factory=dict)

    @property
    def paths(self) -> tuple[str, ...]:
        """Every path this command destroys: the targets plus ``detail["deletes"]``."""
        extra = tuple(p for p in self.detail.get("deletes", "").split("\n") if p)
        return self.targets + tuple(p for p in extra if p not in self.targets)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "argv": list(self.argv),
            "cwd": self.cwd,
            "targets": list(self.targets),
            "detail": dict(self.detail),
        }


# --------------------------------------------------------------------------- lexer


class _LexError(ValueError):
    pass


@dataclass
class _Word:
    text: str  # with quotes removed; expansions ($x, $(...), `...`) kept as written
    dynamic: bool = False  # holds an expansion, so the real value is only known at run time
    quoted: bool = False  # some part was quoted: not a reserved word, not an fd number
    assign: bool = False  # NAME=value, a variable assignment in command position
    subs: tuple[str, ...] = ()  # the command substitutions inside, which run too
    display: str | None = None  # what to show in argv for a placeholder; "" hides it


@dataclass(frozen=True)
class _Op:
    op: str
    fd: str = ""  # "2" in "2>"
    body: str | None = None  # a here-document's text
    subs: tuple[str, ...] = ()  # command substitutions in an unquoted here-document, which do run


_Token = _Word | _Op

_CONTROL_OPS = frozenset({";;&", "&&", "||", "|&", ";;", ";&", "|", "&", ";", "(", ")", "\n"})
_REDIRECT_OPS = frozenset({"&>>", "<<<", "<<-", "&>", ">>", ">|", "<<", "<>", ">&", "<&", ">", "<"})
_ALL_OPS = sorted(_CONTROL_OPS | _REDIRECT_OPS, key=len, reverse=True)  # longest match first
_ASSIGN_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\[[^\]]*\])?\+?=")
_ANSI_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b",
                 "f": "\f", "v": "\v", "\\": "\\", "'": "'", '"': '"', "?": "?"}


class _Lexer:
    """Splits a command string into words and operators, as a POSIX shell (bash) would."""

    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.tokens: list[_Token] = []
        # (token index, delimiter, strip tabs, delimiter quoted)
        self.pending_heredocs: list[tuple[int, str, bool, bool]] = []
        self.want_delimiter: tuple[int, bool] | None = None
        self._new_word()

    def _new_word(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.in_word = False
        self.dynamic = False
        self.quoted = False
        self.subs: list[str] = []
        self.special_at: int | None = None  # offset of the first quoted or expanded character

    def _add(self, text: str, *, quoted: bool = False, dynamic: bool = False) -> None:
        if (quoted or dynamic) and self.special_at is None:
            self.special_at = self.length
        self.parts.append(text)
        self.length += len(text)
        self.in_word = True
        self.quoted |= quoted
        self.dynamic |= dynamic

    def _end_word(self) -> None:
        if not self.in_word:
            return
        text = "".join(self.parts)
        match = _ASSIGN_RE.match(text)
        # "FOO=1" assigns; "'FOO'=1" and "$X=1" are ordinary words, as in bash.
        assign = match is not None and (self.special_at is None or self.special_at >= match.end())
        word = _Word(text, self.dynamic, self.quoted, assign, tuple(self.subs))
        if self.want_delimiter is not None:
            index, strip = self.want_delimiter
            self.pending_heredocs.append((index, text, strip, self.quoted))
            self.want_delimiter = None
        self.tokens.append(word)
        self._new_word()

    def run(self) -> list[_Token]:
        s, n = self.s, len(self.s)
        while self.i < n:
            c = s[self.i]
            if c in " \t\r":
                self._end_word()
                self.i += 1
            elif c == "\n":
                self._end_word()
                self.tokens.append(_Op("\n"))
                self.i += 1
                self._read_heredocs()
            elif c == "#" and not self.in_word:
                end = s.find("\n", self.i)
                self.i = n if end < 0 else end
            elif c == "\\":
                if s.startswith("\\\n", self.i):
                    self.i += 2  # line continuation
                else:
                    self._add(s[self.i + 1 : self.i + 2], quoted=True)
                    self.i += 2
            elif c == "'":
                end = s.find("'", self.i + 1)
                if end < 0:
                    raise _LexError("unterminated single quote")
                self._add(s[self.i + 1 : end], quoted=True)
                self.i = end + 1
            elif c == '"':
                self._double_quoted()
            elif c == "$":
                self._dollar(in_double_quotes=False)
            elif c == "`":
                self._backtick()
            elif c in "<>" and s.startswith("(", self.i + 1):
                # Process substitution <(cmd) / >(cmd): the command runs, the word is a pipe's name.
                end = self._match_paren(self.i + 1)
                self.subs.append(s[self.i + 2 : end])
                self._add(s[self.i : end + 1], dynamic=True)
                self.i = end + 1
            elif c in "|&;<>()":
                self._operator()
            else:
                self._add(c)
                self.i += 1
        self._end_word()
        return self.tokens

    def _operator(self) -> None:
        s = self.s
        fd = ""
        text = "".join(self.parts)
        if s[self.i] in "<>" and self.in_word and text.isdigit() and self.special_at is None:
            fd = text  # "2>": the digits name a file descriptor, they are not an argument
            self._new_word()
        else:
            self._end_word()
        op = next(o for o in _ALL_OPS if s.startswith(o, self.i))
        self.i += len(op)
        if op in ("<<", "<<-"):
            self.want_delimiter = (len(self.tokens), op == "<<-")
        self.tokens.append(_Op(op, fd))

    def _read_heredocs(self) -> None:
        # A here-document's body is data, not commands; skip it, but keep it on
        # the operator so that `bash <<EOF` can still be read as a script.
        s = self.s
        for index, delimiter, strip, quoted in self.pending_heredocs:
            body: list[str] = []
            while self.i < len(s):
                end = s.find("\n", self.i)
                line = s[self.i :] if end < 0 else s[self.i : end]
                self.i = len(s) if end < 0 else end + 1
                if (line.lstrip("\t") if strip else line) == delimiter:
                    break
                body.append(line)
            token = self.tokens[index]
            if isinstance(token, _Op):
                text = "\n".join(body)
                # With an unquoted delimiter the body is expanded like a "..." string: its $(...) runs.
                subs = () if quoted else _expansions(text)
                self.tokens[index] = replace(token, body=text, subs=subs)
        self.pending_heredocs = []

    def _double_quoted(self) -> None:
        s = self.s
        self.i += 1
        self._add("", quoted=True)  # "" is still a (empty) word
        while True:
            if self.i >= len(s):
                raise _LexError("unterminated double quote")
            c = s[self.i]
            if c == '"':
                self.i += 1
                return
            if c == "\\" and self.i + 1 < len(s) and s[self.i + 1] in '$`"\\\n':
                if s[self.i + 1] != "\n":
                    self._add(s[self.i + 1], quoted=True)
                self.i += 2
            elif c == "$":
                self._dollar(in_double_quotes=True)
            elif c == "`":
                self._backtick()
            else:
                self._add(c, quoted=True)
                self.i += 1

    def _dollar(self, in_double_quotes: bool) -> None:
        s, i = self.s, self.i
        nxt = s[i + 1] if i + 1 < len(s) else ""
        if nxt == "(":
            end = self._match_paren(i + 1)
            if not s.startswith("$((", i):  # $((...)) is arithmetic, not a command
                self.subs.append(s[i + 2 : end])
            self._add(s[i : end + 1], dynamic=True)
            self.i = end + 1
        elif nxt == "{":
            end = self._match_brace(i + 1)
            self._add(s[i : end + 1], dynamic=True)
            self.i = end + 1
        elif nxt == "'" and not in_double_quotes:
            self._ansi_c_string()
        elif nxt == '"' and not in_double_quotes:
            self.i += 1  # $"..." is a translatable string: read it as "..."
            self._double_quoted()
        elif nxt and (nxt.isalnum() or nxt == "_"):
            match = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9]").match(s, i + 1)
            end = match.end() if match else i + 2
            self._add(s[i:end], dynamic=True)
            self.i = end
        elif nxt and nxt in "@*#?$!-":
            self._add(s[i : i + 2], dynamic=True)
            self.i = i + 2
        else:
            self._add("$", quoted=in_double_quotes)
            self.i = i + 1

    def _ansi_c_string(self) -> None:
        s = self.s
        j = self.i + 2
        out: list[str] = []
        while True:
            if j >= len(s):
                raise _LexError("unterminated $'...' string")
            c = s[j]
            if c == "'":
                break
            if c == "\\" and j + 1 < len(s):
                out.append(_ANSI_ESCAPES.get(s[j + 1], "\\" + s[j + 1]))
                j += 2
            else:
                out.append(c)
                j += 1
        self._add("".join(out), quoted=True)
        self.i = j + 1

    def _backtick(self) -> None:
        s = self.s
        j = self.i + 1
        inner: list[str] = []
        while True:
            if j >= len(s):
                raise _LexError("unterminated backquote")
            c = s[j]
            if c == "`":
                break
            if c == "\\" and j + 1 < len(s) and s[j + 1] in "$`\\":
                inner.append(s[j + 1])
                j += 2
            else:
                inner.append(c)
                j += 1
        self.subs.append("".join(inner))
        self._add(s[self.i : j + 1], dynamic=True)
        self.i = j + 1

    def _skip_quoted(self, j: int) -> int:
        """Index just past the quoted string or escape starting at ``j``."""
        s = self.s
        c = s[j]
        if c == "\\":
            return j + 2
        if c == "'":
            end = s.find("'", j + 1)
            if end < 0:
                raise _LexError("unterminated single quote")
            return end + 1
        closing = c  # '"' or '`'
        j += 1
        while j < len(s):
            if s[j] == "\\":
                j += 2
            elif s[j] == closing:
                return j + 1
            else:
                j += 1
        raise _LexError(f"unterminated {closing}")

    def _match_closing(self, start: int, opening: str, closing: str, what: str) -> int:
        """Index of the ``closing`` that balances the ``opening`` at ``start``, skipping quoted text."""
        s, depth, j = self.s, 0, start
        while j < len(s):
            c = s[j]
            if c in "\\'\"`":
                j = self._skip_quoted(j)
                continue
            if c == opening:
                depth += 1
            elif c == closing:
                depth -= 1
                if depth == 0:
                    return j
            j += 1
        raise _LexError(f"unterminated {what}")

    def _match_paren(self, start: int) -> int:
        return self._match_closing(start, "(", ")", "$( or (")

    def _match_brace(self, start: int) -> int:
        return self._match_closing(start, "{", "}", "${")


def _expansions(text: str) -> tuple[str, ...]:
    """The command substitutions in text read as the inside of a double-quoted string."""
    lexer = _Lexer(text)
    try:
        while lexer.i < len(text):
            c = text[lexer.i]
            if c == "$":
                lexer._dollar(in_double_quotes=True)
            elif c == "`":
                lexer._backtick()
            else:
                lexer.i += 2 if c == "\\" else 1
    except _LexError:
        pass  # bash would fail on it too; what was found so far still counts
    return tuple(lexer.subs)


def _lex_words(text: str) -> list[_Word]:
    """Split text into words only (git alias expansions): operators are kept as plain words."""
    return [t if isinstance(t, _Word) else _Word(t.fd + t.op) for t in _Lexer(text).run()]


# --------------------------------------------------------------------------- parser


@dataclass(frozen=True)
class _Env:
    cwd: str | None
    aliases: Mapping[str, str]  # git aliases, keys lower-cased
    depth: int
    stdin: str | None = None  # a here-document or here-string fed to the command (for `bash <<EOF`)
    via_xargs: bool = False
    piped: bool = False  # the command reads the output of a pipe


@dataclass
class _Result:
    intents: list[Intent] = field(default_factory=list)
    cwd_op: str = ""  # "", "set", "push" or "pop": how this command changes the shell's directory
    cwd: str | None = None


@dataclass
class _Redirect:
    op: str
    fd: str
    target: _Word | None
    body: str | None
    subs: tuple[str, ...] = ()


_PIPE_OPS = frozenset({"|", "|&"})
_DEVICES = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty", "/dev/zero"})
_SCRATCH_DIRS = frozenset({"/tmp", "/var/tmp", "/dev/null"})
# Words that only open a compound command; the command proper follows them.
_LEADING_KEYWORDS = frozenset(
    {"!", "{", "}", "then", "do", "else", "elif", "if", "while", "until", "fi", "done", "esac"}
)
# Loop and case headers and function definitions run nothing themselves (their $(...) is still read).
_HEADER_KEYWORDS = frozenset({"for", "select", "case", "function", "in", "[[", "((", "coproc"})


def parse_command(command: str, git_aliases: Mapping[str, str] | None = None) -> list[Intent]:
    """Every destructive intent in ``command``, in the order the shell would meet them.

    ``git_aliases`` maps alias names to their expansion, as ``git config
    alias.NAME`` holds them ({"nuke": "reset --hard"}); an expansion starting
    with "!" is a shell command and is parsed as one.
    """
    aliases = {k.lower(): v for k, v in (git_aliases or {}).items()}
    return _parse_script(command, _Env(cwd=None, aliases=aliases, depth=0))


def _parse_script(text: str, env: _Env) -> list[Intent]:
    if env.depth > _MAX_DEPTH:
        return [_opaque((), env.cwd, "commands nested too deeply to follow")]
    try:
        tokens = _Lexer(text).run()
    except _LexError as exc:
        # Fail towards reporting: a command we cannot read might be anything.
        return [_opaque((), env.cwd, f"cannot parse the command: {exc}")]
    return _Parser(tokens, env).run()


def _opaque(argv: tuple[str, ...], cwd: str | None, reason: str) -> Intent:
    return Intent("unknown-dynamic", argv, cwd, (ANY_PATH,), {"reason": reason})


class _Parser:
    def __init__(self, tokens: list[_Token], env: _Env) -> None:
        self.tokens = tokens
        self.env = env
        self.cwd = env.cwd
        self.intents: list[Intent] = []
        self.dir_stack: list[str | None] = []

    def run(self) -> list[Intent]:
        words: list[_Word] = []
        redirects: list[_Redirect] = []
        subshells: list[str | None] = []
        before: str | None = None
        i = 0
        tokens = self.tokens
        while i < len(tokens):
            token = tokens[i]
            if isinstance(token, _Word):
                words.append(token)
                i += 1
                continue
            if token.op in _REDIRECT_OPS:
                target = tokens[i + 1] if i + 1 < len(tokens) else None
                if isinstance(target, _Word):
                    redirects.append(_Redirect(token.op, token.fd, target, token.body, token.subs))
                    i += 2
                else:
                    i += 1
                continue
            self._finish(words, redirects, before, token.op)
            # A subshell's `cd` does not outlive it.
            if token.op == "(":
                subshells.append(self.cwd)
            elif token.op == ")" and subshells:
                self.cwd = subshells.pop()
            before = token.op
            words, redirects = [], []
            i += 1
        self._finish(words, redirects, before, None)
        return self.intents

    def _finish(self, words: list[_Word], redirects: list[_Redirect], before: str | None, after: str | None) -> None:
        if not words and not redirects:
            return
        env = replace(self.env, cwd=self.cwd, stdin=None, via_xargs=False, piped=before in _PIPE_OPS)
        inner = replace(env, depth=env.depth + 1)
        # Command substitutions run first, in the same directory.
        subs = [sub for w in [*words, *(r.target for r in redirects if r.target)] for sub in w.subs]
        for sub in [*subs, *(sub for r in redirects for sub in r.subs)]:
            self.intents.extend(_parse_script(sub, inner))
        argv = tuple(w.text for w in words)
        stdin: str | None = None
        for r in redirects:
            if r.op in ("<<", "<<-") and r.fd in ("", "0"):
                stdin = r.body
            elif r.op == "<<<" and r.target is not None and r.fd in ("", "0"):
                stdin = r.target.text
            intent = _redirect_intent(r, argv, self.cwd)
            if intent is not None:
                self.intents.append(intent)
        result = _analyze(words, replace(env, stdin=stdin))
        self.intents.extend(result.intents)
        # `cd x | ...` and `cd x &` run in a subshell: the directory change is lost.
        if result.cwd_op and before not in _PIPE_OPS and after not in _PIPE_OPS and after != "&":
            if result.cwd_op == "pop":
                self.cwd = self.dir_stack.pop() if self.dir_stack else "$OLDPWD"
            else:
                if result.cwd_op == "push":
                    self.dir_stack.append(self.cwd)
                self.cwd = result.cwd


def _redirect_intent(r: _Redirect, argv: tuple[str, ...], cwd: str | None) -> Intent | None:
    # ">>" appends and "<>" opens without truncating: neither loses data.  ">",
    # ">|", "&>", "2>" and ">&FILE" truncate the file first.
    if r.op not in (">", ">|", "&>", ">&") or r.target is None:
        return None
    target = r.target.text
    if r.op == ">&" and (target.isdigit() or target == "-" or target.rstrip("-").isdigit()):
        return None  # 2>&1 and >&- duplicate or close a descriptor
    if _is_device(target):
        return None
    detail = {"op": r.fd + r.op}
    if r.target.dynamic:
        detail["dynamic"] = "expansion"
    return Intent("redirect", argv, cwd, (target,), detail)


def _is_device(path: str) -> bool:
    return path in _DEVICES or path.startswith("/dev/fd/")


def _basename(word: _Word) -> str:
    # "/usr/bin/rm" and "\rm" (which dodges aliases) are still rm.
    return posixpath.basename(word.text) if "/" in word.text else word.text


def _join(base: str | None, path: str) -> str:
    """The directory ``cd path`` lands in, relative or absolute as written."""
    if base is None or path.startswith(("/", "~", "$")):
        new = path
    else:
        new = posixpath.join(base, path)
    if "$" in new or "`" in new:
        return new.rstrip("/") or new
    return posixpath.normpath(new) if new else new


def _mk(
    kind: str,
    words: Sequence[_Word],
    env: _Env,
    targets: Sequence[_Word],
    detail: dict[str, str] | None = None,
    cwd: str | None = None,
    *,
    use_cwd: bool = False,
) -> Intent:
    detail = dict(detail or {})
    if env.via_xargs:
        detail["dynamic"] = "xargs"
    elif any(t.dynamic for t in targets):
        detail.setdefault("dynamic", "expansion")
    argv = tuple(w.text if w.display is None else w.display for w in words if w.display != "")
    return Intent(kind, argv, cwd if use_cwd else env.cwd, tuple(t.text for t in targets), detail)


def _placeholder(display: str) -> _Word:
    """Stands for paths only known at run time (xargs input, find's {})."""
    return _Word(ANY_PATH, display=display)


def _analyze(words: list[_Word], env: _Env) -> _Result:
    """The intents of one simple command (its substitutions and redirections are handled by the caller)."""
    words = list(words)
    while words and (words[0].assign or (words[0].text in _LEADING_KEYWORDS and not words[0].quoted)):
        words.pop(0)
    if not words:
        return _Result()
    verb = words[0]
    if verb.text in _HEADER_KEYWORDS and not verb.quoted:
        return _Result()
    if verb.dynamic:
        return _Result([_opaque(tuple(w.text for w in words), env.cwd, "the command name is computed at run time")])
    handler = _HANDLERS.get(_basename(verb))
    if handler is None:
        return _Result()
    if env.depth > _MAX_DEPTH:
        return _Result([_opaque(tuple(w.text for w in words), env.cwd, "commands nested too deeply to follow")])
    return handler(words, env)


# --------------------------------------------------------------------------- option parsing


@dataclass
class _Args:
    opts: list[tuple[str, str | None]] = field(default_factory=list)
    operands: list[_Word] = field(default_factory=list)
    after_dashdash: list[_Word] | None = None

    def has(self, *names: str) -> bool:
        return any(name in names for name, _ in self.opts)

    def value(self, *names: str) -> str | None:
        found: str | None = None
        for name, val in self.opts:
            if name in names:
                found = val
        return found

    @property
    def paths(self) -> list[_Word]:
        return self.operands + (self.after_dashdash or [])


def _split_args(
    args: Sequence[_Word],
    short_with_arg: str = "",
    long_with_arg: frozenset[str] = frozenset(),
    *,
    stop_at_operand: bool = False,
) -> _Args:
    """GNU-style options: clustered short flags, "-xVALUE", "--long=value", "--long value", "--"."""
    out = _Args()
    i = 0
    while i < len(args):
        word = args[i]
        text = word.text
        if out.after_dashdash is not None:
            out.after_dashdash.append(word)
        elif text == "--":
            out.after_dashdash = []
        elif text.startswith("--"):
            name, eq, val = text.partition("=")
            if eq:
                out.opts.append((name, val))
            elif name in long_with_arg and i + 1 < len(args):
                i += 1
                out.opts.append((name, args[i].text))
            else:
                out.opts.append((name, None))
        elif text.startswith("-") and len(text) > 1 and not word.dynamic:
            for k, ch in enumerate(text[1:], start=2):
                if ch in short_with_arg:
                    val = text[k:]
                    if not val and i + 1 < len(args):
                        i += 1
                        val = args[i].text
                    out.opts.append(("-" + ch, val))
                    break
                out.opts.append(("-" + ch, None))
        else:
            out.operands.append(word)
            if stop_at_operand:
                out.operands.extend(args[i + 1 :])
                break
        i += 1
    return out


def _skip_options(words: Sequence[_Word], start: int, short_with_arg: str = "",
                  long_with_arg: frozenset[str] = frozenset()) -> int:
    """Index of the first operand (the wrapped command) after a wrapper's options."""
    i = start
    while i < len(words):
        text = words[i].text
        if text == "--":
            return i + 1
        if not text.startswith("-") or text == "-" or words[i].dynamic:
            return i
        i += 2 if _takes_value(text, short_with_arg, long_with_arg) else 1
    return i


def _w(text: str) -> _Word:
    return _Word(text, dynamic="$" in text or "`" in text)


# --------------------------------------------------------------------------- wrappers


def _wrapped(words: list[_Word], start: int, env: _Env) -> _Result:
    return _Result(_analyze(words[start:], replace(env, depth=env.depth + 1)).intents)


def _h_env(words: list[_Word], env: _Env) -> _Result:
    i, cwd = 1, env.cwd
    while i < len(words):
        text = words[i].text
        if text == "--":
            i += 1
            break
        if text in ("-u", "--unset"):
            i += 2
        elif text in ("-C", "--chdir") and i + 1 < len(words):
            cwd = _join(cwd, words[i + 1].text)
            i += 2
        elif text.startswith("--chdir="):
            cwd = _join(cwd, text.partition("=")[2])
            i += 1
        elif text in ("-S", "--split-string") or text.startswith(("--split-string=", "-S")):
            # env -S "cmd args" splits its argument into a command line.
            if "=" in text and text.startswith("--"):
                script, rest = text.partition("=")[2], words[i + 1 :]
            elif len(text) > 2 and not text.startswith("--"):
                script, rest = text[2:], words[i + 1 :]
            else:
                script, rest = (words[i + 1].text if i + 1 < len(words) else ""), words[i + 2 :]
            line = " ".join([script, *(shlex.quote(w.text) for w in rest)])
            return _Result(_parse_script(line, replace(env, cwd=cwd, depth=env.depth + 1)))
        elif text.startswith("-") or words[i].assign:
            i += 1
        else:
            break
    return _wrapped(words, i, replace(env, cwd=cwd))


def _h_sudo(words: list[_Word], env: _Env) -> _Result:
    long_with_arg = frozenset({"--user", "--group", "--prompt", "--role", "--type", "--close-from",
                               "--command-timeout", "--other-user", "--chdir", "--chroot", "--host"})
    short_with_arg = "ugprtCTUDR" if _basename(words[0]) == "sudo" else "uC"
    cwd, i = env.cwd, 1
    while i < len(words):
        text = words[i].text
        if text == "--":
            i += 1
            break
        if not text.startswith("-") or text == "-" or words[i].dynamic:
            break
        if text in ("-e", "--edit"):
            return _Result()  # sudoedit edits a copy and writes it back when the editor exits
        if text in ("-D", "--chdir") and i + 1 < len(words):
            cwd = _join(cwd, words[i + 1].text)
        elif text.startswith("--chdir="):
            cwd = _join(cwd, text.partition("=")[2])
        elif text.startswith("-D") and len(text) > 2:
            cwd = _join(cwd, text[2:])
        i += 2 if _takes_value(text, short_with_arg, long_with_arg) else 1
    return _wrapped(words, i, replace(env, cwd=cwd))


def _takes_value(text: str, short_with_arg: str, long_with_arg: frozenset[str]) -> bool:
    """Whether option word ``text`` consumes the next word as its value."""
    if text.startswith("--"):
        return "=" not in text and text in long_with_arg
    if text.startswith("-") and len(text) > 1:
        for k, ch in enumerate(text[1:], start=1):
            if ch in short_with_arg:
                return k == len(text) - 1
    return False


def _simple_wrapper(short_with_arg: str = "", long_with_arg: frozenset[str] = frozenset(),
                    skip_operands: int = 0) -> Callable[[list[_Word], _Env], _Result]:
    def handler(words: list[_Word], env: _Env) -> _Result:
        i = _skip_options(words, 1, short_with_arg, long_with_arg) + skip_operands
        return _wrapped(words, i, env)

    return handler


def _h_command(words: list[_Word], env: _Env) -> _Result:
    i = _skip_options(words, 1)
    if any(w.text.startswith("-") and ("v" in w.text or "V" in w.text) for w in words[1:i]):
        return _Result()  # `command -v rm` only looks the name up
    # `command cd x` and `builtin cd x` do change the directory.
    return _analyze(words[i:], replace(env, depth=env.depth + 1))


def _h_shell(words: list[_Word], env: _Env) -> _Result:
    i, has_c = 1, False
    while i < len(words):
        text = words[i].text
        if text in ("-o", "+o", "-O", "+O", "--rcfile", "--init-file"):
            i += 2
            continue
        if text == "--":
            i += 1
            break
        if text in ("--command", "-c") or (text.startswith("-") and not text.startswith("--") and "c" in text):
            has_c = True
            i += 1
            continue
        if text.startswith(("-", "+")) and len(text) > 1:
            i += 1
            continue
        break
    inner = replace(env, depth=env.depth + 1, stdin=None, via_xargs=False, piped=False)
    if has_c:
        if i >= len(words):
            return _Result()
        return _Result(_parse_script(words[i].text, inner))
    if i < len(words):
        return _Result()  # runs a script file, which a static check cannot see
    if env.stdin is not None:
        return _Result(_parse_script(env.stdin, inner))  # bash <<'EOF' ... EOF
    if env.piped:
        # `... | sh` runs whatever the pipe produces: `echo "rm -rf x" | sh` and `curl ... | bash`.
        return _Result([_opaque(tuple(w.text for w in words), env.cwd, "the shell runs commands read from a pipe")])
    return _Result()


def _h_eval(words: list[_Word], env: _Env) -> _Result:
    return _Result(_parse_script(" ".join(w.text for w in words[1:]), replace(env, depth=env.depth + 1)))


def _h_busybox(words: list[_Word], env: _Env) -> _Result:
    return _analyze(words[1:], replace(env, depth=env.depth + 1))


def _h_xargs(words: list[_Word], env: _Env) -> _Result:
    replace_str: str | None = None
    i = 1
    while i < len(words):
        text = words[i].text
        if text == "--":
            i += 1
            break
        if not text.startswith("-") or text == "-":
            break
        if text.startswith("--"):
            name, eq, val = text.partition("=")
            if name == "--replace":
                replace_str = val if eq else "{}"
            elif not eq and name in ("--arg-file", "--delimiter", "--max-args", "--max-procs", "--max-chars",
                                     "--process-slot-var", "--eof"):
                i += 1
        else:
            for k, ch in enumerate(text[1:], start=2):
                if ch in "aEdLnPsI":
                    val = text[k:]
                    if not val and i + 1 < len(words):
                        i += 1
                        val = words[i].text
                    if ch == "I":
                        replace_str = val
                    break
                if ch in "iel":  # optional values, attached only
                    if ch == "i":
                        replace_str = text[k:] or "{}"
                    break
        i += 1
    inner = words[i:] or [_Word("echo")]
    if replace_str:
        inner = [_placeholder(w.text) if replace_str in w.text else w for w in inner]
    else:
        inner = [*inner, _placeholder("")]
    return _Result(_analyze(inner, replace(env, depth=env.depth + 1, via_xargs=True)).intents)


# --------------------------------------------------------------------------- directory changes


def _h_cd(words: list[_Word], env: _Env) -> _Result:
    operands = [w for w in words[1:] if not (w.text.startswith("-") and len(w.text) > 1)]
    name = _basename(words[0])
    if name == "popd":
        return _Result(cwd_op="pop")
    if not operands:
        return _Result(cwd_op="set" if name == "cd" else "", cwd="~")
    target = operands[0].text
    if target == "-":
        return _Result(cwd_op="set", cwd="$OLDPWD")
    if name == "pushd" and target.startswith(("+", "-")):
        return _Result(cwd_op="set", cwd="$DIRSTACK")
    return _Result(cwd_op="push" if name == "pushd" else "set", cwd=_join(env.cwd, target))


# --------------------------------------------------------------------------- file commands


def _h_rm(words: list[_Word], env: _Env) -> _Result:
    name = _basename(words[0])
    args = _split_args(words[1:], "ns" if name == "shred" else "", frozenset({"--iterations", "--size"}))
    targets = args.paths
    if not targets:
        return _Result()
    detail: dict[str, str] = {}
    if name != "rm":
        detail["verb"] = name
    if args.has("-r", "-R", "--recursive"):
        detail["recursive"] = "1"
    if args.has("-f", "--force"):
        detail["force"] = "1"
    return _Result([_mk("rm", words, env, targets, detail)])


def _h_truncate(words: list[_Word], env: _Env) -> _Result:
    args = _split_args(words[1:], "sr", frozenset({"--size", "--reference"}))
    if not args.paths:
        return _Result()
    detail = {"size": args.value("-s", "--size") or ""}
    return _Result([_mk("truncate", words, env, args.paths, detail)])


def _h_tee(words: list[_Word], env: _Env) -> _Result:
    args = _split_args(words[1:])
    targets = [w for w in args.paths if not _is_device(w.text)]
    if args.has("-a", "--append") or not targets:
        return _Result()
    return _Result([_mk("redirect", words, env, targets, {"via": "tee"})])


def _h_dd(words: list[_Word], env: _Env) -> _Result:
    targets = [_Word(w.text[3:], w.dynamic) for w in words[1:] if w.text.startswith("of=")]
    targets = [t for t in targets if not _is_device(t.text)]
    return _Result([_mk("redirect", words, env, targets, {"via": "dd"})] if targets else [])


def _h_sed(words: list[_Word], env: _Env) -> _Result:
    inplace, has_script = False, False
    operands: list[_Word] = []
    i = 1
    while i < len(words):
        text = words[i].text
        if text == "--":
            operands.extend(words[i + 1 :])
            break
        if text.startswith("--"):
            name, eq, _ = text.partition("=")
            if name == "--in-place":
                inplace = True
            elif name in ("--expression", "--file"):
                has_script = True
                i += 0 if eq else 1
            elif name == "--line-length" and not eq:
                i += 1
        elif text.startswith("-") and len(text) > 1:
            for k, ch in enumerate(text[1:], start=2):
                if ch == "i":
                    # GNU: the rest of the cluster is the backup suffix ("-i.bak", and
                    # famously "-ie" = suffix "e").  BSD/macOS: `-i ''` takes the next word.
                    inplace = True
                    if k == len(text) and i + 1 < len(words) and words[i + 1].text == "" and words[i + 1].quoted:
                        i += 1
                    break
                if ch in "efl":
                    has_script |= ch in "ef"
                    if k == len(text):
                        i += 1
                    break
        else:
            operands.append(words[i])
        i += 1
    if not has_script and operands:
        operands = operands[1:]  # the first operand is the script
    if not inplace or not operands:
        return _Result()
    return _Result([_mk("sed-inplace", words, env, operands)])


def _h_perl(words: list[_Word], env: _Env) -> _Result:
    inplace, has_script = False, False
    operands: list[_Word] = []
    i = 1
    while i < len(words):
        text = words[i].text
        if text == "--":
            operands.extend(words[i + 1 :])
            break
        if text.startswith("-") and len(text) > 1 and not text.startswith("--") and not operands:
            for k, ch in enumerate(text[1:], start=2):
                if ch == "i":
                    inplace = True
                    break
                if ch in "eE":
                    has_script = True
                    if k == len(text):
                        i += 1
                    break
                if ch in "MmIxlC0dD":
                    break  # the rest of the cluster is this switch's value
        elif not text.startswith("-") or operands:
            operands.append(words[i])
        i += 1
    if not has_script and operands:
        operands = operands[1:]  # the program file
    if not inplace or not operands:
        return _Result()
    return _Result([_mk("sed-inplace", words, env, operands, {"verb": "perl"})])


def _h_copy(words: list[_Word], env: _Env) -> _Result:
    name = _basename(words[0])
    long_with_arg = frozenset({"--target-directory", "--suffix", "--mode", "--owner", "--group"})
    args = _split_args(words[1:], "tSmog" if name == "install" else "tS", long_with_arg)
    if name == "install" and args.has("-d", "--directory"):
        return _Result()
    if name == "ln" and not args.has("-f", "--force"):
        return _Result()  # without -f, ln refuses to replace an existing file
    operands = args.paths
    target_dir = args.value("-t", "--target-directory")
    if target_dir is not None:
        dest, sources = _w(target_dir), operands
    elif len(operands) >= 2:
        dest, sources = operands[-1], operands[:-1]
    elif name == "ln" and operands:
        dest, sources = _w(posixpath.basename(operands[0].text.rstrip("/"))), operands
    else:
        return _Result()
    kind = "mv" if name == "mv" else "cp"
    if kind == "cp" and dest.text.rstrip("/") in _SCRATCH_DIRS:
        return _Result()  # copying into /tmp itself cannot touch the project
    detail = {"sources": "\n".join(w.text for w in sources)}
    if name == "mv":
        detail["deletes"] = detail["sources"]  # mv removes its sources
    elif name != "cp":
        detail["verb"] = name
    return _Result([_mk(kind, words, env, [dest], detail)])


_RSYNC_LONG_WITH_ARG = frozenset({
    "--rsh", "--exclude", "--include", "--filter", "--exclude-from", "--include-from", "--files-from",
    "--rsync-path", "--partial-dir", "--backup-dir", "--suffix", "--chmod", "--chown", "--temp-dir",
    "--compare-dest", "--copy-dest", "--link-dest", "--log-file", "--log-file-format", "--password-file",
    "--port", "--timeout", "--contimeout", "--bwlimit", "--max-size", "--min-size", "--max-delete", "--info",
    "--debug", "--out-format", "--modify-window", "--iconv", "--sockopts", "--block-size", "--remote-option",
    "--usermap", "--groupmap", "--address", "--checksum-choice", "--compress-choice", "--compress-level",
    "--skip-compress", "--outbuf", "--stop-after", "--stop-at", "--write-batch", "--only-write-batch",
    "--read-batch", "--copy-as", "--early-input",
})


def _is_remote(path: str) -> bool:
    return bool(re.match(r"^[^/]*:", path)) or path.startswith("rsync://")


def _h_rsync(words: list[_Word], env: _Env) -> _Result:
    args = _split_args(words[1:], "efTBM", _RSYNC_LONG_WITH_ARG)
    operands = args.paths
    if len(operands) < 2:
        return _Result()  # one operand lists it
    dest, sources = operands[-1], operands[:-1]
    deletes = any(name.startswith("--del") for name, _ in args.opts)
    remove_sources = args.has("--remove-source-files")
    detail = {"src": "\n".join(w.text for w in sources)}
    if remove_sources:
        detail["deletes"] = detail["src"]
    if _is_remote(dest.text):
        if not remove_sources:
            return _Result()
        return _Result([_mk("mv", words, env, [dest], {**detail, "verb": "rsync"})])
    if deletes:
        return _Result([_mk("rsync-delete", words, env, [dest], detail)])
    if dest.text.rstrip("/") in _SCRATCH_DIRS and not remove_sources:
        return _Result()
    # Without --delete rsync still overwrites what the destination holds.
    return _Result([_mk("cp", words, env, [dest], {**detail, "verb": "rsync"})])


def _h_find(words: list[_Word], env: _Env) -> _Result:
    i = 1
    while i < len(words) and (words[i].text in ("-H", "-L", "-P") or words[i].text.startswith("-O")):
        i += 1
    if i < len(words) and words[i].text == "-D":
        i += 2
    starts: list[_Word] = []
    while i < len(words) and not (words[i].text.startswith("-") or words[i].text in ("(", "!", ")", ",")):
        starts.append(words[i])
        i += 1
    if not starts:
        starts = [_Word(".")]
    expr = words[i:]
    detail = {"expr": " ".join(w.text for w in expr)}
    intents: list[Intent] = []
    deletes = False
    j = 0
    while j < len(expr):
        text = expr[j].text
        if text == "-delete":
            deletes = True
        elif text in ("-exec", "-execdir", "-ok", "-okdir"):
            k = j + 1
            command: list[_Word] = []
            while k < len(expr) and expr[k].text not in (";", "+"):
                command.append(expr[k])
                k += 1
            j = k
            if command and _basename(command[0]) in ("rm", "unlink", "shred"):
                deletes = True
                detail["exec"] = _basename(command[0])
            elif command:
                # Any other command run on each file: read it with {} standing for
                # the files found, which all lie under the start directories.
                placeholders = [_placeholder(w.text) if "{}" in w.text else w for w in command]
                for intent in _analyze(placeholders, replace(env, depth=env.depth + 1)).intents:
                    intents.append(_retarget(intent, [s.text for s in starts]))
        j += 1
    if deletes:
        intents.insert(0, _mk("find-delete", words, env, starts, detail))
    return _Result(intents)


def _retarget(intent: Intent, paths: list[str]) -> Intent:
    def swap(items: Sequence[str]) -> list[str]:
        out: list[str] = []
        for item in items:
            out.extend(paths if item == ANY_PATH else [item])
        return out

    detail = dict(intent.detail, via="find")
    for key in ("sources", "deletes", "src"):
        if key in detail:
            detail[key] = "\n".join(swap(detail[key].split("\n")))
    return replace(intent, targets=tuple(swap(intent.targets)), detail=detail)


# --------------------------------------------------------------------------- git

_GIT_GLOBAL_WITH_ARG = frozenset({"-C", "-c", "--git-dir", "--work-tree", "--namespace", "--config-env",
                                  "--super-prefix", "--attr-source"})
# Git ignores an alias that has the name of one of its own commands.
_GIT_BUILTINS = frozenset({
    "add", "am", "apply", "archive", "bisect", "blame", "branch", "checkout", "cherry-pick", "clean", "clone",
    "commit", "config", "describe", "diff", "fetch", "format-patch", "gc", "grep", "init", "log", "merge", "mv",
    "notes", "pull", "push", "range-diff", "rebase", "reflog", "remote", "reset", "restore", "revert", "rm",
    "shortlog", "show", "sparse-checkout", "stash", "status", "submodule", "switch", "tag", "worktree",
})
_PATHISH_RE = re.compile(r"\.[A-Za-z][A-Za-z0-9]*$")


def _looks_like_path(text: str) -> bool:
    """Guess, without a repository, whether a checkout operand is a path rather than a revision."""
    if text in (".", "..", "*") or text.startswith(("./", "../", "/", ":/", ":(")) or text.endswith("/"):
        return True
    if any(c in text for c in "*?["):
        return True
    # "src/app.py" or "README.md" look like files; "v1.2", "origin/main" and "HEAD~1" do not.
    return bool(_PATHISH_RE.search(posixpath.basename(text)))


def _h_git(words: list[_Word], env: _Env) -> _Result:
    return _Result(_git(words, env, env.aliases, frozenset()))


def _git(words: list[_Word], env: _Env, aliases: Mapping[str, str], seen: frozenset[str]) -> list[Intent]:
    cwd = env.cwd
    config: dict[str, str] = {}
    aliases = dict(aliases)
    extra: dict[str, str] = {}
    i = 1
    while i < len(words):
        text = words[i].text
        if not text.startswith("-") or words[i].dynamic:
            break
        name, eq, val = text.partition("=")
        if name in _GIT_GLOBAL_WITH_ARG and not eq:
            if i + 1 >= len(words):
                return []
            val = words[i + 1].text
            i += 1
        if name == "-C":
            cwd = _join(cwd, val) if val else cwd  # `git -C ""` stays put
        elif name == "-c":
            key, _, setting = val.partition("=")
            config[key.lower()] = setting
            if key.lower().startswith("alias."):
                aliases[key[len("alias."):].lower()] = setting  # git -c alias.x='reset --hard' x
        elif name in ("--git-dir", "--work-tree"):
            extra[name[2:].replace("-", "_")] = val
        i += 1
    if i >= len(words):
        return []
    sub = words[i].text
    if words[i].dynamic:
        return [_opaque(tuple(w.text for w in words), cwd, "the git command is computed at run time")]
    args = words[i + 1 :]
    genv = replace(env, cwd=cwd, aliases=aliases)
    key = sub.lower()
    if key in aliases and sub not in _GIT_BUILTINS:
        if key in seen or env.depth > _MAX_DEPTH:
            return [_opaque(tuple(w.text for w in words), cwd, f"git alias '{sub}' expands into itself")]
        expansion = aliases[key]
        inner = replace(genv, depth=env.depth + 1)
        if expansion.startswith("!"):
            # A shell alias: git runs it with the arguments appended (from the top of the work tree).
            line = " ".join([expansion[1:], *(shlex.quote(w.text) for w in args)])
            intents = _parse_script(line, inner)
        else:
            try:
                expanded = _lex_words(expansion)
            except _LexError as exc:
                return [_opaque(tuple(w.text for w in words), cwd, f"cannot parse git alias '{sub}': {exc}")]
            intents = _git([*words[:i], *expanded, *args], inner, aliases, seen | {key})
        for intent in intents:
            intent.detail.setdefault("alias", sub)
        return intents
    handler = _GIT_COMMANDS.get(sub)
    if handler is None:
        return []
    found = handler(args, config)
    if found is None:
        return []
    kind, targets, detail = found
    detail = {**detail, **extra}
    return [_mk(kind, words, genv, targets, detail)]


_GitFound = tuple[str, list[_Word], dict[str, str]] | None
_WORK_TREE_WORD = _Word(WORK_TREE)


def _git_reset(args: list[_Word], config: Mapping[str, str]) -> _GitFound:
    parsed = _split_args(args, "", frozenset({"--pathspec-from-file"}))
    mode = next((name[2:] for name, _ in parsed.opts if name in ("--hard", "--merge", "--keep")), None)
    if mode is None:
        return None  # --soft, --mixed and plain reset leave the working tree alone
    rev = parsed.operands[0].text if parsed.operands else "HEAD"
    return "git-reset", [_WORK_TREE_WORD], {"mode": mode, "rev": rev}


def _git_checkout(args: list[_Word], config: Mapping[str, str]) -> _GitFound:
    parsed = _split_args(args, "bB", frozenset({"--orphan", "--pathspec-from-file"}))
    new_branch = parsed.value("-b", "-B", "--orphan")
    detail: dict[str, str] = {}
    if parsed.has("-f", "--force"):
        detail["force"] = "1"
    if parsed.has("--pathspec-from-file"):
        rev = parsed.operands[:1]
        return "git-checkout-paths", [_Word(ANY_PATH)], {**detail, **({"rev": rev[0].text} if rev else {})}
    if parsed.after_dashdash is not None:
        rev_words = parsed.operands[:1]
        if rev_words:
            detail["rev"] = rev_words[0].text
        if parsed.after_dashdash:
            return "git-checkout-paths", parsed.after_dashdash, detail
        if rev_words:
            return "git-checkout-rev", [_WORK_TREE_WORD], detail
        return None
    operands = parsed.operands
    if new_branch is not None:
        detail["branch"] = new_branch
        if not operands:
            return None  # `checkout -b new` starts a branch where HEAD is: nothing in the tree changes
        return "git-checkout-rev", [_WORK_TREE_WORD], {**detail, "rev": operands[0].text}
    if not operands:
        if "force" in detail:
            return "git-checkout-rev", [_WORK_TREE_WORD], {**detail, "rev": "HEAD"}  # discards local changes
        return None
    first = operands[0]
    if _looks_like_path(first.text):
        return "git-checkout-paths", operands, detail
    if len(operands) == 1:
        return "git-checkout-rev", [_WORK_TREE_WORD], {**detail, "rev": first.text}
    return "git-checkout-paths", operands[1:], {**detail, "rev": first.text}


def _git_switch(args: list[_Word], config: Mapping[str, str]) -> _GitFound:
    parsed = _split_args(args, "cC", frozenset({"--create", "--force-create", "--orphan"}))
    detail: dict[str, str] = {}
    if parsed.has("-f", "--force", "--discard-changes"):
        detail["force"] = "1"
    orphan = parsed.value("--orphan")
    if orphan is not None:
        return "git-checkout-rev", [_WORK_TREE_WORD], {**detail, "orphan": orphan}  # empties the tree
    new_branch = parsed.value("-c", "-C", "--create", "--force-create")
    operands = parsed.paths
    if new_branch is not None:
        detail["branch"] = new_branch
    if not operands:
        return None
    return "git-checkout-rev", [_WORK_TREE_WORD], {**detail, "rev": operands[0].text}


def _git_restore(args: list[_Word], config: Mapping[str, str]) -> _GitFound:
    parsed = _split_args(args, "s", frozenset({"--source", "--pathspec-from-file"}))
    worktree = parsed.has("-W", "--worktree") or not parsed.has("-S", "--staged")
    if not worktree:
        return None  # --staged alone only resets the index
    paths = parsed.paths or ([_Word(ANY_PATH)] if parsed.has("--pathspec-from-file") else [])
    if not paths:
        return None  # git refuses to restore without paths
    source = parsed.value("-s", "--source")
    return "git-restore", paths, {"source": source} if source else {}


def _git_clean(args: list[_Word], config: Mapping[str, str]) -> _GitFound:
    parsed = _split_args(args, "e", frozenset({"--exclude"}))
    if parsed.has("-n", "--dry-run"):
        return None
    forced = parsed.has("-f", "--force", "-i", "--interactive")
    if not forced and config.get("clean.requireforce", "true").lower() not in ("false", "no", "off", "0"):
        return None  # git refuses to clean without -f unless clean.requireForce is off
    flags = "".join(name[1] for name, _ in parsed.opts if name in ("-d", "-x", "-X"))
    return "git-clean", parsed.paths or [_Word(".")], {"flags": flags}


def _git_stash(args: list[_Word], config: Mapping[str, str]) -> _GitFound:
    if not args:
        return None
    action, rest = args[0].text, _split_args(args[1:])
    if action == "drop":
        return "git-stash-drop", [], {"stash": rest.paths[0].text if rest.paths else "stash@{0}"}
    if action == "clear":
        return "git-stash-clear", [], {}
    return None


def _git_branch(args: list[_Word], config: Mapping[str, str]) -> _GitFound:
    parsed = _split_args(args, "u", frozenset({"--set-upstream-to", "--sort", "--format", "--points-at"}))
    names = [w.text for w in parsed.paths]
    force = parsed.has("-f", "--force")
    if parsed.has("-D") or (parsed.has("-d", "--delete") and force):
        return "git-branch-delete", [], {"branches": "\n".join(names)}
    if parsed.has("-d", "--delete"):
        return None  # -d refuses to delete an unmerged branch
    if parsed.has("-M", "-C") or (force and names):
        detail = {"branch": names[0] if names else ""}
        if len(names) > 1:
            detail["rev"] = names[1]
        return "git-branch-force", [], detail
    return None


def _git_rebase(args: list[_Word], config: Mapping[str, str]) -> _GitFound:
    parsed = _split_args(args, "sXx", frozenset({"--onto", "--strategy", "--strategy-option", "--exec"}))
    if parsed.has("--abort", "--quit", "--show-current-patch", "--edit-todo"):
        return None  # these end or inspect a rebase; --abort returns to where it started
    detail: dict[str, str] = {}
    if parsed.operands:
        detail["upstream"] = parsed.operands[0].text
    onto = parsed.value("--onto")
    if onto:
        detail["onto"] = onto
    if parsed.has("-i", "--interactive"):
        detail["interactive"] = "1"
    return "git-rebase", [_WORK_TREE_WORD], detail


def _git_rm(args: list[_Word], config: Mapping[str, str]) -> _GitFound:
    parsed = _split_args(args, "", frozenset({"--pathspec-from-file"}))
    if parsed.has("--cached", "-n", "--dry-run") or not parsed.paths:
        return None  # --cached only unstages
    return "rm", parsed.paths, {"git": "rm"}


def _git_mv(args: list[_Word], config: Mapping[str, str]) -> _GitFound:
    parsed = _split_args(args)
    if parsed.has("-n", "--dry-run") or len(parsed.paths) < 2:
        return None
    sources = "\n".join(w.text for w in parsed.paths[:-1])
    return "mv", parsed.paths[-1:], {"git": "mv", "sources": sources, "deletes": sources}


_GIT_COMMANDS: dict[str, Callable[[list[_Word], Mapping[str, str]], _GitFound]] = {
    "reset": _git_reset,
    "checkout": _git_checkout,
    "switch": _git_switch,
    "restore": _git_restore,
    "clean": _git_clean,
    "stash": _git_stash,
    "branch": _git_branch,
    "rebase": _git_rebase,
    "rm": _git_rm,
    "mv": _git_mv,
}

_HANDLERS: dict[str, Callable[[list[_Word], _Env], _Result]] = {
    "git": _h_git,
    "rm": _h_rm,
    "unlink": _h_rm,
    "shred": _h_rm,
    "find": _h_find,
    "truncate": _h_truncate,
    "sed": _h_sed,
    "gsed": _h_sed,
    "perl": _h_perl,
    "mv": _h_copy,
    "cp": _h_copy,
    "install": _h_copy,
    "ln": _h_copy,
    "rsync": _h_rsync,
    "tee": _h_tee,
    "dd": _h_dd,
    "cd": _h_cd,
    "pushd": _h_cd,
    "popd": _h_cd,
    "env": _h_env,
    "sudo": _h_sudo,
    "doas": _h_sudo,
    "command": _h_command,
    "builtin": _h_command,
    "exec": _simple_wrapper("a"),
    "nohup": _simple_wrapper(),
    "nice": _simple_wrapper("n", frozenset({"--adjustment"})),
    "time": _simple_wrapper("fo", frozenset({"--format", "--output"})),
    "timeout": _simple_wrapper("sk", frozenset({"--signal", "--kill-after"}), skip_operands=1),
    "stdbuf": _simple_wrapper("ioe", frozenset({"--input", "--output", "--error"})),
    "ionice": _simple_wrapper("cn", frozenset({"--class", "--classdata"})),
    "setsid": _simple_wrapper(),
    "xargs": _h_xargs,
    "eval": _h_eval,
    "busybox": _h_busybox,
    **dict.fromkeys(("bash", "sh", "zsh", "dash", "ksh", "mksh", "ash", "fish"), _h_shell),
}
