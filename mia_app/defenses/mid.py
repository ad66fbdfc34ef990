"""MID (Wang et al., "Improving Robustness to Model Inversion Attacks via Mutual Information Regularization",
AAAI 2021): a variational information bottleneck between the features and the head.

The head maps features f (N×D) to a Gaussian code z ~ N(mu(f), diag(std(f)^2)) of dimension k and classifies z.
Training adds beta * KL(q(z|f) || N(0, I)), an upper bound on I(f; z), so the prediction keeps little of the input
beyond the label. At evaluation z = mu (deterministic): the attacked model is a plain function.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class VariationalBottleneckHead(nn.Module):
    """features N×D -> logits N×C through z (N×k); ``kl`` holds the last training batch's per-sample KL."""

    def __init__(self, in_features: int, bottleneck: int, n_classes: int):
        super().__init__()
        if bottleneck < 2:
            raise ValueError(f"bottleneck must be >= 2, got {bottleneck}")
        self.bottleneck = bottleneck
        self.encoder = nn.Linear(in_features, 2 * bottleneck)
        self.classifier = nn.Linear(bottleneck, n_classes)
        self.kl: torch.Tensor | None = None

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        mu, s = self.encoder(f).chunk(2, dim=1)
        if not self.training:
            self.kl = None
            return self.classifier(mu)
        std = F.softplus(s - 5.0)  # the authors' parametrisation: a small std at initialisation
        z = mu + std * torch.randn_like(std)
        self.kl = 0.5 * (mu.pow(2) + std.pow(2) - 2.0 * torch.log(std + 1e-8) - 1.0).sum(dim=1)
        return self.classifier(z)
