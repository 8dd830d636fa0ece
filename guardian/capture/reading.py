"""Reading one user file for capture: bounded by ``watch.max_file_size``, and failing for that file alone.

A file is read in chunks and never past the limit, whatever its size said when it was
looked at: a log that keeps growing, or a sparse file extended to gigabytes while it is
read, costs at most the limit in memory, and is skipped as too large.  A file that
cannot be read (no permission, an I/O error, a name too long for the system) raises
``Unreadable`` with a short reason, so the capture reports that file as an ``error``
and goes on with the others.
"""

from __future__ import annotations

import os

from guardian.errors import OperationFailed

CHUNK = 1 << 20


class Unreadable(OperationFailed):
    """One file could not be read or copied; ``reason`` says why, in a few words."""

    def __init__(self, rel: str, reason: str) -> None:
        super().__init__(f"{rel}: {reason}")
        self.reason = reason


def read_capped(fd: int, limit: int, expected: int = 0) -> bytes | None:
    """The rest of fd's content, or None once it is found to hold more than ``limit`` bytes.

    At most limit + 1 bytes are ever read, so memory stays bounded even while another
    process keeps appending to the file.  ``expected`` (the size a stat gave) sizes the
    first read, so a file that did not change is read in one piece and never copied.
    """
    chunks: list[bytes] = []
    total = 0
    want = min(expected + 1, limit + 1) if expected > 0 else CHUNK
    while total <= limit:
        chunk = os.read(fd, min(want, limit + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        want = CHUNK
    return None


def grew_reason(size_seen: int, limit: int) -> str:
    """Why a file that was small enough when looked at was not captured after all."""
    return (
        f"grew past watch.max_file_size ({limit}) while it was read "
        f"({size_seen} bytes when looked at); read again when it changes"
    )
