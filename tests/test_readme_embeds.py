"""README's result tables are the committed result files: every embedded block matches its file."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("embed_results", ROOT / "scripts" / "embed_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_blocks_match_their_result_files():
    module = _load()
    readme = (ROOT / "README.md").read_text()
    assert module.BLOCK.search(readme), "README has no embedded result blocks"
    assert module.stale(readme, ROOT) == [], "run python scripts/embed_results.py"


def test_embed_replaces_only_the_block_body_and_check_sees_a_stale_one(tmp_path):
    module = _load()
    (tmp_path / "r.md").write_text("| a | 1 |\n")
    readme = "intro\n<!-- embed: r.md -->\nold\n<!-- /embed -->\noutro\n"
    assert module.stale(readme, tmp_path) == ["r.md"]
    new = module.embed(readme, tmp_path)
    assert new == "intro\n<!-- embed: r.md -->\n| a | 1 |\n<!-- /embed -->\noutro\n"
    assert module.stale(new, tmp_path) == []
    with pytest.raises(ValueError, match="missing.md, which does not exist"):
        module.embed("<!-- embed: missing.md -->\n<!-- /embed -->", tmp_path)
