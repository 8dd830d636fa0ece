"""Handlers for commands that run other commands: ``sudo``, ``env``, ``xargs``, ``bash -c``, ``eval``, ``parallel``…

Each one finds the command it wraps (skipping its own options, noting a
directory change such as ``env -C`` or ``sudo -D``) and reads that command, or
the script it is given, one level deeper.  Where it cannot tell what will run (an
option it does not know, ``eval "$X"``, ``sh`` reading a pipe it cannot see, a
command name computed at run time) the construct is *opaque*: it stops when any
word it was given names a protected path, and is otherwise allowed after a
snapshot of the whole tree.  ``xargs`` and ``parallel`` take their paths from
what the pipe feeds them when that is known (``find build | xargs rm``).
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Mapping
from dataclasses import replace

from guardian.shell.options import skip_options, takes_value
from guardian.shell.parser import (
    Env,
    Handler,
    Result,
    analyze,
    basename,
    join_dir,
    literal_operands,
    opaque,
    placeholder,
    unknown_command,
)
from guardian.shell.values import producer_feed
from guardian.shell.walker import parse_script, parse_words
from guardian.shell.words import Word


def _wrapped(words: list[Word], start: int, env: Env) -> Result:
    inner = analyze(words[start:], replace(env, depth=env.depth + 1))
    return Result(inner.intents, git_aliases=inner.git_aliases)


def _opaque_result(words: list[Word], env: Env, reason: str) -> Result:
    return Result([opaque([w.text for w in words], env.cwd, reason, literal_operands(words[1:]))])


def _script(text: str, env: Env) -> Result:
    return Result(parse_script(text, replace(env, depth=env.depth + 1, stdin=None, via_xargs=False, piped=False)))


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
            return _script(line, replace(env, cwd=cwd))
        elif text in ("-i", "-0", "--null", "--ignore-environment", "-v", "--debug", "-") or words[i].assign or (
                "=" in text and not text.startswith("-")):
            i += 1
        elif text.startswith("-"):
            return _opaque_result(words, env, f"env option {text} is not one guardian knows")
        else:
            break
    return _wrapped(words, i, replace(env, cwd=cwd))


_SUDO_LONG_WITH_ARG = frozenset({"--user", "--group", "--prompt", "--role", "--type", "--close-from",
                                 "--command-timeout", "--other-user", "--chdir", "--chroot", "--host"})
_SUDO_FLAGS = frozenset("AbEHiKklnPSsVBN")


def _h_sudo(words: list[Word], env: Env) -> Result:
    short_with_arg = "ugprtCTUDRh" if basename(words[0]) == "sudo" else "uC"
    cwd, i = env.cwd, 1
    while i < len(words):
        text = words[i].text
        if text == "--":
            i += 1
            break
        if not text.startswith("-") or text == "-" or words[i].dynamic:
            break
        if text in ("-e", "--edit"):
            return unknown_command(words, env, "sudoedit edits the files it names")
        if text in ("-D", "--chdir") and i + 1 < len(words):
            cwd = join_dir(cwd, words[i + 1].text)
        elif text.startswith("--chdir="):
            cwd = join_dir(cwd, text.partition("=")[2])
        elif text.startswith("-D") and len(text) > 2:
            cwd = join_dir(cwd, text[2:])
        elif not text.startswith("--") and not all(c in _SUDO_FLAGS or c in short_with_arg for c in text[1:]):
            return _opaque_result(words, env, f"{basename(words[0])} option {text} is not one guardian knows")
        i += 2 if takes_value(text, short_with_arg, _SUDO_LONG_WITH_ARG) else 1
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


def _h_flock(words: list[Word], env: Env) -> Result:
    """``flock [opts] FILE|DIR COMMAND...`` or ``flock [opts] FILE -c 'script'`` (``flock FD`` runs nothing)."""
    i = skip_options(words, 1, "wEc", frozenset({"--timeout", "--wait", "--conflict-exit-code", "--command"}))
    for j in range(1, len(words)):
        if words[j].text in ("-c", "--command") and j + 1 < len(words):
            return _script(words[j + 1].text, env)
    if i >= len(words) or words[i].text.isdigit():
        return Result()
    return _wrapped(words, i + 1, env)


def _h_taskset(words: list[Word], env: Env) -> Result:
    """``taskset [-c] MASK COMMAND...``; ``taskset -p`` changes a running process and runs nothing."""
    i = 1
    while i < len(words) and words[i].text.startswith("-"):
        if "p" in words[i].text.lstrip("-") and not words[i].text.startswith("--cpu"):
            return Result()
        i += 1
    return _wrapped(words, i + 1, env)


def _h_npx(words: list[Word], env: Env) -> Result:
    """``npx [opts] PACKAGE args``: the package is the command (``npx rimraf dist`` is ``rimraf dist``)."""
    i = 1
    while i < len(words) and words[i].text.startswith("-"):
        text = words[i].text
        if text in ("-c", "--call") and i + 1 < len(words):
            return _script(words[i + 1].text, env)
        i += 2 if text in ("-p", "--package") else 1
    if i >= len(words):
        return Result()
    package = words[i].text.rsplit("@", 1)[0] if words[i].text.rfind("@") > 0 else words[i].text
    return _wrapped([*words[:i], Word(posixpath.basename(package)), *words[i + 1 :]], i, env)


def _h_watch(words: list[Word], env: Env) -> Result:
    """``watch [opts] COMMAND``: the words are joined and run by ``sh -c``, again and again."""
    i = skip_options(words, 1, "nqd", frozenset({"--interval", "--differences", "--chgexit"}))
    return _script(" ".join(w.text for w in words[i:]), env)


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
    if has_c:
        if i >= len(words):
            return Result()
        if words[i].dynamic:
            return _opaque_result(words, env, "the shell runs a script computed at run time")
        # `sh -c 'rm "$1"' _ x`: the words after the script are $0, $1...
        return _script(words[i].text, replace(env, positional=tuple(words[i + 1 :])))
    if i < len(words):
        if words[i].text in ("-", "/dev/stdin"):
            return _stdin_script(words, env, "the shell")
        return unknown_command(words[i:], env, f"guardian does not read the script {words[i].text}")
    return _stdin_script(words, env, "the shell")


def _stdin_script(words: list[Word], env: Env, who: str) -> Result:
    feed = env.stdin
    if feed is not None and feed.text is not None:
        return _script(feed.text, env)  # bash <<'EOF' ... EOF, echo "rm x" | sh
    if feed is not None or env.piped:
        # `... | sh` runs whatever the pipe produces: `curl ... | bash`.
        return _opaque_result(words, env, f"{who} runs commands read from its input")
    return Result()


def _h_source(words: list[Word], env: Env) -> Result:
    if len(words) < 2:
        return Result()
    target = words[1]
    if target.text in ("/dev/stdin", "-", "/proc/self/fd/0", "/dev/fd/0"):
        return _stdin_script(words, env, f"{words[0].text} of stdin")
    if target.text.startswith("<(") and target.text.endswith(")"):
        # `. <(echo 'rm -rf x')`: the script is what the inner command prints, when that is known.
        inner = parse_words(target.text[2:-1], env)
        printed = producer_feed(inner, env.cwd).text if inner is not None else None
        if printed is not None:
            return _script(printed, env)
    if target.dynamic:
        return _opaque_result(words, env, f"{words[0].text} reads a script computed at run time")
    return unknown_command(words[1:], env, f"guardian does not read the script {target.text}")


def _h_eval(words: list[Word], env: Env) -> Result:
    if any(w.dynamic for w in words[1:]):
        return _opaque_result(words, env, "eval runs a string computed at run time")
    return _script(" ".join(w.text for w in words[1:]), env)


def _h_busybox(words: list[Word], env: Env) -> Result:
    return analyze(words[1:], replace(env, depth=env.depth + 1))


def _h_dynamic(words: list[Word], env: Env) -> Result:
    """A command name computed at run time: a script under a computed directory, or anything at all."""
    verb = words[0].text
    tail = verb[max(verb.rfind(")"), verb.rfind("}"), verb.rfind("`")) + 1 :]
    if "/" in tail and posixpath.basename(tail) and "$" not in tail:
        # "$(git rev-parse --show-toplevel)/scripts/test.sh": a script file, which is not opened.
        return unknown_command(words, env, f"guardian does not read the script {verb}")
    return _opaque_result(words, env, "the command name is computed at run time")


def _stdin_words(env: Env) -> list[Word] | None:
    """The words xargs or parallel would read from stdin: literal, one placeholder for a scope, or None."""
    feed = env.stdin
    if feed is not None and feed.text is not None:
        return [Word(t) for t in feed.text.split()]
    if feed is not None and feed.scope is not None:
        return [Word(feed.scope, dynamic=True)]
    return None


def _fill(template: list[Word], items: list[Word] | None, replace_str: str | None, env: Env) -> Result:
    """Run ``template`` on ``items`` the way xargs and parallel build command lines."""
    inner_env = replace(env, depth=env.depth + 1, via_xargs=items is None)
    if items is None:
        stand_in = [placeholder("")]
    else:
        stand_in = items
    if replace_str:
        filled: list[Word] = []
        for w in template:
            if replace_str not in w.text:
                filled.append(w)
            elif items is None:
                filled.append(placeholder(w.text))
            else:
                filled.extend(Word(w.text.replace(replace_str, i.text), i.dynamic) for i in stand_in)
        words = filled
    else:
        words = [*template, *stand_in]
    if not words:
        return Result()
    return Result(analyze(words, inner_env).intents)


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
    template = words[i:] or [Word("echo")]
    items = _stdin_words(env)
    if replace_str and items is None:
        # `xargs -I{} sh -c 'rm {}'`: the script itself holds the placeholder; read it with a stand-in path.
        return _fill(template, None, replace_str, env)
    return _fill(template, items, replace_str, env)


def _h_parallel(words: list[Word], env: Env) -> Result:
    """GNU parallel: ``parallel CMD ::: ARGS`` runs CMD once per argument; without CMD each argument is one."""
    i = 1
    with_arg = frozenset({"-j", "--jobs", "-S", "--sshlogin", "--joblog", "--results", "--tmpdir", "-d",
                          "--delimiter", "--colsep", "-n", "--max-args", "-I", "--timeout", "--retries",
                          "--workdir", "--wd", "-a", "--arg-file", "--env", "--halt"})
    replace_str = "{}"
    arg_file = False
    while i < len(words) and words[i].text.startswith("-") and words[i].text not in (":::", "::::"):
        text = words[i].text
        if text in ("-a", "--arg-file") or text.startswith("--arg-file="):
            arg_file = True
        if text == "-I" and i + 1 < len(words):
            replace_str = words[i + 1].text
        i += 2 if text in with_arg else 1
    rest = words[i:]
    marks = [k for k, w in enumerate(rest) if w.text in (":::", "::::", ":::+", "::::+")]
    template = rest[: marks[0]] if marks else rest
    items: list[Word] | None
    if marks:
        if any(rest[k].text.startswith("::::") for k in marks) or arg_file:
            items = None  # arguments read from files
        else:
            items = [w for w in rest[marks[0] :] if w.text not in (":::", ":::+")]
    else:
        items = None if arg_file else _stdin_words(env)
    if not template:
        if items is None or any(w.dynamic for w in items):
            return _opaque_result(words, env, "parallel runs commands read from its input")
        return Result([intent for item in items for intent in _script(item.text, env).intents])
    has_replace = any(replace_str in w.text for w in template) or any("{" in w.text for w in template)
    result = _fill(template, items, replace_str if has_replace else None, env)
    if any(w.text in ("sh", "bash") for w in template) and items is None:
        result.intents.append(opaque([w.text for w in words], env.cwd, "parallel runs a shell on its input",
                                     literal_operands(words[1:])))
    return result


def _h_exec_wrapper(words: list[Word], env: Env) -> Result:
    """``chroot DIR CMD``, ``unshare [opts] CMD``, ``script -c CMD``: read the command they run."""
    name = basename(words[0])
    if name == "script":
        for j, w in enumerate(words):
            if w.text in ("-c", "--command") and j + 1 < len(words):
                return _script(words[j + 1].text, env)
        return Result()
    i = skip_options(words, 1, "", frozenset({"--userspec", "--groups", "--mount", "--uts", "--ipc", "--net",
                                               "--pid", "--user", "--setuid", "--setgid", "--root", "--wd"}))
    if name == "chroot":
        i += 1
    return _wrapped(words, i, env) if i < len(words) else Result()


def _h_alias_value(words: list[Word], env: Env) -> Result:
    return Result()  # `alias x=...` is recorded by the walker; the definition itself changes nothing


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
    "ionice": _simple_wrapper("cnp", frozenset({"--class", "--classdata", "--pid"})),
    "chrt": _simple_wrapper("", frozenset(), skip_operands=1),
    "setsid": _simple_wrapper(),
    "flock": _h_flock,
    "taskset": _h_taskset,
    "npx": _h_npx,
    "pnpx": _h_npx,
    "bunx": _h_npx,
    "watch": _h_watch,
    "xargs": _h_xargs,
    "parallel": _h_parallel,
    "eval": _h_eval,
    "source": _h_source,
    ".": _h_source,
    "alias": _h_alias_value,
    "busybox": _h_busybox,
    "chroot": _h_exec_wrapper,
    "unshare": _h_exec_wrapper,
    "nsenter": _h_exec_wrapper,
    "script": _h_exec_wrapper,
    "$dynamic": _h_dynamic,
    **dict.fromkeys(("bash", "sh", "zsh", "dash", "ksh", "mksh", "ash", "fish"), _h_shell),
}
