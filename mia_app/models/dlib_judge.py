"""An independent identity judge: dlib's ResNet face descriptor (128-d, ``dlib_face_recognition_resnet_model_v1``).

It shares no weights, data or architecture with our classifiers or with the attack's losses, so it is an
*evaluation-only* check that an inverted face looks like the private identity. It is **not differentiable**:
images go through uint8 and dlib's C++ code. Never put it in an optimisation loop.

Our faces are tiny tight crops (32 or 64 px, SynthID / DigiFace style: eyes at about 42 % of the height),
so there is no detection step. dlib's network expects a 150×150 "face chip" aligned the way
``dlib.get_face_chip`` does it (five landmarks mapped onto its mean face, 25 % padding). Three ways to make
that chip are implemented (``alignment``):

``"template"`` (default)
    Upsample the crop to 150 px, then ``get_face_chip`` with a *fixed* 5-point shape, ``TEMPLATE_5PT``
    (the chip frames a little more than the crop; dlib fills the outside with black).
    The template is the mean of dlib's 5-point predictor over 1,000 SynthID public-pool images (independent
    of the private identities), mirrored to be left/right symmetric, in fractions of the crop side.
``"landmarks"``
    Same, but the 5 points come from dlib's shape predictor run on the whole crop (full-image rectangle).
``"resize"``
    Plain bilinear resize of the crop to 150×150, no alignment.

Measured on SynthID private-test (100 identities × 10 images, 32 px; AUC = same-vs-different-identity
verification, 1-NN = leave-one-out identification among the 1,000 images, mean distance same / different):

=============  =====  =====  ===========  ====================
alignment      AUC    1-NN   same / diff  rate < 0.6 same/diff
=============  =====  =====  ===========  ====================
template       0.904  0.716  0.51 / 0.66  0.85 / 0.22
landmarks      0.856  0.575  0.54 / 0.66  0.75 / 0.19
resize         0.887  0.675  0.43 / 0.55  0.98 / 0.76
=============  =====  =====  ===========  ====================

The plain resize zooms in past dlib's chip framing, which squeezes every distance below 0.6 (the standard threshold
then accepts 76 % of impostors); per-image landmarks on blurry 32 px faces spread by 7–10 px (std at 150 px, pose
plus prediction error) and that geometric jitter costs discrimination. The fixed template keeps dlib's framing
*and* a stable geometry, and being symmetric it commutes with a horizontal flip (to half a pixel). Sanity check on
a real face (``tests/test_dlib_judge.py``): the astronaut from ``skimage.data`` cropped to our convention and
shrunk to 32 / 64 px lands at 0.41 / 0.27 from her descriptor by dlib's full pipeline on the 512 px original
(detector + landmarks); ``"landmarks"`` gives 0.39 / 0.51 and ``"resize"`` 0.71 / 0.63. Faces cropped to another
convention (eyes elsewhere in the frame) should use ``"landmarks"``.

Expected distances on 32 px faces are compressed compared with real photos (blur removes identity cues):
``MATCH_THRESHOLD`` = 0.6 is dlib's documented value and is kept for comparability, not re-tuned.
"""

from __future__ import annotations

from functools import cache
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from mia_app.assets import asset_path

DESCRIPTOR_DIM = 128
MATCH_THRESHOLD = 0.6  # dlib's threshold: same person when the Euclidean distance is below it
CHIP_SIZE = 150  # dlib's ResNet takes 150×150 RGB chips
CHIP_PADDING = 0.25  # dlib.get_face_chip's default, what the ResNet was trained with
DLIB_PIP = "pip install dlib-bin==20.0.1.post1"

# dlib's 5-point order: (0, 1) outer / inner corner of the eye on the image's right, (2, 3) outer / inner corner
# of the eye on the image's left, 4 the base of the nose; (x, y) as fractions of the crop's width / height.
TEMPLATE_5PT: tuple[tuple[float, float], ...] = (
    (0.7324, 0.420),
    (0.5979, 0.424),
    (0.2676, 0.420),
    (0.4021, 0.424),
    (0.5000, 0.703),
)

Alignment = Literal["template", "landmarks", "resize"]
_ALIGNMENTS = ("template", "landmarks", "resize")


def _import_dlib():
    try:
        import dlib
    except ImportError as e:
        raise ImportError(f"DlibJudge needs dlib, which is not importable ({e}). Run: {DLIB_PIP}") from e
    return dlib


