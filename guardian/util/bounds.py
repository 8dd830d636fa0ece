"""Bounds on the policy's numbers and durations, and why each is there; guardian.config applies them.

A check's timeout is capped because a snapshot holds the store lock while its checks run: a
check allowed to run for a day stops every capture and restore for a day.  An interval has a
floor because each round is real work: a rescan reads the whole tree, a push runs git and
connects to the mirror.  An interval of 0 still turns its periodic work off.

Each check takes the raw value, as the policy spells it (for the message), and its seconds;
``bounded`` makes a policy converter of one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MAX_CHECK_TIMEOUT = 60.0
MIN_CHECK_TIMEOUT = 0.1  # starting a process takes about this long: a shorter timeout fails every check
MIN_GUARDRAIL_INTERVAL = 1.0
MIN_MIRROR_INTERVAL = 60.0


class OutOfBounds(ValueError):
    """A setting outside its bounds; ``fix`` is what its error message ends with."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.fix = fix


def at_least_one(raw: Any) -> int:
    """A whole number >= 1 (retention.keep_last: at least the head is always kept)."""
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise ValueError(f"expected a whole number >= 1, got {raw!r}")
    return raw


def spelled(raw: Any) -> str:
    """A duration as the policy spells it: '100000s', '2h'; a bare number gets its 's'."""
    return raw.strip() if isinstance(raw, str) else f"{raw}s"


def check_timeout(raw: Any, seconds: float) -> float:
    if seconds > MAX_CHECK_TIMEOUT:
        raise OutOfBounds(
            f"{spelled(raw)} is more than the {MAX_CHECK_TIMEOUT:g}s a check may take",
            "a snapshot holds the store lock while checks run",
        )
    if seconds < MIN_CHECK_TIMEOUT:
        raise OutOfBounds(
            f"{spelled(raw)} is less than the {MIN_CHECK_TIMEOUT:g}s a check needs to start", "write e.g. 10s"
        )
    return seconds


def guardrail_interval(raw: Any, seconds: float) -> float:
    if 0 < seconds < MIN_GUARDRAIL_INTERVAL:
        raise OutOfBounds(
            f"{spelled(raw)} is less than the {MIN_GUARDRAIL_INTERVAL:g}s between rescans that guardian allows",
            "each rescan reads the whole tree: write e.g. 300s, or 0 to turn the rescans off",
        )
    return seconds


def mirror_interval(raw: Any, seconds: float) -> float:
    if 0 < seconds < MIN_MIRROR_INTERVAL:
        raise OutOfBounds(
            f"{spelled(raw)} is less than the {MIN_MIRROR_INTERVAL:g}s between pushes that guardian allows",
            "each push runs git and connects to the mirror: write e.g. 15m, or 0 to turn it off",
        )
    return seconds


def bounded(check: Callable[[Any, float], float], seconds: Callable[[Any], float]) -> Callable[[Any], float]:
    """A converter: the raw value read as seconds (``seconds``), then held to ``check``'s bounds."""
    return lambda raw: check(raw, seconds(raw))
