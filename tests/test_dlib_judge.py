"""dlib judge: descriptor shapes, determinism, identity ordering on real images, input checks, missing dlib."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mia_app.models.dlib_judge import (
    CHIP_SIZE,
    DESCRIPTOR_DIM,
    DLIB_PIP,
    MATCH_THRESHOLD,
    DlibJudge,
    distance,
    load_dlib_judge,
)

dlib = pytest.importorskip("dlib")
skdata = pytest.importorskip("skimage.data")

# The astronaut's face cropped to our convention (outer eye corners at ~27 % / 73 % of the width, eyes at ~42 %
# of the height), derived from dlib's 5 landmarks on the 512 px original: rows 48:177, cols 160:289.
ASTRONAUT_BOX = (48, 160, 129)
CHELSEA_BOX = (20, 120, 260)  # the cat's face, same framing idea


def _crop(img: np.ndarray, box: tuple[int, int, int], res: int) -> torch.Tensor:
    """HWC uint8 -> 1×3×res×res in [-1, 1] (area-style downsampling, like the SynthID renderer)."""
    top, left, side = box
    x = torch.from_numpy(img[top : top + side, left : left + side].copy()).permute(2, 0, 1)[None].float()
    x = F.interpolate(x, size=res, mode="bilinear", antialias=True, align_corners=False)
    return x.div(127.5).sub(1.0).clamp(-1, 1)


@pytest.fixture(scope="module")
def judge() -> DlibJudge:
    return load_dlib_judge()


@pytest.fixture(scope="module")
def faces() -> dict[str, torch.Tensor]:
    ast, cat = skdata.astronaut(), skdata.chelsea()
    return {
        "ast32": _crop(ast, ASTRONAUT_BOX, 32),
        "ast64": _crop(ast, ASTRONAUT_BOX, 64),
        "cat32": _crop(cat, CHELSEA_BOX, 32),
    }


@pytest.fixture(scope="module")
def desc(judge, faces) -> dict[str, torch.Tensor]:
    d = judge.describe(torch.cat([faces["ast32"], faces["ast32"].flip(-1), faces["cat32"]]))
    out = dict(zip(["ast32", "ast32_flip", "cat32"], d, strict=True))
    out["ast64"] = judge.describe(faces["ast64"])[0]  # a batch holds one size only
    return out


def test_descriptor_shape_and_finite(judge, faces):
    x = torch.cat([faces["ast32"], faces["cat32"], torch.rand(3, 3, 32, 32) * 2 - 1])
    d = judge.describe(x)
    assert d.shape == (5, DESCRIPTOR_DIM) and d.dtype == torch.float32
    assert torch.isfinite(d).all()
    assert (d.norm(dim=1) > 0.1).all()  # not collapsed to zero
    assert judge.describe(torch.empty(0, 3, 32, 32)).shape == (0, DESCRIPTOR_DIM)


def test_chips_shape_for_every_alignment(faces):
    for alignment in ("template", "landmarks", "resize"):
        chips = DlibJudge(alignment).chips(torch.cat([faces["ast32"], faces["cat32"]]))
        assert chips.shape == (2, CHIP_SIZE, CHIP_SIZE, 3) and chips.dtype == np.uint8


def test_chips_are_rgb_and_span_the_range(judge):
    # dlib's Python API wants RGB; a silent BGR swap would barely move the descriptors, so check pixels.
    x = torch.tensor([1.0, -1.0, 0.0]).view(1, 3, 1, 1).expand(1, 3, 32, 32)
    centre = judge.chips(x)[0, CHIP_SIZE // 2, CHIP_SIZE // 2]
    assert centre.tolist() == [255, 0, 128]


def test_same_image_twice_is_distance_zero_and_batching_is_consistent(judge, faces):
    x = torch.cat([faces["ast32"], faces["cat32"], faces["ast32"]])
    d = judge.describe(x)
    assert float(distance(d[0], d[2])) < 1e-5
    assert float(distance(d[0], d[1])) > 0.3  # and the batch did not smear images into each other
    small_batches = DlibJudge(batch_size=1).describe(x)
    assert torch.allclose(small_batches, d, atol=1e-5)


def test_identity_ordering_on_real_faces(desc):
    flip = float(distance(desc["ast32"], desc["ast32_flip"]))
    cross_res = float(distance(desc["ast32"], desc["ast64"]))
    cat = float(distance(desc["ast32"], desc["cat32"]))
    # Measured: flip 0.22, 32 vs 64 px 0.28, astronaut vs cat 0.62 (32 px compresses every distance, so the
    # cat is only just over the threshold: assert the ordering with a margin rather than the threshold).
    assert flip < MATCH_THRESHOLD and cross_res < MATCH_THRESHOLD
    assert max(flip, cross_res) + 0.2 < cat


def test_agrees_with_dlibs_full_pipeline(judge, desc):
    """Our 64 px crop must land near the descriptor dlib's own pipeline (detector + landmarks) gives at 512 px.

    A plain 150 px resize of the crop fails this (0.63 at 64 px, 0.71 at 32 px), which is why the fixed template is
    the default.
    """
    from mia_app.assets import asset_path

    img = skdata.astronaut()
    rects = dlib.get_frontal_face_detector()(img, 1)
    face = min(rects, key=lambda r: r.top())  # the upper detection is her face (the other is a false alarm)
    shape = dlib.shape_predictor(str(asset_path("dlib_shape5")))(img, face)
    reference = np.asarray(judge._encoder.compute_face_descriptor(img, shape), dtype=np.float32)
    to_ref = {k: float(distance(desc[k], reference)) for k in ("ast64", "ast32", "cat32")}
    assert to_ref["ast64"] < 0.4, to_ref  # measured 0.27
    assert to_ref["ast32"] < MATCH_THRESHOLD, to_ref  # measured 0.41
    assert to_ref["cat32"] > to_ref["ast32"] + 0.15, to_ref  # measured 0.62


def test_distance_broadcasting():
    a, b = torch.randn(4, DESCRIPTOR_DIM), torch.randn(3, DESCRIPTOR_DIM)
    assert distance(a[0], b[0]).shape == ()
    assert distance(a, a).shape == (4,) and torch.all(distance(a, a) == 0)
    m = distance(a[:, None], b[None])
    assert m.shape == (4, 3)
    assert torch.isclose(m[1, 2], torch.linalg.norm(a[1] - b[2]))
    assert torch.isclose(distance(a.numpy()[0], b.numpy()[0]), m[0, 0])
    assert MATCH_THRESHOLD == DlibJudge.MATCH_THRESHOLD == 0.6
    with pytest.raises(ValueError):
        distance(torch.zeros(4, 64), torch.zeros(4, 64))


@pytest.mark.parametrize(
    "bad",
    [
        torch.rand(2, 3, 32, 32) * 255,  # 0–255 floats
        torch.rand(2, 3, 32, 32) + 0.5,  # [0.5, 1.5]: out of range
        torch.zeros(2, 3, 32, 24),  # not square
        torch.zeros(2, 1, 32, 32),  # not RGB
        torch.zeros(3, 32, 32),  # no batch axis
        torch.zeros(2, 3, 32, 32, dtype=torch.uint8),  # wrong convention
    ],
)
def test_bad_inputs_raise(judge, bad):
    with pytest.raises(ValueError):
        judge.describe(bad)


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        DlibJudge(alignment="mtcnn")
    with pytest.raises(ValueError):
        DlibJudge(num_jitters=-1)
    with pytest.raises(ValueError):
        DlibJudge(batch_size=0)


def test_missing_dlib_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "dlib", None)  # makes `import dlib` raise ImportError
    with pytest.raises(ImportError, match="pip install dlib-bin==20.0.1.post1"):
        DlibJudge()
    assert DLIB_PIP == "pip install dlib-bin==20.0.1.post1"
