"""Copy result files into README.md between markers, so the README's tables are the committed results.

A block in the README looks like::

    <!-- embed: results/ablation-schemes/acceptance.md -->
    ...replaced by the file's text...
    <!-- /embed -->

    python scripts/embed_results.py            # rewrite every block from its file
    python scripts/embed_results.py --check    # exit 1 naming each block that differs from its file
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# an opener, then a body that never crosses another opener (an unclosed block must not swallow the next one)
BLOCK = re.compile(r"(<!--\s*embed:\s*(?P<path>.+?)\s*-->[ \t]*\r?\n)(?P<body>(?:(?!<!--\s*embed:).)*?)"
                   r"(<!--\s*/embed\s*-->)", re.S)
OPENERS = re.compile(r"<!--\s*embed:")
CLOSERS = re.compile(r"<!--\s*/embed\s*-->")


def blocks(readme: str) -> list[re.Match]:
    """Every block; raises ``ValueError`` when an opener or closer has no partner (a typo would otherwise leave a
    block out of both the rewrite and the check without a word)."""
    found = list(BLOCK.finditer(readme))
    n_open, n_close = len(OPENERS.findall(readme)), len(CLOSERS.findall(readme))
    if not n_open == n_close == len(found):
        raise ValueError(f"README has {n_open} embed openers, {n_close} closers and {len(found)} well-formed "
                         "blocks: every '<!-- embed: PATH -->' needs its own '<!-- /embed -->'")
    return found


def _text(root: Path, rel: str) -> str:
    path = root / rel
    if not path.is_file():
        raise ValueError(f"README embeds {rel}, which does not exist")
    return path.read_text().strip() + "\n"


def embed(readme: str, root: Path) -> str:
    """``readme`` with every block's body replaced by its file's text."""
    blocks(readme)
    return BLOCK.sub(lambda m: m.group(1) + _text(root, m.group("path")) + m.group(4), readme)


def stale(readme: str, root: Path) -> list[str]:
    """The paths whose block in ``readme`` differs from the file."""
    return [m.group("path") for m in blocks(readme) if m.group("body") != _text(root, m.group("path"))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--check", action="store_true", help="only report blocks that differ from their files")
    args = parser.parse_args()
    text = args.readme.read_text()
    root = args.readme.resolve().parent
    if args.check:
        if differ := stale(text, root):
            sys.exit("README blocks differ from their files (run python scripts/embed_results.py): "
                     + ", ".join(differ))
        print(f"{len(blocks(text))} embedded blocks match their files")
        return
    args.readme.write_text(embed(text, root))
    print(f"embedded {len(blocks(text))} blocks into {args.readme}")


if __name__ == "__main__":
    main()
