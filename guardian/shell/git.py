"""The git grammar: which git commands rewrite the work tree, a branch or the stash.

``git`` is read like git itself reads it: global options first (``-C DIR``
moves the directory, ``-c alias.x=...`` defines an alias), then an alias is
expanded (a ``!`` alias is a shell command), then the subcommand's own parser
decides.  Each ``_git_*`` function sees the subcommand's arguments and the
``-c`` settings and returns the kind, targets and detail of what it would do,
or None when it leaves files alone (``reset --soft``, ``clean -n``,
``branch -d``).
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import replace

from guardian.shell.intent import ANY_PATH, WORK_TREE, Intent
from guardian.shell.options import split_args
from guardian.shell.parser import MAX_DEPTH, Env, Result, join_dir, make_intent, unreadable
from guardian.shell.walker import parse_script, parse_words
from guardian.shell.words import Word

_GIT_GLOBAL_WITH_ARG = frozenset({"-C", "-c", "--git-dir", "--work-tree", "--namespace", "--config-env",
                                  "--super-prefix", "--attr-source"})
# Git ignores an alias that has the name of one of its own commands.
_GIT_BUILTINS = frozenset({
    "add", "am", "apply", "archive", "checkout-index", "read-tree",
    "bisect", "blame", "branch", "checkout", "cherry-pick", "clean", "clone",
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


def handle_git(words: list[Word], env: Env) -> Result:
    return Result(_git(words, env, env.aliases, frozenset()), git_aliases=_defined_aliases(words))


def _defined_aliases(words: list[Word]) -> dict[str, str]:
    """``git config [--global] alias.NAME VALUE`` (or ``config set``): an alias later commands can use."""
    texts = [w.text for w in words]
    if "config" not in texts:
        return {}
    args = [t for t in texts[texts.index("config") + 1 :] if not t.startswith("-")]
    if args[:1] == ["set"]:
        args = args[1:]
    if len(args) >= 2 and args[0].lower().startswith("alias."):
        return {args[0][len("alias."):]: args[1]}
    return {}


def _git(words: list[Word], env: Env, aliases: Mapping[str, str], seen: frozenset[str]) -> list[Intent]:
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
            cwd = join_dir(cwd, val) if val else cwd  # `git -C ""` stays put
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
        return [unreadable(cwd, "the git command is computed at run time")]
    args = words[i + 1 :]
    genv = replace(env, cwd=cwd, aliases=aliases)
    key = sub.lower()
    if key in aliases and sub not in _GIT_BUILTINS:
        if key in seen or env.depth > MAX_DEPTH:
            return [unreadable(cwd, f"git alias '{sub}' expands into itself")]
        expansion = aliases[key]
        inner = replace(genv, depth=env.depth + 1)
        if expansion.startswith("!"):
            # A shell alias: git runs it with the arguments appended (from the top of the work tree).
            line = " ".join([expansion[1:], *(shlex.quote(w.text) for w in args)])
            intents = parse_script(line, inner)
        else:
            expanded = parse_words(expansion, inner)
            if expanded is None:
                return [unreadable(cwd, f"cannot parse git alias '{sub}'")]
            intents = _git([*words[:i], *expanded, *args], inner, aliases, seen | {key})
        for intent in intents:
            intent.detail.setdefault("alias", sub)
        return intents
    handler = _GIT_COMMANDS.get(sub)
    if handler is None:
        return []
    if sub in ("apply",) and env.stdin is not None and env.stdin.path is not None:
        config = {**config, "<stdin>": env.stdin.path}
    elif sub in ("apply",) and env.stdin is not None:
        config = {**config, "<stdin>": ""}
    found = handler(args, config)
    if found is None:
        return []
    kind, targets, detail = found
    detail = {**detail, **extra}
    return [make_intent(kind, words, genv, targets, detail)]


_GitFound = tuple[str, list[Word], dict[str, str]] | None
_WORK_TREE_WORD = Word(WORK_TREE)


def _git_reset(args: list[Word], config: Mapping[str, str]) -> _GitFound:
    parsed = split_args(args, "", frozenset({"--pathspec-from-file"}))
    mode = next((name[2:] for name, _ in parsed.opts if name in ("--hard", "--merge", "--keep")), None)
    if mode is None:
        return None  # --soft, --mixed and plain reset leave the working tree alone
    rev = parsed.operands[0].text if parsed.operands else "HEAD"
    return "git-reset", [_WORK_TREE_WORD], {"mode": mode, "rev": rev}


def _git_checkout(args: list[Word], config: Mapping[str, str]) -> _GitFound:
    parsed = split_args(args, "bB", frozenset({"--orphan", "--pathspec-from-file"}))
    new_branch = parsed.value("-b", "-B", "--orphan")
    detail: dict[str, str] = {}
    if parsed.has("-f", "--force"):
        detail["force"] = "1"
    if parsed.has("--pathspec-from-file"):
        rev = parsed.operands[:1]
        return "git-checkout-paths", [Word(ANY_PATH)], {**detail, **({"rev": rev[0].text} if rev else {})}
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
            if "force" in detail:  # `checkout -f -b new` still throws away every local change
                return "git-checkout-rev", [_WORK_TREE_WORD], {**detail, "rev": "HEAD"}
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


def _git_switch(args: list[Word], config: Mapping[str, str]) -> _GitFound:
    parsed = split_args(args, "cC", frozenset({"--create", "--force-create", "--orphan"}))
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


def _git_restore(args: list[Word], config: Mapping[str, str]) -> _GitFound:
    parsed = split_args(args, "s", frozenset({"--source", "--pathspec-from-file"}))
    worktree = parsed.has("-W", "--worktree") or not parsed.has("-S", "--staged")
    if not worktree:
        return None  # --staged alone only resets the index
    paths = parsed.paths or ([Word(ANY_PATH)] if parsed.has("--pathspec-from-file") else [])
    if not paths:
        return None  # git refuses to restore without paths
    source = parsed.value("-s", "--source")
    return "git-restore", paths, {"source": source} if source else {}


def _git_clean(args: list[Word], config: Mapping[str, str]) -> _GitFound:
    parsed = split_args(args, "e", frozenset({"--exclude"}))
    if parsed.has("-n", "--dry-run"):
        return None
    forced = parsed.has("-f", "--force", "-i", "--interactive")
    if not forced and config.get("clean.requireforce", "true").lower() not in ("false", "no", "off", "0"):
        return None  # git refuses to clean without -f unless clean.requireForce is off
    flags = "".join(name[1] for name, _ in parsed.opts if name in ("-d", "-x", "-X"))
    return "git-clean", parsed.paths or [Word(".")], {"flags": flags}


def _git_stash(args: list[Word], config: Mapping[str, str]) -> _GitFound:
    if not args:
        return None
    action, rest = args[0].text, split_args(args[1:])
    if action == "drop":
        return "git-stash-drop", [], {"stash": rest.paths[0].text if rest.paths else "stash@{0}"}
    if action == "clear":
        return "git-stash-clear", [], {}
    return None


def _git_branch(args: list[Word], config: Mapping[str, str]) -> _GitFound:
    parsed = split_args(args, "u", frozenset({"--set-upstream-to", "--sort", "--format", "--points-at"}))
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


def _git_rebase(args: list[Word], config: Mapping[str, str]) -> _GitFound:
    parsed = split_args(args, "sXx", frozenset({"--onto", "--strategy", "--strategy-option", "--exec"}))
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


def _git_rm(args: list[Word], config: Mapping[str, str]) -> _GitFound:
    parsed = split_args(args, "", frozenset({"--pathspec-from-file"}))
    if parsed.has("--cached", "-n", "--dry-run") or not parsed.paths:
        return None  # --cached only unstages
    return "rm", parsed.paths, {"git": "rm"}


def _git_mv(args: list[Word], config: Mapping[str, str]) -> _GitFound:
    parsed = split_args(args)
    if parsed.has("-n", "--dry-run") or len(parsed.paths) < 2:
        return None
    sources = "\n".join(w.text for w in parsed.paths[:-1])
    return "mv", parsed.paths[-1:], {"git": "mv", "sources": sources, "deletes": sources}


def _git_pick(mode: str) -> Callable[[list[Word], Mapping[str, str]], _GitFound]:
    """``git revert REV...`` and ``git cherry-pick REV...``: REV's changes (or their inverse) land in the tree."""

    def handler(args: list[Word], config: Mapping[str, str]) -> _GitFound:
        parsed = split_args(args, "mXS", frozenset({"--mainline", "--strategy", "--strategy-option",
                                                     "--gpg-sign", "--cleanup"}))
        if parsed.has("--abort", "--quit", "--continue", "--skip") or not parsed.paths:
            return None  # these finish or leave one that was judged when it started
        return "git-pick", [_WORK_TREE_WORD], {"mode": mode, "revs": "\n".join(w.text for w in parsed.paths)}

    return handler


