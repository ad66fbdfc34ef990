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


def max_margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PLG-MI's margin −l_y + max_{j≠y} l_j per sample; logits N×K (K >= 2), y N classes. Unbounded below."""
    l_y = logits.gather(1, y[:, None]).squeeze(1)
    return -l_y + logits.scatter(1, y[:, None], float("-inf")).max(1).values


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
        margin = max_margin(_logits_and_labels(ctx, min_classes=2), ctx.y)
        if self.hinge_margin is None:
            return margin
        return F.relu(margin + self.hinge_margin)


def poincare_loss(logits: torch.Tensor, y: torch.Tensor, xi: float = 1e-4) -> torch.Tensor:
    """PPA's Poincaré loss (Struppek et al., ICML 2022, Eq. 3) per sample; >= 0.

    u = l / ‖l‖₁ (T's logits projected into the unit ball), v = one-hot(y) − ξ clipped to [0, 1] (a point just
    inside the ball's boundary), and the hyperbolic distance
    d(u, v) = arccosh(1 + 2‖u − v‖² / ((1 − ‖u‖²)(1 − ‖v‖²))).
    Unlike CE it does not saturate as p_T(y|x) → 1, which is why PPA prefers it.

    logits: N×K (K >= 2), y: N classes in [0, K). Returns N values.
    """
    if not 0 < xi < 1:
        raise ValueError(f"xi must be in (0, 1), got {xi}")
    check_logits("logits", logits, len(logits))
    check_labels("y", y, len(logits), logits.shape[1])
    u = logits / logits.abs().sum(1, keepdim=True).clamp_min(1e-12)
    v = (F.one_hot(y, logits.shape[1]).to(logits.dtype) - xi).clamp(0, 1)
    u2 = (u * u).sum(1).clamp(max=1 - 1e-7)  # ‖u‖₁ = 1 bounds ‖u‖₂ ≤ 1; equality only for one-hot logits
    v2 = (v * v).sum(1)
    delta = 2 * ((u - v) ** 2).sum(1) / ((1 - u2) * (1 - v2))
    return torch.acosh(1 + delta)


class PoincareClsLoss(LossTerm):
    """``cls`` as PPA's Poincaré loss (see ``poincare_loss``); >= 0. Reads ``ctx.target_logits()`` and ``ctx.y``."""

    name = "cls"

    def __init__(self, xi: float = 1e-4):
        super().__init__()
        if not 0 < xi < 1:
            raise ValueError(f"xi must be in (0, 1), got {xi}")
        self.xi = xi

    def forward(self, ctx: AttackContext) -> torch.Tensor:
        return poincare_loss(_logits_and_labels(ctx, min_classes=2), ctx.y, self.xi)
