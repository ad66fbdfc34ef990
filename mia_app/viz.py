"""Image grids (PNG) from tensors in [-1, 1]."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def grid_array(x: torch.Tensor, nrow: int | None = None, pad: int = 1) -> np.ndarray:
    """N×3×H×W in [-1, 1] -> H'×W'×3 uint8."""
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected N×3×H×W, got {tuple(x.shape)}")
    n, _, h, w = x.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    ncol = math.ceil(n / nrow)
    canvas = np.full((ncol * (h + pad) + pad, nrow * (w + pad) + pad, 3), 255, dtype=np.uint8)
    imgs = x.detach().float().cpu().add(1).mul(127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
    for i, img in enumerate(imgs):
        r, c = divmod(i, nrow)
        canvas[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = img
    return canvas


def save_grid(x: torch.Tensor, path: str | Path, nrow: int | None = None, scale: int = 1) -> Path:
    img = Image.fromarray(grid_array(x, nrow))
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return Path(path)
