from pathlib import Path

import numpy as np
from PIL import Image

from mia_app.dashboard.media import gallery_items, served_folders


def test_lab_mode_passes_paths_and_serves_the_folders(tmp_path):
    items = [(str(tmp_path / "a.png"), "a")]
    assert gallery_items(items, inline=False) == items
    assert served_folders(False, tmp_path / "runs", tmp_path / "results") == [
        str((tmp_path / "runs").resolve()), str((tmp_path / "results").resolve())]


def test_hosted_mode_inlines_pixels_and_serves_no_folder(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "class0000_rank0.png")
    [(image, caption)] = gallery_items([(str(tmp_path / "class0000_rank0.png"), "class 0 · rank 0")], inline=True)
    assert not isinstance(image, (str, Path)) and caption == "class 0 · rank 0"
    np.testing.assert_array_equal(np.asarray(image), pixels)  # lossless: the same pixels, not a path
    assert served_folders(True, tmp_path / "runs", tmp_path / "results") == []
