"""Fréchet distance between two feature sets (the FID formula on any backbone's features).

FD = ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^{1/2}). Always report N and the backbone with it:
the estimate is biased upwards at small N.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import linalg


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """a: N_a×D, b: N_b×D features (float). Needs N >= 2 on each side."""
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"expected N×D feature sets with equal D, got {tuple(a.shape)} and {tuple(b.shape)}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError("need at least 2 samples per set")
    a64, b64 = a.double().cpu().numpy(), b.double().cpu().numpy()
    mu_a, mu_b = a64.mean(0), b64.mean(0)
    s_a, s_b = np.cov(a64, rowvar=False), np.cov(b64, rowvar=False)
    covmean, _ = linalg.sqrtm(s_a @ s_b, disp=False)
    if not np.isfinite(covmean).all():
        # Singular product (N < D): regularise the diagonal, as pytorch-fid does.
        eps = np.eye(len(s_a)) * 1e-6
        covmean = linalg.sqrtm((s_a + eps) @ (s_b + eps))
    covmean = covmean.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * np.trace(covmean))
