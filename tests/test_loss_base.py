"""The baseline loss terms: hand-computed values, gradient flow to what the attack optimises, input errors.

Every term returns N per-sample values (checked here) and carries a ``name``. Stage 1 optimises c_y, which
reaches the losses through x̂ (and c); stage 2 optimises the LoRA weights of the prior.
"""

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from mia_app.losses.attributes import HierarchicalPerceptionLoss
from mia_app.losses.base import AttackContext
from mia_app.losses.classification import CrossEntropyClsLoss, MaxMarginClsLoss
from mia_app.losses.composer import LossComposer
from mia_app.losses.identity import IdentityCosineLoss
from mia_app.losses.perceptual import PerceptualLoss
from mia_app.losses.prior import PriorPreservationLoss, PriorScoreLoss
from mia_app.losses.regularization import LoraWeightPenalty
from mia_app.losses.timestep import timestep_weight

T = 10
ALPHA_BAR = 0.64  # constant over t: x_t = 0.8·x0 + 0.6·eps


def make_ctx(x_hat, x_src=None, c=None, y=None, extras=None, **models):
    n = len(x_hat)
    return AttackContext(
        x_hat=x_hat, x_src=x_hat.detach().clone() if x_src is None else x_src,
        c=torch.zeros(n, 4) if c is None else c,
        y=torch.zeros(n, dtype=torch.long) if y is None else torch.as_tensor(y),
        stage=1, step=0, models=models, extras=extras or {},
    )


def pixels(*rows):
    """N×3×1×1 images from N RGB triples (T and E_id below read these as logits / embeddings)."""
    return torch.tensor(rows, dtype=torch.float32).view(len(rows), 3, 1, 1)


class PixelTarget(nn.Module):
    """T(x) = the first ``k`` pixel values: the logits are whatever the test writes into x̂."""

    def __init__(self, k: int = 3):
        super().__init__()
        self.k = k

    def forward(self, x):
        return x.flatten(1)[:, : self.k]


class PixelEncoder(nn.Module):
    def forward(self, x):
        return x.flatten(1)


class TapBackbone(nn.Module):
    """early = deep = the image; mid = a constant (distance 0), so only early and deep weights show."""

    def taps(self, x):
        return {"early": x, "mid": torch.ones_like(x), "deep": x}


class FakePrior(nn.Module):
    """eps_hat = scale·x_t + mean(c): differentiable in x_t, c and ``scale`` (a stand-in LoRA weight)."""

    def __init__(self, scale: float = 0.5, code_dim: int = 4):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(scale))
        self.code_dim = code_dim
        self.scheduler = SimpleNamespace(
            config=SimpleNamespace(num_train_timesteps=T), alphas_cumprod=torch.full((T,), ALPHA_BAR)
        )

    def forward(self, x_t, t, c):
        return self.scale * x_t + c.mean(1).view(-1, 1, 1, 1)


