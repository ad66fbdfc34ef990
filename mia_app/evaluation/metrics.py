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
        per_class = {int(c): v[y == c].mean().item() for c in y.unique()}
        return {"knn_dist": v.mean().item(), "knn_dist_per_class": per_class}


class JudgeDistance:
    """Independent-judge identity distance (dlib ResNet descriptors, Euclidean, dlib's convention).

    Per attack image: the minimum distance to the private images of its class; ``judge_dist`` is the mean of
    those minima and ``judge_match@<t>`` the fraction below ``threshold`` (dlib's same-person test, 0.6).

    The nearest of ~60 images of a class is often below 0.6 even for another person's face on 32 px crops, so
    ``judge_top1`` adds an identification check: the fraction of images whose nearest private image, among all
    classes of the private reference (the *gallery*, ``judge_gallery`` classes), belongs to their own class.
    Compare it with 1 / gallery size (chance).

    Works on descriptors, so it is testable without dlib; ``evaluate_run`` feeds it ``DlibJudge`` outputs.
    """

    def __init__(self, private_descriptors: torch.Tensor, private_labels: torch.Tensor, threshold: float = 0.6):
        if len(private_descriptors) != len(private_labels):
            raise ValueError("private descriptors and labels differ in length")
        self.private_descriptors = private_descriptors.float()
        self.private_labels = private_labels
        self.gallery = private_labels.unique(sorted=True)
        self.threshold = threshold
        self.reset()

    @property
    def match_key(self) -> str:
        return f"judge_match@{self.threshold:g}"

    def reset(self) -> None:
        self.values: list[torch.Tensor] = []
        self.top1: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []

    def update(self, descriptors: torch.Tensor, y: torch.Tensor) -> None:
        if len(descriptors) != len(y):
            raise ValueError("descriptors and labels differ in length")
        missing = sorted(set(y.tolist()) - set(self.gallery.tolist()))
        if missing:
            raise ValueError(f"no private images of class {missing[0]}")
        d = torch.cdist(descriptors.float(), self.private_descriptors)
        per_class = torch.stack([d[:, self.private_labels == c].min(1).values for c in self.gallery], 1)  # N×K
        own = (self.gallery[None, :] == y[:, None].cpu()).float().argmax(1)
        self.values.append(per_class.gather(1, own[:, None]).squeeze(1).cpu())
        self.top1.append((per_class.argmin(1) == own).cpu())
        self.labels.append(y.cpu())

    def per_image(self) -> dict[str, torch.Tensor]:
        """Per image, in update order: ``dist`` to the nearest private image of its class, ``top1`` whether the
        nearest private image of the whole gallery is of its class."""
        if not self.values:
            return {"dist": torch.zeros(0), "top1": torch.zeros(0, dtype=torch.bool)}
        return {"dist": torch.cat(self.values), "top1": torch.cat(self.top1)}

    def compute(self) -> dict[str, float | int | dict]:
        if not self.values:
            return {"judge_dist": float("nan"), self.match_key: float("nan"), "judge_top1": float("nan"),
                    "judge_gallery": len(self.gallery), "judge_dist_per_class": {},
                    f"{self.match_key}_per_class": {}, "judge_top1_per_class": {}}
        v, y = torch.cat(self.values), torch.cat(self.labels)
        hit, top1 = (v < self.threshold).float(), torch.cat(self.top1).float()
        classes = y.unique()
        return {
            "judge_dist": v.mean().item(),
            self.match_key: hit.mean().item(),
            "judge_top1": top1.mean().item(),
            "judge_gallery": len(self.gallery),
            "judge_dist_per_class": {int(c): v[y == c].mean().item() for c in classes},
            f"{self.match_key}_per_class": {int(c): hit[y == c].mean().item() for c in classes},
            "judge_top1_per_class": {int(c): top1[y == c].mean().item() for c in classes},
        }


