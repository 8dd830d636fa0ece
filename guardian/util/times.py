"""Times typed by users, and how we print them.

Accepted by every time option (``--since``, ``--until``, ``--before``), all in local time
unless a zone is given:

* ``2026-11-21``, ``2026-11-21T14:30``, ``2026-11-21 14:30:05``, with or without a zone
  (``Z``, ``+01:00``, and the ``2026-11-21 14:30:05 -05:00`` that text output prints);
* ``16:38`` or ``16:38:05``: that time today; ``today`` and ``yesterday``: the start of that
  day; ``yesterday 16:38``; ``now``;
* ``2h``, ``90m``, ``1h30m``, ``3d``, ``1w``, ``2 hours ago``, ``1 day ago``: that long ago;
* ``@1700000000``: seconds since the epoch.

These few forms are read by hand, on purpose: a general natural-language parser (dateparser)
costs tens of milliseconds of imports and several dependencies on every command, and would
accept guesses ("next friday", other languages' words) that a restore should not act on.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any

from guardian.errors import UsageError

TIME_FORMS = (
    "2026-11-21, 2026-11-21T14:30, 16:38 (today), today, yesterday, "
    "2h, 1h30m or 2 hours ago (that long ago), @1700000000"
)

# Patterns, not compiled ones: re compiles each on first use and keeps it, so the commands
# that only print times (history, log) never pay for compiling them (~1 ms each).
_CLOCK = r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$"
_AGO = r"(?i)^(\d+(?:\.\d+)?)\s*(seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d|weeks?|w)\s+ago$"
_AGO_UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hr": 3600, "hour": 3600}
_AGO_UNITS |= {"d": 86400, "day": 86400, "w": 604800, "week": 604800}
# '2026-11-22 10:02:11 -05:00' (format_time's output): fromisoformat wants no space before the zone.
_SPACED_ZONE = r"^(.*\d)\s+([+-]\d\d:?\d\d|Z)$"


def parse_time(text: str, option: str = "--before") -> float:
    """Seconds since the epoch for a time typed by a user; a UsageError naming option and the forms otherwise."""
    raw = " ".join(text.strip().split())
    try:
        found = _parse(raw, time.time())
    except (ValueError, OverflowError, OSError):
        found = None
    if found is None:
        raise UsageError(f"{option}: cannot read time '{text}'; use {TIME_FORMS}")
    return found


def _parse(raw: str, now: float) -> float | None:
    lower = raw.lower()
    if raw.startswith("@"):
        return float(raw[1:])
    if lower == "now":
        return now
    # The fast path: a duration ago ('2h', '1h30m'), the commonest form.
    seconds = _duration_or_none(raw)
    if seconds is not None:
        return now - seconds
    ago = re.match(_AGO, raw)
    if ago:
        unit = ago.group(2).lower()
        unit = unit[:-1] if unit.endswith("s") and len(unit) > 1 else unit
        return now - float(ago.group(1)) * _AGO_UNITS[unit]
    day, _, clock = lower.partition(" ")
    if day in ("today", "yesterday"):
        base = dt.datetime.fromtimestamp(now).astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
        if day == "yesterday":
            base = (base - dt.timedelta(days=1)).replace(hour=0)  # across a DST change, still midnight
            base = base.replace(tzinfo=None).astimezone()
        return _at_clock(base, clock) if clock else base.timestamp()
    if re.match(_CLOCK, raw):
        today = dt.datetime.fromtimestamp(now).astimezone()
        return _at_clock(today, raw)
    return _iso(raw)


def _at_clock(day: dt.datetime, clock: str) -> float:
    match = re.match(_CLOCK, clock)
    if not match:
        raise ValueError(clock)
    hour, minute, second = int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)
    # Naive, then astimezone(): the offset is the one in force at that time of that day.
    naive = day.replace(tzinfo=None, hour=hour, minute=minute, second=second, microsecond=0)
    return naive.astimezone().timestamp()


def _iso(raw: str) -> float | None:
    spaced = re.match(_SPACED_ZONE, raw)
    if spaced and ("-" in spaced.group(1)[:10]):
        raw = spaced.group(1) + spaced.group(2)
    try:
        parsed = dt.datetime.fromisoformat(raw)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.astimezone()  # a naive time means local time, as people type it
    return parsed.timestamp()


def _duration_or_none(text: str) -> float | None:
    try:
        return parse_duration(text)
    except ValueError:
        return None


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
    """'300s', '5m', '48h', '14d', '1h30m' -> seconds (a bare number is seconds)."""
    if isinstance(text, (int, float)):
        return float(text)
    raw = text.strip()
    match = re.match(_DURATION, raw)
    if match:
        return float(match.group(1)) * _DURATION_UNITS[(match.group(2) or "").lower()]
    # Compound: every part names its unit ('1h30m', '2d 12h'), so '1h30' stays an error.
    if raw and re.fullmatch(_COMPOUND, raw):
        return sum(float(n) * _DURATION_UNITS[u.lower()] for n, u in re.findall(_PART, raw))
    raise ValueError(f"not a duration: {text!r} (use e.g. 300s, 5m, 48h, 14d, 1h30m)")


_DURATION = r"(?i)^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d|w)?\s*$"
_PART = r"(?i)(\d+(?:\.\d+)?)\s*(ms|min|s|m|h|d|w)"
_COMPOUND = r"(?i)(?:\s*\d+(?:\.\d+)?\s*(?:ms|min|s|m|h|d|w)\s*)+"
_DURATION_UNITS = {"ms": 0.001, "s": 1, "": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