def distance(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Euclidean distance between descriptors along the last axis, with broadcasting.

    (128,) vs (128,) -> scalar; (N, 128) vs (N, 128) -> (N,) row by row; (N, 1, 128) vs (1, M, 128) -> (N, M).
    Same identity (by dlib's convention) when below ``MATCH_THRESHOLD``.
    """
    a, b = torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32)
    if a.shape[-1] != DESCRIPTOR_DIM or b.shape[-1] != DESCRIPTOR_DIM:
        raise ValueError(f"descriptors must end in {DESCRIPTOR_DIM}, got {tuple(a.shape)} and {tuple(b.shape)}")
    return torch.linalg.vector_norm(a - b, dim=-1)


class DlibJudge:
    """dlib ResNet face descriptor on our tight face crops. Evaluation only: not differentiable.

    Args:
        alignment: how the 150×150 chip is made, ``"template"`` (default), ``"landmarks"`` or ``"resize"``;
            see the module docstring for what each does and how they compare.
        num_jitters: dlib's test-time augmentation (0: deterministic; k > 0 averages k random jitters, k× slower).
        batch_size: chips per call of dlib's batched ``compute_face_descriptor``.
    """

    MATCH_THRESHOLD = MATCH_THRESHOLD

    def __init__(self, alignment: Alignment = "template", num_jitters: int = 0, batch_size: int = 64):
        if alignment not in _ALIGNMENTS:
            raise ValueError(f"alignment must be one of {_ALIGNMENTS}, got {alignment!r}")
        if num_jitters < 0:
            raise ValueError(f"num_jitters must be >= 0, got {num_jitters}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self._dlib = _import_dlib()
        self.alignment = alignment
        self.num_jitters = num_jitters
        self.batch_size = batch_size
        self._encoder = self._dlib.face_recognition_model_v1(str(asset_path("dlib_resnet")))
        self._predictor = (
            self._dlib.shape_predictor(str(asset_path("dlib_shape5"))) if alignment == "landmarks" else None
        )
        full = self._dlib.rectangle(0, 0, CHIP_SIZE - 1, CHIP_SIZE - 1)
        self._full_rect = full
        # Fractions are of the continuous image extent; dlib's integer pixel coordinates put pixel centres at
        # integers, hence the -0.5 (keeps the eye pairs exactly mirror-symmetric about the vertical axis).
        self._template = self._dlib.full_object_detection(
            full,
            [self._dlib.point(round(fx * CHIP_SIZE - 0.5), round(fy * CHIP_SIZE - 0.5)) for fx, fy in TEMPLATE_5PT],
        )

    @staticmethod
    def _to_uint8_hwc(images: torch.Tensor) -> np.ndarray:
        """N×3×H×W in [-1, 1] -> N×150×150×3 uint8 RGB, resized in float (one quantisation, not two)."""
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be a N×3×H×W tensor, got {getattr(images, 'shape', type(images))}")
        if not images.is_floating_point():
            raise ValueError(f"images must be float in [-1, 1], got dtype {images.dtype}")
        if images.shape[-1] != images.shape[-2]:
            raise ValueError(f"images must be square tight face crops, got {tuple(images.shape[-2:])}")
        x = images.detach().float().cpu()
        if len(x) == 0:
            return np.empty((0, CHIP_SIZE, CHIP_SIZE, 3), dtype=np.uint8)
        if x.min() < -1.01 or x.max() > 1.01:
            # Catches 0–255 or [0, 1] inputs, which would otherwise give plausible-looking garbage descriptors.
            raise ValueError(f"images must be in [-1, 1], got range [{x.min():.3g}, {x.max():.3g}]")
        if x.shape[-1] != CHIP_SIZE:
            # antialias only matters when shrinking larger inputs; for our 32/64 px faces this is plain bilinear.
            x = F.interpolate(x, size=CHIP_SIZE, mode="bilinear", align_corners=False, antialias=True)
        x = x.add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)
        return np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy())

    def chips(self, images: torch.Tensor) -> np.ndarray:
        """The aligned chips dlib sees: images N×3×H×W (H = W) in [-1, 1] -> N×150×150×3 uint8 RGB."""
        hwc = self._to_uint8_hwc(images)
        if self.alignment == "resize":
            return hwc
        out = np.empty_like(hwc)
        for i, img in enumerate(hwc):
            shape = self._template if self.alignment == "template" else self._predictor(img, self._full_rect)
            out[i] = self._dlib.get_face_chip(img, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
        return out

    @torch.no_grad()
    def describe(self, images: torch.Tensor) -> torch.Tensor:
        """Face descriptors: images N×3×H×W (H = W) in [-1, 1] -> N×128 float32 (CPU).

        Not L2-normalised (norms are about 1.3–1.5 on SynthID faces): compare with ``distance`` as dlib does.
        """
        chips = self.chips(images)
        out = np.empty((len(chips), DESCRIPTOR_DIM), dtype=np.float32)
        for lo in range(0, len(chips), self.batch_size):
            batch = list(chips[lo : lo + self.batch_size])
            vectors = self._encoder.compute_face_descriptor(batch, self.num_jitters)
            out[lo : lo + len(batch)] = np.array([np.asarray(v) for v in vectors], dtype=np.float32)
        return torch.from_numpy(out)

    __call__ = describe
    distance = staticmethod(distance)


@cache
def load_dlib_judge(alignment: Alignment = "template") -> DlibJudge:
    """A shared ``DlibJudge`` per alignment (loading costs ~0.1 s; the instance holds no per-call state)."""
    return DlibJudge(alignment=alignment)