def _unit_channels(f: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """LPIPS' ``normalize_tensor``: each spatial position's channel vector scaled to unit length."""
    return f / (f.norm(dim=1, keepdim=True) + eps)


def lpips_style_pairwise(taps_a: dict[str, torch.Tensor], taps_b: dict[str, torch.Tensor], normalize: bool = True,
                         reduce: str = "mean") -> torch.Tensor:
    """LPIPS between every pair of two image sets, from their feature taps: N_a×N_b.

    Per tap: (if ``normalize``) channel-unit-normalised features, squared difference summed over channels (in
    [0, 4] per position) and averaged over positions; then averaged (``reduce="mean"``) or summed over taps.
    With MobileNetV2 taps and the defaults this is LPIPS without learned heads, the recipe of the attack's
    ``perc`` loss. Official LPIPS is the case ``normalize=False, reduce="sum"`` on taps already unit-normalised
    and scaled by sqrt of its linear heads' weights. Uses ||a||² + ||b||² − 2⟨a, b⟩ on the flattened maps:
    one matrix product per tap.
    """
    if set(taps_a) != set(taps_b) or not taps_a:
        raise ValueError(f"tap names differ or are empty: {sorted(taps_a)} vs {sorted(taps_b)}")
    if reduce not in ("mean", "sum"):
        raise ValueError(f"reduce must be 'mean' or 'sum', got {reduce!r}")
    total = None
    for name in taps_a:
        a, b = taps_a[name].float(), taps_b[name].float()
        if a.shape[1:] != b.shape[1:]:
            raise ValueError(f"tap {name!r}: shapes {tuple(a.shape)} and {tuple(b.shape)} differ")
        if normalize:
            a, b = _unit_channels(a), _unit_channels(b)
        positions = a.shape[2] * a.shape[3]
        fa, fb = a.flatten(1), b.flatten(1)
        d = (fa.square().sum(1)[:, None] + fb.square().sum(1)[None, :] - 2 * fa @ fb.T).clamp_min(0) / positions
        total = d if total is None else total + d
    return total / len(taps_a) if reduce == "mean" else total


class PerceptualDistance:
    """LPIPS-style distance from each attack image to the *nearest* private image of its class; averaged.

    Args:
        private_taps: ``{tap: M×C×h×w}`` feature maps of the private images (from ``taps_fn``).
        private_labels: M class labels.
        taps_fn: images N×3×R×R in [-1, 1] -> ``{tap: N×C×h×w}``; default: frozen ImageNet MobileNetV2
            early/mid/deep taps (``mobilenet_taps``).
        normalize, reduce: see ``lpips_style_pairwise`` (defaults: unit channels, mean over taps).
        backend: a name reported with the value.
    Lower is closer.
    """

    def __init__(self, private_taps: dict[str, torch.Tensor], private_labels: torch.Tensor, taps_fn=None,
                 normalize: bool = True, reduce: str = "mean", backend: str = "mobilenet_v2-taps"):
        if any(len(v) != len(private_labels) for v in private_taps.values()):
            raise ValueError("private taps and labels differ in length")
        self.private_taps = private_taps
        self.private_labels = private_labels
        self.taps_fn = taps_fn or mobilenet_taps
        self.normalize, self.reduce, self.backend = normalize, reduce, backend
        self.reset()

    def reset(self) -> None:
        self.values: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []

    @torch.no_grad()
    def update(self, images: torch.Tensor, y: torch.Tensor) -> None:
        if len(images) != len(y):
            raise ValueError("images and labels differ in length")
        taps = self.taps_fn(images)
        for cls in y.unique():
            ref_mask = self.private_labels == cls
            if not ref_mask.any():
                raise ValueError(f"no private images of class {int(cls)}")
            mine = y == cls
            d = lpips_style_pairwise({k: v[mine] for k, v in taps.items()},
                                     {k: v[ref_mask] for k, v in self.private_taps.items()},
                                     self.normalize, self.reduce)
            self.values.append(d.min(1).values.cpu())
            self.labels.append(y[mine].cpu())

    def compute(self) -> dict[str, float | dict | str]:
        if not self.values:
            return {"perc_dist": float("nan"), "perc_dist_per_class": {}, "perc_backend": self.backend}
        v, y = torch.cat(self.values), torch.cat(self.labels)
        per_class = {int(c): v[y == c].mean().item() for c in y.unique()}
        return {"perc_dist": v.mean().item(), "perc_dist_per_class": per_class, "perc_backend": self.backend}


@torch.no_grad()
def mobilenet_taps(x: torch.Tensor, batch: int = 128) -> dict[str, torch.Tensor]:
    """Frozen ImageNet MobileNetV2 early/mid/deep taps of images in [-1, 1] (upsampled to 96 px inside)."""
    from mia_app.models.mobilenet_v2 import load_mobilenet_v2

    net = load_mobilenet_v2(x.device)
    parts = [net.taps(x[i : i + batch]) for i in range(0, len(x), batch)]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


class FrechetDistance:
    """Fréchet distance (the FID formula) between attack-image and private-image features of one backbone.

    Always reported with the sample counts and the backbone: at small N the estimate is biased upwards, so
    only compare values with equal N and backbone. ``value`` is None when either side has fewer than 2 samples.
    """

    def __init__(self, backbone: str):
        self.backbone = backbone
        self.reset()

    def reset(self) -> None:
        self.fake: list[torch.Tensor] = []
        self.real: list[torch.Tensor] = []

    def update(self, features: torch.Tensor, real: bool = False) -> None:
        if features.ndim != 2:
            raise ValueError(f"features must be N×D, got {tuple(features.shape)}")
        (self.real if real else self.fake).append(features.detach().float().cpu())

    def compute(self) -> dict[str, float | int | str | None]:
        from mia_app.evaluation.frechet import frechet_distance

        fake = torch.cat(self.fake) if self.fake else torch.zeros(0, 0)
        real = torch.cat(self.real) if self.real else torch.zeros(0, 0)
        value = None
        if len(fake) >= 2 and len(real) >= 2:
            import warnings

            with warnings.catch_warnings():  # N < D makes the covariances singular: expected, and regularised
                warnings.simplefilter("ignore")
                value = frechet_distance(fake, real)
        return {"value": value, "N": len(fake), "N_private": len(real), "backbone": self.backbone,
                "dim": int(fake.shape[1]) if fake.ndim == 2 and len(fake) else None}
