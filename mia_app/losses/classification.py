"""``cls``: make the target classifier T predict y for x̂."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mia_app.losses.base import AttackContext, LossTerm
from mia_app.losses.checks import check_labels, check_logits


def _logits_and_labels(ctx: AttackContext, min_classes: int = 1) -> torch.Tensor:
    """T(x̂) as N×K finite logits, after checking y: N integer classes in [0, K)."""
    n = len(ctx.x_hat)
    logits = ctx.target_logits()
    check_logits("T(x_hat)", logits, n)
    if logits.shape[1] < min_classes:
        raise ValueError(f"T(x_hat) needs at least {min_classes} classes, got {logits.shape[1]}")
    check_labels("y", ctx.y, n, logits.shape[1])
    return logits


class CrossEntropyClsLoss(LossTerm):
    """CE(T(x̂), y) per sample; >= 0.

    Reads ``ctx.target_logits()`` (N×K) and ``ctx.y`` (N classes in [0, K)). Returns N values.

    Raises (in ``forward``):
        ValueError: logits not N×K or not finite, y not N integers in [0, K).
    """

    name = "cls"

    def forward(self, ctx: AttackContext) -> torch.Tensor:
        return F.cross_entropy(_logits_and_labels(ctx), ctx.y, reduction="none")


class MaxMarginClsLoss(LossTerm):
    """PLG-MI's max-margin loss: -l_y + max_{j != y} l_j per sample.

    Unbounded below, so ``non_negative`` is False; ``hinge_margin`` kappa gives a non-negative hinge variant,
    max(0, kappa - l_y + max_j l_j), usable under uncertainty weighting.

    Reads ``ctx.target_logits()`` (N×K, K >= 2: a margin needs another class) and ``ctx.y`` (N classes in
    [0, K)). Returns N values.

    Raises:
        ValueError: ``hinge_margin`` < 0; in ``forward``, the same input errors as ``CrossEntropyClsLoss``, or K < 2.
    """

    name = "cls"

    def __init__(self, hinge_margin: float | None = None):
        super().__init__()
        if hinge_margin is not None and hinge_margin < 0:
            raise ValueError("hinge_margin must be >= 0")
        self.hinge_margin = hinge_margin
        self.non_negative = hinge_margin is not None

    def forward(self, ctx: AttackContext) -> torch.Tensor:
        logits = _logits_and_labels(ctx, min_classes=2)
        l_y = logits.gather(1, ctx.y[:, None]).squeeze(1)
        others = logits.scatter(1, ctx.y[:, None], float("-inf"))
        margin = -l_y + others.max(1).values
        if self.hinge_margin is None:
            return margin
        return F.relu(margin + self.hinge_margin)
