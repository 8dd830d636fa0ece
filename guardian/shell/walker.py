"""Walk tree-sitter's syntax tree of a command string and hand each simple command to its handler.

:func:`parse_script` parses a command string with tree-sitter-bash
(:mod:`~guardian.shell.grammar`) and walks lists, pipelines, subshells, loops,
``if``/``case``, functions, redirections and here-documents in the order the
shell would meet them.  Words are evaluated here: quotes removed, ``$'...'``
decoded, and variables the command itself sets (``X=build; rm -rf $X``, a
``for`` loop's list, ``$HOME``, ``$TMPDIR``) replaced by their value, so that
handlers see the paths the shell would pass.  Command substitutions are read as
commands of their own, and a few produce a known value (``$(pwd)``,
``$(which python3)``, ``$(cat <<'EOF' ... EOF)``).  A pipe's producer is looked
at too: ``find build | xargs rm`` only deletes under ``build``.

An error node anywhere means tree-sitter could not read part of the text: the
walk still reports what it could read, plus an ``unknown-dynamic`` intent that
the hook judges over the whole project.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from guardian.shell.grammar import node_text, parse_tree
from guardian.shell.intent import Intent
from guardian.shell.parser import MAX_DEPTH, Env, Feed, analyze, unreadable
from guardian.shell.values import (
    PROGRAM_VARIABLES,
    Redirect,
    Value,
    backquoted,
    producer_feed,
    redirect_intent,
    substitution_value,
    unescape,
    unescape_double,
)
from guardian.shell.words import Word, decode_ansi_c

if TYPE_CHECKING:
    from tree_sitter import Node

MAX_LOOP_VALUES = 16  # a for loop over more literal values than this is read with its variable unknown


def parse_script(text: str, env: Env) -> list[Intent]:
    """Every destructive intent in ``text``, read in ``env``."""
    if env.depth > MAX_DEPTH:
        return [unreadable(env.cwd, "commands nested too deeply to follow")]
    root, data = parse_tree(text)
    walker = _Walker(data, env)
    walker.walk(root)
    if root.has_error:
        walker.intents.append(unreadable(env.cwd, f"cannot parse the command near {_error_snippet(root, data)}"))
    return walker.intents


def parse_words(text: str, env: Env) -> list[Word] | None:
    """The words of the first simple command in ``text`` (an alias's value), or None if it is not one."""
    root, data = parse_tree(text)
    if root.has_error:
        return None
    walker = _Walker(data, env)
    for node in _descendants(root):
        if node.type == "command":
            return walker.command_words(node)
    return None


def _error_snippet(root: Node, data: bytes) -> str:
    for node in _descendants(root):
        if node.type == "ERROR" or node.is_missing:
            text = " ".join(node_text(node, data).split())[:30]
            return f"'{text}'" if text else f"offset {node.start_byte}"
    return "the end"


def _descendants(node: Node) -> Iterator[Node]:
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children))


