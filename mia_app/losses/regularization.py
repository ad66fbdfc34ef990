"""``reg``: stage 2's LoRA weight penalty, mean squared LoRA weight (keeps the adapter a small change)."""

from __future__ import annotations

import torch

from mia_app.losses.base import AttackContext, LossTerm
from mia_app.losses.checks import check_finite


class LoraWeightPenalty(LossTerm):
    """Σ_p Σ p² / Σ_p numel(p) over ``ctx.extras["lora_params"]``, >= 0, the same value for all N samples.

    Raises (in ``forward``):
        ValueError: no LoRA parameters (stage 1), a non-tensor or empty entry, or a NaN / inf weight.
    """

    name = "reg"

    def forward(self, ctx: AttackContext) -> torch.Tensor:
        params = ctx.extras.get("lora_params")
        if not params:
            raise ValueError("reg needs ctx.extras['lora_params'] (stage 2 only)")
        for i, p in enumerate(params):
            if not isinstance(p, torch.Tensor) or not p.is_floating_point() or p.numel() == 0:
                raise ValueError(f"lora_params[{i}] must be a non-empty float tensor, got {type(p).__name__}")
        value = sum(p.square().sum() for p in params) / sum(p.numel() for p in params)
        # One check on the sum, not one per tensor: a NaN or inf weight makes it non-finite, at one device sync.
        check_finite("lora_params", value.detach())
        return value.expand(len(ctx.x_hat))
