"""Attack metrics with the torchmetrics ``update`` / ``compute`` / ``reset`` API."""

from __future__ import annotations

import math

import torch


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a binomial proportion (sane at 0 and n, unlike the normal one)."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


class TopKAccuracy:
    """Fraction of images whose class y is among the model's top-k predictions, per k and per class."""

    def __init__(self, ks: tuple[int, ...] = (1, 5)):
        if not ks or min(ks) < 1:
            raise ValueError("ks must be positive")
        self.ks = ks
        self.reset()

    def reset(self) -> None:
        self.hits = {k: [] for k in self.ks}
        self.labels: list[torch.Tensor] = []

    def update(self, logits: torch.Tensor, y: torch.Tensor) -> None:
        if logits.ndim != 2 or len(logits) != len(y):
            raise ValueError(f"logits must be N×C matching y; got {tuple(logits.shape)} and {tuple(y.shape)}")
        for k in self.ks:
            top = logits.topk(min(k, logits.shape[1]), dim=1).indices
            self.hits[k].append((top == y[:, None]).any(1).cpu())
        self.labels.append(y.cpu())

    def compute(self) -> dict[str, float | dict]:
        y = torch.cat(self.labels) if self.labels else torch.zeros(0, dtype=torch.long)
        out: dict[str, float | dict] = {"n": len(y)}
        for k in self.ks:
            h = torch.cat(self.hits[k]) if self.hits[k] else torch.zeros(0, dtype=torch.bool)
            out[f"acc@{k}"] = h.float().mean().item() if len(h) else float("nan")
            out[f"acc@{k}_ci95"] = wilson_interval(int(h.sum()), len(h))
            out[f"acc@{k}_per_class"] = {int(c): h[y == c].float().mean().item() for c in y.unique()}
        return out


class KNNDistance:
    """Minimum squared L2 distance in E's penultimate features from each image to the private images of
    its class; averaged. Lower means closer to the private identity."""

    def __init__(self, private_features: torch.Tensor, private_labels: torch.Tensor):
        if len(private_features) != len(private_labels):
            raise ValueError("private features and labels differ in length")
        self.private_features = private_features
        self.private_labels = private_labels
        self.reset()

    def reset(self) -> None:
        self.values: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []

    def update(self, features: torch.Tensor, y: torch.Tensor) -> None:
        for cls in y.unique():
            ref = self.private_features[self.private_labels == cls]
            if len(ref) == 0:
                raise ValueError(f"no private images of class {int(cls)}")
            f = features[y == cls]
            self.values.append(torch.cdist(f, ref).square().min(1).values.cpu())
            self.labels.append(y[y == cls].cpu())

    def compute(self) -> dict[str, float | dict]:
        v, y = torch.cat(self.values), torch.cat(self.labels)
        return {"knn_dist": v.mean().item(), "knn_dist_per_class": {int(c): v[y == c].mean().item() for c in y.unique()}}
