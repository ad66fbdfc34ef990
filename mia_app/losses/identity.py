"""``id`` (baseline): 1 - cos(E_id(x̂), c_y), per sample, in [0, 2]."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mia_app.losses.base import AttackContext, LossTerm


class IdentityCosineLoss(LossTerm):
    name = "id"

    def forward(self, ctx: AttackContext) -> torch.Tensor:
        # Both sides L2-normalised before the cosine, whatever the encoder returned.
        e_hat = F.normalize(ctx.id_embedding(), dim=1)
        return 1.0 - (e_hat * F.normalize(ctx.c, dim=1)).sum(1)
