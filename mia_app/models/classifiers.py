"""Face classifiers: the target T (attacked) and the evaluation model E (judge), different architectures.

Both take images N×3×R×R in [-1, 1] (R = 32 or 64) and return logits N×C; ``features`` returns the
penultimate representation (used by E for the KNN-distance metric).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn


def _conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class VGGFace(nn.Module):
    """VGG-style: four stages of two 3×3 conv-BN-ReLU and a max-pool, then global average pool."""

    def __init__(self, n_classes: int, width: int = 32):
        super().__init__()
        chans = [width, 2 * width, 4 * width, 8 * width]
        layers: list[nn.Module] = []
        cin = 3
        for c in chans:
            layers += [_conv_bn(cin, c), _conv_bn(c, c), nn.MaxPool2d(2)]
            cin = c
        self.body = nn.Sequential(*layers)
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(cin, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.body(x), 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))

    def forward_hidden(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(logits, the output of each of the four stages): the hidden features BiDO regularises."""
        hidden = []
        for i, layer in enumerate(self.body):
            x = layer(x)
            if i % 3 == 2:  # after each stage's max-pool
                hidden.append(x)
        return self.head(self.dropout(F.adaptive_avg_pool2d(x, 1).flatten(1))), hidden


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = _conv_bn(cin, cout, stride)
        self.conv2 = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


class ResNetFace(nn.Module):
    """ResNet with basic blocks (``blocks`` per stage), CIFAR-style stem (no early downsampling at 32 px)."""

    def __init__(self, n_classes: int, width: int = 32, blocks: tuple[int, ...] = (2, 2, 2, 2)):
        super().__init__()
        self.stem = _conv_bn(3, width)
        stages: list[nn.Module] = []
        cin = width
        for i, n in enumerate(blocks):
            cout = width * 2**i
            for j in range(n):
                stages.append(_BasicBlock(cin, cout, 2 if (j == 0 and i > 0) else 1))
                cin = cout
        self.stages = nn.Sequential(*stages)
        self.stage_ends = {sum(blocks[: i + 1]) - 1 for i in range(len(blocks))}
        self.head = nn.Linear(cin, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.stages(self.stem(x)), 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def forward_hidden(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(logits, the output of each stage)."""
        x, hidden = self.stem(x), []
        for i, block in enumerate(self.stages):
            x = block(x)
            if i in self.stage_ends:
                hidden.append(x)
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1)), hidden


class _GrayPixels(nn.Module):
    """The gray level of each pixel, flattened: N×3×R×R -> N×R² (the input of Fredrikson et al.'s models)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(1).flatten(1)


class SoftmaxRegressionFace(nn.Module):
    """Softmax regression on gray pixels, one of the two model families MIFace was designed for (Fredrikson,
    Jha, Ristenpart 2015). ``width`` is unused (kept so every arch builds from the same config)."""

    def __init__(self, n_classes: int, width: int = 32, resolution: int = 64):
        super().__init__()
        self.pixels = _GrayPixels()
        self.head = nn.Linear(resolution * resolution, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pixels(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class MLPFace(nn.Module):
    """Fredrikson et al.'s multilayer perceptron: gray pixels, one hidden layer of sigmoid units, softmax.
    They used 3,000 units on 112×92 px; here ``16 × width`` units (512 at width 32) on R×R px keep the shipped
    checkpoint at a few MB."""

    def __init__(self, n_classes: int, width: int = 32, resolution: int = 64):
        super().__init__()
        self.pixels = _GrayPixels()
        self.hidden = nn.Sequential(nn.Linear(resolution * resolution, 16 * width), nn.Sigmoid())
        self.head = nn.Linear(16 * width, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.hidden(self.pixels(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


ARCHS = {"vgg": VGGFace, "resnet": ResNetFace, "softmax": SoftmaxRegressionFace, "mlp": MLPFace}
PIXEL_ARCHS = ("softmax", "mlp")  # fixed input size: they are built for one resolution


def build_classifier(
    arch: str, n_classes: int, width: int = 32, bottleneck: int | None = None, resolution: int | None = None
) -> nn.Module:
    """``bottleneck``: a variational information bottleneck of that dimension before the head (the MID
    defense, ``mia_app.defenses.mid``); the model is the same function of x at evaluation, z = mu.
    ``resolution``: required by the pixel models (softmax, mlp), ignored by the convolutional ones."""
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose from {sorted(ARCHS)}")
    if n_classes < 2:
        raise ValueError("n_classes must be >= 2")
    if arch in PIXEL_ARCHS:
        if resolution not in (32, 64):
            raise ValueError(f"arch {arch!r} needs the resolution (32 or 64), got {resolution}")
        model = ARCHS[arch](n_classes, width, resolution)
    else:
        model = ARCHS[arch](n_classes, width)
    if bottleneck is not None:
        from mia_app.defenses.mid import VariationalBottleneckHead

        model.head = VariationalBottleneckHead(model.head.in_features, bottleneck, n_classes)
    return model


def save_classifier(model: nn.Module, path: str | Path, meta: dict) -> None:
    """fp16 safetensors; ``meta`` (arch, width, n_classes, resolution, role...) goes in the header."""
    state = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"mia_app": json.dumps(meta)})


def read_meta(path: str | Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        header = f.metadata() or {}
    if "mia_app" not in header:
        raise ValueError(f"{path} is not a mia_app classifier checkpoint (no 'mia_app' metadata)")
    try:
        meta = json.loads(header["mia_app"])
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: the 'mia_app' header is not JSON ({err.msg})") from None
    check_meta(meta, path)
    return meta


def check_meta(meta: object, path: str | Path = "checkpoint") -> None:
    """The header's architecture within the bounds the training config allows, checked before anything is built
    (a forged ``width: 100000`` would otherwise ask for hundreds of GB)."""
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: the 'mia_app' header must be a JSON object")
    if meta.get("arch") not in ARCHS:
        raise ValueError(f"{path}: header arch must be one of {sorted(ARCHS)}, got {meta.get('arch')!r}")
    for key, lo, hi in (("width", 4, 256), ("n_classes", 2, 100_000), ("bottleneck", 2, 4096)):
        value = meta.get(key)
        if key == "bottleneck" and value is None:  # only MID-defended models have one
            continue
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise ValueError(f"{path}: header {key} must be an integer in [{lo}, {hi}], got {value!r}")


def load_classifier(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild from the header, load weights as float32, return (frozen eval model, meta)."""
    try:
        meta = read_meta(path)
        state = load_file(str(path))
    except Exception as err:  # safetensors raises several types for truncated or garbage files
        raise ValueError(f"cannot read classifier checkpoint {path}: {err}") from err
    model = build_classifier(meta["arch"], meta["n_classes"], meta["width"], meta.get("bottleneck"),
                             meta.get("resolution"))
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    misshaped = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or misshaped:
        first = (missing or unexpected or misshaped)[0]
        raise ValueError(f"{path}: its tensors do not match its header ({meta['arch']}, width {meta['width']}, "
                         f"{meta['n_classes']} classes): {len(missing)} missing, {len(unexpected)} unexpected, "
                         f"{len(misshaped)} of another shape (first: {first})")
    model.load_state_dict({k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}, strict=True)
    return model.to(device).eval().requires_grad_(False), meta
