"""Scheme C: attribute preservation (3DDFA_V2 pose/expression, analytic illumination), diversity, hierarchy."""

import importlib.util
import math
import os

import pytest
import torch
from torch import nn

from mia_app.assets import AssetError
from mia_app.losses.attributes import (
    AttributeLoss,
    AttributePredictors,
    DiversityLoss,
    HierarchicalPerceptionLoss,
    illumination_descriptor,
    load_attribute_predictors,
)
from mia_app.losses.base import AttackContext


@pytest.fixture(scope="module", autouse=True)
def _threads():
    # conftest pins 2 threads; on a loaded 2-core box that makes 3DDFA's depthwise convolutions ~20× slower
    # than one thread. Honour MIA_THREADS for this module and restore the setting afterwards.
    n = int(os.environ.get("MIA_THREADS", "0"))
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    yield
    torch.set_num_threads(old)


def make_ctx(x_hat, x_src=None, y=None, c=None, **models):
    n = len(x_hat)
    return AttackContext(
        x_hat=x_hat, x_src=x_hat.detach() if x_src is None else x_src, c=torch.zeros(n, 4) if c is None else c,
        y=torch.zeros(n, dtype=torch.long) if y is None else torch.as_tensor(y), stage=1, step=0, models=models,
    )


def _grid(size: int) -> torch.Tensor:
    return torch.linspace(-1 + 1 / size, 1 - 1 / size, size)


# ----------------------------------------------------------------------------------------------------
# illumination (analytic)
# ----------------------------------------------------------------------------------------------------


def test_illumination_recovers_a_linear_lighting_field():
    u = _grid(32)[None, :].expand(32, 32)
    v = _grid(32)[:, None].expand(32, 32)
    lum = 0.5 + 0.2 * u - 0.1 * v  # gray image, brighter on the right and at the top
    x = (2 * lum - 1).expand(1, 3, 32, 32)
    a, b, c = illumination_descriptor(x)[0].tolist()
    assert (a, b, c) == pytest.approx((0.5, 0.2, -0.1), abs=1e-5)
    flipped = illumination_descriptor(x.flip(-1))[0]
    assert flipped[1].item() == pytest.approx(-0.2, abs=1e-5)  # a left-right flip reverses the gradient
    uniform = illumination_descriptor(torch.full((2, 3, 32, 32), 0.2))
    torch.testing.assert_close(uniform, torch.tensor([[0.6, 0.0, 0.0]] * 2), atol=1e-5, rtol=0)
    # colour enters through luminance: pure green is brighter than pure blue
    green, blue = -torch.ones(1, 3, 8, 8), -torch.ones(1, 3, 8, 8)
    green[:, 1], blue[:, 2] = 1.0, 1.0
    assert illumination_descriptor(green)[0, 0].item() == pytest.approx(0.587, abs=1e-5)
    assert illumination_descriptor(blue)[0, 0].item() == pytest.approx(0.114, abs=1e-5)


# ----------------------------------------------------------------------------------------------------
# AttributeLoss with a fake predictor (hand-computed) and with the real 3DDFA_V2
# ----------------------------------------------------------------------------------------------------


class FakePredictors(nn.Module):
    """Reads attributes straight off a 3×2×1 image: pose 2-d, expression 2-d, illumination 1-d, age 1-d."""

    def forward(self, x):
        f = x.flatten(1)
        return {"pose": f[:, 0:2], "expression": f[:, 2:4], "illumination": f[:, 4:5], "age": f[:, 5:6]}


def test_attribute_loss_hand_computed():
    x_src = torch.zeros(2, 3, 2, 1)
    x_hat = torch.tensor([[0.2, -0.4, 0.0, 0.6, 0.5, -1.0], [0.0] * 6]).view(2, 3, 2, 1).requires_grad_(True)
    loss = AttributeLoss()
    ctx = make_ctx(x_hat, x_src, attributes=FakePredictors())
    value = loss(ctx)
    # 0.3 · mean(0.2, 0.4) + 0.3 · mean(0, 0.6) + 0.2 · 0.5 + 0.1 (any other attribute) · 1.0
    expected = 0.3 * 0.3 + 0.3 * 0.3 + 0.2 * 0.5 + 0.1 * 1.0
    torch.testing.assert_close(value, torch.tensor([expected, 0.0]))
    value.sum().backward()
    assert x_hat.grad.abs().sum() > 0
    # overriding weights, and naming an attribute the predictor does not produce
    value = AttributeLoss(weights={"age": 1.0, "pose": 0.0})(make_ctx(x_hat, x_src, attributes=FakePredictors()))
    assert value[0].item() == pytest.approx(0.3 * 0.3 + 0.2 * 0.5 + 1.0)
    with pytest.raises(ValueError, match="gender"):
        AttributeLoss(weights={"gender": 0.5})(make_ctx(x_hat, x_src, attributes=FakePredictors()))


