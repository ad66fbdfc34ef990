"""Gallery items from files on disk, exposed or not.

Gradio serves a returned file path only from ``allowed_paths``, and then *any* logged-in user can fetch any file
under those folders by URL. On a hosted server the run folders belong to different users, so images are copied
into Gradio's cache instead, under an unguessable content hash, and no run folder needs to be served at all.
Each copy is listed in its run folder's ``.served`` file, so deleting the job removes the copies too (a copy left
in the cache would stay fetchable by anyone who kept its URL).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

SERVED = ".served"


def gallery_items(items: list[tuple[str, str]], inline: bool, run_dir: str | Path | None = None) -> list[tuple]:
    """``(path, caption)`` pairs as gallery values: the paths themselves, or (``inline``) copies in Gradio's cache,
    recorded in ``run_dir``'s ``.served`` list when given."""
    if not inline:
        return items
    from gradio.processing_utils import save_pil_to_cache
    from gradio.utils import get_upload_folder

    out, copies = [], []
    for path, caption in items:
        with Image.open(path) as im:
            copy = save_pil_to_cache(im.convert("RGB"), get_upload_folder(), format="png")  # lossless
        copies.append(copy)
        out.append((copy, caption))
    if run_dir is not None and Path(run_dir).is_dir():
        listed = Path(run_dir) / SERVED
        known = set(listed.read_text().splitlines()) if listed.is_file() else set()
        with listed.open("a") as f:
            f.writelines(c + "\n" for c in dict.fromkeys(copies) if c not in known)
    return out


def purge_served(run_dir: str | Path) -> int:
    """Remove the cache copies listed in ``run_dir``'s ``.served`` (call before deleting the folder); returns how
    many were removed. Only files inside Gradio's cache are touched, whatever the list says."""
    from gradio.utils import get_upload_folder

    listed = Path(run_dir) / SERVED
    if not listed.is_file():
        return 0
    cache = Path(get_upload_folder()).resolve()
    removed = 0
    for line in dict.fromkeys(listed.read_text().splitlines()):
        copy = Path(line).resolve()
        if copy.is_file() and copy.is_relative_to(cache) and copy.parent != cache:
            copy.unlink()
            if not any(copy.parent.iterdir()):
                copy.parent.rmdir()  # the content-hash folder Gradio made for it
            removed += 1
    return removed


def served_folders(hosted: bool, *folders) -> list[str]:
    """``allowed_paths`` for ``launch``: the run and result folders in lab mode, nothing when hosted."""
    return [] if hosted else [str(f.resolve()) for f in folders]