def replay_draws(seed: int, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """The (t, eps) the denoising loss draws from a generator seeded with ``seed`` (default t_range)."""
    g = torch.Generator().manual_seed(seed)
    lo, hi = int(0.02 * (T - 1)), int(0.98 * (T - 1))
    t = torch.randint(lo, hi + 1, (shape[0],), generator=g)
    return t, torch.randn(shape, generator=g)


# ----------------------------------------------------------------------------------------------------
# cls
# ----------------------------------------------------------------------------------------------------


def test_cross_entropy_hand_computed_and_gradient():
    x = pixels([0.0, 0.0, 0.0], [math.log(2), 0.0, 0.0]).requires_grad_(True)
    loss = CrossEntropyClsLoss()
    value = loss(make_ctx(x, y=[1, 0], target=PixelTarget()))
    # uniform over 3 classes -> ln 3; softmax(ln 2, 0, 0)_0 = 2/4 -> ln 2
    assert loss.name == "cls" and value.shape == (2,)
    torch.testing.assert_close(value, torch.tensor([math.log(3), math.log(2)]))
    value.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_max_margin_hand_computed_and_gradient():
    x = pixels([1.0, 3.0, 2.0], [3.0, 1.0, 2.0], [3.0, 1.0, 2.0]).requires_grad_(True)
    ctx = lambda: make_ctx(x, y=[0, 0, 2], target=PixelTarget())  # noqa: E731
    raw = MaxMarginClsLoss()
    value = raw(ctx())
    # -l_y + max_{j != y} l_j: -1 + 3, -3 + 2, -2 + 3
    assert raw.name == "cls" and not raw.non_negative and value.shape == (3,)
    torch.testing.assert_close(value, torch.tensor([2.0, -1.0, 1.0]))
    hinge = MaxMarginClsLoss(hinge_margin=0.5)
    torch.testing.assert_close(hinge(ctx()), torch.tensor([2.5, 0.0, 1.5]))
    assert hinge.non_negative
    value.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("loss", [CrossEntropyClsLoss(), MaxMarginClsLoss(), MaxMarginClsLoss(hinge_margin=1.0)])
def test_cls_errors(loss):
    x = pixels([0.0, 1.0, 2.0], [2.0, 1.0, 0.0])
    target = PixelTarget()
    with pytest.raises(ValueError, match=r"must lie in \[0, 3\)"):
        loss(make_ctx(x, y=[0, 3], target=target))
    with pytest.raises(ValueError, match=r"must lie in \[0, 3\)"):
        loss(make_ctx(x, y=[-1, 0], target=target))
    with pytest.raises(ValueError, match="integer tensor of shape"):
        loss(make_ctx(x, y=[0], target=target))  # batch mismatch
    with pytest.raises(ValueError, match="integer tensor of shape"):
        loss(make_ctx(x, y=torch.tensor([0.0, 1.0]), target=target))
    nan = x.clone()
    nan[1, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        loss(make_ctx(nan, y=[0, 1], target=target))
    with pytest.raises(ValueError, match="batch size"):
        loss(make_ctx(x, y=[0, 1], target=lambda x: x.flatten(1)[:1, :3]))
    with pytest.raises(ValueError, match="N×K"):
        loss(make_ctx(x, y=[0, 1], target=lambda x: x.flatten()))


def test_max_margin_needs_two_classes():
    with pytest.raises(ValueError, match="at least 2 classes"):
        MaxMarginClsLoss()(make_ctx(pixels([1.0, 0.0, 0.0]), y=[0], target=PixelTarget(1)))
    with pytest.raises(ValueError, match="hinge_margin"):
        MaxMarginClsLoss(hinge_margin=-0.1)


# ----------------------------------------------------------------------------------------------------
# id
# ----------------------------------------------------------------------------------------------------


def test_identity_cosine_hand_computed_and_gradient():
    x = pixels([1.0, 0.0, 0.0], [3.0, 4.0, 0.0], [1.0, 0.0, 0.0]).requires_grad_(True)
    c = torch.tensor([[0.0, 2.0, 0.0], [6.0, 8.0, 0.0], [-1.0, 0.0, 0.0]], requires_grad=True)
    loss = IdentityCosineLoss()
    value = loss(make_ctx(x, c=c, id_encoder=PixelEncoder()))
    # orthogonal -> 1, parallel (any norms) -> 0, opposite -> 2
    assert loss.name == "id" and value.shape == (3,)
    torch.testing.assert_close(value, torch.tensor([1.0, 0.0, 2.0]))
    value.sum().backward()
    for t in (x, c):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


def test_identity_cosine_errors():
    loss = IdentityCosineLoss()
    x = pixels([1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="has dimension 4, expected 3"):
        loss(make_ctx(x, c=torch.ones(2, 4), id_encoder=PixelEncoder()))  # wrong code dimension
    with pytest.raises(ValueError, match="batch size 1, expected 2"):
        loss(make_ctx(x, c=torch.ones(1, 3), id_encoder=PixelEncoder()))
    with pytest.raises(ValueError, match="float N×D"):
        loss(make_ctx(x, c=torch.ones(2, 3, 1), id_encoder=PixelEncoder()))
    with pytest.raises(ValueError, match="c contains NaN"):
        loss(make_ctx(x, c=torch.tensor([[1.0, 0.0, float("nan")], [0.0, 1.0, 0.0]]), id_encoder=PixelEncoder()))
    with pytest.raises(ValueError, match=r"E_id\(x_hat\) contains NaN"):
        loss(make_ctx(x * float("nan"), c=torch.ones(2, 3), id_encoder=PixelEncoder()))


# ----------------------------------------------------------------------------------------------------
# perc (baseline, and scheme C's hierarchical version, which shares the checks)
# ----------------------------------------------------------------------------------------------------


def test_perceptual_hand_computed_and_gradient():
    # Two 1×2 images. Sample 0: both pixels orthogonal to the source's; sample 1: only the second one.
    x_src = torch.zeros(2, 3, 1, 2)
    x_src[:, 1] = 1.0
    x_hat = torch.zeros(2, 3, 1, 2)
    x_hat[0, 0] = 1.0
    x_hat[1, 1, 0, 0], x_hat[1, 0, 0, 1] = 1.0, 1.0
    x_hat.requires_grad_(True)
    x_src.requires_grad_(True)  # only to show that no gradient reaches the source
    loss = PerceptualLoss()
    value = loss(make_ctx(x_hat, x_src, perceptual=TapBackbone()))
    # unit features: squared distance 2 per orthogonal pixel, averaged over space, on early and deep (1/3 each)
    assert loss.name == "perc" and value.shape == (2,)
    torch.testing.assert_close(value, torch.tensor([2 / 3 * 2.0, 2 / 3 * 1.0]))
    value.sum().backward()
    assert x_hat.grad is not None and x_hat.grad.abs().sum() > 0
    assert x_src.grad is None  # the source is data


PERC_LOSSES = [PerceptualLoss, HierarchicalPerceptionLoss]


@pytest.mark.parametrize("cls", PERC_LOSSES)
def test_perceptual_rejects_mismatched_images(cls):
    loss, backbone = cls(), TapBackbone()
    with pytest.raises(ValueError, match="differ in shape"):
        loss(make_ctx(torch.zeros(2, 3, 32, 32), torch.zeros(2, 3, 64, 64), perceptual=backbone))
    with pytest.raises(ValueError, match="differ in shape"):
        loss(make_ctx(torch.zeros(2, 3, 8, 8), torch.zeros(1, 3, 8, 8), perceptual=backbone))  # would broadcast
    with pytest.raises(ValueError, match="N×3×H×W"):
        loss(make_ctx(torch.zeros(3, 8, 8), torch.zeros(3, 8, 8), perceptual=backbone))
    with pytest.raises(ValueError, match="N×3×H×W"):
        loss(make_ctx(torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8), perceptual=backbone))
    nan = torch.zeros(2, 3, 8, 8)
    nan[1, 2, 3, 4] = float("nan")
    with pytest.raises(ValueError, match="x_hat contains NaN"):
        loss(make_ctx(nan, torch.zeros(2, 3, 8, 8), perceptual=backbone))
    with pytest.raises(ValueError, match="x_src contains NaN"):
        loss(make_ctx(torch.zeros(2, 3, 8, 8), nan.clone(), perceptual=backbone))


def test_perceptual_weight_and_tap_errors():
    with pytest.raises(ValueError, match=">= 0"):
        PerceptualLoss({"early": -1.0})
    with pytest.raises(ValueError, match=">= 0"):
        HierarchicalPerceptionLoss({"early": float("nan")})
    with pytest.raises(ValueError, match="unknown tap 'pixels'"):
        PerceptualLoss({"pixels": 1.0})(make_ctx(torch.zeros(1, 3, 2, 2), perceptual=TapBackbone()))


# ----------------------------------------------------------------------------------------------------
# prior (stage 1 score, stage 2 preservation)
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["mse", "cosine"])
def test_prior_score_hand_computed(form):
    x = torch.zeros(2, 3, 2, 2)
    ctx = make_ctx(x, c=torch.zeros(2, 4), extras={"generator": torch.Generator().manual_seed(0)},
                   prior=FakePrior(0.5))
    loss = PriorScoreLoss(form=form)
    value = loss(ctx)
    # x0 = 0 and c = 0: x_t = 0.6·eps, eps_hat = 0.3·eps -> mse 0.49·mean(eps²); cosine of parallel maps 0
    _, eps = replay_draws(0, x.shape)
    expected = 0.49 * eps.square().flatten(1).mean(1) if form == "mse" else torch.zeros(2)
    assert loss.name == "prior" and value.shape == (2,)
    torch.testing.assert_close(value, expected, atol=1e-6, rtol=1e-5)
    assert "tw_prior" not in ctx.logs  # no timestep weight: nothing to report


def test_prior_score_timestep_weight_is_applied_and_logged():
    x = torch.zeros(3, 3, 2, 2)
    make = lambda: make_ctx(x, c=torch.zeros(3, 4), extras={"generator": torch.Generator().manual_seed(1)},  # noqa: E731
                            prior=FakePrior(0.5))
    plain = PriorScoreLoss(form="mse")(make())
    ctx = make()
    weighted = PriorScoreLoss(form="mse", timestep_weight=timestep_weight("linear"))(ctx)
    t, _ = replay_draws(1, x.shape)
    w = 0.5 + (1 - t.float() / (T - 1))  # linear: 0.5 + progress
    torch.testing.assert_close(weighted, plain * w)
    assert ctx.logs["tw_prior"] == pytest.approx(w.mean().item())
    composer = LossComposer([PriorScoreLoss(form="mse", timestep_weight=timestep_weight("linear"))], {"prior": 1.0})
    _, _, logs = composer(make())
    assert logs["tw_prior"] == pytest.approx(w.mean().item()) and "L_prior" in logs


def test_prior_score_gradient_reaches_image_and_code():
    x = torch.randn(2, 3, 2, 2, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    c = torch.randn(2, 4, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    value = PriorScoreLoss(form="mse")(make_ctx(x, c=c, prior=FakePrior(0.5)))
    value.sum().backward()
    for t in (x, c):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


def test_prior_score_errors():
    loss, prior = PriorScoreLoss(), FakePrior()
    x = torch.zeros(2, 3, 2, 2)
    with pytest.raises(ValueError, match="has dimension 5, expected 4"):
        loss(make_ctx(x, c=torch.zeros(2, 5), prior=prior))  # wrong code dimension
    with pytest.raises(ValueError, match="batch size 1, expected 2"):
        loss(make_ctx(x, c=torch.zeros(1, 4), prior=prior))
    with pytest.raises(ValueError, match="x0 contains NaN"):
        loss(make_ctx(x * float("nan"), c=torch.zeros(2, 4), prior=prior))
    with pytest.raises(ValueError, match="c contains NaN"):
        loss(make_ctx(x, c=torch.full((2, 4), float("nan")), prior=prior))
    with pytest.raises(ValueError, match="N×3×H×W"):
        loss(make_ctx(torch.zeros(2, 1, 2, 2), c=torch.zeros(2, 4), prior=prior))


def test_prior_preservation_hand_computed_and_gradient_reaches_the_prior():
    x_pub, c_pub = torch.zeros(3, 3, 2, 2), torch.zeros(3, 4)
    prior = FakePrior(0.5)
    ctx = make_ctx(torch.zeros(2, 3, 2, 2), prior=prior,
                   extras={"generator": torch.Generator().manual_seed(2), "public_batch": (x_pub, c_pub)})
    loss = PriorPreservationLoss(form="mse")
    value = loss(ctx)
    _, eps = replay_draws(2, x_pub.shape)
    # the public batch's mean loss, one value per candidate x̂ (2 of them, not 3)
    assert loss.name == "prior" and value.shape == (2,)
    torch.testing.assert_close(value, (0.49 * eps.square().mean()).expand(2), atol=1e-6, rtol=1e-5)
    value.sum().backward()
    assert prior.scale.grad is not None and prior.scale.grad.abs() > 0  # stage 2 trains the prior's LoRA


def test_prior_preservation_errors():
    loss, prior = PriorPreservationLoss(), FakePrior()
    x = torch.zeros(2, 3, 2, 2)
    with pytest.raises(ValueError, match="public_batch"):
        loss(make_ctx(x, prior=prior))
    with pytest.raises(ValueError, match="batch size 2, expected 3"):
        loss(make_ctx(x, prior=prior, extras={"public_batch": (torch.zeros(3, 3, 2, 2), torch.zeros(2, 4))}))
    with pytest.raises(ValueError, match="has dimension 8, expected 4"):
        loss(make_ctx(x, prior=prior, extras={"public_batch": (torch.zeros(3, 3, 2, 2), torch.zeros(3, 8))}))
    bad = torch.zeros(3, 3, 2, 2)
    bad[0, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="x0 contains NaN or inf"):
        loss(make_ctx(x, prior=prior, extras={"public_batch": (bad, torch.zeros(3, 4))}))


# ----------------------------------------------------------------------------------------------------
# reg
# ----------------------------------------------------------------------------------------------------


def test_lora_penalty_hand_computed_and_gradient():
    params = [torch.tensor([1.0, 2.0], requires_grad=True), torch.tensor([[3.0]], requires_grad=True)]
    loss = LoraWeightPenalty()
    value = loss(make_ctx(torch.zeros(4, 3, 2, 2), extras={"lora_params": params}))
    # (1 + 4 + 9) / 3 weights, the same for every sample
    assert loss.name == "reg" and value.shape == (4,)
    torch.testing.assert_close(value, torch.full((4,), 14 / 3))
    value[0].backward()
    torch.testing.assert_close(params[0].grad, torch.tensor([2.0, 4.0]) / 3)
    torch.testing.assert_close(params[1].grad, torch.tensor([[6.0]]) / 3)


def test_lora_penalty_errors():
    loss, x = LoraWeightPenalty(), torch.zeros(2, 3, 2, 2)
    with pytest.raises(ValueError, match="stage 2 only"):
        loss(make_ctx(x))
    with pytest.raises(ValueError, match="stage 2 only"):
        loss(make_ctx(x, extras={"lora_params": []}))
    with pytest.raises(ValueError, match=r"lora_params\[1\] must be a non-empty float tensor"):
        loss(make_ctx(x, extras={"lora_params": [torch.ones(2), torch.ones(2, dtype=torch.long)]}))
    with pytest.raises(ValueError, match="NaN"):
        loss(make_ctx(x, extras={"lora_params": [torch.ones(2), torch.tensor([float("nan")])]}))
