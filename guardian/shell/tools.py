"""Handlers for the other tools that replace or remove files: downloads, archives, compressors, editors, formatters.

``curl -o`` and ``wget -O`` overwrite their output; ``tar -x`` and ``unzip -o``
put an archive's version of each member in place (a rollback of those files),
and ``tar --remove-files``, ``zip -m`` and ``gzip`` remove what they pack;
``cmake -E rm`` is rm; ``patch`` rewrites the files its patch names; editors
run in batch (``ed``, ``ex``, ``vim -es``) and ``awk -i inplace`` edit their
operands; formatters rewrite them unless asked only to check.  Tools whose
effect depends on a file guardian would have to read (an archive's members, a
patch's files) are resolved by the hook, which asks the tool itself
(``tar -t``, ``unzip -Z1``, ``patch --dry-run``).
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping

from guardian.shell.options import split_args
from guardian.shell.parser import Env, Handler, Result, analyze, basename, join_dir, make_intent, unknown_command
from guardian.shell.words import Word


def _w(text: str) -> Word:
    return Word(text, dynamic="$" in text or "`" in text)


def _is_url(text: str) -> bool:
    return "://" in text


_CURL_SHORT_WITH_ARG = "oDcKdHuXebrwATxmYyzECFUQt"
_CURL_LONG_WITH_ARG = frozenset({"--output", "--dump-header", "--cookie-jar", "--trace", "--trace-ascii", "--stderr",
                                 "--etag-save", "--output-dir", "--data", "--header", "--user", "--request",
                                 "--url", "--config", "--cookie", "--referer", "--user-agent", "--form",
                                 "--max-time", "--connect-timeout", "--retry", "--proxy", "--write-out"})


def _h_curl(words: list[Word], env: Env) -> Result:
    parsed = split_args(words[1:], _CURL_SHORT_WITH_ARG, _CURL_LONG_WITH_ARG)
    targets = [_w(value) for name, value in parsed.opts
               if name in ("-o", "--output", "-D", "--dump-header", "-c", "--cookie-jar", "--trace",
                           "--trace-ascii", "--stderr", "--etag-save") and value and value != "-"]
    urls = [w.text for w in parsed.paths if _is_url(w.text)] + [v or "" for n, v in parsed.opts if n == "--url"]
    if parsed.has("-O", "--remote-name", "--remote-name-all"):
        targets += [_w(posixpath.basename(u.split("?", 1)[0].rstrip("/"))) for u in urls
                    if "/" in u.split("://", 1)[-1]]
    output_dir = parsed.value("--output-dir")
    if output_dir:
        targets = [t if t.text.startswith("/") else _w(posixpath.join(output_dir, t.text)) for t in targets]
    if not targets:
        return Result()
    return Result([make_intent("redirect", words, env, targets, {"via": basename(words[0])})])


def _h_wget(words: list[Word], env: Env) -> Result:
    targets: list[Word] = []
    for i, w in enumerate(words[1:], start=1):
        nxt = words[i + 1] if i + 1 < len(words) else None
        if w.text in ("-O", "--output-document", "-o", "--output-file") and nxt is not None and nxt.text != "-":
            targets.append(nxt)
        elif w.text.startswith(("--output-document=", "--output-file=")):
            targets.append(_w(w.text.partition("=")[2]))
        elif w.text.startswith(("-O", "-o")) and len(w.text) > 2 and w.text[2] != "-":
            targets.append(_w(w.text[2:]))
    if not targets:
        return Result()  # wget saves under a new name (file.1) rather than overwrite
    return Result([make_intent("redirect", words, env, targets, {"via": "wget"})])


_TAR_WITH_ARG = "fCTXIbHKLNVgF"
_TAR_LONG_WITH_ARG = frozenset({"--file", "--directory", "--files-from", "--exclude-from", "--use-compress-program",
                                "--blocking-factor", "--format", "--starting-file", "--newer", "--label",
                                "--listed-incremental", "--info-script", "--owner", "--group", "--mode",
                                "--transform", "--xform", "--exclude", "--strip-components", "--to-command"})


def _h_tar(words: list[Word], env: Env) -> Result:
    args = list(words[1:])
    if args and not args[0].text.startswith("-") and args[0].text:
        args[0] = Word("-" + args[0].text, args[0].dynamic)  # old style: `tar xzf a.tgz`
    parsed = split_args(args, _TAR_WITH_ARG, _TAR_LONG_WITH_ARG)
    archive = parsed.value("-f", "--file") or "-"
    directory = parsed.value("-C", "--directory")
    cwd = join_dir(env.cwd, directory) if directory else env.cwd
    members = parsed.paths
    if parsed.has("-x", "--extract", "--get"):
        if parsed.has("-O", "--to-stdout", "--to-command"):
            return Result()
        detail = {"archive": archive, "tool": "tar"}
        if directory:
            detail["into"] = directory
        strip = parsed.value("--strip-components")
        if strip:
            detail["strip"] = strip
        if members:
            detail["members"] = "\n".join(w.text for w in members)
        return Result([make_intent("extract", words, env, [Word(".")], detail)])
    intents = []
    if parsed.has("-c", "--create", "-r", "--append", "-u", "--update", "--delete") and archive != "-":
        intents.append(make_intent("redirect", words, env, [_w(archive)], {"via": "tar"}))
    if parsed.has("--remove-files") and members:
        intents.append(make_intent("rm", words, env, members, {"verb": "tar", "recursive": "1"}, cwd, use_cwd=True))
    return Result(intents)


_COMPRESSORS = {"gzip": ".gz", "bzip2": ".bz2", "xz": ".xz", "lzma": ".lzma", "zstd": ".zst"}
_DECOMPRESSORS = {"gunzip": "gzip", "bunzip2": "bzip2", "unxz": "xz", "unzstd": "zstd"}


def _h_compress(words: list[Word], env: Env) -> Result:
    name = basename(words[0])
    tool = _DECOMPRESSORS.get(name, name)
    parsed = split_args(words[1:], "S" if tool != "zstd" else "oSDL", frozenset({"--suffix", "--output"}))
    if parsed.has("-c", "--stdout", "--to-stdout", "-l", "--list", "-t", "--test"):
        return Result()
    decompress = name in _DECOMPRESSORS or parsed.has("-d", "--decompress", "--uncompress")
    keeps = parsed.has("-k", "--keep") or (tool == "zstd" and not parsed.has("--rm"))
    suffix = parsed.value("-S", "--suffix") or _COMPRESSORS.get(tool, ".gz")
    intents = []
    for source in parsed.paths:
        if source.text == "-":
            continue
        if decompress:
            out = source.text[: -len(suffix)] if source.text.endswith(suffix) else source.text + ".out"
        else:
            out = source.text + suffix
        detail = {"sources": source.text, "verb": name}
        if not keeps:
            detail["deletes"] = source.text
        intents.append(make_intent("mv", words, env, [_w(out)], detail))
    return Result(intents)


def _h_zip(words: list[Word], env: Env) -> Result:
    parsed = split_args(words[1:], "btnPYOAx", frozenset({"--exclude", "--include", "--temp-path", "--suffixes",
                                                           "--password", "--out"}))
    if not parsed.paths:
        return Result()
    archive, files = parsed.paths[0], parsed.paths[1:]
    if "." not in posixpath.basename(archive.text):
        archive = _w(archive.text + ".zip")
    detail: dict[str, str] = {"sources": "\n".join(w.text for w in files), "verb": "zip"}
    if parsed.has("-m", "--move"):
        detail["deletes"] = detail["sources"]
    return Result([make_intent("mv" if "deletes" in detail else "cp", words, env, [archive], detail)])


def _h_unzip(words: list[Word], env: Env) -> Result:
    parsed = split_args(words[1:], "dxP", frozenset())
    if parsed.has("-l", "-t", "-v", "-Z", "-p", "-c", "-n") or not parsed.paths:
        return Result()  # listings, tests, output to stdout, or never overwrite
    if not parsed.has("-o", "-f", "-u"):
        return Result()  # without -o, unzip asks before replacing a file and, with no terminal, does not
    directory = parsed.value("-d")
    archive, members = parsed.paths[0], parsed.paths[1:]
    detail = {"archive": archive.text, "tool": "unzip"}
    if directory:
        detail["into"] = directory
    if members:
        detail["members"] = "\n".join(w.text for w in members)
    return Result([make_intent("extract", words, env, [Word(".")], detail)])


def _h_cmake(words: list[Word], env: Env) -> Result:
    texts = [w.text for w in words]
    if "-E" not in texts:
        return Result()
    i = texts.index("-E") + 1
    if i >= len(words):
        return Result()
    action, rest = words[i].text, words[i + 1 :]
    mapped = {"rm": "rm", "remove": "rm", "remove_directory": "rm", "rename": "mv", "copy": "cp",
              "copy_if_different": "cp", "copy_directory": "cp", "copy_directory_if_different": "cp",
              "create_symlink": "ln", "tar": "tar", "env": "env", "chdir": "chdir"}.get(action)
    if mapped is None:
        return Result()
    if mapped == "rm":
        flags = [Word("-rf")] if action == "remove_directory" else []
        return analyze([Word("rm"), *flags, *rest], env)
    if mapped == "ln":
        return analyze([Word("ln"), Word("-sf"), *rest], env)
    if mapped == "chdir":
        if not rest:
            return Result()
        inner = analyze(rest[1:], _chdir(env, rest[0].text))
        return Result(inner.intents)
    if mapped == "cp" and action.startswith("copy_directory"):
        return analyze([Word("cp"), Word("-r"), *rest], env)
    return analyze([Word(mapped), *rest], env)


def _chdir(env: Env, directory: str) -> Env:
    from dataclasses import replace

    return replace(env, cwd=join_dir(env.cwd, directory), depth=env.depth + 1)


def _h_patch(words: list[Word], env: Env) -> Result:
    parsed = split_args(words[1:], "pidDBzrVoFgY", frozenset({"--strip", "--input", "--directory", "--output",
                                                             "--reject-file", "--backup", "--suffix", "--fuzz"}))
    if parsed.has("--dry-run", "-C", "--check"):
        return Result()
    detail: dict[str, str] = {"tool": "patch"}
    patch_file = parsed.value("-i", "--input")
    operands = parsed.paths
    if patch_file is None and len(operands) >= 2:
        patch_file = operands[1].text
    if patch_file is None:
        patch_file = env.stdin.path if env.stdin is not None and env.stdin.path else "-"
    detail["patches"] = patch_file
    if operands:
        detail["file"] = operands[0].text
    if parsed.has("-R", "--reverse"):
        detail["reverse"] = "1"
    strip = parsed.value("-p", "--strip")
    if strip:
        detail["strip"] = strip
    directory = parsed.value("-d", "--directory")
    if directory:
        detail["into"] = directory
    return Result([make_intent("patch", words, env, [Word(".")], detail)])


def _h_editor(words: list[Word], env: Env) -> Result:
    """ed, ex, vi/vim/nvim (batch or not), nano, emacs: they may write every file they open."""
    name = basename(words[0])
    texts = [w.text for w in words[1:]]
    if name in ("vi", "vim", "nvim") and ("-R" in texts or "-M" in texts):
        return Result()
    operands: list[Word] = []
    skip = False
    for w in words[1:]:
        if skip:
            skip = False
            continue
        if w.text in ("-c", "-S", "--cmd", "-u", "-i", "-T", "-s") and name not in ("ed",):
            skip = w.text != "-s"
            continue
        if w.text.startswith(("-", "+")):
            continue
        operands.append(w)
    if not operands:
        return Result()
    return Result([make_intent("sed-inplace", words, env, operands, {"verb": name})])


def _h_sort(words: list[Word], env: Env) -> Result:
    parsed = split_args(words[1:], "oktST", frozenset({"--output", "--key", "--field-separator",
                                                        "--temporary-directory", "--buffer-size", "--parallel"}))
    out = parsed.value("-o", "--output")
    return Result([make_intent("redirect", words, env, [_w(out)], {"via": "sort"})]) if out else Result()


def _h_uniq(words: list[Word], env: Env) -> Result:
    parsed = split_args(words[1:], "fsw", frozenset({"--skip-fields", "--skip-chars", "--check-chars", "--group",
                                                      "--all-repeated"}))
    if len(parsed.paths) < 2:
        return Result()
    return Result([make_intent("redirect", words, env, [parsed.paths[1]], {"via": "uniq"})])


def _h_sponge(words: list[Word], env: Env) -> Result:
    parsed = split_args(words[1:])
    if parsed.has("-a") or not parsed.paths:
        return Result()
    return Result([make_intent("redirect", words, env, parsed.paths[:1], {"via": "sponge"})])


def _h_xxd(words: list[Word], env: Env) -> Result:
    parsed = split_args(words[1:], "cglos", frozenset())
    if len(parsed.paths) < 2:
        return Result()
    return Result([make_intent("redirect", words, env, [parsed.paths[1]], {"via": "xxd"})])


def _h_scp(words: list[Word], env: Env) -> Result:
    parsed = split_args(words[1:], "cFiJlmoPSX", frozenset())
    if len(parsed.paths) < 2 or ":" in parsed.paths[-1].text.split("/", 1)[0]:
        return Result()
    dest, sources = parsed.paths[-1], parsed.paths[:-1]
    return Result([make_intent("cp", words, env, [dest], {"sources": "\n".join(s.text for s in sources),
                                                          "verb": "scp"})])


def _h_yq(words: list[Word], env: Env) -> Result:
    parsed = split_args(words[1:], "", frozenset())
    if not parsed.has("-i", "--inplace"):
        return Result()
    files = parsed.paths[1:] if parsed.paths and not parsed.paths[0].text.endswith((".yaml", ".yml", ".json")) \
        else parsed.paths
    return Result([make_intent("sed-inplace", words, env, files, {"verb": "yq"})]) if files else Result()


def _h_cpio(words: list[Word], env: Env) -> Result:
    texts = [w.text for w in words[1:]]
    if not any(t in ("-i", "--extract") or (t.startswith("-") and not t.startswith("--") and "i" in t)
               for t in texts):
        return Result()
    return Result([make_intent("extract", words, env, [Word(".")], {"archive": "-", "tool": "cpio"})])


def _formatter(check_flags: frozenset[str], write_flags: frozenset[str] = frozenset()) -> Handler:
    """A formatter rewrites the files it names, unless it only checks (or, for some, unless told to write)."""

    def handler(words: list[Word], env: Env) -> Result:
        texts = {w.text.partition("=")[0] for w in words[1:]}
        if write_flags:
            if not texts & write_flags:
                return Result()
        elif texts & check_flags:
            return Result()
        args = words[1:]
        if basename(words[0]) == "ruff" and args and args[0].text == "check" and "--fix" not in texts:
            return Result()
        return unknown_command(words, env, f"{basename(words[0])} rewrites the files it is given")

    return handler


def _h_metadata(words: list[Word], env: Env) -> Result:
    return Result()  # chmod, chown, chgrp change metadata, which can be set back; no content is lost


TOOLS: Mapping[str, Handler] = {
    **dict.fromkeys(("chmod", "chown", "chgrp"), _h_metadata),
    "curl": _h_curl,
    "wget": _h_wget,
    "tar": _h_tar,
    **dict.fromkeys(("gzip", "gunzip", "bzip2", "bunzip2", "xz", "unxz", "zstd", "unzstd", "lzma"), _h_compress),
    "zip": _h_zip,
    "unzip": _h_unzip,
    "cmake": _h_cmake,
    "patch": _h_patch,
    **dict.fromkeys(("ed", "ex", "vi", "vim", "nvim", "nano", "emacs"), _h_editor),
    "sort": _h_sort,
    "uniq": _h_uniq,
    "sponge": _h_sponge,
    "xxd": _h_xxd,
    "scp": _h_scp,
    "yq": _h_yq,
    "cpio": _h_cpio,
    "black": _formatter(frozenset({"--check", "--diff"})),
    "isort": _formatter(frozenset({"--check", "--check-only", "-c", "--diff"})),
    "ruff": _formatter(frozenset({"--check", "--diff"})),
    "autopep8": _formatter(frozenset(), frozenset({"-i", "--in-place"})),
    "yapf": _formatter(frozenset(), frozenset({"-i", "--in-place"})),
    "prettier": _formatter(frozenset(), frozenset({"--write", "-w"})),
    "eslint": _formatter(frozenset(), frozenset({"--fix"})),
    "gofmt": _formatter(frozenset(), frozenset({"-w"})),
    "shfmt": _formatter(frozenset(), frozenset({"-w", "--write"})),
    "clang-format": _formatter(frozenset(), frozenset({"-i"})),
    "2to3": _formatter(frozenset(), frozenset({"-w", "--write"})),
    "rustfmt": _formatter(frozenset({"--check"})),
}
