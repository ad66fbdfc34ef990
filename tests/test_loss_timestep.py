"""Scheme A: timestep weights (convention: t = T-1 pure noise, t = 0 clean) and the cosine eps-loss."""

import math
from types import SimpleNamespace

import pytest
import torch

from mia_app.losses.base import AttackContext
from mia_app.losses.prior import PriorScoreLoss, eps_distance
from mia_app.losses.timestep import SCHEDULES, TimestepWeight, denoising_progress, timestep_weight

T = 1000
ALL_T = torch.arange(T)


def test_progress_convention():
    p = denoising_progress(torch.tensor([T - 1, 0, (T - 1) // 2]), T)
    # pure noise (t = T-1) is p = 0, the clean end (t = 0) is p = 1
    torch.testing.assert_close(p, torch.tensor([0.0, 1.0, 1 - 499 / 999]))


@pytest.mark.parametrize("schedule", ["adaptive", "linear", "cosine"])
def test_low_noise_gets_larger_weight(schedule):
    w = timestep_weight(schedule)(ALL_T, T)
    assert w.shape == (T,) and w.dtype == torch.float32
    # t descending = noise falling = p rising: the weight never decreases ...
    by_progress = w.flip(0)
    assert (by_progress[1:] >= by_progress[:-1] - 1e-6).all()
    # ... and the clean end weighs strictly more than the pure-noise end
    assert w[0] > w[T - 1]
    assert w[0] == pytest.approx(1.5) and w[T - 1] == pytest.approx(0.5)
    assert w.min() >= 0.5 - 1e-6 and w.max() <= 1.5 + 1e-6


def test_adaptive_bands_are_20_percent_each():
    w = timestep_weight("adaptive")(ALL_T, T)
    assert (w == 0.5).sum() == 200 and (w == 1.5).sum() == 200 and (w == 1.0).sum() == 600
    assert (w[T - 200 :] == 0.5).all()  # highest-noise 20%: t in [800, 999]
    assert (w[:200] == 1.5).all()  # lowest-noise 20%: t in [0, 199]


def test_linear_values():
    w = timestep_weight("linear")(torch.tensor([999, 0, 333]), T)
    torch.testing.assert_close(w, torch.tensor([0.5, 1.5, 0.5 + 1 - 333 / 999]))


def test_cosine_true_range_is_half_to_one_and_a_half():
    w = timestep_weight("cosine")(ALL_T, T)
    # the seed's comment said [0.5, 1.0]; 0.5 + 0.5 (1 - cos(pi p)) spans [0.5, 1.5]
    assert w.min().item() == pytest.approx(0.5) and w.max().item() == pytest.approx(1.5)
    assert (w > 1.0).sum() > 400
    mid = timestep_weight("cosine")(torch.tensor([0]), 3)  # T = 3: t = 0 is p = 1
    assert mid.item() == pytest.approx(1.5)
    p_half = timestep_weight("cosine")(torch.tensor([1]), 3)  # p = 0.5 -> 0.5 + 0.5 (1 - cos(pi/2)) = 1.0
    assert p_half.item() == pytest.approx(1.0)
    p = 0.25
    t = torch.tensor([round((1 - p) * 4)])  # T = 5: t = 3 -> p = 0.25
    assert timestep_weight("cosine")(t, 5).item() == pytest.approx(0.5 + 0.5 * (1 - math.cos(math.pi * p)))


def test_bad_input():
    with pytest.raises(ValueError, match="unknown timestep schedule"):
        timestep_weight("sigmoid")
    fn = timestep_weight("linear")
    with pytest.raises(ValueError, match=r"\[0, T-1\]"):
        fn(torch.tensor([T]), T)  # t = T is outside diffusers' range
    with pytest.raises(ValueError, match=r"\[0, T-1\]"):
        fn(torch.tensor([-1]), T)
    with pytest.raises(ValueError, match="1-D"):
        fn(torch.zeros(2, 2, dtype=torch.long), T)
    with pytest.raises(ValueError, match="T must be"):
        fn(torch.tensor([0]), 1)
    with pytest.raises(ValueError, match="NaN"):
        fn(torch.tensor([float("nan")]), T)


def test_weight_object():
    assert set(SCHEDULES) == {"adaptive", "linear", "cosine", "constant"}
    assert timestep_weight("cosine") == TimestepWeight("cosine")
    assert (timestep_weight("constant")(ALL_T, T) == 1).all()
    assert "cosine" in repr(timestep_weight("cosine"))


def test_cosine_eps_loss_is_flattened_per_sample():
    # 2 channels × 2×2 pixels. The top-left pixel carries most of the energy (3 along channel 0) and the
    # prediction puts it on channel 1; the other three pixels match exactly.
    eps = torch.zeros(1, 2, 2, 2)
    eps[0, 0, 0, 0], eps[0, 0, 0, 1] = 3.0, 1.0
    eps[0, 1, 1, :] = 1.0
    eps_hat = eps.clone()
    eps_hat[0, 0, 0, 0], eps_hat[0, 1, 0, 0] = 0.0, 3.0
    # Flattened per sample: dot = 1 + 1 + 1 = 3, |eps|^2 = |eps_hat|^2 = 9 + 1 + 1 + 1 = 12 -> 1 - 3/12.
    d = eps_distance(eps, eps_hat, "cosine")
    assert d.shape == (1,)
    assert d.item() == pytest.approx(0.75)
    # The seed's dim=1 (cosine across channels, per pixel) sees 1 bad pixel of 4 and returns an N×H×W map
    # whose mean is 0.25: both the shape and the value differ.
    across_channels = 1 - torch.nn.functional.cosine_similarity(eps, eps_hat, dim=1)
    assert across_channels.shape == (1, 2, 2) and across_channels.mean().item() == pytest.approx(0.25)
    # a per-sample value must not depend on the other samples, and must reduce a sample to one number
    batch = torch.cat([eps, -eps])
    torch.testing.assert_close(eps_distance(batch, torch.cat([eps_hat, eps_hat]), "cosine")[0], d[0])
    # the per-channel version would give a different answer whenever pixels disagree in direction
    eps2 = torch.randn(3, 4, 5, 5, generator=torch.Generator().manual_seed(0))
    hat2 = eps2 + torch.randn(3, 4, 5, 5, generator=torch.Generator().manual_seed(1))
    flat = eps_distance(eps2, hat2, "cosine")
    per_pixel = 1 - torch.nn.functional.cosine_similarity(eps2, hat2, dim=1).flatten(1).mean(1)
    assert flat.shape == (3,) and not torch.allclose(flat, per_pixel, atol=1e-3)
    a, b = eps2.flatten(1), hat2.flatten(1)
    expected = 1 - (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))
    torch.testing.assert_close(flat, expected)


class _FakePrior(torch.nn.Module):
    """Records the timesteps and predicts a fixed fraction of the noisy input (enough for a finite loss)."""

    def __init__(self):
        super().__init__()
        betas = torch.linspace(1e-4, 0.02, T)
        self.scheduler = SimpleNamespace(
            config=SimpleNamespace(num_train_timesteps=T), alphas_cumprod=torch.cumprod(1 - betas, 0)
        )
        self.seen: list[torch.Tensor] = []

    def forward(self, x_t, t, c):
        self.seen.append(t.clone())
        return 0.5 * x_t


def _ctx(x_hat, seed):
    return AttackContext(
        x_hat=x_hat, x_src=x_hat.detach(), c=torch.zeros(len(x_hat), 4), y=torch.zeros(len(x_hat), dtype=torch.long),
        stage=1, step=0, models={"prior": _FakePrior()}, extras={"generator": torch.Generator().manual_seed(seed)},
    )


@pytest.mark.parametrize("form", ["mse", "cosine"])
def test_prior_loss_is_multiplied_by_the_weight_per_sample(form):
    x = torch.rand(6, 3, 8, 8, requires_grad=True)
    plain_ctx, weighted_ctx = _ctx(x, 3), _ctx(x, 3)
    plain = PriorScoreLoss(form=form)(plain_ctx)
    weighted = PriorScoreLoss(form=form, timestep_weight=timestep_weight("cosine"))(weighted_ctx)
    t = weighted_ctx.models["prior"].seen[0]
    torch.testing.assert_close(weighted, plain * timestep_weight("cosine")(t, T))
    weighted.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
