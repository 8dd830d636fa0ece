"""Times typed by users: ISO dates, '2h' (ago), '@epoch'; and how we print them."""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any

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
    """Local time with its UTC offset, as text output shows it: '2026-11-22 10:02:11 -05:00'.

    The offset is numeric because zone abbreviations are ambiguous (IST, CST), and parse_time
    reads this form back, so a time copied from 'guardian log' works in --before.
    """
    local = dt.datetime.fromtimestamp(ts).astimezone()
    return local.strftime("%Y-%m-%d %H:%M:%S ") + _offset(local)


def format_iso_text(text: str) -> str:
    """An ISO 8601 time from the event log ('2026-11-22T15:02:11.123+00:00') as format_time shows it."""
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        return text
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)  # the event log writes UTC
    return format_time(when.timestamp())


def iso_time(ts: float) -> str:
    """ISO 8601 local time with its offset, for JSON: '2026-11-22T10:02:11-05:00'."""
    return dt.datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")


def _offset(local: dt.datetime) -> str:
    offset = local.strftime("%z")  # '-0500'
    return f"{offset[:3]}:{offset[3:]}" if len(offset) == 5 else offset or "+00:00"


# JSON keys that hold seconds since the epoch, wherever they appear in a command's output.
EPOCH_KEYS = frozenset(
    {"time", "ts", "target_time", "last_valid_time", "created", "expires", "last_snapshot", "last_heartbeat"}
)


def with_iso_times(data: Any, replace: frozenset[str] = frozenset()) -> Any:
    """A copy of JSON data where each epoch time under EPOCH_KEYS gains an ISO sibling ('time_iso').

    Keys in ``replace`` are turned into ISO text in place instead, where no script is known
    to read the number.
    """
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            if key in EPOCH_KEYS and isinstance(value, int | float) and not isinstance(value, bool):
                if key in replace:
                    out[key] = iso_time(float(value))
                    continue
                out[key] = value
                out[f"{key}_iso"] = iso_time(float(value))
            else:
                out[key] = with_iso_times(value, replace)
        return out
    if isinstance(data, list):
        return [with_iso_times(item, replace) for item in data]
    return data


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
