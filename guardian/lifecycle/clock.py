"""Snapshot times when the clock was wrong: how retention and ``--before`` read a snapshot's time.

A snapshot's time is the wall clock when it was taken, and a wall clock can jump: a VM resumed
with a stale clock, a dead RTC battery, a hand-set date.  The chain order of snapshots (their
catalog ``seq``) cannot lie, so times are read against it, as this rule:

* A snapshot's time is *trusted* when it is not later than now (plus CLOCK_SLACK) and not earlier
  than the newest trusted time before it in the chain.  A time from the future was taken with a
  clock running ahead, or today's clock is behind; a time earlier than an older snapshot's means
  one of the two clocks was wrong.  Either way the stamp says nothing reliable.
* A trusted snapshot's *effective time* is its own time.  Any other snapshot's effective time is
  that of the next trusted snapshot in the chain (it was taken before that one), or +infinity
  when none follows (it may have been taken at any time up to now).

Effective times never decrease along the chain, and never place a snapshot earlier than the
trusted snapshots around it allow.  Where the truth cannot be known, they err late: retention
then sees a snapshot as younger (kept longer) and ``--before`` picks an earlier snapshot, never
one that may have been taken after the time asked for.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# A stamp this far past now is not yet "from the future": two processes on one machine can read
# the clock a moment apart, and commit times are whole seconds.
CLOCK_SLACK = 120.0


def effective_times(times: Sequence[float], now: float) -> list[float]:
    """Each snapshot's effective time (module docstring), for times in chain order, oldest first."""
    trusted: list[bool] = []
    newest = -math.inf
    for ts in times:
        ok = newest <= ts <= now + CLOCK_SLACK
        trusted.append(ok)
        if ok:
            newest = ts
    effective = [math.inf] * len(times)
    following = math.inf
    for i in range(len(times) - 1, -1, -1):
        if trusted[i]:
            following = times[i]
        effective[i] = following
    return effective


def count_before(times: Sequence[float], before: float, now: float) -> int:
    """How many snapshots, from the oldest, were taken before ``before`` (by effective time)."""
    count = 0
    for effective in effective_times(times, now):
        if effective >= before:
            break  # effective times never decrease: the rest are no earlier
        count += 1
    return count
