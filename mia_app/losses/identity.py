"""``id`` (baseline): 1 - cos(E_id(x̂), c_y), per sample, in [0, 2]."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mia_app.losses.base import AttackContext, LossTerm
from mia_app.losses.checks import check_embeddings


class IdentityCosineLoss(LossTerm):
    """Reads ``ctx.id_embedding()`` (N×D) and ``ctx.c`` (N×D codes, any norm). Returns N values in [0, 2].

    Raises (in ``forward``):
        ValueError: either side not a finite N×D tensor (N = len(x̂)), or their dimensions differ.
    """

    name = "id"

    def forward(self, ctx: AttackContext) -> torch.Tensor:
        n = len(ctx.x_hat)
        e_hat = ctx.id_embedding()
        check_embeddings("E_id(x_hat)", e_hat, n=n)
        check_embeddings("c", ctx.c, e_hat.shape[1], n)
        # Both sides L2-normalised before the cosine, whatever the encoder returned.
        return 1.0 - (F.normalize(e_hat, dim=1) * F.normalize(ctx.c, dim=1)).sum(1)
