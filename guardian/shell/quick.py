"""The cheap first look: decide plainly benign commands without loading the bash grammar.

Most of what a coding agent runs is ``ls``, ``cat``, ``git status``, ``pytest``
or ``npm test``.  :func:`plainly_benign` reads such a command with a tokenizer
that only accepts the simplest shell (plain words, simple quotes, ``&&``,
``||``, ``;``, ``|``, ``2>&1`` and ``>/dev/null``) and answers True only when
every command in it is known to change no file: a read-only tool, a read-only
git subcommand, ``find`` without actions, or a tool guardian does not model
whose operands name no existing path.  Anything else (``$``, a backquote, a
redirection to a file, a here-document, a wrapper, an interpreter, a name some
handler reads) gets False, and the full parser decides.

It must never say True where the full parser would find something: the tests
hold every handler's name to :data:`HANDLED`.  This module imports nothing but
``os``, because it runs before anything heavier is loaded.
"""

from __future__ import annotations

import os

# Tools that change no file whatever their arguments.  The full parser treats them as benign too.
PLAIN = frozenset({
    "ls", "cat", "tac", "head", "tail", "wc", "grep", "egrep", "fgrep", "rg", "ag", "ack", "pwd", "echo",
    "printf", "which", "whereis", "type", "file", "stat", "du", "df", "diff", "cmp", "comm", "cut", "tr", "nl",
    "od", "hexdump", "strings", "readlink", "realpath", "basename", "dirname", "md5sum", "sha1sum",
    "sha224sum", "sha256sum", "sha384sum", "sha512sum", "b2sum", "cksum", "sum", "column", "seq", "sleep",
    "printenv", "date", "whoami", "id", "groups", "uname", "hostname", "true", "false", "test", "[", "jq",
    "less", "more", "bat", "ps", "pgrep", "free", "uptime", "nproc", "mkdir", "touch", "pytest", "py.test",
    "mypy", "pyright", "pylint", "flake8", "pyflakes", "pycodestyle", "pydocstyle", "shellcheck", "tree",
    "rev", "fold", "fmt", "paste", "join", "expand", "unexpand", "numfmt", "man", "info", "lsof", "top",
    "htop", "locale", "getconf", "tput", "clear", "dig", "host", "nslookup", "ping", "lsblk", "dmesg",
    "journalctl", "exit", "return", "set", "shopt", "hash", "ulimit", "umask", "trap", "break", "continue",
    "shift", "let", "getopts", "wait", "jobs", "history", "cal", "mktemp", "open", "xdg-open", "tsc", "vulture",
    "bandit", "coverage", "tox", "nox", "ldd", "nm", "objdump", "readelf", "size",
})
# Read-only for the full parser, but the quick look leaves them to it (their handlers read flags).
READ_ONLY = PLAIN | frozenset({"read", "local", "declare", "typeset", "readonly", "export", "unset", "alias",
                               "unalias", ":", "source", "."})
# git subcommands that change no file in the work tree, whatever their arguments (bar --output).
GIT_READ_ONLY = frozenset({
    "status", "log", "diff", "show", "blame", "annotate", "rev-parse", "rev-list", "ls-files", "ls-tree",
    "ls-remote", "describe", "shortlog", "grep", "cat-file", "reflog", "fetch", "add", "commit", "push",
    "whatchanged", "name-rev", "merge-base", "show-ref", "for-each-ref", "count-objects", "fsck", "help",
    "version", "cherry", "range-diff", "diff-tree", "diff-files", "diff-index", "var", "check-ignore",
    "check-attr", "verify-commit", "verify-tag", "show-branch",
})
_GIT_LISTING = {
    "branch": frozenset({"-a", "-r", "-v", "-vv", "-l", "--list", "--all", "--remotes", "--show-current",
                         "--merged", "--no-merged", "--verbose", "--no-color", "--color"}),
    "tag": frozenset({"-l", "--list", "-n"}),
    "remote": frozenset({"-v", "--verbose", "show", "get-url"}),
    "stash": frozenset({"list", "show"}),
    "config": frozenset({"--get", "--get-all", "--get-regexp", "--list", "-l", "--show-origin", "--global",
                         "--local", "--system", "--show-scope", "--name-only", "get"}),
    "worktree": frozenset({"list"}),
    "submodule": frozenset({"status", "summary"}),
}
FIND_ACTIONS = frozenset({"-delete", "-exec", "-execdir", "-ok", "-okdir", "-fprint", "-fprint0", "-fprintf",
                          "-fls"})
PYTHON_NAMES = frozenset({"python", "python3", "python2", "py", "pypy", "pypy3"})
PYTHON_READ_ONLY_MODULES = frozenset({"pytest", "mypy", "pyflakes", "pylint", "flake8", "unittest",
                                      "pycodestyle", "pydocstyle", "doctest", "timeit", "pydoc", "site",
                                      "platform", "sysconfig", "tabnanny", "pyright", "coverage", "tox"})
