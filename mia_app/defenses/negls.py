"""Negative label smoothing (Struppek et al., "Be Careful What You Smooth For", ICLR 2024).

Label smoothing with factor alpha trains on q = (1 - alpha) * onehot(y) + alpha / K. A *negative* alpha pushes the
non-target logits down past uniform, so the target's confidence saturates and its gradients carry little about
what a class looks like: inversion loses its signal. Training with alpha < 0 from the start hurts accuracy, hence
the schedule: ``alpha_start`` (positive smoothing, or none) for the first ``start`` of training, a linear ramp to
``alpha`` at ``full``, then held.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class NegativeLabelSmoothing(nn.Module):
    """Per-sample loss -(sum_k q_k log p_k) with the scheduled factor; logits N×K, y N (int64)."""

    def __init__(self, alpha: float = -0.05, start: float = 0.5, full: float = 0.75, alpha_start: float = 0.0):
        super().__init__()
        if not 0.0 <= alpha_start < 1.0:
            raise ValueError(f"alpha_start must be in [0, 1), got {alpha_start}")
        if not -1.0 <= alpha < 0.0:
            raise ValueError(f"alpha must be negative (in [-1, 0)), got {alpha}")
        if not 0.0 <= start < full <= 1.0:
            raise ValueError(f"need 0 <= start < full <= 1, got start {start}, full {full}")
        self.alpha, self.start, self.full, self.alpha_start = alpha, start, full, alpha_start

    def alpha_at(self, progress: float) -> float:
        """The smoothing factor at ``progress`` in [0, 1] (the fraction of training steps done)."""
        ramp = (progress - self.start) / (self.full - self.start)
        return self.alpha_start + (self.alpha - self.alpha_start) * min(1.0, max(0.0, ramp))

    def forward(self, logits: torch.Tensor, y: torch.Tensor, progress: float) -> torch.Tensor:
        a = self.alpha_at(progress)
        log_p = F.log_softmax(logits.float(), dim=1)
        nll = -log_p.gather(1, y[:, None]).squeeze(1)
        uniform = -log_p.mean(dim=1)
        return (1.0 - a) * nll + a * uniform
