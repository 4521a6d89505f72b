"""Count how gross meets bad input, damage and tampering (issue #22): every probe case, end to end.

Each case is a test marked ``probe`` (``pytest -m probe``): it builds its bad input in a
temporary folder -- a crafted pickle, an edited artefact, overwritten cache pixels, a symlinked
lock, a profile that is a path, a full disk, a failing notebook, ... -- and passes only when gross
answers with a clear error naming what was wrong and what to do, or behaves correctly. A case
that fails is a silent or unclear answer. Prints the count per outcome and exits non-zero when
any case fails::

    python scripts/probe_errors.py        # target: every case clear or correct
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    cmd = [sys.executable, "-m", "pytest", "-m", "probe", "-q", "-rA", "--no-header", "-p", "no:cacheprovider",
           str(ROOT / "tests")]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    cases = [line.split(" ", 1) for line in out.stdout.splitlines() if line.startswith(("PASSED ", "FAILED ", "ERROR "))]
    passed = [c for s, c in cases if s == "PASSED"]
    failed = [c for s, c in cases if s != "PASSED"]
    for case in failed:
        print(f"silent or unclear: {case}")
    print(f"{len(cases)} probe cases: {len(passed)} clear error or correct behaviour, {len(failed)} silent or unclear")
    if not cases:
        print(out.stdout[-3000:] + out.stderr[-3000:])
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
