"""Option parsing shared by the command handlers: GNU-style flags, and a wrapper's options.

Each handler names the options that take a value; everything else is a flag or
an operand.  Getting this right matters more than it looks: ``rm -rf -- -x``,
``sed -i.bak`` and ``sudo -u root rm`` all hide their operand behind options.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from guardian.shell.words import Word


@dataclass
class Args:
    opts: list[tuple[str, str | None]] = field(default_factory=list)
    operands: list[Word] = field(default_factory=list)
    after_dashdash: list[Word] | None = None

    def has(self, *names: str) -> bool:
        return any(name in names for name, _ in self.opts)

    def value(self, *names: str) -> str | None:
        found: str | None = None
        for name, val in self.opts:
            if name in names:
                found = val
        return found

    @property
    def paths(self) -> list[Word]:
        return self.operands + (self.after_dashdash or [])


def split_args(
    args: Sequence[Word],
    short_with_arg: str = "",
    long_with_arg: frozenset[str] = frozenset(),
    *,
    stop_at_operand: bool = False,
) -> Args:
    """GNU-style options: clustered short flags, "-xVALUE", "--long=value", "--long value", "--"."""
    out = Args()
    i = 0
    while i < len(args):
        word = args[i]
        text = word.text
        if out.after_dashdash is not None:
            out.after_dashdash.append(word)
        elif text == "--":
            out.after_dashdash = []
        elif text.startswith("--"):
            name, eq, val = text.partition("=")
            if eq:
                out.opts.append((name, val))
            elif name in long_with_arg and i + 1 < len(args):
                i += 1
                out.opts.append((name, args[i].text))
            else:
                out.opts.append((name, None))
        elif text.startswith("-") and len(text) > 1 and not word.dynamic:
            for k, ch in enumerate(text[1:], start=2):
                if ch in short_with_arg:
                    val = text[k:]
                    if not val and i + 1 < len(args):
                        i += 1
                        val = args[i].text
                    out.opts.append(("-" + ch, val))
                    break
                out.opts.append(("-" + ch, None))
        else:
            out.operands.append(word)
            if stop_at_operand:
                out.operands.extend(args[i + 1 :])
                break
        i += 1
    return out


def skip_options(words: Sequence[Word], start: int, short_with_arg: str = "",
                 long_with_arg: frozenset[str] = frozenset()) -> int:
    """Index of the first operand (the wrapped command) after a wrapper's options."""
    i = start
    while i < len(words):
        text = words[i].text
        if text == "--":
            return i + 1
        if not text.startswith("-") or text == "-" or words[i].dynamic:
            return i
        i += 2 if takes_value(text, short_with_arg, long_with_arg) else 1
    return i


def takes_value(text: str, short_with_arg: str, long_with_arg: frozenset[str]) -> bool:
    """Whether option word ``text`` consumes the next word as its value."""
    if text.startswith("--"):
        return "=" not in text and text in long_with_arg
    if text.startswith("-") and len(text) > 1:
        for k, ch in enumerate(text[1:], start=1):
            if ch in short_with_arg:
                return k == len(text) - 1
    return False
