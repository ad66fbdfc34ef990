from pathlib import Path

import numpy as np
from PIL import Image

from mia_app.dashboard.media import SERVED, gallery_items, purge_served, served_folders


def test_lab_mode_passes_paths_and_serves_the_folders(tmp_path):
    items = [(str(tmp_path / "a.png"), "a")]
    assert gallery_items(items, inline=False) == items
    assert served_folders(False, tmp_path / "runs", tmp_path / "results") == [
        str((tmp_path / "runs").resolve()), str((tmp_path / "results").resolve())]


def test_hosted_mode_inlines_pixels_and_serves_no_folder(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "class0000_rank0.png")
    [(image, caption)] = gallery_items([(str(tmp_path / "class0000_rank0.png"), "class 0 · rank 0")], inline=True,
                                       run_dir=tmp_path)
    from gradio.utils import get_upload_folder

    copy = Path(image)
    assert caption == "class 0 · rank 0" and copy.is_relative_to(Path(get_upload_folder()).resolve())
    assert not copy.is_relative_to(tmp_path)  # Gradio's cache, under a content hash: no run folder is served
    np.testing.assert_array_equal(np.asarray(Image.open(copy)), pixels)  # lossless: the same pixels
    assert served_folders(True, tmp_path / "runs", tmp_path / "results") == []
    # the copy is listed with its run, once however often it is shown, and goes when the job is deleted
    gallery_items([(str(tmp_path / "class0000_rank0.png"), "again")], inline=True, run_dir=tmp_path)
    assert (tmp_path / SERVED).read_text().splitlines() == [str(copy)]
    assert purge_served(tmp_path) == 1 and not copy.exists() and not copy.parent.exists()


def test_purge_touches_only_gradios_cache(tmp_path):
    outside = tmp_path / "precious.png"
    outside.write_bytes(b"x")
    (tmp_path / SERVED).write_text(f"{outside}\n/etc/passwd\n")
    assert purge_served(tmp_path) == 0 and outside.exists()
