"""Handlers for the commands that change files: ``rm``, ``mv``/``cp``, ``sed -i``, ``rsync``, ``find -delete``…

Each handler reads one simple command's options and operands and returns the
intents it would carry out, with the paths it would modify or delete.  ``cd``,
``pushd`` and ``popd`` are here too: they change no file, but they move the
directory every later target is relative to.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace

from guardian.shell.intent import ANY_PATH, Intent
from guardian.shell.options import split_args
from guardian.shell.parser import Env, Handler, Result, analyze, basename, is_device, join_dir, make_intent, placeholder
from guardian.shell.words import Word

# Copying or syncing into one of these (not below it) cannot touch a project.
_SCRATCH_DIRS = frozenset({"/tmp", "/var/tmp", "/dev/null"})


def _w(text: str) -> Word:
    """A word made from part of an option (``-t DIR``), dynamic if it holds an expansion."""
    return Word(text, dynamic="$" in text or "`" in text)


def _h_cd(words: list[Word], env: Env) -> Result:
    operands = [w for w in words[1:] if not (w.text.startswith("-") and len(w.text) > 1)]
    name = basename(words[0])
    if name == "popd":
        return Result(cwd_op="pop")
    if not operands:
        return Result(cwd_op="set" if name == "cd" else "", cwd="~")
    target = operands[0].text
    if target == "-":
        return Result(cwd_op="set", cwd="$OLDPWD")
    if name == "pushd" and target.startswith(("+", "-")):
        return Result(cwd_op="set", cwd="$DIRSTACK")
    return Result(cwd_op="push" if name == "pushd" else "set", cwd=join_dir(env.cwd, target))


def _h_rm(words: list[Word], env: Env) -> Result:
    name = basename(words[0])
    if name == "gio":
        if len(words) < 2 or words[1].text not in ("trash", "remove", "rm"):
            return Result()
        words = [Word("gio " + words[1].text), *words[2:]]
    args = split_args(words[1:], "ns" if name == "shred" else "", frozenset({"--iterations", "--size"}))
    targets = args.paths
    if not targets:
        return Result()
    detail: dict[str, str] = {}
    if name != "rm":
        detail["verb"] = name
    if args.has("-r", "-R", "--recursive") or name not in ("rm", "unlink", "shred", "srm"):
        detail["recursive"] = "1"  # trash, rimraf and gio remove directories whole
    if args.has("-f", "--force"):
        detail["force"] = "1"
    return Result([make_intent("rm", words, env, targets, detail)])


def _h_truncate(words: list[Word], env: Env) -> Result:
    args = split_args(words[1:], "sr", frozenset({"--size", "--reference"}))
    if not args.paths:
        return Result()
    detail = {"size": args.value("-s", "--size") or ""}
    return Result([make_intent("truncate", words, env, args.paths, detail)])


def _h_tee(words: list[Word], env: Env) -> Result:
    args = split_args(words[1:])
    targets = [w for w in args.paths if not is_device(w.text)]
    if args.has("-a", "--append") or not targets:
        return Result()
    return Result([make_intent("redirect", words, env, targets, {"via": "tee"})])


def _h_dd(words: list[Word], env: Env) -> Result:
    targets = [Word(w.text[3:], w.dynamic) for w in words[1:] if w.text.startswith("of=")]
    targets = [t for t in targets if not is_device(t.text)]
    return Result([make_intent("redirect", words, env, targets, {"via": "dd"})] if targets else [])


def _h_sed(words: list[Word], env: Env) -> Result:
    inplace, has_script = False, False
    operands: list[Word] = []
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
        return Result()
    return Result([make_intent("sed-inplace", words, env, operands)])


def _h_copy(words: list[Word], env: Env) -> Result:
    name = basename(words[0])
    long_with_arg = frozenset({"--target-directory", "--suffix", "--mode", "--owner", "--group"})
    args = split_args(words[1:], "tSmog" if name == "install" else "tS", long_with_arg)
    if name == "install" and args.has("-d", "--directory"):
        return Result()
    if name == "ln" and not args.has("-f", "--force"):
        return Result()  # without -f, ln refuses to replace an existing file
    operands = args.paths
    target_dir = args.value("-t", "--target-directory")
    if target_dir is not None:
        dest, sources = _w(target_dir), operands
    elif len(operands) >= 2:
        dest, sources = operands[-1], operands[:-1]
    elif name == "ln" and operands:
        dest, sources = _w(posixpath.basename(operands[0].text.rstrip("/"))), operands
    else:
        return Result()
    kind = "mv" if name == "mv" else "cp"
    if kind == "cp" and dest.text.rstrip("/") in _SCRATCH_DIRS:
        return Result()  # copying into /tmp itself cannot touch the project
    detail = {"sources": "\n".join(w.text for w in sources)}
    if name == "mv":
        detail["deletes"] = detail["sources"]  # mv removes its sources
    elif name != "cp":
        detail["verb"] = name
    return Result([make_intent(kind, words, env, [dest], detail)])


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


def _h_rsync(words: list[Word], env: Env) -> Result:
    args = split_args(words[1:], "efTBM", _RSYNC_LONG_WITH_ARG)
    operands = args.paths
    if len(operands) < 2:
        return Result()  # one operand lists it
    if args.has("-n", "--dry-run", "--list-only"):
        return Result()  # a dry run changes nothing
    dest, sources = operands[-1], operands[:-1]
    deletes = any(name.startswith("--del") for name, _ in args.opts)
    remove_sources = args.has("--remove-source-files")
    detail = {"src": "\n".join(w.text for w in sources)}
    if remove_sources:
        detail["deletes"] = detail["src"]
    if _is_remote(dest.text):
        if not remove_sources:
            return Result()
        return Result([make_intent("mv", words, env, [dest], {**detail, "verb": "rsync"})])
    if deletes:
        return Result([make_intent("rsync-delete", words, env, [dest], detail)])
    if dest.text.rstrip("/") in _SCRATCH_DIRS and not remove_sources:
        return Result()
    # Without --delete rsync still overwrites what the destination holds.
    return Result([make_intent("cp", words, env, [dest], {**detail, "verb": "rsync"})])


def _h_find(words: list[Word], env: Env) -> Result:
    i = 1
    while i < len(words) and (words[i].text in ("-H", "-L", "-P") or words[i].text.startswith("-O")):
        i += 1
    if i < len(words) and words[i].text == "-D":
        i += 2
    starts: list[Word] = []
    while i < len(words) and not (words[i].text.startswith("-") or words[i].text in ("(", "!", ")", ",")):
        starts.append(words[i])
        i += 1
    if not starts:
        starts = [Word(".")]
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
            command: list[Word] = []
            while k < len(expr) and expr[k].text not in (";", "+"):
                command.append(expr[k])
                k += 1
            j = k
            if command and basename(command[0]) in ("rm", "unlink", "shred"):
                deletes = True
                detail["exec"] = basename(command[0])
            elif command:
                # Any other command run on each file: read it with {} standing for
                # the files found, which all lie under the start directories.
                placeholders = [placeholder(w.text) if "{}" in w.text else w for w in command]
                for intent in analyze(placeholders, replace(env, depth=env.depth + 1)).intents:
                    intents.append(_retarget(intent, [s.text for s in starts]))
        j += 1
    if deletes:
        intents.insert(0, make_intent("find-delete", words, env, starts, detail))
    return Result(intents)


def _retarget(intent: Intent, paths: list[str]) -> Intent:
    def swap(items: Sequence[str]) -> list[str]:
        out: list[str] = []
        for item in items:
            out.extend(paths if item == ANY_PATH else [item])
        return out

    detail = dict(intent.detail, via="find")
    if intent.kind == "rm" and ANY_PATH in intent.targets:
        detail["recursive"] = "1"  # {} stands for every file under the start directories
    for key in ("sources", "deletes", "src"):
        if key in detail:
            detail[key] = "\n".join(swap(detail[key].split("\n")))
    return replace(intent, targets=tuple(swap(intent.targets)), detail=detail)


def _h_nothing(words: list[Word], env: Env) -> Result:
    return Result()  # rmdir removes only empty directories: nothing is lost


COMMANDS: Mapping[str, Handler] = {
    "rm": _h_rm,
    "unlink": _h_rm,
    "shred": _h_rm,
    "srm": _h_rm,
    "wipe": _h_rm,
    "trash": _h_rm,
    "trash-put": _h_rm,
    "rimraf": _h_rm,
    "gio": _h_rm,
    "rmdir": _h_nothing,
    "find": _h_find,
    "truncate": _h_truncate,
    "sed": _h_sed,
    "gsed": _h_sed,
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
}
