"""A shell word as guardian reads it, and the decoding of bash's ``$'...'`` strings.

A :class:`Word` is one argument after quote removal, with what the shell would
compute at run time (``$x``, ``$(...)``) kept as written and marked ``dynamic``.
Variables whose value the command itself sets (``X=build; rm -rf $X``) arrive
here already replaced by that value.  :func:`decode_ansi_c` turns the body of a
``$'...'`` string into the text bash would pass: tree-sitter only says where the
string is, and ``$'\\x72\\x6d'`` must read as ``rm``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Word:
    text: str  # with quotes removed; expansions ($x, $(...), `...`) kept as written
    dynamic: bool = False  # holds an expansion, so the real value is only known at run time
    quoted: bool = False  # some part was quoted: not a reserved word, not an fd number
    assign: bool = False  # NAME=value, a variable assignment in command position
    display: str | None = None  # what to show in argv for a placeholder; "" hides it


_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b",
                   "f": "\f", "v": "\v", "\\": "\\", "'": "'", '"': '"', "?": "?"}
_HEX = "0123456789abcdefABCDEF"


def _take(body: str, i: int, digits: str, limit: int) -> tuple[str, int]:
    j = i
    while j < len(body) and j - i < limit and body[j] in digits:
        j += 1
    return body[i:j], j


def decode_ansi_c(body: str) -> str:
    """The value of ``$'body'``: bash's backslash escapes, including \\xHH, \\nnn, \\uHHHH and \\cX."""
    out: list[str] = []
    i, n = 0, len(body)
    while i < n:
        c = body[i]
        if c != "\\" or i + 1 >= n:
            out.append(c)
            i += 1
            continue
        e = body[i + 1]
        i += 2
        if e in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[e])
        elif e == "x":
            digits, i = _take(body, i, _HEX, 2)
            out.append(chr(int(digits, 16)) if digits else "\\x")
        elif e in "uU":
            digits, i = _take(body, i, _HEX, 4 if e == "u" else 8)
            try:
                out.append(chr(int(digits, 16)) if digits else "\\" + e)
            except (ValueError, OverflowError):
                out.append("\\" + e + digits)
        elif e in "01234567":
            digits, i = _take(body, i - 1, "01234567", 3)
            out.append(chr(int(digits, 8) & 0xFF))
        elif e == "c" and i < n:
            out.append(chr(ord(body[i]) & 0x1F))
            i += 1
        else:
            out.append("\\" + e)
    return "".join(out)
