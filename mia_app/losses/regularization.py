"""``reg``: stage 2's LoRA weight penalty, mean squared LoRA weight (keeps the adapter a small change)."""

from __future__ import annotations

import torch

from mia_app.losses.base import AttackContext, LossTerm


class LoraWeightPenalty(LossTerm):
    name = "reg"

    def forward(self, ctx: AttackContext) -> torch.Tensor:
        params = ctx.extras.get("lora_params")
        if not params:
            raise ValueError("reg needs ctx.extras['lora_params'] (stage 2 only)")
        value = sum(p.square().sum() for p in params) / sum(p.numel() for p in params)
        return value.expand(len(ctx.x_hat))
