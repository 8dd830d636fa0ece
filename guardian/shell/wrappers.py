"""Handlers for commands that run other commands: ``sudo``, ``env``, ``xargs``, ``bash -c``, ``eval``.

Each one finds the command it wraps (skipping its own options, noting a
directory change such as ``env -C`` or ``sudo -D``) and reads that command, or
the script it is given, one level deeper.  ``xargs`` marks the paths it will
append as only known at run time.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import replace

from guardian.shell.lexer import Word
from guardian.shell.options import skip_options, takes_value
from guardian.shell.parser import Env, Handler, Result, analyze, basename, join_dir, opaque, parse_script, placeholder


def _wrapped(words: list[Word], start: int, env: Env) -> Result:
    return Result(analyze(words[start:], replace(env, depth=env.depth + 1)).intents)


def _h_env(words: list[Word], env: Env) -> Result:
    i, cwd = 1, env.cwd
    while i < len(words):
        text = words[i].text
        if text == "--":
            i += 1
            break
        if text in ("-u", "--unset"):
            i += 2
        elif text in ("-C", "--chdir") and i + 1 < len(words):
            cwd = join_dir(cwd, words[i + 1].text)
            i += 2
        elif text.startswith("--chdir="):
            cwd = join_dir(cwd, text.partition("=")[2])
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
            return Result(parse_script(line, replace(env, cwd=cwd, depth=env.depth + 1)))
        elif text.startswith("-") or words[i].assign:
            i += 1
        else:
            break
    return _wrapped(words, i, replace(env, cwd=cwd))


def _h_sudo(words: list[Word], env: Env) -> Result:
    long_with_arg = frozenset({"--user", "--group", "--prompt", "--role", "--type", "--close-from",
                               "--command-timeout", "--other-user", "--chdir", "--chroot", "--host"})
    short_with_arg = "ugprtCTUDR" if basename(words[0]) == "sudo" else "uC"
    cwd, i = env.cwd, 1
    while i < len(words):
        text = words[i].text
        if text == "--":
            i += 1
            break
        if not text.startswith("-") or text == "-" or words[i].dynamic:
            break
        if text in ("-e", "--edit"):
            return Result()  # sudoedit edits a copy and writes it back when the editor exits
        if text in ("-D", "--chdir") and i + 1 < len(words):
            cwd = join_dir(cwd, words[i + 1].text)
        elif text.startswith("--chdir="):
            cwd = join_dir(cwd, text.partition("=")[2])
        elif text.startswith("-D") and len(text) > 2:
            cwd = join_dir(cwd, text[2:])
        i += 2 if takes_value(text, short_with_arg, long_with_arg) else 1
    return _wrapped(words, i, replace(env, cwd=cwd))


def _simple_wrapper(short_with_arg: str = "", long_with_arg: frozenset[str] = frozenset(),
                    skip_operands: int = 0) -> Handler:
    def handler(words: list[Word], env: Env) -> Result:
        i = skip_options(words, 1, short_with_arg, long_with_arg) + skip_operands
        return _wrapped(words, i, env)

    return handler


def _h_command(words: list[Word], env: Env) -> Result:
    i = skip_options(words, 1)
    if any(w.text.startswith("-") and ("v" in w.text or "V" in w.text) for w in words[1:i]):
        return Result()  # `command -v rm` only looks the name up
    # `command cd x` and `builtin cd x` do change the directory.
    return analyze(words[i:], replace(env, depth=env.depth + 1))


def _h_shell(words: list[Word], env: Env) -> Result:
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
            return Result()
        return Result(parse_script(words[i].text, inner))
    if i < len(words):
        return Result()  # runs a script file, which a static check cannot see
    if env.stdin is not None:
        return Result(parse_script(env.stdin, inner))  # bash <<'EOF' ... EOF
    if env.piped:
        # `... | sh` runs whatever the pipe produces: `echo "rm -rf x" | sh` and `curl ... | bash`.
        return Result([opaque(tuple(w.text for w in words), env.cwd, "the shell runs commands read from a pipe")])
    return Result()


def _h_eval(words: list[Word], env: Env) -> Result:
    return Result(parse_script(" ".join(w.text for w in words[1:]), replace(env, depth=env.depth + 1)))


def _h_busybox(words: list[Word], env: Env) -> Result:
    return analyze(words[1:], replace(env, depth=env.depth + 1))


def _h_xargs(words: list[Word], env: Env) -> Result:
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
    inner = words[i:] or [Word("echo")]
    if replace_str:
        inner = [placeholder(w.text) if replace_str in w.text else w for w in inner]
    else:
        inner = [*inner, placeholder("")]
    return Result(analyze(inner, replace(env, depth=env.depth + 1, via_xargs=True)).intents)


WRAPPERS: Mapping[str, Handler] = {
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
