"""Handlers for interpreters: ``python``, ``node``, ``ruby``, ``perl``, ``php``, ``awk``...

An interpreter given a script file runs code guardian does not open: it is an
unknown tool, stopped only when its arguments name a protected path.  Inline
code (``-c``/``-e``, a here-document or a pipe into it) is looked at with
:func:`guardian.shell.code.scan`: strings it hands to a shell are read as
commands, a visible delete or write is judged on the string literals it could
mean, and anything else that can reach a file makes the call opaque (allowed
after a snapshot unless it names a protected path).  ``perl -i``, ``ruby -i``
and ``awk -i inplace`` edit their operands like ``sed -i``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from guardian.shell.code import scan
from guardian.shell.parser import (
    Env,
    Handler,
    Result,
    basename,
    literal_operands,
    make_intent,
    opaque,
    unknown_command,
)
from guardian.shell.quick import PYTHON_NAMES, PYTHON_READ_ONLY_MODULES
from guardian.shell.walker import parse_script
from guardian.shell.words import Word


def _inline(language: str, code: Word | str, extra: Sequence[Word], words: list[Word], env: Env) -> Result:
    """Judge inline code: the shell commands it runs, and what it visibly deletes or writes."""
    name = basename(words[0])
    argv = [w.text for w in words]
    if isinstance(code, Word) and code.dynamic:
        return Result([opaque(argv, env.cwd, f"{name} runs code computed at run time", literal_operands(extra))])
    text = code.text if isinstance(code, Word) else code
    facts = scan(language, text)
    if not facts.touches:
        return Result()
    intents = []
    inner = replace(env, depth=env.depth + 1, stdin=None, via_xargs=False, piped=False)
    for command in facts.shell:
        intents += parse_script(command, inner)
    named = [*facts.literals, *literal_operands(extra)]
    detail = {"api": facts.api} if facts.api else {}
    intents.append(opaque(argv, env.cwd, f"guardian cannot see all that {name}'s inline code does", named, detail))
    return Result(intents)


def _from_stdin(language: str, words: list[Word], extra: Sequence[Word], env: Env) -> Result:
    feed = env.stdin
    if feed is not None and feed.text is not None:
        return _inline(language, feed.text, extra, words, env)  # python3 - <<'EOF' ... EOF, echo '...' | node
    if feed is not None or env.piped:
        name = basename(words[0])
        return Result([opaque([w.text for w in words], env.cwd, f"{name} runs code read from its input",
                              literal_operands(extra))])
    return Result()  # an interactive session


def _h_python(words: list[Word], env: Env) -> Result:
    i = 1
    while i < len(words):
        text = words[i].text
        if text == "-c" or (text.startswith("-") and not text.startswith("--") and text.endswith("c")
                            and all(ch in "BdEhiIOqsSuvbc" for ch in text[1:])):
            if i + 1 >= len(words):
                return Result()
            return _inline("python", words[i + 1], words[i + 2 :], words, env)
        if text.startswith("-c") and len(text) > 2:
            return _inline("python", Word(text[2:], words[i].dynamic), words[i + 1 :], words, env)
        if text == "-m" or (text.startswith("-m") and len(text) > 2):
            module = words[i + 1].text if text == "-m" and i + 1 < len(words) else text[2:]
            rest = words[i + 2 :] if text == "-m" else words[i + 1 :]
            if module.split(".")[0] in PYTHON_READ_ONLY_MODULES:
                return Result()
            return unknown_command([Word(module), *rest], env, f"guardian does not know what {module} does")
        if text in ("-W", "-X", "-Q"):
            i += 2
            continue
        if text == "-":
            return _from_stdin("python", words, words[i + 1 :], env)
        if text.startswith("-"):
            i += 1
            continue
        return unknown_command(words[i:], env, f"guardian does not read the script {text}")
    return _from_stdin("python", words, [], env)


_CODE_FLAGS = {  # interpreter -> (language, options taking inline code, options taking another value)
    "node": ("node", frozenset({"-e", "--eval", "-p", "--print"}), frozenset({"-r", "--require", "--import",
                                                                               "--loader", "-C"})),
    "ruby": ("ruby", frozenset({"-e"}), frozenset({"-r", "-I", "-C", "-E", "-F"})),
    "php": ("php", frozenset({"-r"}), frozenset({"-c", "-d", "-f", "-z"})),
    "lua": ("lua", frozenset({"-e"}), frozenset({"-l"})),
    "Rscript": ("python", frozenset({"-e"}), frozenset()),
    "deno": ("node", frozenset({"eval"}), frozenset()),
    "bun": ("node", frozenset({"-e", "--eval", "-p", "--print"}), frozenset()),
    "osascript": ("python", frozenset({"-e"}), frozenset()),
    "tclsh": ("python", frozenset(), frozenset()),
    "pwsh": ("python", frozenset({"-c", "-Command", "-command"}), frozenset()),
}


def _h_interpreter(words: list[Word], env: Env) -> Result:
    name = basename(words[0])
    key = "node" if name == "nodejs" else name
    language, code_flags, value_flags = _CODE_FLAGS[key]
    inplace = False
    i = 1
    while i < len(words):
        text = words[i].text
        if text in code_flags:
            if i + 1 >= len(words):
                return Result()
            result = _inline(language, words[i + 1], words[i + 2 :], words, env)
            if inplace:
                result.intents.append(_inplace_intent(words, words[i + 2 :], env))
            return result
        if key == "ruby" and text.startswith("-") and "i" in text[1:2]:
            inplace = True
        if text in value_flags:
            i += 2
            continue
        if text == "-":
            return _from_stdin(language, words, words[i + 1 :], env)
        if text.startswith("-"):
            i += 1
            continue
        if key == "deno" and text in ("run", "test", "task"):
            return unknown_command(words[i + 1 :], env, "guardian does not read the script")
        return unknown_command(words[i:], env, f"guardian does not read the script {text}")
    return _from_stdin(language, words, [], env)


def _inplace_intent(words: list[Word], operands: Sequence[Word], env: Env):  # type: ignore[no-untyped-def]
    files = [w for w in operands if not w.text.startswith("-")]
    return make_intent("sed-inplace", words, env, files, {"verb": basename(words[0])})


def _h_perl(words: list[Word], env: Env) -> Result:
    inplace, code = False, None
    operands: list[Word] = []
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
                    if k == len(text):
                        i += 1
                        code = words[i] if i < len(words) else None
                    else:
                        code = Word(text[k:], words[i].dynamic)
                    break
                if ch in "MmIxlC0dD":
                    break  # the rest of the cluster is this switch's value
        elif not text.startswith("-") or operands:
            operands.append(words[i])
        i += 1
    if code is None and operands:
        script, operands = operands[0], operands[1:]
        if not inplace:
            return unknown_command([script, *operands], env, f"guardian does not read the script {script.text}")
    result = _inline("perl", code, operands, words, env) if code is not None else _from_stdin("perl", words, [], env)
    if inplace and operands:
        result.intents.append(make_intent("sed-inplace", words, env, operands, {"verb": "perl"}))
    return result


def _h_awk(words: list[Word], env: Env) -> Result:
    inplace, program = False, None
    operands: list[Word] = []
    i = 1
    while i < len(words):
        text = words[i].text
        if text in ("-i", "--include") and i + 1 < len(words):
            inplace |= words[i + 1].text in ("inplace", "inplace.awk")
            i += 2
            continue
        if text.startswith("--include="):
            inplace |= text.partition("=")[2] in ("inplace", "inplace.awk")
        elif text in ("-f", "--file") and i + 1 < len(words):
            program = Word("")  # the program is a file guardian does not read
            i += 2
            continue
        elif text in ("-v", "-F", "--assign", "--field-separator") and i + 1 < len(words):
            i += 2
            continue
        elif text.startswith("-") and len(text) > 1 and program is None:
            pass
        elif program is None:
            program = words[i]
        else:
            operands.append(words[i])
        i += 1
    result = _inline("awk", program, operands, words, env) if program is not None else Result()
    if inplace and operands:
        result.intents.append(make_intent("sed-inplace", words, env, operands, {"verb": basename(words[0])}))
    return result


INTERPRETERS: Mapping[str, Handler] = {
    **dict.fromkeys(PYTHON_NAMES, _h_python),
    **dict.fromkeys(("node", "nodejs", "ruby", "php", "lua", "Rscript", "deno", "bun", "osascript", "tclsh",
                     "pwsh"), _h_interpreter),
    "perl": _h_perl,
    **dict.fromkeys(("awk", "gawk", "mawk", "nawk"), _h_awk),
}
