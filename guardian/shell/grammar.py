"""The bash grammar: tree-sitter-bash, loaded on first use.

tree-sitter gives guardian a real shell grammar (heredocs inside ``$(...)``,
``case`` inside substitutions, arithmetic, nested quoting) where a hand-written
lexer kept meeting new corners.  Its error nodes are the "cannot read this"
signal: a command with one is judged as a whole-project unknown.  Loading the
grammar costs more than deciding most commands, so nothing imports it until a
command needs it (see :mod:`guardian.shell.quick`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tree_sitter import Node

_parser: Any = None


class GrammarMissing(RuntimeError):
    """tree-sitter or its bash grammar is not installed."""


def _load() -> Any:
    global _parser
    if _parser is None:
        try:
            from tree_sitter import Language, Parser
            from tree_sitter_bash import language
        except ImportError as exc:  # pragma: no cover - a broken install
            raise GrammarMissing(f"the bash grammar is not installed ({exc}); reinstall guardian") from None
        _parser = Parser(Language(language()))
    return _parser


def parse_tree(text: str) -> tuple[Node, bytes]:
    """The syntax tree of ``text`` and the bytes its node offsets refer to."""
    data = text.encode("utf-8", "surrogateescape")
    return _load().parse(data).root_node, data


def node_text(node: Node, data: bytes) -> str:
    return data[node.start_byte : node.end_byte].decode("utf-8", "surrogateescape")