def test_attribute_loss_errors():
    loss = AttributeLoss(predictors=AttributePredictors())  # illumination only: no asset needed
    with pytest.raises(ValueError, match="N×3×H×W"):
        loss(make_ctx(torch.zeros(2, 1, 8, 8)))
    with pytest.raises(ValueError, match="differ in shape"):
        loss(make_ctx(torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 16, 16)))
    x = torch.zeros(2, 3, 8, 8)
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        loss(make_ctx(x, torch.zeros(2, 3, 8, 8)))
    with pytest.raises(ValueError, match=">= 0"):
        AttributeLoss(weights={"pose": -1.0})
    with pytest.raises(ValueError, match="mean and std"):
        AttributePredictors(tddfa=nn.Identity())


@pytest.fixture(scope="module")
def predictors():
    try:
        return load_attribute_predictors("cpu")
    except AssetError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def faces():
    """Eight SynthID-style faces, 32 px in [-1, 1] (the benchmark's DCGAN, area-downsampled)."""
    try:
        from mia_app.models.dcgan import load_dcgan

        generator = load_dcgan()
    except AssetError as err:
        pytest.skip(str(err))
    z = torch.randn(8, 100, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return nn.functional.adaptive_avg_pool2d(generator(z), 32)


def test_real_predictors_pose_flip_and_self_loss(predictors, faces):
    assert load_attribute_predictors("cpu") is predictors  # cached per device
    assert not any(p.requires_grad for p in predictors.parameters())
    out = predictors(faces)
    assert out["pose"].shape == (8, 6) and out["expression"].shape == (8, 10) and out["illumination"].shape == (8, 3)
    flipped = predictors(faces.flip(-1))
    yaw, yaw_flipped = out["pose"][:, 0], flipped["pose"][:, 0]
    turned = yaw.abs().argmax()
    assert yaw[turned].abs() > math.radians(10)  # some faces are clearly turned ...
    assert torch.sign(yaw_flipped[turned]) == -torch.sign(yaw[turned])  # ... and the mirror image turns the other way
    assert (out["pose"] - flipped["pose"]).abs().mean() > 0.05
    # the loss of an image against itself is exactly 0; against its mirror image it is not
    loss = AttributeLoss()
    x = faces.clone().requires_grad_(True)
    assert loss(make_ctx(x, faces, attributes=predictors)).abs().max().item() == 0.0
    value = loss(make_ctx(x, faces.flip(-1), attributes=predictors))
    assert value.shape == (8,) and (value > 0).all()
    value.sum().backward()  # differentiable through the frozen 3DDFA to the input
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_real_predictors_see_a_brightness_gradient(predictors, faces):
    ramp = torch.linspace(-0.4, 0.4, 32).view(1, 1, 1, 32)  # darker left, brighter right
    lit = (faces + ramp).clamp(-1, 1)
    base, relit = predictors(faces)["illumination"], predictors(lit)["illumination"]
    assert (relit[:, 1] - base[:, 1] > 0.1).all()  # horizontal gradient rises for every face
    assert (relit[:, 2] - base[:, 2]).abs().max() < 0.02  # vertical gradient barely moves


# ----------------------------------------------------------------------------------------------------
# DiversityLoss
# ----------------------------------------------------------------------------------------------------


class ReadEmbedding(nn.Module):
    """Identity 'encoder' for N×D×1×1 inputs: the embedding is the input itself (not normalised)."""

    def forward(self, x):
        return x.flatten(1)


def _unit(cos):
    return [cos, math.sqrt(1 - cos**2), 0.0]


def test_diversity_hand_computed_and_bounded():
    e = torch.tensor([_unit(1.0), _unit(0.8), _unit(0.3), [0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    y = [0, 0, 1, 2, 2, 2]
    x = e.view(6, 3, 1, 1).clone().requires_grad_(True)
    loss = DiversityLoss(target_variance=0.5)
    value = loss(make_ctx(x, y=y, id_encoder=ReadEmbedding()))
    # class 0: v = 1 - cos = 0.2 -> 0.3 each; class 1: singleton -> 0; class 2: identical -> v = 0 -> 0.5 each
    torch.testing.assert_close(value, torch.tensor([0.3, 0.3, 0.0, 0.5, 0.5, 0.5]))
    assert (value >= 0).all() and (value <= 0.5).all()
    value.sum().backward()
    assert x.grad[:2].abs().sum() > 0 and x.grad[2].abs().sum() == 0
    # embeddings are normalised: scaling changes nothing
    torch.testing.assert_close(loss(make_ctx(x.detach() * 7, y=y, id_encoder=ReadEmbedding())), value.detach())
    # spread-out candidates (three orthogonal directions, v = 1) pay nothing: the hinge is silent
    spread = torch.eye(3).view(3, 3, 1, 1)
    assert loss(make_ctx(spread, y=[4, 4, 4], id_encoder=ReadEmbedding())).abs().max() == 0


def test_diversity_group_size_does_not_bias_the_variance():
    # a pair and a triple, both with pairwise cosine 0.5: the same variance 0.5 (the biased 1 - ||mean||^2
    # would give 0.25 for the pair and 0.33 for the triple)
    triple = [[1.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]
    e = torch.tensor(triple + triple[:2])
    ctx = make_ctx(e.view(5, 3, 1, 1), y=[1, 1, 1, 2, 2], id_encoder=ReadEmbedding())
    value = DiversityLoss(target_variance=0.8)(ctx)
    torch.testing.assert_close(value, torch.full((5,), 0.3))


def test_diversity_on_perceptual_features_and_errors():
    class FakeBackbone(nn.Module):
        def taps(self, x):
            return {"early": x, "mid": x, "deep": x}

    x = torch.tensor([_unit(1.0), _unit(0.8)]).view(2, 3, 1, 1)
    value = DiversityLoss(0.5, features="perc")(make_ctx(x, y=[3, 3], perceptual=FakeBackbone()))
    torch.testing.assert_close(value, torch.tensor([0.3, 0.3]))
    nan = x.clone()
    nan[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        DiversityLoss()(make_ctx(nan, y=[3, 3], id_encoder=ReadEmbedding()))
    with pytest.raises(ValueError, match="y must have shape"):
        DiversityLoss()(make_ctx(x, y=[3, 3, 3], id_encoder=ReadEmbedding()))
    for kwargs in ({"target_variance": 0.0}, {"target_variance": 3.0}, {"features": "pixels"}):
        with pytest.raises(ValueError):
            DiversityLoss(**kwargs)


# ----------------------------------------------------------------------------------------------------
# HierarchicalPerceptionLoss
# ----------------------------------------------------------------------------------------------------


class TapBackbone(nn.Module):
    """early = deep = the image; mid = a constant (distance 0), so only early and deep weights show."""

    def taps(self, x):
        return {"early": x, "mid": torch.ones_like(x), "deep": x}


def test_hierarchical_perception_weights():
    loss = HierarchicalPerceptionLoss()
    assert loss.name == "perc" and loss.tap_weights == {"early": 0.2, "mid": 0.5, "deep": 0.3}
    x_hat = torch.tensor([[1.0, 0.0, 0.0]]).view(1, 3, 1, 1).requires_grad_(True)
    x_src = torch.tensor([[0.0, 1.0, 0.0]]).view(1, 3, 1, 1)
    value = loss(make_ctx(x_hat, x_src, perceptual=TapBackbone()))
    # orthogonal unit features: squared distance 2 on early and deep -> 0.2·2 + 0.5·0 + 0.3·2
    assert value.item() == pytest.approx(1.0, abs=1e-6)
    value.sum().backward()
    assert x_hat.grad.abs().sum() > 0
    custom = HierarchicalPerceptionLoss(tap_weights={"early": 1.0, "mid": 0.0, "deep": 0.0})
    assert custom(make_ctx(x_hat.detach(), x_src, perceptual=TapBackbone())).item() == pytest.approx(2.0, abs=1e-6)
    with pytest.raises(ValueError, match="backend"):
        HierarchicalPerceptionLoss(backend="vgg")


@pytest.mark.skipif(importlib.util.find_spec("lpips") is not None, reason="lpips is installed")
def test_lpips_backend_import_guard():
    with pytest.raises(ImportError, match="pip install lpips"):
        HierarchicalPerceptionLoss(backend="lpips")
