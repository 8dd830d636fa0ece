"""Signs of a torn write: new content that still parses but lost the end of the last valid version.

A writer that rewrites a file in place (no temporary file and rename) and dies part-way
leaves the head of what it meant to write.  When it was rewriting the same text, that head
is a strict prefix of the last valid version.  When it was writing changed text, the head
stops early: the last definition (Python) or top-level key (YAML) that survived is cut
short, and those the last valid version had after it are missing.  Both often still parse,
so the syntax checks alone would call them valid.

The comparisons read only the two byte strings; the caller bounds their size.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, AnyStr

if TYPE_CHECKING:
    import ast

# (name, 0-based line where the statement or key that defines it starts), in file order,
# first appearance only.
Outline = list[tuple[str, int]]

TORN = "torn or truncated write"
# How many lost names a reason spells out before "+N more".
_NAMES_SHOWN = 3
# How much of the new file's last line must reappear earlier in the old file before the
# outlines are worth parsing: the end of a head cut short is, by definition, found there.
_TAIL_PROBE = 64

def torn_reasons(
    data: bytes,
    load_previous: Callable[[], bytes | None],
    outlines: Sequence[str],
    last_valid_size: int | None,
    max_bytes: int,
    *,
    shrank: bool,
) -> list[str]:
    """Why ``data`` looks like a torn write of the last valid version, which ``load_previous`` reads.

    ``outlines`` are the outline checks that apply ("python", "yaml").  The last valid version
    is read only when a check can use it: ``data`` is shorter, or has an outline to compare.
    With ``shrank`` (the shrink check already fired, with the sizes) a strict prefix is not
    said again.
    """
    if not outlines and (last_valid_size is None or len(data) >= last_valid_size):
        return []
    previous = load_previous()
    if previous is None or len(previous) > max_bytes:
        return []
    reasons: list[str] = []
    prefix = prefix_reason(data, previous)
    if prefix is not None and not shrank:
        reasons.append(prefix)
    for check in outlines:
        cut = lost_tail_reason(check, data, previous)
        if cut is not None:
            reasons.append(cut)
    return reasons


def prefix_reason(data: bytes, previous: bytes) -> str | None:
    """Why ``data`` looks torn because it is a strict prefix of ``previous``, or None.

    Losing only whitespace (an editor trimming trailing blank lines) loses nothing.
    """
    if len(data) >= len(previous) or not previous.startswith(data):
        return None
    if not previous[len(data) :].strip():
        return None
    return f"a strict prefix of the last valid version ({len(data)} of {len(previous)} bytes): {TORN}"


def lost_tail_reason(check: str, data: bytes, previous: bytes) -> str | None:
    """For ``check`` "python" or "yaml": why ``data`` looks like ``previous`` rewritten and cut short.

    It does when the last definition (or key) ``data`` has was in ``previous`` too, and what
    ``data`` holds from there to its end is a strict prefix of what ``previous`` held for it:
    the write stopped inside that item.  The reason names the items of ``previous`` that came
    after it and are gone, or else that item.  So deleting, renaming, adding or reordering
    items is not flagged, nor is a cut that falls exactly between two items.
    """
    if not _tail_reappears_earlier(data, previous):
        return None
    if check == "python":
        return _python_lost_tail(data, previous)
    if check == "yaml":
        return _yaml_lost_tail(data, previous)
    return None


def _tail_reappears_earlier(data: bytes, previous: bytes) -> bool:
    # Cheap filter, so ordinary edits never pay for two parses: the last line of a torn head is
    # found in the old file with more content after it.
    tail = data.rstrip().rsplit(b"\n", 1)[-1].strip()[-_TAIL_PROBE:]
    old = previous.rstrip()
    if not tail:
        return bool(old)
    return not old.endswith(tail) and tail in old


def _python_lost_tail(data: bytes, previous: bytes) -> str | None:
    old, new = python_outline(previous), python_outline(data)
    if old is None or new is None:
        return None
    cut = cut_short(old, new, previous.splitlines(keepends=True), data.splitlines(keepends=True))
    return None if cut is None else _cut_reason("python", "top-level definition", *cut)


def _yaml_lost_tail(data: bytes, previous: bytes) -> str | None:
    try:
        old_text, new_text = previous.decode("utf-8-sig"), data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    old, new = yaml_outline(old_text), yaml_outline(new_text)
    if old is None or new is None:
        return None
    cut = cut_short(old, new, old_text.splitlines(keepends=True), new_text.splitlines(keepends=True))
    return None if cut is None else _cut_reason("yaml", "top-level key", *cut)


def cut_short(
    old: Outline, new: Outline, old_lines: Sequence[AnyStr], new_lines: Sequence[AnyStr]
) -> tuple[list[str], str] | None:
    """(names of ``old`` lost after the item ``new`` stops in, that item) when ``new`` stops inside it, else None.

    ``old_lines``/``new_lines`` are the two files' lines (bytes or str, line ends kept).
    """
    if not old:
        return None
    empty = old_lines[0][:0]  # b"" or "", whichever the lines are
    if not new:
        # Cut before the first item: what is left is (part of) the header.
        header = empty.join(old_lines[: old[0][1]]).rstrip()
        return ([name for name, _ in old], "") if header.startswith(empty.join(new_lines).rstrip()) else None
    last, new_start = new[-1]
    at = next((i for i, (name, _) in enumerate(old) if name == last), None)
    if at is None:
        return None  # the file now ends in an item the last valid version never had
    new_names = {name for name, _ in new}
    lost = [name for name, _ in old[at + 1 :] if name not in new_names]
    old_end = old[at + 1][1] if at + 1 < len(old) else len(old_lines)
    old_part = empty.join(old_lines[old[at][1] : old_end]).rstrip()
    new_part = empty.join(new_lines[new_start:]).rstrip()
    if new_part == old_part or not old_part.startswith(new_part):
        return None  # that item is whole (what followed was deleted) or was itself edited
    return lost, last


def _cut_reason(check: str, what: str, lost: list[str], last: str) -> str:
    if not lost:
        return f"{check}: the last {what}, {last}, is cut short ({TORN})"
    shown = ", ".join(lost[:_NAMES_SHOWN])
    more = f" +{len(lost) - _NAMES_SHOWN} more" if len(lost) > _NAMES_SHOWN else ""
    plural = "s" if len(lost) > 1 else ""
    return f"{check}: lost {len(lost)} {what}{plural} the last valid version ended with: {shown}{more} ({TORN})"


# --------------------------------------------------------------------------- outlines


def python_outline(source: bytes) -> Outline | None:
    """Top-level functions, classes and assigned names, in order; None if it does not parse."""
    # Only once an outline is compared (see _tail_reappears_earlier): restore's and the git
    # hooks' captures of ordinary edits skip ast's import (~2 ms).
    import ast

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    outline: Outline = []
    seen: set[str] = set()
    for node in tree.body:
        decorators = getattr(node, "decorator_list", [])
        start = min([node.lineno, *(d.lineno for d in decorators)]) - 1
        for name in _defined_names(node):
            if name not in seen:
                seen.add(name)
                outline.append((name, start))
    return outline


def _defined_names(node: ast.stmt) -> list[str]:
    import ast  # imported already by python_outline, the only caller

    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [node.name]
    if isinstance(node, ast.Assign):
        return [name for target in node.targets for name in _target_names(target)]
    if isinstance(node, ast.AnnAssign):
        return _target_names(node.target)
    name = getattr(node, "name", None)  # `type X = ...` (3.12) carries a Name node
    return [name.id] if isinstance(name, ast.Name) else []


def _target_names(target: ast.expr) -> list[str]:
    import ast  # imported already by python_outline

    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Tuple | ast.List):
        return [name for element in target.elts for name in _target_names(element)]
    if isinstance(target, ast.Starred):
        return _target_names(target.value)
    return []


def yaml_outline(text: str) -> Outline | None:
    """Each document's top-level mapping keys, in order; None if it does not parse.

    Keys of documents after the first are named "key (document N)".  Events only, as
    in the yaml check: nothing is constructed, so aliases cannot blow up.
    """
    import yaml  # only for a YAML file: the git hooks capture Python and text without it (~20 ms)

    # libyaml is an order of magnitude faster on big files; the pure-Python parser is the fallback.
    loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    outline: Outline = []
    seen: set[str] = set()
    document = -1
    # Per open collection: is it a mapping, and how many nodes it has had so far.
    stack: list[list[Any]] = []
    try:
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, yaml.DocumentStartEvent):
                document += 1
                stack = []
            elif isinstance(event, yaml.CollectionEndEvent):
                if stack:
                    stack.pop()
            elif isinstance(event, yaml.NodeEvent):
                if len(stack) == 1 and stack[0][0]:
                    is_key = stack[0][1] % 2 == 0
                    stack[0][1] += 1
                    if is_key and isinstance(event, yaml.ScalarEvent) and event.start_mark is not None:
                        name = event.value if document == 0 else f"{event.value} (document {document + 1})"
                        if name not in seen:
                            seen.add(name)
                            outline.append((name, event.start_mark.line))
                if isinstance(event, yaml.CollectionStartEvent):
                    stack.append([isinstance(event, yaml.MappingStartEvent), 0])
    except (yaml.YAMLError, RecursionError, MemoryError):
        return None
    return outline
