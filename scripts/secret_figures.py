"""The figures docs/secrets.md reports: secrets found and false alarms on the fixture set, and the scan's cost.

    python scripts/secret_figures.py [TREE]

* The fixture set (tests/capture/secret_corpus.py): how many of its files holding a secret are
  found, and how many harmless look-alikes are flagged, by guardian and by detect-secrets' own
  ``scan_file`` with its default settings (every plugin, every default filter).
* Ordinary files: every text file git tracks in TREE (default: this repository), as a sample
  of code with no real secret in it; the files flagged are listed.
* Cost: CPU time per scanned file (median, 95th percentile, mean) and per KiB over those
  files, and the one-time cost of loading the library.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from guardian.capture.secrets import find_secrets  # noqa: E402
from tests.capture.secret_corpus import LOOKALIKES, SECRETS  # noqa: E402


def library_defaults(files: dict[str, str]) -> set[str]:
    """Files detect-secrets' own scan_file flags with default_settings(), scanned from disk."""
    from detect_secrets.core import scan as ds_scan
    from detect_secrets.settings import default_settings

    flagged: set[str] = set()
    with tempfile.TemporaryDirectory() as tmp, default_settings():
        old = Path.cwd()
        os.chdir(tmp)
        try:
            for path, content in files.items():
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                Path(path).write_text(content, encoding="utf-8")
                if any(True for _ in ds_scan.scan_file(path)):
                    flagged.add(path)
        finally:
            os.chdir(old)
    return flagged


def main() -> int:
    tree = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT
    started = time.process_time()
    find_secrets("warm.py", b"x = 1\n")
    load = time.process_time() - started
    secrets = {path: content for path, (content, _needle) in SECRETS.items()}
    ours_secrets = {p for p, c in secrets.items() if find_secrets(p, c.encode())}
    ours_alarms = {p for p, c in LOOKALIKES.items() if find_secrets(p, c.encode())}
    theirs = library_defaults({**secrets, **LOOKALIKES})
    print(f"fixture set: {len(SECRETS)} files holding a secret, {len(LOOKALIKES)} harmless look-alikes")
    print(f"  guardian:               found {len(ours_secrets)}/{len(SECRETS)}, false alarms {len(ours_alarms)}")
    print(f"    missed: {sorted(set(SECRETS) - ours_secrets)}; false alarms: {sorted(ours_alarms)}")
    found = len(theirs & set(SECRETS))
    alarms = len(theirs & set(LOOKALIKES))
    print(f"  detect-secrets default: found {found}/{len(SECRETS)}, false alarms {alarms}")
    listed = subprocess.run(["git", "ls-files"], cwd=tree, capture_output=True, text=True, check=True).stdout
    # The same settings as guardian again (default_settings() above replaced them for its duration).
    from guardian.capture.secrets import _Detector

    _Detector._made = None
    find_secrets("warm.py", b"x = 1\n")
    costs: list[float] = []
    size = 0
    flagged: list[str] = []
    for rel in listed.splitlines():
        if rel.endswith("secret_corpus.py"):
            continue
        try:
            data = (tree / rel).read_bytes()
        except OSError:
            continue
        began = time.process_time()
        found_here = find_secrets(rel, data)
        costs.append(time.process_time() - began)
        size += len(data)
        if found_here:
            flagged.append(f"{rel} ({', '.join(sorted({f.kind for f in found_here}))})")
    costs.sort()
    print(f"ordinary files: {len(costs)} tracked files in {tree}, {size // 1024} KiB; flagged {len(flagged)}:")
    for line in flagged:
        print(f"  {line}")
    p95 = costs[int(0.95 * (len(costs) - 1))]
    print(
        f"cost (CPU): median {statistics.median(costs) * 1000:.2f} ms, p95 {p95 * 1000:.2f} ms, "
        f"mean {statistics.fmean(costs) * 1000:.2f} ms per file; {sum(costs) * 1000 / (size / 1024):.3f} ms per KiB; "
        f"loading detect-secrets {load * 1000:.0f} ms once per process"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
