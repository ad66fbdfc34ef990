"""``perc``: feature distance between x̂ and its source x_src on MobileNetV2 taps.

Keeps the pose, expression and lighting of the source. Per tap: mean squared difference of
channel-normalised features (the LPIPS recipe without learned linear heads), summed over taps with
``tap_weights``.
"""

from __future__ import annotations

import math

import torch

from mia_app.losses.base import AttackContext, LossTerm
from mia_app.losses.checks import check_image_pair


def _unit(f: torch.Tensor) -> torch.Tensor:
    return f / (f.norm(dim=1, keepdim=True) + 1e-8)


class PerceptualLoss(LossTerm):
    """Σ_tap w_tap · mean_hw ‖unit(F_tap(x̂)) - unit(F_tap(x_src))‖² per sample, in [0, 4 Σ w].

    x̂ and x_src: N×3×R×R in [-1, 1], the same shape (the features are averaged over space, so a resolution
    mismatch would otherwise still give a number). ``ctx.models["perceptual"].taps(x)`` -> {tap: N×C×h×w}.

    Args:
        tap_weights: {tap: weight >= 0}; default 1/3 each on early, mid and deep.

    Raises (in ``forward``):
        ValueError: x̂ / x_src not N×3×H×W, of different shapes, or not finite; a tap the backbone lacks.
    """

    name = "perc"

    def __init__(self, tap_weights: dict[str, float] | None = None):
        super().__init__()
        self.tap_weights = tap_weights or {"early": 1 / 3, "mid": 1 / 3, "deep": 1 / 3}
        if any(not math.isfinite(w) or w < 0 for w in self.tap_weights.values()):
            raise ValueError(f"tap weights must be finite and >= 0, got {self.tap_weights}")

    def forward(self, ctx: AttackContext) -> torch.Tensor:
        check_image_pair(ctx.x_hat, ctx.x_src)
        backbone = ctx.models["perceptual"]
        f_hat = ctx.cached("perc_taps_hat", lambda: backbone.taps(ctx.x_hat))
        f_src = ctx.source_features("perc_taps_src", lambda: backbone.taps(ctx.x_src))
        total = torch.zeros(len(ctx.x_hat), device=ctx.x_hat.device)
        for tap, w in self.tap_weights.items():
            if tap not in f_hat:
                raise ValueError(f"unknown tap {tap!r}; backbone has {sorted(f_hat)}")
            total = total + w * (_unit(f_hat[tap]) - _unit(f_src[tap])).square().sum(1).mean((1, 2))
        return total
