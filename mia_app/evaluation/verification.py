"""Face verification from embeddings: ROC AUC of "same identity" scored by cosine similarity, over all pairs."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rank_auc(scores: torch.Tensor, positive: torch.Tensor) -> float:
    """ROC AUC (Mann–Whitney U with average ranks for ties) of ``scores`` for the boolean ``positive`` labels."""
    if scores.shape != positive.shape or scores.ndim != 1:
        raise ValueError("scores and positive must be 1-d and the same length")
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not torch.isfinite(scores).all():
        raise ValueError("scores contain NaN or inf")
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC needs both positive and negative pairs")
    order = scores.double().argsort()
    ranks = torch.empty_like(order, dtype=torch.float64)
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=torch.float64)
    # Average the ranks of tied scores so that a constant scorer gets AUC 0.5 exactly.
    uniq, inverse = torch.unique(scores.double(), return_inverse=True)
    sums = torch.zeros(len(uniq), dtype=torch.float64).index_add_(0, inverse, ranks)
    counts = torch.zeros(len(uniq), dtype=torch.float64).index_add_(0, inverse, torch.ones_like(ranks))
    ranks = (sums / counts)[inverse]
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def verification_auc(embeddings: torch.Tensor, labels: torch.Tensor) -> float:
    """AUC over every unordered pair of distinct images: same-label pairs positive, the rest negative.

    Args:
        embeddings: N×D (normalised here).
        labels: N identity labels.
    """
    if embeddings.ndim != 2 or len(embeddings) != len(labels):
        raise ValueError(f"embeddings must be N×D with N labels; got {tuple(embeddings.shape)}, {len(labels)}")
    e = F.normalize(embeddings.float(), dim=1)
    i, j = torch.triu_indices(len(e), len(e), offset=1)
    scores = (e @ e.T)[i, j]  # one N×N product: the pairwise gather would hold N²/2 × D values
    return rank_auc(scores, labels[i] == labels[j])
