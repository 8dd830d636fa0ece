"""What every command handler shares: the environment it reads a command in, its result, and ``analyze``.

:func:`analyze` looks a simple command's name up in :attr:`Env.handlers` and
returns what the handler finds.  The handler table travels in the :class:`Env`
rather than being imported here: handlers call back into :func:`analyze` and
into the tree walker (``sudo rm``, ``bash -c``, ``find -exec``), and passing the
table in keeps the import graph one-way.  The small helpers every handler uses
to build intents live here as well.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from guardian.shell.intent import ANY_PATH, Intent
from guardian.shell.quick import READ_ONLY
from guardian.shell.words import Word

MAX_DEPTH = 12  # nested bash -c / eval / $(...) / git aliases; deeper than this is treated as unreadable


@dataclass(frozen=True)
class Feed:
    """What a command reads on stdin, as far as it can be known before it runs.

    ``text`` is known outright (a here-document, ``<<< 'x'``, ``echo x |``); ``scope`` is a word
    for paths known only to lie under a directory (``find build |`` gives ``build/$(find)``).
    Neither: anything at all (``cat list |``).
    """

    text: str | None = None
    scope: str | None = None
    path: str | None = None  # `< FILE`: the file it reads (git apply and patch read their patch from it)


@dataclass(frozen=True)
class Env:
    cwd: str | None
    aliases: Mapping[str, str]  # git aliases, keys lower-cased
    depth: int
    # The command handlers by name.  They come in with the environment rather than by
    # import because they call back into analyze() and the walker.
    handlers: Mapping[str, Handler]
    stdin: Feed | None = None  # None: stdin is not redirected (the terminal, or nothing)
    via_xargs: bool = False
    piped: bool = False  # the command reads the output of a pipe
    functions: frozenset[str] = frozenset()  # shell functions defined earlier in the command
    environ: Mapping[str, str] = field(default_factory=dict)  # HOME, TMPDIR, SHELL of the agent
    positional: tuple[Word, ...] = ()  # $0, $1...: `sh -c 'rm "$1"' _ x`, or a function's arguments


@dataclass
class Result:
    intents: list[Intent] = field(default_factory=list)
    cwd_op: str = ""  # "", "set", "push" or "pop": how this command changes the shell's directory
    cwd: str | None = None
    git_aliases: dict[str, str] = field(default_factory=dict)  # `git config alias.x ...` defines these


# Reads one simple command (its words, the command name first) and returns what it would do.
Handler = Callable[[list[Word], Env], Result]

_DEVICES = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty", "/dev/zero"})


def opaque(argv: Sequence[str], cwd: str | None, reason: str, named: Sequence[str] = (),
           detail: Mapping[str, str] | None = None) -> Intent:
    """A construct guardian cannot see into (inline code, eval, a computed command, an odd wrapper).

    ``named`` are the literal words it was given: any of them that is a protected path stops it.
    """
    return Intent("opaque", tuple(argv), cwd, tuple(named), {"reason": reason, **(detail or {})})


def unreadable(cwd: str | None, reason: str) -> Intent:
    """A command that cannot be read at all: judged over the whole project."""
    return Intent("unknown-dynamic", (), cwd, (ANY_PATH,), {"reason": reason})


def literal_operands(words: Sequence[Word]) -> list[str]:
    """The words of a command that may name files: its operands and the values of ``--opt=value``."""
    out: list[str] = []
    for w in words:
        if w.dynamic or w.display is not None:
            continue
        text = w.text
        if text.startswith("--") and "=" in text:
            out.append(text.partition("=")[2])
        elif text.startswith("-") and len(text) > 1:
            continue
        elif text:
            out.append(text)
    return out


def unknown_command(words: Sequence[Word], env: Env, reason: str) -> Result:
    """A tool guardian does not model: it stops only when it names a protected path (see the judge)."""
    named = literal_operands(words[1:])
    if not named:
        return Result()
    return Result([Intent("unknown-command", tuple(w.text for w in words), env.cwd, tuple(named),
                          {"reason": reason})])


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
    if env.via_xargs and any(t.display is not None for t in targets):
        detail["dynamic"] = "xargs"
    elif any(t.dynamic for t in targets):
        detail.setdefault("dynamic", "expansion")
    argv = tuple(w.text if w.display is None else w.display for w in words if w.display != "")
    return Intent(kind, argv, cwd if use_cwd else env.cwd, tuple(t.text for t in targets), detail)


def placeholder(display: str, text: str = ANY_PATH) -> Word:
    """Stands for paths only known at run time (xargs input, find's {})."""
    return Word(text, dynamic=text != ANY_PATH, display=display)


# Words that only open a compound command; the command proper follows them.
_LEADING_KEYWORDS = frozenset({"!", "{", "then", "do", "else", "elif", "if", "while", "until"})


def analyze(words: list[Word], env: Env) -> Result:
    """The intents of one simple command (its substitutions and redirections are handled by the caller)."""
    words = list(words)
    while words and (words[0].assign or (words[0].text in _LEADING_KEYWORDS and not words[0].quoted)):
        words.pop(0)
    if not words:
        return Result()
    if env.depth > MAX_DEPTH:
        return Result([unreadable(env.cwd, "commands nested too deeply to follow")])
    verb = words[0]
    if verb.dynamic:
        return env.handlers["$dynamic"](words, env)
    name = basename(verb)
    handler = env.handlers.get(name)
    if handler is not None:
        return handler(words, env)
    if name in READ_ONLY or name in env.functions:
        return Result()
    if "/" in verb.text:
        return unknown_command(words, env, f"guardian does not read the script {verb.text}")
    return unknown_command(words, env, f"guardian does not know what {name} does")
