"""Training-time defenses against model inversion (SPEC §7): NegLS, BiDO-HSIC and MID, one module each.

``TrainingObjective`` is the one place the classifier trainer asks for its loss, so a defense is a config choice
(``ClassifierTrainConfig.defense``), not a separate training script.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mia_app.defenses.config import DEFENSE_KINDS, BiDOConfig, DefenseConfig, MIDConfig, NegLSConfig, NoDefense

__all__ = ["DEFENSE_KINDS", "BiDOConfig", "DefenseConfig", "MIDConfig", "NegLSConfig", "NoDefense",
           "TrainingObjective"]


class TrainingObjective:
    """loss(model, x, y, progress) -> (scalar loss, {term: value}) for the configured defense.

    x: N×3×R×R in [-1, 1]; y: N int64; progress: fraction of training done, in [0, 1] (NegLS's schedule)."""

    def __init__(self, defense: DefenseConfig, n_classes: int, label_smoothing: float = 0.0):
        self.defense, self.label_smoothing = defense, label_smoothing
        self.negls = self.bido = None
        if isinstance(defense, NegLSConfig):
            from mia_app.defenses.negls import NegativeLabelSmoothing

            self.negls = NegativeLabelSmoothing(defense.alpha, defense.start, defense.full, defense.alpha_start)
        elif isinstance(defense, BiDOConfig):
            from mia_app.defenses.bido import BiDOHSIC

            self.bido = BiDOHSIC(n_classes, defense.lambda_x, defense.lambda_y, defense.sigma, defense.kernel_y)

    @property
    def bottleneck(self) -> int | None:
        """The classifier needs a variational bottleneck head of this size (MID), or None."""
        return self.defense.bottleneck if isinstance(self.defense, MIDConfig) else None

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 progress: float) -> tuple[torch.Tensor, dict[str, float]]:
        if self.bido is not None:
            logits, hidden = model.forward_hidden(x)
            ce = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
            penalty, hx, hy = self.bido(x, hidden, y)
            return ce + penalty, {"ce": ce.item(), "hsic_x": hx.item(), "hsic_y": hy.item()}
        logits = model(x)
        if self.negls is not None:
            loss = self.negls(logits, y, progress).mean()
            return loss, {"ce": loss.item(), "alpha": self.negls.alpha_at(progress)}
        ce = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        if isinstance(self.defense, MIDConfig):
            kl = model.head.kl.mean()
            return ce + self.defense.beta * kl, {"ce": ce.item(), "kl": kl.item()}
        return ce, {"ce": ce.item()}
