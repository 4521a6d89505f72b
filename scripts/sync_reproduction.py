"""Copy the committed tables into REPRODUCTION.md, so its numbers are always those of ``results/``.

REPRODUCTION.md marks every table it quotes::

    <!-- results/table2_exhaustive_search.md -->
    ...(replaced by the file, without its first "Profile ..." line)...
    <!-- end -->

``python scripts/sync_reproduction.py`` rewrites those blocks from the files;
``--check`` only reports blocks that differ (exit 1), as ``tests/test_reproduction_doc.py`` does.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "REPRODUCTION.md"
BLOCK = re.compile(r"(<!-- (results/[\w./-]+\.md) -->\n)(.*?)(<!-- end -->)", re.S)


def quoted(path: Path) -> str:
    """The Markdown table file as REPRODUCTION.md quotes it: without the reductions line (listed once above)."""
    text = path.read_text()
    if text.startswith("Profile `"):
        text = text.split("\n\n", 1)[1] if "\n\n" in text else ""
    return text.strip() + "\n"


def sync(text: str, root: Path = ROOT) -> tuple[str, list[str]]:
    """``text`` with every marked block replaced; and the names of the blocks that changed."""
    changed = []

    def fill(m):
        new = quoted(root / m.group(2))
        if m.group(3) != new:
            changed.append(m.group(2))
        return m.group(1) + new + m.group(4)

    return BLOCK.sub(fill, text), changed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="report blocks that differ from results/, change nothing")
    args = ap.parse_args(argv)
    new, changed = sync(DOC.read_text())
    if args.check:
        for name in changed:
            print(f"REPRODUCTION.md quotes {name} out of date: run python scripts/sync_reproduction.py")
        return 1 if changed else 0
    DOC.write_text(new)
    print(f"updated {len(changed)} block(s): {changed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
