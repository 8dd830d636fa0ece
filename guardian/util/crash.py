"""Named crash points for the reliability suite.

Setting GUARDIAN_CRASH_AT=<name> makes guardian SIGKILL itself when it reaches
that point, the way Mercurial's and SQLite's test suites do, so tests can prove
that every state on disk is all-old or all-new.
"""

from __future__ import annotations

import os

ENV_CRASH_AT = "GUARDIAN_CRASH_AT"

POINTS = (
    "snapshot-after-blob",
    "snapshot-after-tree",
    "snapshot-after-commit",
    "snapshot-after-ref",
    "snapshot-after-event",
    "pack-staged-written",  # only reached by a snapshot of STAGED_LOOSE_LIMIT objects or more
    "restore-after-temp",
    "restore-after-rename",
    "rollback-mid",
)


# Read once, at import: a snapshot passes a crash point per new file, and each os.environ lookup
# encodes the name and decodes the value again.  Every crash test sets it in the environment of
# the guardian process it starts, before that process imports anything.
_CRASH_AT = os.environ.get(ENV_CRASH_AT)


def crash_point(name: str) -> None:
    if name == _CRASH_AT:
        import signal  # here: only the reliability suite crashes, and signal's enums cost ~1 ms to import

        os.kill(os.getpid(), signal.SIGKILL)
