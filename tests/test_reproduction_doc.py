"""REPRODUCTION.md quotes the committed tables exactly (scripts/sync_reproduction.py)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quoted_tables_equal_the_results(load_script):
    sync = load_script("sync_reproduction")
    text = (ROOT / "REPRODUCTION.md").read_text()
    blocks = sync.BLOCK.findall(text)
    assert len(blocks) >= 5, "REPRODUCTION.md marks its quoted tables with <!-- results/<name>.md -->"
    _, changed = sync.sync(text)
    assert changed == [], f"out of date: {changed}; run python scripts/sync_reproduction.py"


def test_a_stale_block_is_found_and_replaced(tmp_path, load_script):
    sync = load_script("sync_reproduction")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "t.md").write_text("Profile `cpu`: reduced.\n\n| a |\n|---|\n| 2 |\n")
    text = "x\n<!-- results/t.md -->\n| a |\n|---|\n| 1 |\n<!-- end -->\ny\n"
    new, changed = sync.sync(text, tmp_path)
    assert changed == ["results/t.md"] and "| 2 |" in new and "| 1 |" not in new and "reduced" not in new
    assert sync.sync(new, tmp_path)[1] == []