class _Walker:
    def __init__(self, data: bytes, env: Env) -> None:
        self.data = data
        self.env = env
        self.cwd = env.cwd
        self.intents: list[Intent] = []
        self.dir_stack: list[str | None] = []
        self.vars: dict[str, Value] = {}
        self.functions: set[str] = set(env.functions)
        self.bodies: dict[str, Node] = {}
        self.shell_aliases: dict[str, str] = {}
        self.git_aliases = dict(env.aliases)
        self.stdin: Feed | None = env.stdin  # what a compound command's redirection feeds its body

    # ------------------------------------------------------------------ structure

    def text(self, node: Node) -> str:
        return node_text(node, self.data)

    def walk(self, node: Node) -> None:
        kind = node.type
        if kind in ("program", "compound_statement", "do_group", "else_clause", "elif_clause", "list"):
            self._sequence(node.children)
        elif kind == "pipeline":
            self._pipeline(node)
        elif kind == "redirected_statement":
            self._redirected(node)
        elif kind == "command":
            self._command(node, [])
        elif kind == "subshell":
            self._isolated(lambda: self._sequence(node.children))
        elif kind == "for_statement":
            self._for(node)
        elif kind == "while_statement":
            self._while(node)
        elif kind == "if_statement":
            self._sequence(node.children)
        elif kind == "case_statement":
            self._case(node)
        elif kind == "function_definition":
            self._function(node)
        elif kind in ("variable_assignment", "variable_assignments"):
            self._assignments(node, persist=True)
        elif kind == "declaration_command":
            self._declaration(node)
        elif kind == "unset_command":
            for child in node.named_children:
                self.vars.pop(self.text(child), None)
        elif kind == "negated_command":
            self._sequence(node.children)
        elif kind in ("comment", "heredoc_body", "heredoc_start", "heredoc_end"):
            return
        elif kind == "ERROR":
            self._sequence([c for c in node.children if c.is_named])
        else:
            # test_command, c-style for, arithmetic...: read what they evaluate, and any commands inside.
            for child in node.named_children:
                if child.type in _WORD_TYPES:
                    self.word_values(child)
                else:
                    self.walk(child)

    def _sequence(self, children: Sequence[Node]) -> None:
        for i, child in enumerate(children):
            if not child.is_named:
                continue
            background = i + 1 < len(children) and children[i + 1].type == "&"
            if background:
                self._isolated(functools.partial(self.walk, child), keep_vars=True)
            else:
                self.walk(child)

    def _isolated(self, action: Callable[[], None], *, keep_vars: bool = False) -> None:
        """Run ``action`` as a subshell: its cd and its variables do not outlive it."""
        cwd, stack, variables = self.cwd, list(self.dir_stack), dict(self.vars)
        action()
        self.cwd, self.dir_stack = cwd, stack
        if not keep_vars:
            self.vars = variables

    def _pipeline(self, node: Node) -> None:
        feed: Feed | None = self.stdin
        elements = [c for c in node.children if c.is_named]
        for index, element in enumerate(elements):
            saved = self.stdin
            self.stdin = feed
            piped = index > 0
            # Every element of a pipeline runs in a subshell: a cd there is lost.
            self._isolated(functools.partial(self._element, element, piped), keep_vars=False)
            self.stdin = saved
            feed = self._output_of(element)

    def _element(self, node: Node, piped: bool) -> None:
        if node.type == "command":
            self._command(node, [], piped=piped)
        elif node.type == "redirected_statement":
            self._redirected(node, piped=piped)
        else:
            self.walk(node)

    def _redirected(self, node: Node, *, piped: bool = False) -> None:
        body = node.child_by_field_name("body")
        redirects = self._redirects([c for c in node.children if c is not body])
        if body is None:
            self._emit_redirects(redirects, ())
            return
        feed = next((r.feed for r in redirects if r.feed is not None), None)
        if body.type == "command":
            self._command(body, redirects, piped=piped, feed=feed)
            return
        saved = self.stdin
        if feed is not None:
            self.stdin = feed
        self.walk(body)
        self.stdin = saved
        self._emit_redirects(redirects, (self.text(body).split(None, 1)[0] if self.text(body) else "",))

    def _redirects(self, nodes: Sequence[Node]) -> list[Redirect]:
        out: list[Redirect] = []
        for node in nodes:
            if node.type == "file_redirect":
                fd_node = node.child_by_field_name("descriptor")
                op = next((self.text(c) for c in node.children if not c.is_named), ">")
                dest = node.child_by_field_name("destination")
                target = self.word(dest) if dest is not None else None
                feed = None
                if op == "<" and dest is not None and dest.type == "process_substitution":
                    feed = self._substitution_feed(dest)
                elif op == "<" and target is not None:
                    feed = Feed(path=None if target.dynamic else target.text)
                out.append(Redirect(op, self.text(fd_node) if fd_node else "", target, feed))
            elif node.type == "heredoc_redirect":
                out.extend(self._heredoc(node))
            elif node.type == "herestring_redirect":
                value = next((c for c in node.named_children), None)
                word = self.word(value) if value is not None else Word("")
                out.append(Redirect("<<<", "", word, Feed(text=None if word.dynamic else word.text + "\n")))
        return out

    def _heredoc(self, node: Node) -> list[Redirect]:
        out: list[Redirect] = []
        start = next((c for c in node.children if c.type == "heredoc_start"), None)
        quoted = start is not None and any(q in self.text(start) for q in "'\"\\")
        strip = any(self.text(c) == "<<-" for c in node.children if not c.is_named)
        body_text = ""
        dynamic = False
        for child in node.children:
            if child.type == "heredoc_body":
                if quoted:
                    body_text = self.text(child)
                else:
                    value = self._compound_value(child, double=True)
                    body_text, dynamic = value.text, value.dynamic
                    # tree-sitter leaves `...` in a here-document as text; the shell runs it.
                    for inner in backquoted(self.text(child)):
                        self.intents.extend(parse_script(inner, replace(self._env(), depth=self.env.depth + 1)))
                        dynamic = True
            elif child.type == "file_redirect":
                out.extend(self._redirects([child]))
        if strip:
            body_text = "\n".join(line.lstrip("\t") for line in body_text.split("\n"))
        out.insert(0, Redirect("<<", "", None, Feed(text=None if dynamic else body_text)))
        return out

    def _emit_redirects(self, redirects: Sequence[Redirect], argv: Sequence[str]) -> None:
        for r in redirects:
            intent = redirect_intent(r, tuple(argv), self.cwd)
            if intent is not None:
                self.intents.append(intent)

    # ------------------------------------------------------------------ compound commands

    def _for(self, node: Node) -> None:
        variable = node.child_by_field_name("variable")
        body = node.child_by_field_name("body")
        values: list[Word] = []
        has_in = any(self.text(c) == "in" for c in node.children if not c.is_named)
        for child in node.children_by_field_name("value"):
            values.extend(self.word_values(child))
        name = self.text(variable) if variable is not None else ""
        if not has_in:
            values = [Word("$@", dynamic=True)]
        self._loop(name, values, body)

    def _loop(self, name: str, values: Sequence[Word], body: Node | None) -> None:
        if body is None:
            return
        if not values:
            return
        if len(values) > MAX_LOOP_VALUES:
            values = [Word(f"${name}", dynamic=True)]
        before = self.cwd
        for value in values:
            if name:
                self.vars[name] = Value(value.text, value.dynamic)
            self.walk(body)
            self.cwd = before

    def _while(self, node: Node) -> None:
        body = node.child_by_field_name("body")
        readers = [c for c in node.children_by_field_name("condition") if c.type == "command"]
        names: list[str] = []
        for cond in node.children_by_field_name("condition"):
            self.walk(cond) if cond.type != "command" else None
        for cond in readers:
            words = self.command_words(cond)
            if words and words[0].text == "read":
                names = [w.text for w in words[1:] if not w.text.startswith("-")]
            else:
                self._command(cond, [])
        if not names:
            if body is not None:
                self.walk(body)
            return
        feed = self.stdin
        if feed is not None and feed.text is not None:
            values = [Word(line) for line in feed.text.splitlines() if line.strip()]
        elif feed is not None and feed.scope is not None:
            values = [Word(feed.scope, dynamic=True)]
        else:
            values = [Word(f"${names[-1]}", dynamic=True)]
        for extra in names[:-1]:
            self.vars[extra] = Value(f"${extra}", True)
        self._loop(names[-1], values, body)

    def _case(self, node: Node) -> None:
        for child in node.named_children:
            if child.type == "case_item":
                self._sequence([c for c in child.children if c.is_named and c.type not in _WORD_TYPES
                                and c.type != "extglob_pattern"])
            elif child.type in _WORD_TYPES:
                self.word_values(child)

    def _function(self, node: Node) -> None:
        name = node.child_by_field_name("name")
        body = node.child_by_field_name("body")
        if name is None or body is None:
            return
        self.functions.add(self.text(name))
        self.bodies[self.text(name)] = body

    def _call(self, words: list[Word]) -> None:
        """A call of a function defined earlier: its body runs with the call's arguments as $1, $2..."""
        body = self.bodies[words[0].text]
        depth = self.env.depth + 1
        if depth > MAX_DEPTH:
            self.intents.append(unreadable(self.cwd, "functions nested too deeply to follow"))
            return
        saved_env = self.env
        self.env = replace(self.env, positional=tuple(words), depth=depth)
        self._isolated(functools.partial(self.walk, body), keep_vars=True)
        self.env = saved_env

    def _assignments(self, node: Node, *, persist: bool) -> dict[str, Value]:
        found: dict[str, Value] = {}
        nodes = [node] if node.type == "variable_assignment" else list(node.named_children)
        for assignment in nodes:
            if assignment.type != "variable_assignment":
                continue
            name_node = assignment.child_by_field_name("name")
            value_node = assignment.child_by_field_name("value")
            name = self.text(name_node) if name_node is not None else ""
            if value_node is None:
                value = Value("")
            else:
                word = self.word(value_node)
                value = Value(word.text, word.dynamic)
            if "[" in name or any(self.text(c) == "+=" for c in assignment.children if not c.is_named):
                value = Value(f"${name}", True)  # arrays and appends: not followed
            found[name.split("[")[0]] = value
        if persist:
            self.vars.update(found)
        return found

    def _declaration(self, node: Node) -> None:
        for child in node.named_children:
            if child.type == "variable_assignment":
                self._assignments(child, persist=True)
            elif child.type in _WORD_TYPES:
                self.word_values(child)

    # ------------------------------------------------------------------ simple commands

    def command_words(self, node: Node) -> list[Word]:
        words: list[Word] = []
        for child in node.named_children:
            if child.type == "command_name":
                inner = child.named_children[0] if child.named_children else child
                words.extend(self.word_values(inner))
            elif child.type in _WORD_TYPES:
                words.extend(self.word_values(child))
        return words

    def _command(self, node: Node, redirects: list[Redirect], *, piped: bool = False,
                 feed: Feed | None = None) -> None:
        prefix: dict[str, Value] = {}
        own = [c for c in node.named_children if c.type in ("herestring_redirect", "file_redirect",
                                                             "heredoc_redirect")]
        if own:
            redirects = [*redirects, *self._redirects(own)]
            feed = feed or next((r.feed for r in redirects if r.feed is not None), None)
        for child in node.named_children:
            if child.type == "variable_assignment":
                prefix.update(self._assignments(child, persist=False))
        saved_vars = self.vars
        if prefix:
            self.vars = {**self.vars, **prefix}
        words = self.command_words(node)
        self.vars = saved_vars
        if words and not words[0].quoted and words[0].text in self.shell_aliases:
            alias_words = parse_words(self.shell_aliases[words[0].text], self._env())
            if alias_words is not None:
                words = [*alias_words, *words[1:]]
        if not words:
            if not redirects:
                self.vars.update(prefix)  # a bare assignment: it stays for the rest of the command
            self._emit_redirects(redirects, ())
            return
        if words[0].text == "alias" and not words[0].quoted:
            for w in words[1:]:
                name, eq, value = w.text.partition("=")
                if eq:
                    self.shell_aliases[name] = value
            return
        argv = tuple(w.text for w in words)
        self._emit_redirects(redirects, argv)
        if not words[0].quoted and words[0].text in self.bodies:
            self._call(words)
            return
        stdin = feed if feed is not None else (self.stdin if piped or self.stdin is not None else None)
        env = replace(self._env(), stdin=stdin, piped=piped)
        result = analyze(words, env)
        self.intents.extend(result.intents)
        self.git_aliases.update({k.lower(): v for k, v in result.git_aliases.items()})
        if result.cwd_op:
            if result.cwd_op == "pop":
                self.cwd = self.dir_stack.pop() if self.dir_stack else "$OLDPWD"
            else:
                if result.cwd_op == "push":
                    self.dir_stack.append(self.cwd)
                self.cwd = result.cwd

    def _env(self) -> Env:
        return replace(self.env, cwd=self.cwd, aliases=dict(self.git_aliases), stdin=None, via_xargs=False,
                       piped=False, functions=frozenset(self.functions))

    # ------------------------------------------------------------------ pipes

    def _output_of(self, node: Node) -> Feed | None:
        """What a pipeline element writes to the next one, as far as it can be told."""
        while node.type == "redirected_statement":
            body = node.child_by_field_name("body")
            if body is None:
                return Feed()
            node = body
        if node.type != "command":
            return Feed()
        saved = len(self.intents)
        words = self.command_words(node)
        del self.intents[saved:]  # its substitutions were read when the element itself was
        return producer_feed(words, self.cwd)

    def _substitution_feed(self, node: Node) -> Feed:
        commands = [c for c in node.named_children]
        if len(commands) == 1 and commands[0].type == "command":
            saved = len(self.intents)
            words = self.command_words(commands[0])
            del self.intents[saved:]
            return producer_feed(words, self.cwd)
        return Feed()

    # ------------------------------------------------------------------ words

    def word(self, node: Node) -> Word:
        """One word (an assignment's value, a redirection's target): no word splitting."""
        value = self._value(node)
        quoted = node.type in ("string", "raw_string", "ansi_c_string", "translated_string") or (
            node.type == "concatenation" and any(c.type in ("string", "raw_string") for c in node.children))
        if node.type == "word" and "\\" in self.text(node):
            quoted = True
        return Word(value.text, value.dynamic, quoted)

    def word_values(self, node: Node) -> list[Word]:
        """The words ``node`` becomes: an unquoted variable holding "a b" splits into two."""
        word = self.word(node)
        if node.type in ("simple_expansion", "expansion") and not word.dynamic and word.text.split() != [word.text]:
            return [Word(part) for part in word.text.split()]
        return [word]

    def _value(self, node: Node) -> Value:
        kind = node.type
        if kind == "word" or kind == "number":
            return Value(unescape(self.text(node)))
        if kind == "raw_string":
            return Value(self.text(node)[1:-1])
        if kind == "ansi_c_string":
            return Value(decode_ansi_c(self.text(node)[2:-1]))
        if kind == "string":
            return self._compound_value(node, double=True, inner=(1, 1))
        if kind == "translated_string":
            return self._compound_value(node, double=True, inner=(2, 1))
        if kind == "concatenation":
            return self._compound_value(node, double=False)
        if kind in ("simple_expansion", "expansion"):
            return self._expansion(node)
        if kind == "command_substitution":
            return self._command_substitution(node)
        if kind in ("process_substitution", "arithmetic_expansion"):
            self._walk_inner(node)
            return Value(self.text(node), True)
        return Value(unescape(self.text(node)), "$" in self.text(node) or "`" in self.text(node))

    def _compound_value(self, node: Node, *, double: bool, inner: tuple[int, int] = (0, 0)) -> Value:
        """A string, concatenation or here-document body: its parts joined, gaps taken from the source."""
        start, end = node.start_byte + inner[0], node.end_byte - inner[1]
        parts: list[str] = []
        dynamic = False
        pos = start
        for child in node.children:
            if child.start_byte < pos or child.end_byte > end or not child.is_named:
                continue
            if child.type in ("string_content", "heredoc_content"):
                continue  # plain text: taken with the gaps below
            gap = self.data[pos : child.start_byte].decode("utf-8", "surrogateescape")
            parts.append(unescape_double(gap) if double else unescape(gap))
            value = self._value(child)
            parts.append(value.text)
            dynamic |= value.dynamic
            pos = child.end_byte
        gap = self.data[pos:end].decode("utf-8", "surrogateescape")
        parts.append(unescape_double(gap) if double else unescape(gap))
        return Value("".join(parts), dynamic)

    def _walk_inner(self, node: Node) -> None:
        """The commands inside a substitution run too, in the same directory."""
        inner = _Walker(self.data, replace(self._env(), depth=self.env.depth + 1))
        inner.vars = dict(self.vars)
        inner.shell_aliases = dict(self.shell_aliases)
        inner.bodies = dict(self.bodies)
        if self.env.depth + 1 > MAX_DEPTH:
            self.intents.append(unreadable(self.cwd, "commands nested too deeply to follow"))
            return
        inner._sequence(node.children)
        self.intents.extend(inner.intents)

    def _expansion(self, node: Node) -> Value:
        text = self.text(node)
        names = [c for c in node.named_children if c.type in ("variable_name", "special_variable_name")]
        if not names:
            return Value(text, True)
        name = self.text(names[0])
        operators = [self.text(c) for c in node.children if not c.is_named and self.text(c) not in ("${", "}", "$")]
        known = self._lookup(name)
        if node.type == "simple_expansion" or not operators:
            return known if known is not None else Value(text, True)
        op = operators[0]
        if op in (":-", "-", ":=", "="):
            if known is not None and not known.dynamic and (known.text or op in ("-", "=")):
                return known
            default = [c for c in node.named_children if c is not names[0]]
            if known is None and default:
                fallback = self._value(default[0])
                if name in self.env.environ:
                    return Value(self.env.environ[name])
                return Value(text, True) if not fallback.text else Value(fallback.text, fallback.dynamic)
        return Value(text, True)

    def _lookup(self, name: str) -> Value | None:
        if name in self.vars:
            return self.vars[name]
        if name.isdigit() or name in ("@", "*"):
            args = self.env.positional
            if name in ("@", "*"):
                return Value(" ".join(a.text for a in args[1:]), any(a.dynamic for a in args[1:])) if args else None
            index = int(name)
            return Value(args[index].text, args[index].dynamic) if index < len(args) else None
        if name == "PWD":
            return Value(self.cwd or ".")
        if name in self.env.environ:
            return Value(self.env.environ[name])
        if name in PROGRAM_VARIABLES:
            return Value(PROGRAM_VARIABLES[name])
        return None

    def _command_substitution(self, node: Node) -> Value:
        self._walk_inner(node)
        commands = [c for c in node.named_children]
        text = self.text(node)
        if len(commands) != 1:
            return Value(text, True)
        command = commands[0]
        feed: Feed | None = None
        if command.type == "redirected_statement":
            body = command.child_by_field_name("body")
            redirects = self._redirects([c for c in command.children if c is not body])
            feed = next((r.feed for r in redirects if r.feed is not None), None)
            if body is None or body.type != "command":
                return Value(text, True)
            command = body
        if command.type != "command":
            return Value(text, True)
        saved = len(self.intents)
        words = self.command_words(command)
        del self.intents[saved:]
        return substitution_value(words, feed, self.cwd, text, self.env.environ.get("TMPDIR"))


_WORD_TYPES = frozenset({"word", "string", "raw_string", "ansi_c_string", "translated_string", "concatenation",
                         "simple_expansion", "expansion", "command_substitution", "process_substitution",
                         "arithmetic_expansion", "number", "brace_expression", "array"})
