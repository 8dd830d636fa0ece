"""Read a token stream as command lists and hand each simple command to its handler.

:func:`parse_script` lexes a command string and walks ``;``/``&&``/``||``/``|``,
subshells, redirections and here-documents.  It reads every command
substitution as a script of its own, follows ``cd``/``pushd``/``popd`` through
the list, and passes each simple command to :func:`analyze`, which looks its
name up in :attr:`Env.handlers`.  The handler table travels in the
:class:`Env` rather than being imported here: handlers call back into
:func:`analyze` and :func:`parse_script` (``sudo rm``, ``bash -c``, ``find
-exec``), and passing the table in keeps the import graph one-way.  The small
helpers every handler uses to build intents live here as well.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from guardian.shell.intent import ANY_PATH, Intent
from guardian.shell.lexer import REDIRECT_OPS, Lexer, LexError, Token, Word

MAX_DEPTH = 12  # nested bash -c / eval / $(...) / git aliases; deeper than this is treated as opaque


@dataclass(frozen=True)
class Env:
    cwd: str | None
    aliases: Mapping[str, str]  # git aliases, keys lower-cased
    depth: int
    # The command handlers by name.  They come in with the environment rather than by
    # import because they call back into analyze() and parse_script().
    handlers: Mapping[str, Handler]
    stdin: str | None = None  # a here-document or here-string fed to the command (for `bash <<EOF`)
    via_xargs: bool = False
    piped: bool = False  # the command reads the output of a pipe


@dataclass
class Result:
    intents: list[Intent] = field(default_factory=list)
    cwd_op: str = ""  # "", "set", "push" or "pop": how this command changes the shell's directory
    cwd: str | None = None


# Reads one simple command (its words, the command name first) and returns what it would do.
Handler = Callable[[list[Word], Env], Result]


@dataclass
class _Redirect:
    op: str
    fd: str
    target: Word | None
    body: str | None
    subs: tuple[str, ...] = ()


_PIPE_OPS = frozenset({"|", "|&"})
_DEVICES = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty", "/dev/zero"})
# Words that only open a compound command; the command proper follows them.
_LEADING_KEYWORDS = frozenset(
    {"!", "{", "}", "then", "do", "else", "elif", "if", "while", "until", "fi", "done", "esac"}
)
# Loop and case headers and function definitions run nothing themselves (their $(...) is still read).
_HEADER_KEYWORDS = frozenset({"for", "select", "case", "function", "in", "[[", "((", "coproc"})


def parse_script(text: str, env: Env) -> list[Intent]:
    if env.depth > MAX_DEPTH:
        return [opaque((), env.cwd, "commands nested too deeply to follow")]
    try:
        tokens = Lexer(text).run()
    except LexError as exc:
        # Fail towards reporting: a command we cannot read might be anything.
        return [opaque((), env.cwd, f"cannot parse the command: {exc}")]
    return _Parser(tokens, env).run()


def opaque(argv: tuple[str, ...], cwd: str | None, reason: str) -> Intent:
    return Intent("unknown-dynamic", argv, cwd, (ANY_PATH,), {"reason": reason})


class _Parser:
    def __init__(self, tokens: list[Token], env: Env) -> None:
        self.tokens = tokens
        self.env = env
        self.cwd = env.cwd
        self.intents: list[Intent] = []
        self.dir_stack: list[str | None] = []

    def run(self) -> list[Intent]:
        words: list[Word] = []
        redirects: list[_Redirect] = []
        subshells: list[str | None] = []
        before: str | None = None
        i = 0
        tokens = self.tokens
        while i < len(tokens):
            token = tokens[i]
            if isinstance(token, Word):
                words.append(token)
                i += 1
                continue
            if token.op in REDIRECT_OPS:
                target = tokens[i + 1] if i + 1 < len(tokens) else None
                if isinstance(target, Word):
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

    def _finish(self, words: list[Word], redirects: list[_Redirect], before: str | None, after: str | None) -> None:
        if not words and not redirects:
            return
        env = replace(self.env, cwd=self.cwd, stdin=None, via_xargs=False, piped=before in _PIPE_OPS)
        inner = replace(env, depth=env.depth + 1)
        # Command substitutions run first, in the same directory.
        subs = [sub for w in [*words, *(r.target for r in redirects if r.target)] for sub in w.subs]
        for sub in [*subs, *(sub for r in redirects for sub in r.subs)]:
            self.intents.extend(parse_script(sub, inner))
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
        result = analyze(words, replace(env, stdin=stdin))
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
    if is_device(target):
        return None
    detail = {"op": r.fd + r.op}
    if r.target.dynamic:
        detail["dynamic"] = "expansion"
    return Intent("redirect", argv, cwd, (target,), detail)


def is_device(path: str) -> bool:
    return path in _DEVICES or path.startswith("/dev/fd/")


def basename(word: Word) -> str:
    # "/usr/bin/rm" and "\rm" (which dodges aliases) are still rm.
    return posixpath.basename(word.text) if "/" in word.text else word.text


def join_dir(base: str | None, path: str) -> str:
    """The directory ``cd path`` lands in, relative or absolute as written."""
    if base is None or path.startswith(("/", "~", "$")):
        new = path
    else:
        new = posixpath.join(base, path)
    if "$" in new or "`" in new:
        return new.rstrip("/") or new
    return posixpath.normpath(new) if new else new


def make_intent(
    kind: str,
    words: Sequence[Word],
    env: Env,
    targets: Sequence[Word],
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


def placeholder(display: str) -> Word:
    """Stands for paths only known at run time (xargs input, find's {})."""
    return Word(ANY_PATH, display=display)


def analyze(words: list[Word], env: Env) -> Result:
    """The intents of one simple command (its substitutions and redirections are handled by the caller)."""
    words = list(words)
    while words and (words[0].assign or (words[0].text in _LEADING_KEYWORDS and not words[0].quoted)):
        words.pop(0)
    if not words:
        return Result()
    verb = words[0]
    if verb.text in _HEADER_KEYWORDS and not verb.quoted:
        return Result()
    if verb.dynamic:
        return Result([opaque(tuple(w.text for w in words), env.cwd, "the command name is computed at run time")])
    handler = env.handlers.get(basename(verb))
    if handler is None:
        return Result()
    if env.depth > MAX_DEPTH:
        return Result([opaque(tuple(w.text for w in words), env.cwd, "commands nested too deeply to follow")])
    return handler(words, env)
