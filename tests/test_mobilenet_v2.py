"""MobileNetV2 rewrite: torchvision key names, real ImageNet behaviour, documented taps, differentiability."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mia_app.models.mobilenet_v2 import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    TAP_CHANNELS,
    TAP_STRIDES,
    TAPS,
    MobileNetV2,
    load_mobilenet_v2,
    load_mobilenet_v2_state,
)

skdata = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # Tiny tensors: intra-op threads only add spin-wait overhead, badly so on a shared 2-core runner.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model() -> MobileNetV2:
    return load_mobilenet_v2()


def test_state_dict_matches_torchvision_naming():
    state = load_mobilenet_v2_state()
    fresh = MobileNetV2().state_dict()
    # torchvision's mobilenet_v2 has 314 entries (52 BN × 5 + 52 conv + Linear weight/bias).
    assert len(state) == len(fresh) == 314
    assert list(fresh) == list(state)  # same names in the same order
    for key in ("features.0.0.weight", "features.1.conv.0.0.weight", "features.18.1.running_var", "classifier.1.bias"):
        assert key in fresh
    assert all(fresh[k].shape == state[k].shape for k in state)
    MobileNetV2().load_state_dict(state, strict=True)


def test_factory_is_frozen_and_cached(model):
    assert model is load_mobilenet_v2("cpu")
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())


def test_chelsea_is_a_cat(model):
    # torchvision's standard eval transform: resize short side to 256, centre crop 224, ImageNet normalisation.
    img = torch.from_numpy(skdata.chelsea()).permute(2, 0, 1)[None].float() / 255  # 1×3×300×451
    h, w = img.shape[-2:]
    img = F.interpolate(img, size=(256, round(w * 256 / h)), mode="bilinear", antialias=True, align_corners=False)
    top, left = (img.shape[-2] - 224) // 2, (img.shape[-1] - 224) // 2
    img = img[..., top : top + 224, left : left + 224]
    img = (img - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        probs = model(img).softmax(1)[0]
    top1 = int(probs.argmax())
    assert 281 <= top1 <= 285, top1  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    assert probs[281:286].sum() > 0.8


def test_preprocess_maps_our_range_to_imagenet_normalisation():
    x = torch.tensor([-1.0, 0.0, 1.0]).view(1, 3, 1, 1).expand(1, 3, 96, 96)
    y = MobileNetV2.preprocess(x)
    # torchvision's constants written out, so a typo in the module's copy cannot cancel out here.
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    for c, (v, m, s) in enumerate(zip((0.0, 0.5, 1.0), mean, std, strict=True)):
        assert torch.allclose(y[0, c], torch.full((96, 96), (v - m) / s), atol=1e-6)
    assert MobileNetV2.preprocess(torch.zeros(2, 3, 32, 32)).shape == (2, 3, 96, 96)
    assert MobileNetV2.preprocess(torch.zeros(2, 3, 32, 32), min_size=None).shape == (2, 3, 32, 32)
    with pytest.raises(ValueError):
        MobileNetV2.preprocess(torch.zeros(2, 1, 32, 32))


@pytest.mark.parametrize("res, min_size, side", [(32, 96, 96), (64, 96, 96), (32, None, 32), (64, 128, 128)])
def test_taps_shapes(model, res, min_size, side):
    taps = model.taps(torch.rand(2, 3, res, res) * 2 - 1, min_size=min_size)
    assert list(taps) == list(TAPS)
    for name, t in taps.items():
        n = -(-side // TAP_STRIDES[name])  # ceil: every stride-2 conv has padding 1
        assert t.shape == (2, TAP_CHANNELS[name], n, n), (name, t.shape)
        assert torch.isfinite(t).all()


def test_taps_subset_and_bad_names(model):
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    full = model.taps(x)
    only = model.taps(x, names=["mid", "early"])
    assert list(only) == ["mid", "early"]
    assert torch.allclose(only["mid"], full["mid"])
    with pytest.raises(ValueError):
        model.taps(x, names=["stride32"])


def test_gradient_reaches_input(model):
    x = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_(True)
    taps = model.taps(x)
    sum(t.square().mean() for t in taps.values()).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0
    # Per-sample gradients are independent (eval-mode BN does not mix the batch).
    x2 = x.detach()[:1].clone().requires_grad_(True)
    sum(t.square().mean() for t in model.taps(x2).values()).backward()
    assert torch.allclose(x2.grad * 1, x.grad[:1] * 2, rtol=1e-4, atol=1e-8)
