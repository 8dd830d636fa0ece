"""Lower inotify's limits for one watcher only: a private user namespace (``unshare -U -r``).

The daemon tests and the reliability campaign (case 13) make a real ``guardian watch`` run out of
inotify watches or instances.  Lowering the limits inside a user namespace of its own binds that
process alone, never the machine or the other tests; where unprivileged namespaces are not
allowed, the tests that need them are skipped (``needs_private_limits``).
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

import pytest


@functools.cache
def can_lower_limits() -> bool:
    """Can this machine run a command with inotify limits of its own?  Probed once per test process."""
    if shutil.which("unshare") is None or not Path("/proc/sys/user/max_inotify_watches").exists():
        return False
    try:
        probe = subprocess.run(
            ["unshare", "-U", "-r", "sh", "-c", "echo 5 > /proc/sys/user/max_inotify_watches"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0


needs_private_limits = pytest.mark.skipif(
    not can_lower_limits(),
    reason="needs unprivileged user namespaces (unshare -U -r) to lower inotify limits for the watcher only",
)


def with_limits(*, watches: int | None = None, instances: int | None = None) -> list[str]:
    """The command prefix that runs a command with these inotify limits (None: left as they are)."""
    settings = [
        f"echo {value} > /proc/sys/user/max_inotify_{name}"
        for name, value in (("watches", watches), ("instances", instances))
        if value is not None
    ]
    return ["unshare", "-U", "-r", "sh", "-c", " && ".join([*settings, 'exec "$@"']), "sh"]
