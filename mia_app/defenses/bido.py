"""BiDO-HSIC (Peng et al., "Bilateral Dependency Optimization", KDD 2022).

For the hidden features h_j of each stage, minimise the dependence on the input, HSIC(x, h_j), so a feature
carries no more of the face than the label needs, and maximise the dependence on the label, HSIC(h_j, y), so
accuracy survives. The dependence measure is the normalised (CCA-style) HSIC of the authors' code: centred
Gram matrices K_a, regularised ratios R_a = K_a (K_a + eps m I)^-1, and sum(R_a * R_b^T).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def centred_gram(v: torch.Tensor, kernel: str = "gaussian", sigma: float = 5.0) -> torch.Tensor:
    """K H for m samples v (m×... , flattened): Gaussian exp(-|a-b|^2 / (2 sigma^2 d)) or linear a·b."""
    v = v.flatten(1).float()
    m, d = v.shape
    if kernel == "gaussian":
        k = torch.exp(-torch.cdist(v, v).pow(2) / (2.0 * sigma * sigma * d))
    elif kernel == "linear":
        k = v @ v.T
    else:
        raise ValueError(f"kernel must be 'gaussian' or 'linear', got {kernel!r}")
    h = torch.eye(m, device=v.device) - 1.0 / m
    return k @ h


def normalised_hsic(a: torch.Tensor, b: torch.Tensor, sigma: float = 5.0, kernel_b: str = "gaussian",
                    eps: float = 1e-5) -> torch.Tensor:
    """The normalised HSIC of samples a and b (m rows each): ~0 for independent, larger for dependent."""
    if len(a) != len(b) or len(a) < 2:
        raise ValueError(f"need the same m >= 2 samples on both sides, got {len(a)} and {len(b)}")
    m = len(a)
    ka, kb = centred_gram(a, "gaussian", sigma), centred_gram(b, kernel_b, sigma)
    ridge = eps * m * torch.eye(m, device=ka.device)
    ra = ka @ torch.linalg.inv(ka + ridge)
    rb = kb @ torch.linalg.inv(kb + ridge)
    return (ra * rb.T).sum()


class BiDOHSIC(nn.Module):
    """lambda_x * sum_j HSIC(x, h_j) - lambda_y * sum_j HSIC(h_j, y); returns (penalty, hsic_x, hsic_y)."""

    def __init__(self, n_classes: int, lambda_x: float = 0.05, lambda_y: float = 0.5, sigma: float = 5.0,
                 kernel_y: str = "linear"):
        super().__init__()
        self.n_classes, self.lambda_x, self.lambda_y = n_classes, lambda_x, lambda_y
        self.sigma, self.kernel_y = sigma, kernel_y

    def forward(self, x: torch.Tensor, hidden: list[torch.Tensor], y: torch.Tensor):
        y_onehot = F.one_hot(y, self.n_classes).float()
        hx = sum(normalised_hsic(h, x, self.sigma) for h in hidden)
        hy = sum(normalised_hsic(h, y_onehot, self.sigma, self.kernel_y) for h in hidden)
        return self.lambda_x * hx - self.lambda_y * hy, hx, hy
