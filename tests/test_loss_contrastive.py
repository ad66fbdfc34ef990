"""Scheme B3: the contrastive identity loss (hinge and ArcFace forms) and its negative bank."""

import io
import math

import pytest
import torch
from torch import nn

from mia_app.losses.base import AttackContext
from mia_app.losses.composer import LossComposer
from mia_app.losses.contrastive import ContrastiveIdentityLoss, NegativeBank, public_bank_label


class FlatLinear(nn.Module):
    """A fixed linear identity encoder: flatten the image, multiply by W (no normalisation on purpose)."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.register_buffer("weight", weight)

    def forward(self, x):
        return x.flatten(1) @ self.weight.T


def make_ctx(x_hat, c, y, encoder=None, **extras):
    encoder = encoder or FlatLinear(torch.eye(x_hat[0].numel()))
    return AttackContext(x_hat=x_hat, x_src=x_hat.detach(), c=c, y=torch.as_tensor(y), stage=1, step=0,
                         models={"id_encoder": encoder}, extras=extras)


def hand_bank() -> NegativeBank:
    """Class 1 at (0.8, 0.6, 0), class 2 at (0, 0, 1), public identity 0 at (-1, 0, 0)."""
    bank = NegativeBank(capacity=16, refresh_every=10, dim=3)
    bank.refresh(0, torch.tensor([[0.8, 0.6, 0.0], [0.0, 0.0, 1.0]]), torch.tensor([1, 2]),
                 torch.tensor([[-1.0, 0.0, 0.0]]), torch.tensor([0]))
    return bank


def hand_ctx(scale: float = 1.0, **extras):
    """Every sample has E_id(x̂) = (1, 0, 0); cos(ê, e_id) = 0.5, 0.5, 0.3, -0.95."""
    def unit(cos):
        return [cos, math.sqrt(1 - cos**2), 0.0]

    x_hat = torch.tensor([[1.0, 0.0, 0.0]] * 4).view(4, 3, 1, 1) * scale
    c = torch.tensor([unit(0.5), unit(0.5), unit(0.3), unit(-0.95)]) * scale
    return make_ctx(x_hat, c, [0, 1, 1, 0], **extras)


def test_hinge_hand_computed():
    loss = ContrastiveIdentityLoss(form="hinge", bank=hand_bank())
    ctx = hand_ctx()
    value = loss(ctx)
    # s0 (y=0): hardest negative is class 1 (cos 0.8): relu(0.4 + 0.8 - 0.5) = 0.7
    # s1 (y=1): class 1 is masked, hardest is class 2 (cos 0): relu(0.4 + 0 - 0.5) = 0
    # s2 (y=1): relu(0.4 + 0 - 0.3) = 0.1;  s3 (y=0): relu(0.4 + 0.8 + 0.95) = 2.15
    torch.testing.assert_close(value, torch.tensor([0.7, 0.0, 0.1, 2.15]))
    assert loss.margin == 0.4 and loss.name == "id_contrast"
    # the logged hardest-negative gaps cos(ê, e_id) - max_j cos(ê, n_j): -0.3, 0.5, 0.3, -1.75
    assert ctx.logs["b3_margin"] == pytest.approx(-1.25 / 4)
    assert ctx.logs["b3_margin_min"] == pytest.approx(-1.75)


def _arcface_reference(cos_y: float, negatives: list[float], s: float, m: float) -> float:
    theta = math.acos(cos_y)
    if theta + m <= math.pi - 1e-12 and cos_y > math.cos(math.pi - m):
        target = math.cos(theta + m)
    else:  # InsightFace's fallback: cos(theta) - sin(pi - m) * m
        target = cos_y - math.sin(math.pi - m) * m
    logits = [s * target] + [s * n for n in negatives]
    top = max(logits)
    return -(s * target - top - math.log(sum(math.exp(v - top) for v in logits)))


@pytest.mark.parametrize("scale", [64.0, 8.0])
def test_arcface_hand_computed_and_scale_is_used(scale):
    loss = ContrastiveIdentityLoss(form="arcface", scale=scale, bank=hand_bank())
    assert loss.margin == 0.5
    value = loss(hand_ctx())
    expected = [
        _arcface_reference(0.5, [0.8, 0.0, -1.0], scale, 0.5),
        _arcface_reference(0.5, [0.0, -1.0], scale, 0.5),  # class 1 masked for y = 1
        _arcface_reference(0.3, [0.0, -1.0], scale, 0.5),
        _arcface_reference(-0.95, [0.8, 0.0, -1.0], scale, 0.5),  # theta + m > pi: the fallback branch
    ]
    torch.testing.assert_close(value, torch.tensor(expected), rtol=1e-4, atol=1e-4)
    assert (value >= 0).all()


def test_arcface_scale_changes_the_value():
    bank = hand_bank()
    v64 = ContrastiveIdentityLoss(form="arcface", scale=64.0, bank=bank)(hand_ctx())
    v16 = ContrastiveIdentityLoss(form="arcface", scale=16.0, bank=bank)(hand_ctx())
    assert not torch.allclose(v64, v16)  # the seed ignored `scale`
    # where the loss is not saturated it grows with s (the margin is paid s times over)
    assert (v64[[0, 2, 3]] > v16[[0, 2, 3]]).all()


@pytest.mark.parametrize("form", ["hinge", "arcface"])
def test_embeddings_are_normalised(form):
    bank = hand_bank()
    loss = ContrastiveIdentityLoss(form=form, bank=bank)
    ref = loss(hand_ctx())
    torch.testing.assert_close(loss(hand_ctx(scale=7.0)), ref)  # ê and c scaled by 7: same cosines
    # an unnormalised bank (e.g. loaded from elsewhere) changes nothing either
    state = {k: v.clone() for k, v in bank.state_dict().items()}
    state["embeddings"] *= 7.0
    scaled_bank = NegativeBank(dim=3)
    scaled_bank.load_state_dict(state)
    torch.testing.assert_close(ContrastiveIdentityLoss(form=form, bank=scaled_bank)(hand_ctx()), ref)


@pytest.mark.parametrize("form", ["hinge", "arcface"])
def test_gradient_flows_to_image_and_code(form):
    gen = torch.Generator().manual_seed(0)
    encoder = FlatLinear(torch.randn(8, 3 * 4 * 4, generator=gen))
    x = torch.randn(4, 3, 4, 4, generator=gen, requires_grad=True)
    c = torch.randn(4, 8, generator=gen, requires_grad=True)
    negatives = torch.randn(6, 8, generator=gen, requires_grad=True)
    bank = NegativeBank(capacity=8, dim=8)
    bank.refresh(0, negatives, torch.tensor([0, 1, 2, 3, 4, 5]))
    loss = ContrastiveIdentityLoss(form=form, margin=1.5 if form == "hinge" else None)
    value = loss(make_ctx(x, c, [0, 1, 2, 2], encoder=encoder, negative_bank=bank))
    assert value.shape == (4,) and (value > 0).all()
    value.sum().backward()
    for t in (x, c):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0
    assert negatives.grad is None  # the bank is a constant


def test_composer_logs_l_id_contrast():
    composer = LossComposer([ContrastiveIdentityLoss(bank=hand_bank())], {"id_contrast": 1.0})
    total, _, logs = composer(hand_ctx())
    assert logs["L_id_contrast"] == pytest.approx((0.7 + 0.0 + 0.1 + 2.15) / 4)
    assert total.item() == pytest.approx(logs["L_id_contrast"])


def test_loss_errors():
    with pytest.raises(ValueError, match="needs a NegativeBank"):
        ContrastiveIdentityLoss()(hand_ctx())
    with pytest.raises(ValueError, match="empty"):
        ContrastiveIdentityLoss(bank=NegativeBank(dim=3))(hand_ctx())
    only_own = NegativeBank(dim=3)
    only_own.refresh(0, torch.tensor([[0.0, 1.0, 0.0]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="no negatives for classes"):
        ContrastiveIdentityLoss(bank=only_own)(make_ctx(torch.ones(1, 3, 1, 1), torch.ones(1, 3), [0]))
    ctx = hand_ctx()
    ctx.x_hat = ctx.x_hat.clone()
    ctx.x_hat[1, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        ContrastiveIdentityLoss(bank=hand_bank())(ctx)
    ctx = hand_ctx()
    ctx.c = ctx.c.clone()
    ctx.c[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        ContrastiveIdentityLoss(bank=hand_bank())(ctx)
    with pytest.raises(ValueError, match="dimension"):
        ContrastiveIdentityLoss(bank=hand_bank())(make_ctx(torch.ones(2, 3, 1, 1), torch.ones(2, 5), [0, 1]))
    with pytest.raises(ValueError, match="batch sizes"):
        ContrastiveIdentityLoss(bank=hand_bank())(make_ctx(torch.ones(2, 3, 1, 1), torch.ones(3, 3), [0, 1]))
    bank4 = NegativeBank(dim=4)
    bank4.refresh(0, torch.ones(1, 4), torch.tensor([5]))
    with pytest.raises(ValueError, match="bank dimension 4"):
        ContrastiveIdentityLoss(bank=bank4)(hand_ctx())  # 4-d negatives vs 3-d embeddings
    for kwargs in ({"form": "triplet"}, {"scale": 0.0}, {"form": "arcface", "margin": 2.0}, {"margin": -0.1}):
        with pytest.raises(ValueError):
            ContrastiveIdentityLoss(**kwargs)


def test_bank_refresh_schedule_and_capacity():
    gen = torch.Generator().manual_seed(1)
    codes, labels = torch.randn(12, 4, generator=gen), torch.arange(12)
    pub, pub_labels = torch.randn(10, 4, generator=gen), torch.arange(10)
    bank = NegativeBank(capacity=8, refresh_every=10, dim=4, seed=3)
    assert bank.due(0) and len(bank) == 0
    assert bank.refresh(0, codes, labels, pub, pub_labels)
    assert len(bank) == 8
    torch.testing.assert_close(bank.embeddings.norm(dim=1), torch.ones(8))
    first = bank.embeddings.clone()
    assert not bank.refresh(5, codes, labels, pub, pub_labels)  # not due: unchanged
    assert torch.equal(bank.embeddings, first)
    assert bank.refresh(10, codes, labels, pub, pub_labels)  # due again
    assert int(bank.last_refresh) == 10
    assert bank.refresh(2, codes, labels)  # a new stage restarting at step 0..: rebuild
    assert len(bank) == 8 and (bank.labels >= 0).all()  # only codes this time
    assert bank.refresh(3, codes[:2], labels[:2], force=True) and len(bank) == 2
    # the subset is reproducible: same seed and step, same choice
    other = NegativeBank(capacity=8, refresh_every=10, dim=4, seed=3)
    other.refresh(0, codes, labels, pub, pub_labels)
    assert torch.equal(other.embeddings, first)


def test_public_labels_never_collide_with_private_ids():
    bank = NegativeBank(dim=2)
    bank.refresh(0, torch.tensor([[1.0, 0.0]]), torch.tensor([0]), torch.tensor([[0.0, 1.0]]), torch.tensor([0]))
    assert bank.labels.tolist() == [0, -1]
    assert public_bank_label(torch.tensor([0, 5])).tolist() == [-1, -6]
    emb, mask = bank.negatives_for(torch.tensor([0, 1]))
    assert emb.shape == (2, 2, 2)
    # private class 0 is excluded for y = 0; public identity 0 is not the same person as private class 0
    assert mask.tolist() == [[False, True], [True, True]]


def test_bank_state_dict_round_trip():
    bank = hand_bank()
    buffer = io.BytesIO()
    torch.save(bank.state_dict(), buffer)
    buffer.seek(0)
    fresh = NegativeBank(dim=3)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    for name in ("embeddings", "labels", "last_refresh"):
        assert torch.equal(getattr(fresh, name), getattr(bank, name))
    # sizes may shrink as well as grow
    small = NegativeBank(dim=3)
    small.refresh(0, torch.ones(1, 3), torch.tensor([4]))
    fresh.load_state_dict(small.state_dict())
    assert len(fresh) == 1 and fresh.labels.tolist() == [4]
    # ... and the bank travels inside the loss (and so the composer) state
    loss = ContrastiveIdentityLoss(bank=hand_bank())
    restored = ContrastiveIdentityLoss(bank=NegativeBank(dim=3))
    restored.load_state_dict(loss.state_dict())
    torch.testing.assert_close(restored(hand_ctx()), loss(hand_ctx()))


def test_bank_refresh_errors():
    bank = NegativeBank(dim=3)
    with pytest.raises(ValueError, match="at least one"):
        bank.refresh(0)
    with pytest.raises(ValueError, match="NaN"):
        bank.refresh(0, torch.tensor([[float("nan"), 0.0, 0.0]]), torch.tensor([1]))
    with pytest.raises(ValueError, match=">= 0"):
        bank.refresh(0, torch.ones(1, 3), torch.tensor([-2]))
    with pytest.raises(ValueError, match="dimension"):
        bank.refresh(0, torch.ones(1, 4), torch.tensor([1]))
    with pytest.raises(ValueError, match="shape"):
        bank.refresh(0, torch.ones(2, 3), torch.tensor([1]))
    with pytest.raises(ValueError, match="together"):
        bank.refresh(0, torch.ones(2, 3))
    with pytest.raises(ValueError, match="1-D integer"):
        hand_bank().negatives_for(torch.tensor([0.5]))
    for kwargs in ({"capacity": 0}, {"refresh_every": 0}, {"dim": 0}):
        with pytest.raises(ValueError):
            NegativeBank(**kwargs)
