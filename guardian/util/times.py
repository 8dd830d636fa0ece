"""Times typed by users: ISO dates, '2h' (ago), '@epoch'; and how we print them."""

from __future__ import annotations

import datetime as dt
import re
import time

from guardian.errors import UsageError


def parse_time(text: str, option: str = "--before") -> float:
    """'2026-11-21T10:00', '2026-11-21 10:00:05', '2026-11-21', '90m' or '2h' (ago), '@1700000000'."""
    raw = text.strip()
    if raw.startswith("@"):
        try:
            return float(raw[1:])
        except ValueError:
            pass
    else:
        try:
            return time.time() - parse_duration(raw)
        except ValueError:
            pass
        try:
            parsed = dt.datetime.fromisoformat(raw)
        except ValueError:
            parsed = None
        if parsed is not None:
            if parsed.tzinfo is None:
                parsed = parsed.astimezone()  # a naive time means local time, as people type it
            return parsed.timestamp()
    raise UsageError(
        f"{option}: cannot read time '{text}'; use e.g. 2026-11-21T14:30, 2026-11-21, 2h (two hours ago) or @1700000000"
    )


def format_time(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def format_age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{int(seconds)}s ago"
    if seconds < 5400:
        return f"{int(seconds // 60)}m ago"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.1f}h ago"
    return f"{seconds / 86400:.1f}d ago"


def format_size(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def parse_duration(text: str | int | float) -> float:
    """'300s', '5m', '48h', '14d' -> seconds."""
    if isinstance(text, (int, float)):
        return float(text)
    match = _DURATION_RE.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 300s, 5m, 48h, 14d)")
    return float(match.group(1)) * _DURATION_UNITS[(match.group(2) or "").lower()]


_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d|w)?\s*$", re.IGNORECASE)



_DURATION_UNITS = {"ms": 0.001, "s": 1, "": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
