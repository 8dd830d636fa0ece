"""Snapshot commit messages: a summary line, then ``Guardian-*`` trailers that the catalog is rebuilt from.

Every trailer lives here, with the store: the catalog, gc's chain rewrite and the
mirror all read and write the same message format.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from guardian.util.records import FrozenRecord

TRAILER_TRIGGER = "Guardian-Trigger"


TRAILER_VERDICT = "Guardian-Verdict"


TRAILER_ACCEPTED = "Guardian-Accepted"


TRAILER_SOURCE = "Guardian-Source"


TRAILER_COMMAND = "Guardian-Command"


TRAILER_NOTE = "Guardian-Note"


# Permission bits of a captured file, when not the default 0644 (0755 for an executable):
# git keeps only the exec bit, and a deleted 0600 file must not come back world-readable.
TRAILER_PERM = "Guardian-Perm"


# Permission bits of each directory above a captured file, when not 0755: a restore that has
# to recreate a 0700 directory must not bring it back world-readable.
TRAILER_DIR_PERM = "Guardian-DirPerm"
DEFAULT_DIR_PERM = 0o755


_TRAILER_RE = re.compile(r"^(Guardian-[A-Za-z]+): (.*)$")


def _one_line(text: str) -> str:
    return " ".join(text.split())


class MessageInfo(FrozenRecord):
    """What a snapshot commit's trailers say.

    A FrozenRecord (guardian.util.records), not a NamedTuple: ``dir_perms`` defaults to a new
    dict for each.  Its hash is its fields' (so none: they hold dicts), as the dataclass's was.
    """

    __slots__ = ("accepted", "command", "dir_perms", "note", "perms", "source", "trigger", "verdicts")
    __match_args__ = ("trigger", "verdicts", "accepted", "source", "command", "note", "perms", "dir_perms")

    trigger: str
    verdicts: dict[str, tuple[str, str]]  # path -> (verdict, reason), only for files that are not valid
    accepted: frozenset[str]
    source: str | None
    command: str | None
    note: str | None
    perms: dict[str, int]  # path -> permission bits, only where not the default (Guardian-Perm)
    dir_perms: dict[str, int]  # directory -> its bits, where not 0755

    def __init__(
        self,
        trigger: str,
        verdicts: dict[str, tuple[str, str]],
        accepted: frozenset[str],
        source: str | None,
        command: str | None,
        note: str | None,
        perms: dict[str, int],
        dir_perms: dict[str, int] | None = None,
    ) -> None:
        self._init(trigger, verdicts, accepted, source, command, note, perms, {} if dir_perms is None else dir_perms)


def default_perm(perm: int) -> int:
    """The bits a file with perm's exec bit is assumed to have when no Guardian-Perm trailer says otherwise."""
    return 0o755 if perm & 0o100 else 0o644


def format_message(
    summary: str,
    trigger: str,
    verdicts: dict[str, tuple[str, str]],
    accepted: Iterable[str] = (),
    source: str | None = None,
    command: str | None = None,
    note: str | None = None,
    perms: dict[str, int] | None = None,
    dir_perms: dict[str, int] | None = None,
) -> str:
    lines = [_one_line(summary), "", f"{TRAILER_TRIGGER}: {trigger}"]
    if note:
        lines.append(f"{TRAILER_NOTE}: {_one_line(note)}")
    if source:
        lines.append(f"{TRAILER_SOURCE}: {source}")
    if command:
        lines.append(f"{TRAILER_COMMAND}: {_one_line(command)}")
    # Paths are JSON-quoted so names with spaces, newlines or odd bytes round-trip.
    for path in sorted(accepted):
        lines.append(f"{TRAILER_ACCEPTED}: {json.dumps(path)}")
    for path, (verdict, reason) in sorted(verdicts.items()):
        lines.append(f"{TRAILER_VERDICT}: {verdict} {json.dumps(path)} {_one_line(reason)}")
    for path, perm in sorted((perms or {}).items()):
        if perm != default_perm(perm):
            lines.append(f"{TRAILER_PERM}: {perm:04o} {json.dumps(path)}")
    for path, perm in sorted((dir_perms or {}).items()):
        if perm != DEFAULT_DIR_PERM:
            lines.append(f"{TRAILER_DIR_PERM}: {perm:04o} {json.dumps(path)}")
    return "\n".join(lines) + "\n"


def parse_message(message: str) -> MessageInfo:
    trigger = "unknown"
    verdicts: dict[str, tuple[str, str]] = {}
    accepted: set[str] = set()
    perms: dict[str, int] = {}
    dir_perms: dict[str, int] = {}
    source = command = note = None
    decoder = json.JSONDecoder()
    for line in message.splitlines():
        match = _TRAILER_RE.match(line)
        if not match:
            continue
        key, value = match.groups()
        try:
            if key == TRAILER_TRIGGER:
                trigger = value.strip()
            elif key == TRAILER_SOURCE:
                source = value.strip()
            elif key == TRAILER_COMMAND:
                command = value
            elif key == TRAILER_NOTE:
                note = value
            elif key == TRAILER_ACCEPTED:
                accepted.add(str(json.loads(value)))
            elif key == TRAILER_VERDICT:
                verdict, _, rest = value.partition(" ")
                path, end = decoder.raw_decode(rest)
                verdicts[str(path)] = (verdict, rest[end:].strip())
            elif key in (TRAILER_PERM, TRAILER_DIR_PERM):
                bits, _, rest = value.partition(" ")
                (perms if key == TRAILER_PERM else dir_perms)[str(json.loads(rest))] = int(bits, 8) & 0o7777
        except ValueError:
            continue
    return MessageInfo(trigger, verdicts, frozenset(accepted), source, command, note, perms, dir_perms)


TRAILER_ORIGINAL = "Guardian-Original"


TRAILER_FOLDED = "Guardian-Folded"


def original_ids(message: str) -> tuple[str, ...]:
    prefix = f"{TRAILER_ORIGINAL}: "
    return tuple(line[len(prefix) :].strip() for line in message.splitlines() if line.startswith(prefix))


def folded_count(message: str) -> int:
    prefix = f"{TRAILER_FOLDED}: "
    for line in message.splitlines():
        if line.startswith(prefix) and line[len(prefix) :].strip().isdigit():
            return int(line[len(prefix) :].strip())
    return 0
