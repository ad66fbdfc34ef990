"""Has a prior learned its training faces by heart? Near-copy detection in pixel space.

Following Carlini et al. (2023, "Extracting Training Data from Diffusion Models"), a generated face x is a
near-copy when its nearest training face is much closer than the training faces after it:
``ratio(x) = d_1(x) / mean(d_2(x), ..., d_{k+1}(x)) < 1/3`` with d the L2 distance over pixels in [-1, 1]
(training faces and their mirrors, since the prior trained on both). The same ratio for real faces the prior never
saw (another person, or the same people's other photos) says what "not copied" looks like on this data.
"""

from __future__ import annotations

import torch


def nearest_ratio(x: torch.Tensor, train: torch.Tensor, k: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """x: N×C×R×R, train: M×C×R×R, both in [-1, 1] (M > k). Returns (d_1 N, ratio N) as defined above."""
    if len(train) <= k:
        raise ValueError(f"need more than k={k} training faces, got {len(train)}")
    d = torch.cdist(x.flatten(1).double(), train.flatten(1).double())  # N×M
    nearest = d.topk(k + 1, dim=1, largest=False).values
    return nearest[:, 0].float(), (nearest[:, 0] / nearest[:, 1:].mean(1)).float()


def with_mirrors(train: torch.Tensor) -> torch.Tensor:
    return torch.cat([train, train.flip(-1)])


def memorisation_report(samples: torch.Tensor, train: torch.Tensor, unseen: torch.Tensor, k: int = 10,
                        threshold: float = 1 / 3) -> dict:
    """Near-copy rate and distances of ``samples`` to ``train`` (mirrors added), beside ``unseen`` real faces."""
    pool = with_mirrors(train)
    out = {"k": k, "threshold": round(threshold, 4), "train_faces": len(train)}
    for name, x in (("samples", samples), ("unseen_real", unseen)):
        d1, ratio = nearest_ratio(x, pool, k)
        out[name] = {
            "n": len(x),
            "near_copy_rate": round((ratio < threshold).float().mean().item(), 4),
            "ratio_median": round(ratio.median().item(), 4),
            "ratio_min": round(ratio.min().item(), 4),
            "d1_median": round(d1.median().item(), 3),
            "d1_p05": round(d1.quantile(0.05).item(), 3),
        }
    return out
