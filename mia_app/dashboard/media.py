"""Gallery items from files on disk, exposed or not.

Gradio serves a returned file path only from ``allowed_paths``, and then *any* logged-in user can fetch any file
under those folders by URL. On a hosted server the run folders belong to different users, so images are read
into memory instead: Gradio writes its own copy under an unguessable content hash, and no run folder needs to be
served at all.
"""

from __future__ import annotations

from PIL import Image


def gallery_items(items: list[tuple[str, str]], inline: bool) -> list[tuple]:
    """``(path, caption)`` pairs as gallery values: the paths themselves, or (``inline``) PIL copies."""
    if not inline:
        return items
    out = []
    for path, caption in items:
        with Image.open(path) as im:
            out.append((im.convert("RGB"), caption))
    return out


def served_folders(hosted: bool, *folders) -> list[str]:
    """``allowed_paths`` for ``launch``: the run and result folders in lab mode, nothing when hosted."""
    return [] if hosted else [str(f.resolve()) for f in folders]