def _git_apply(args: list[Word], config: Mapping[str, str]) -> _GitFound:
    parsed = split_args(args, "pC", frozenset({"--directory", "--exclude", "--include", "--whitespace",
                                                 "--build-fake-ancestor"}))
    if parsed.has("--cached") or (parsed.has("--check", "--stat", "--numstat", "--summary")
                                  and not parsed.has("--apply")):
        return None  # the index only, or a report
    patches = [w.text for w in parsed.paths]
    if not patches and "<stdin>" in config:
        patches = [config["<stdin>"] or "-"]
    detail = {"patches": "\n".join(patches or ["-"])}
    if parsed.has("-R", "--reverse"):
        detail["reverse"] = "1"
    strip = parsed.value("-p")
    if strip:
        detail["strip"] = strip
    directory = parsed.value("--directory")
    if directory:
        detail["directory"] = directory
    return "git-apply", [_WORK_TREE_WORD], detail


def _git_checkout_index(args: list[Word], config: Mapping[str, str]) -> _GitFound:
    parsed = split_args(args, "", frozenset({"--prefix", "--stage"}))
    if not parsed.has("-f", "--force") or parsed.has("-n", "--no-create"):
        return None  # without -f it refuses to overwrite a file that exists
    paths = [Word(".")] if parsed.has("-a", "--all") else parsed.paths
    if not paths:
        return None
    return "git-checkout-paths", paths, {"force": "1", "via": "checkout-index"}


def _git_read_tree(args: list[Word], config: Mapping[str, str]) -> _GitFound:
    parsed = split_args(args, "", frozenset({"--prefix", "--index-output", "--exclude-per-directory"}))
    if not parsed.has("-u") or parsed.has("-n", "--dry-run"):
        return None  # without -u only the index changes
    trees = [w.text for w in parsed.paths]
    rev = trees[-1] if trees else "HEAD"
    return "git-reset", [_WORK_TREE_WORD], {"mode": "hard" if parsed.has("--reset") else "merge", "rev": rev,
                                             "via": "read-tree"}


_GIT_COMMANDS: dict[str, Callable[[list[Word], Mapping[str, str]], _GitFound]] = {
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
    "revert": _git_pick("revert"),
    "cherry-pick": _git_pick("pick"),
    "apply": _git_apply,
    "checkout-index": _git_checkout_index,
    "read-tree": _git_read_tree,
}
