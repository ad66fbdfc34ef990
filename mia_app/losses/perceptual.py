"""``perc``: feature distance between x̂ and its source x_src on MobileNetV2 taps.

Keeps the pose, expression and lighting of the source. Per tap: mean squared difference of
channel-normalised features (the LPIPS recipe without learned linear heads), summed over taps with
``tap_weights``.
"""

from __future__ import annotations

import torch

from mia_app.losses.base import AttackContext, LossTerm


def _unit(f: torch.Tensor) -> torch.Tensor:
    return f / (f.norm(dim=1, keepdim=True) + 1e-8)


class PerceptualLoss(LossTerm):
    name = "perc"

    def __init__(self, tap_weights: dict[str, float] | None = None):
        super().__init__()
        self.tap_weights = tap_weights or {"early": 1 / 3, "mid": 1 / 3, "deep": 1 / 3}
        if any(w < 0 for w in self.tap_weights.values()):
            raise ValueError("tap weights must be >= 0")

    def forward(self, ctx: AttackContext) -> torch.Tensor:
        backbone = ctx.models["perceptual"]
        f_hat = ctx.cached("perc_taps_hat", lambda: backbone.taps(ctx.x_hat))
        f_src = ctx.cached("perc_taps_src", lambda: {k: v.detach() for k, v in backbone.taps(ctx.x_src).items()})
        total = torch.zeros(len(ctx.x_hat), device=ctx.x_hat.device)
        for tap, w in self.tap_weights.items():
            if tap not in f_hat:
                raise ValueError(f"unknown tap {tap!r}; backbone has {sorted(f_hat)}")
            total = total + w * (_unit(f_hat[tap]) - _unit(f_src[tap])).square().sum(1).mean((1, 2))
        return total
