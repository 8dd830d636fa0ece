"""Split a command string into words and operators, as a POSIX shell (bash) would.

Why a hand-written lexer rather than :mod:`shlex`: shlex with
``punctuation_chars`` cannot tell a quoted ``'&&'`` from the operator, splits
``stash@{0}`` and ``$(...)`` into pieces, treats ``#`` inside a word as a
comment, cannot see ``2>`` as one redirection, and would read the body of a
here-document as commands.  Each of those either hides a destructive command
or invents one.  A :class:`Word` keeps what the shell would compute at run
time (``$x``, ``$(...)``, backquotes) as written and says so; the command
substitutions inside it are collected so the parser can read them as commands.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace


class LexError(ValueError):
    pass


@dataclass
class Word:
    text: str  # with quotes removed; expansions ($x, $(...), `...`) kept as written
    dynamic: bool = False  # holds an expansion, so the real value is only known at run time
    quoted: bool = False  # some part was quoted: not a reserved word, not an fd number
    assign: bool = False  # NAME=value, a variable assignment in command position
    subs: tuple[str, ...] = ()  # the command substitutions inside, which run too
    display: str | None = None  # what to show in argv for a placeholder; "" hides it


@dataclass(frozen=True)
class Op:
    op: str
    fd: str = ""  # "2" in "2>"
    body: str | None = None  # a here-document's text
    subs: tuple[str, ...] = ()  # command substitutions in an unquoted here-document, which do run


Token = Word | Op

_CONTROL_OPS = frozenset({";;&", "&&", "||", "|&", ";;", ";&", "|", "&", ";", "(", ")", "\n"})
REDIRECT_OPS = frozenset({"&>>", "<<<", "<<-", "&>", ">>", ">|", "<<", "<>", ">&", "<&", ">", "<"})
_ALL_OPS = sorted(_CONTROL_OPS | REDIRECT_OPS, key=len, reverse=True)  # longest match first
_ASSIGN_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\[[^\]]*\])?\+?=")
_ANSI_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b",
                 "f": "\f", "v": "\v", "\\": "\\", "'": "'", '"': '"', "?": "?"}


class Lexer:
    """Splits a command string into words and operators, as a POSIX shell (bash) would."""

    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.tokens: list[Token] = []
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
        word = Word(text, self.dynamic, self.quoted, assign, tuple(self.subs))
        if self.want_delimiter is not None:
            index, strip = self.want_delimiter
            self.pending_heredocs.append((index, text, strip, self.quoted))
            self.want_delimiter = None
        self.tokens.append(word)
        self._new_word()

    def run(self) -> list[Token]:
        s, n = self.s, len(self.s)
        while self.i < n:
            c = s[self.i]
            if c in " \t\r":
                self._end_word()
                self.i += 1
            elif c == "\n":
                self._end_word()
                self.tokens.append(Op("\n"))
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
                    raise LexError("unterminated single quote")
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
        self.tokens.append(Op(op, fd))

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
            if isinstance(token, Op):
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
                raise LexError("unterminated double quote")
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
                raise LexError("unterminated $'...' string")
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
                raise LexError("unterminated backquote")
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
                raise LexError("unterminated single quote")
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
        raise LexError(f"unterminated {closing}")

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
        raise LexError(f"unterminated {what}")

    def _match_paren(self, start: int) -> int:
        return self._match_closing(start, "(", ")", "$( or (")

    def _match_brace(self, start: int) -> int:
        return self._match_closing(start, "{", "}", "${")


def _expansions(text: str) -> tuple[str, ...]:
    """The command substitutions in text read as the inside of a double-quoted string."""
    lexer = Lexer(text)
    try:
        while lexer.i < len(text):
            c = text[lexer.i]
            if c == "$":
                lexer._dollar(in_double_quotes=True)
            elif c == "`":
                lexer._backtick()
            else:
                lexer.i += 2 if c == "\\" else 1
    except LexError:
        pass  # bash would fail on it too; what was found so far still counts
    return tuple(lexer.subs)


def lex_words(text: str) -> list[Word]:
    """Split text into words only (git alias expansions): operators are kept as plain words."""
    return [t if isinstance(t, Word) else Word(t.fd + t.op) for t in Lexer(text).run()]
