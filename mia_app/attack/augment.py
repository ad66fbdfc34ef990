"""PPA's random image transformations, written in torch (torchvision must never be installed here).

``RandomTransforms`` maps a batch N×3×R×R in [-1, 1] to the same shape, each image with its own random
resized crop (area fraction in ``scale``, aspect ratio in ``ratio``, resized back to R×R), horizontal flip
(probability ``flip``) and colour jitter (brightness / contrast / saturation factors in [1 − a, 1 + a]).
The crop is an affine ``grid_sample``, so gradients flow to the input: PPA optimises through these
transforms, and scores candidates by T's mean confidence over many draws of them (final selection).

Randomness comes only from the ``torch.Generator`` passed to ``forward``: the same generator state gives
the same transforms, so peers are reproducible from their seed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

#: PPA's final selection (``final_selection.py``): RandomResizedCrop(scale (0.5, 0.9), ratio (0.8, 1.2)) + flip.
FINAL_SELECTION = {"scale": (0.5, 0.9), "ratio": (0.8, 1.2), "flip": 0.5}
#: PPA's default optimisation transforms (``default_attacking.yaml``): RandomResizedCrop(scale (0.9, 1), ratio 1).
#: We add its candidate search's flip and a small colour jitter, as the PPA issue of this project asks.
OPTIMISATION = {"scale": (0.9, 1.0), "ratio": (1.0, 1.0), "flip": 0.5, "brightness": 0.1, "contrast": 0.1,
                "saturation": 0.1}


def _check_range(name: str, lo: float, hi: float, min_lo: float, max_hi: float) -> None:
    if not (math.isfinite(lo) and math.isfinite(hi) and min_lo < lo <= hi <= max_hi):
        raise ValueError(f"{name} must satisfy {min_lo} < lo <= hi <= {max_hi}, got ({lo}, {hi})")


class RandomTransforms(nn.Module):
    """Per-image random resized crop, horizontal flip and colour jitter; differentiable in the input.

    Args:
        scale: (lo, hi) fraction of the image area the crop keeps, 0 < lo <= hi <= 1.
        ratio: (lo, hi) aspect ratio (width / height) of the crop, > 0.
        flip: probability of a horizontal flip, in [0, 1].
        brightness / contrast / saturation: jitter amplitude a in [0, 1): factor uniform in [1 − a, 1 + a].
    """

    def __init__(self, scale: tuple[float, float] = (1.0, 1.0), ratio: tuple[float, float] = (1.0, 1.0),
                 flip: float = 0.0, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0):
        super().__init__()
        _check_range("scale", *scale, 0.0, 1.0)
        _check_range("ratio", *ratio, 0.0, 10.0)
        if not 0.0 <= flip <= 1.0:
            raise ValueError(f"flip must be a probability in [0, 1], got {flip}")
        for name, a in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation)):
            if not (math.isfinite(a) and 0.0 <= a < 1.0):
                raise ValueError(f"{name} must be in [0, 1), got {a}")
        self.scale, self.ratio, self.flip = tuple(scale), tuple(ratio), flip
        self.brightness, self.contrast, self.saturation = brightness, contrast, saturation

    def _uniform(self, n: int, lo: float, hi: float, g: torch.Generator | None) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=g)

    def _crop_grid(self, n: int, size: tuple[int, int], g: torch.Generator | None) -> torch.Tensor:
        area = self._uniform(n, *self.scale, g)
        log_r = self._uniform(n, math.log(self.ratio[0]), math.log(self.ratio[1]), g)
        r = log_r.exp()
        # Side lengths as fractions of the image; clamp so the crop stays inside (torchvision retries instead).
        w = (area * r).sqrt().clamp(max=1.0)
        h = (area / r).sqrt().clamp(max=1.0)
        cx = (1 - w) * (2 * torch.rand(n, generator=g) - 1)  # crop centre in normalised coordinates [-1, 1]
        cy = (1 - h) * (2 * torch.rand(n, generator=g) - 1)
        sign = torch.where(torch.rand(n, generator=g) < self.flip, -1.0, 1.0)
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0], theta[:, 0, 2] = w * sign, cx
        theta[:, 1, 1], theta[:, 1, 2] = h, cy
        return F.affine_grid(theta, [n, 3, *size], align_corners=False)

    def _jitter(self, x01: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        n = len(x01)
        if self.brightness > 0:
            x01 = x01 * self._uniform(n, 1 - self.brightness, 1 + self.brightness, g).view(n, 1, 1, 1).to(x01)
        if self.contrast > 0:
            mean = x01.mean((1, 2, 3), keepdim=True)
            f = self._uniform(n, 1 - self.contrast, 1 + self.contrast, g).view(n, 1, 1, 1).to(x01)
            x01 = mean + f * (x01 - mean)
        if self.saturation > 0:
            gray = (0.299 * x01[:, :1] + 0.587 * x01[:, 1:2] + 0.114 * x01[:, 2:])  # ITU-R 601 luma
            f = self._uniform(n, 1 - self.saturation, 1 + self.saturation, g).view(n, 1, 1, 1).to(x01)
            x01 = gray + f * (x01 - gray)
        return x01.clamp(0, 1)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x: N×3×R×R in [-1, 1] -> N×3×R×R in [-1, 1]."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"x must be N×3×H×W, got {tuple(x.shape)}")
        grid = self._crop_grid(len(x), tuple(x.shape[-2:]), generator).to(x)
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        if self.brightness or self.contrast or self.saturation:
            out = self._jitter((out + 1) / 2, generator) * 2 - 1
        return out


@torch.no_grad()
def confidence_under_transforms(target: nn.Module, x: torch.Tensor, y: torch.Tensor, transforms: RandomTransforms,
                                iterations: int, generator: torch.Generator, batch: int = 512) -> torch.Tensor:
    """PPA's final-selection score: p_T(y | τ(x)) averaged over ``iterations`` random draws τ; N values in [0, 1].

    x: N×3×R×R in [-1, 1] on T's device, y: N classes.
    """
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    score = torch.zeros(len(x), device=x.device)
    for _ in range(iterations):
        for i in range(0, len(x), batch):
            xb = transforms(x[i : i + batch], generator)
            p = F.softmax(target(xb), 1)
            score[i : i + batch] += p.gather(1, y[i : i + batch, None]).squeeze(1)
    return score / iterations
