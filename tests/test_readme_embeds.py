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
    assert len(module.blocks(readme)) >= 4, "README lost its embedded result blocks"
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


def test_an_unclosed_or_mistyped_block_is_an_error_not_a_silent_skip(tmp_path):
    module = _load()
    (tmp_path / "a.md").write_text("A\n")
    (tmp_path / "b.md").write_text("B\n")
    unclosed = "<!-- embed: a.md -->\nold\n<!-- embed: b.md -->\nold\n<!-- /embed -->\n"
    with pytest.raises(ValueError, match="2 embed openers, 1 closers and 1 well-formed"):
        module.embed(unclosed, tmp_path)
    spaced = "<!--  embed:  a.md  -->\nold\n<!-- /embed -->\n"  # extra spaces still name a.md
    assert module.embed(spaced, tmp_path) == "<!--  embed:  a.md  -->\nA\n<!-- /embed -->\n"
    with pytest.raises(ValueError, match="1 embed openers, 0 closers"):
        module.stale("<!-- embed: a.md -->\nold\n<!-- /embed --\n", tmp_path)
