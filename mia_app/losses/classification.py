"""``cls``: make the target classifier T predict y for x̂."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mia_app.losses.base import AttackContext, LossTerm


class CrossEntropyClsLoss(LossTerm):
    """CE(T(x̂), y) per sample; >= 0."""

    name = "cls"

    def forward(self, ctx: AttackContext) -> torch.Tensor:
        return F.cross_entropy(ctx.target_logits(), ctx.y, reduction="none")


class MaxMarginClsLoss(LossTerm):
    """PLG-MI's max-margin loss: -l_y + max_{j != y} l_j per sample.

    Unbounded below, so ``non_negative`` is False; ``offset`` (e.g. a margin kappa) and ``clamp_min``
    give a non-negative hinge variant, max(0, kappa - l_y + max_j l_j), usable under uncertainty weighting.
    """

    name = "cls"

    def __init__(self, hinge_margin: float | None = None):
        super().__init__()
        if hinge_margin is not None and hinge_margin < 0:
            raise ValueError("hinge_margin must be >= 0")
        self.hinge_margin = hinge_margin
        self.non_negative = hinge_margin is not None

    def forward(self, ctx: AttackContext) -> torch.Tensor:
        logits = ctx.target_logits()
        l_y = logits.gather(1, ctx.y[:, None]).squeeze(1)
        others = logits.scatter(1, ctx.y[:, None], float("-inf"))
        margin = -l_y + others.max(1).values
        if self.hinge_margin is None:
            return margin
        return F.relu(margin + self.hinge_margin)