# Every command name a handler of the full parser reads (tests keep this in step with the tables).
HANDLED = frozenset({
    "git", "rm", "unlink", "shred", "rmdir", "find", "truncate", "sed", "gsed", "perl", "mv", "cp", "install",
    "ln", "rsync", "tee", "dd", "cd", "pushd", "popd", "env", "sudo", "doas", "command", "builtin", "exec",
    "nohup", "nice", "time", "timeout", "stdbuf", "ionice", "setsid", "xargs", "eval", "busybox", "bash", "sh",
    "zsh", "dash", "ksh", "mksh", "ash", "fish", "flock", "taskset", "chrt", "npx", "pnpx", "bunx", "watch",
    "parallel", "source", ".", "alias", "curl", "wget", "tar", "gzip", "gunzip", "bzip2", "bunzip2", "xz",
    "unxz", "zstd", "unzstd", "lzma", "zip", "unzip", "cmake", "patch", "awk", "gawk", "mawk", "nawk", "ed",
    "ex", "vi", "vim", "nvim", "nano", "emacs", "sort", "uniq", "split", "sponge", "trash", "trash-put",
    "gio", "srm", "wipe", "rimraf", "node", "nodejs", "deno", "bun", "ruby", "php", "lua", "Rscript",
    "osascript", "tclsh", "pwsh", "black", "isort", "ruff", "prettier", "eslint", "gofmt", "rustfmt",
    "clang-format", "autopep8", "yapf", "shfmt", "yq", "sqlite3", "scp", "cpio", "xxd", "mkfs", "wipefs",
    "chmod", "chown", "chgrp", "2to3", "unshare", "nsenter", "chroot", "script",
}) | PYTHON_NAMES

_SPECIAL = frozenset("$`\\(){}<>\n\r#!~")
_OPERATORS = ("&&", "||", ";", "|")


def _words(command: str) -> list[list[str]] | None:
    """Simple commands as word lists, or None when the text needs the real grammar."""
    commands: list[list[str]] = [[]]
    word: list[str] = []
    in_word = False
    i, n = 0, len(command)
    while i < n:
        c = command[i]
        if c in " \t":
            if in_word:
                commands[-1].append("".join(word))
                word, in_word = [], False
            i += 1
        elif c == "'":
            end = command.find("'", i + 1)
            if end < 0:
                return None
            word.append(command[i + 1 : end])
            in_word = True
            i = end + 1
        elif c == '"':
            end = command.find('"', i + 1)
            body = command[i + 1 : end] if end >= 0 else "$"
            if end < 0 or any(ch in body for ch in '$`\\!'):
                return None
            word.append(body)
            in_word = True
            i = end + 1
        elif c in ";|&":
            if in_word:
                commands[-1].append("".join(word))
                word, in_word = [], False
            op = next((o for o in _OPERATORS if command.startswith(o, i)), None)
            if op is None or command.startswith("|&", i):
                return None  # a lone "&" (background) or "|&"
            commands.append([])
            i += len(op)
        elif c in "<>" or (c == "&" and command.startswith("&>", i)):
            fd = "".join(word) if in_word else ""
            if in_word and not fd.isdigit():
                return None
            word, in_word = [], False
            j = i
            while j < n and command[j] in "<>&":
                j += 1
            op = command[i:j]
            while j < n and command[j] == " ":
                j += 1
            k = j
            while k < n and command[k] not in " \t;|&":
                k += 1
            target = command[j:k]
            duplicate = op == ">&" and target in ("1", "2") and fd in ("", "1", "2")
            if not (duplicate or (op in (">", ">>", "&>", "&>>") and target == "/dev/null")):
                return None
            i = k
        elif c in _SPECIAL and not (c in "#!~" and in_word):
            return None
        else:
            word.append(c)
            in_word = True
            i += 1
    if in_word:
        commands[-1].append("".join(word))
    if any(not words for words in commands):
        return None  # "a && && b" or a trailing operator: leave the error to the grammar
    return commands


def _git_read_only(args: list[str]) -> bool:
    i = 0
    while i < len(args) and args[i].startswith("-"):
        if args[i] in ("-C",) and i + 1 < len(args):
            i += 2
        elif args[i] in ("--no-pager", "-P", "--no-optional-locks", "--paginate", "-p"):
            i += 1
        else:
            return False  # -c can define an alias, --git-dir moves the repository: the full parser reads them
    if i >= len(args):
        return True
    sub, rest = args[i], args[i + 1 :]
    if any(a.startswith("--output") for a in rest):
        return False
    if sub in GIT_READ_ONLY:
        return True
    allowed = _GIT_LISTING.get(sub)
    if allowed is None:
        return False
    if sub == "config":
        return bool(rest) and rest[0] in allowed
    return all(a in allowed or (not a.startswith("-") and sub in ("remote",)) for a in rest) and (
        sub != "stash" or bool(rest))


def _names_existing_path(args: list[str], cwd: str) -> bool:
    for arg in args:
        value = arg.partition("=")[2] if arg.startswith("--") else ("" if arg.startswith("-") else arg)
        if not value:
            continue
        if any(ch in value for ch in "*?["):
            return True  # a glob may match a protected file: let the full parser look
        if os.path.lexists(os.path.join(cwd, value)):
            return True
    return False


def _benign(words: list[str], cwd: str) -> bool:
    name, args = words[0], words[1:]
    if "/" in name:
        return False
    if name in PLAIN:
        return True
    if name == "find":
        return not any(a in FIND_ACTIONS for a in args)
    if name == "git":
        return _git_read_only(args)
    if name in PYTHON_NAMES:
        return args in (["--version"], ["-V"]) or (
            len(args) >= 2 and args[0] == "-m" and args[1] in PYTHON_READ_ONLY_MODULES)
    if name in HANDLED or name in READ_ONLY:
        return False
    return not _names_existing_path(args, cwd)


def plainly_benign(command: str, cwd: str) -> bool:
    """True when ``command`` certainly changes no file; False means "let the full parser decide"."""
    if len(command) > 4000:
        return False
    commands = _words(command)
    if commands is None:
        return False
    for words in commands:
        if "=" in words[0]:
            return False  # NAME=value before a command can change what runs (PATH=., GIT_DIR=...)
        if words[0] == "cd":
            if len(words) > 2 or (len(words) == 2 and words[1].startswith("-")):
                return False
            cwd = os.path.join(cwd, words[1]) if len(words) == 2 else os.path.expanduser("~")
            continue
        if not _benign(words, cwd):
            return False
    return True
