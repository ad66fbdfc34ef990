"""The training-time defenses: each term does what its paper says, and a defended T trains, saves and reloads."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from mia_app.config import ClassifierTrainConfig
from mia_app.defenses import TrainingObjective
from mia_app.defenses.bido import normalised_hsic
from mia_app.defenses.config import BiDOConfig, MIDConfig, NegLSConfig
from mia_app.defenses.mid import VariationalBottleneckHead
from mia_app.defenses.negls import NegativeLabelSmoothing
from mia_app.models.classifiers import build_classifier, load_classifier
from mia_app.train_classifier import train_classifier


def test_negls_schedule_and_target_distribution():
    ls = NegativeLabelSmoothing(alpha=-0.05, start=0.5, full=0.75)
    assert [ls.alpha_at(p) for p in (0.0, 0.5, 0.625, 0.75, 1.0)] == pytest.approx([0, 0, -0.025, -0.05, -0.05])
    positive_first = NegativeLabelSmoothing(alpha=-0.05, alpha_start=0.1)
    assert [positive_first.alpha_at(p) for p in (0.2, 0.625, 0.9)] == pytest.approx([0.1, 0.025, -0.05])
    logits, y = torch.randn(4, 5), torch.tensor([0, 1, 2, 3])
    torch.testing.assert_close(positive_first(logits, y, 0.0),  # = PyTorch's own label smoothing at +0.1
                               F.cross_entropy(logits, y, label_smoothing=0.1, reduction="none"))
    logits, y = torch.randn(6, 10), torch.tensor([0, 1, 2, 3, 4, 5])
    torch.testing.assert_close(ls(logits, y, 0.0), F.cross_entropy(logits, y, reduction="none"))  # no smoothing
    # at alpha < 0 the loss is -sum_k q_k log p_k with q = (1 - alpha) onehot + alpha / K (negative off-target)
    q = (1.05) * F.one_hot(y, 10) - 0.05 / 10
    torch.testing.assert_close(ls(logits, y, 1.0), -(q * F.log_softmax(logits, 1)).sum(1))
    with pytest.raises(ValueError, match="negative"):
        NegativeLabelSmoothing(alpha=0.1)
    with pytest.raises(ValidationError, match="full"):
        NegLSConfig(start=0.8, full=0.6)
    with pytest.raises(ValidationError, match="set label_smoothing: 0"):
        ClassifierTrainConfig(role="target", defense={"kind": "negls"})  # 0.1 by default


def test_hsic_is_larger_for_dependent_than_independent_samples():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 20, generator=g)
    dependent = x[:, :5] * 2 + 0.1 * torch.randn(64, 5, generator=g)
    independent = torch.randn(64, 5, generator=g)
    # 32 / 21 / 12 here: the measure orders identical > dependent > independent
    assert normalised_hsic(x, x) > normalised_hsic(x, dependent) > 1.5 * normalised_hsic(x, independent)
    with pytest.raises(ValueError, match="same m"):
        normalised_hsic(x, x[:10])


def test_bido_penalises_input_dependence_and_rewards_label_dependence():
    model = build_classifier("vgg", 4, 8).eval()  # deterministic: the check below runs the model again
    objective = TrainingObjective(BiDOConfig(), n_classes=4)
    x, y = torch.rand(8, 3, 32, 32) * 2 - 1, torch.tensor([0, 1, 2, 3] * 2)
    loss, terms = objective(model, x, y, 0.5)
    ce = F.cross_entropy(model.forward_hidden(x)[0], y)
    torch.testing.assert_close(loss, ce + 0.05 * terms["hsic_x"] - 0.5 * terms["hsic_y"], rtol=1e-4, atol=1e-4)
    loss.backward()
    assert all(p.grad is not None for p in model.body.parameters() if p.requires_grad)
    logits, hidden = model.forward_hidden(x)
    torch.testing.assert_close(logits, model(x))
    assert len(hidden) == 4 and hidden[-1].shape[1] == 64
    resnet = build_classifier("resnet", 4, 8).eval()
    logits, hidden = resnet.forward_hidden(x)
    torch.testing.assert_close(logits, resnet(x))
    assert len(hidden) == 4


def test_mid_head_is_stochastic_in_training_and_deterministic_in_evaluation():
    head = VariationalBottleneckHead(16, 4, 3)
    f = torch.randn(5, 16)
    head.train()
    a, b = head(f), head(f)
    assert not torch.equal(a, b) and head.kl.shape == (5,) and (head.kl >= 0).all()
    head.eval()
    torch.testing.assert_close(head(f), head(f))
    assert head.kl is None
    model = build_classifier("vgg", 4, 8, bottleneck=4)
    objective = TrainingObjective(MIDConfig(beta=0.1, bottleneck=4), n_classes=4)
    model.train()
    loss, terms = objective(model, torch.rand(6, 3, 32, 32) * 2 - 1, torch.tensor([0, 1, 2, 3, 0, 1]), 0.0)
    assert terms["kl"] > 0 and loss.item() == pytest.approx(terms["ce"] + 0.1 * terms["kl"], rel=1e-5)


@pytest.mark.parametrize("defense", [{"kind": "negls"}, {"kind": "bido"}, {"kind": "mid", "bottleneck": 8}])
def test_a_defended_target_trains_saves_and_reloads(tiny_synthid, tmp_path, defense):
    cfg = ClassifierTrainConfig(role="target", width=8, epochs=2, batch_size=8, lr=0.05, label_smoothing=0.0,
                                defense=defense, data=tiny_synthid)
    report = train_classifier(cfg, tmp_path / "t.safetensors")
    model, meta = load_classifier(tmp_path / "t.safetensors")
    assert meta["defense"] == defense["kind"] and report["defense"] == defense["kind"]
    assert all(v == v for v in report["final_terms"].values())  # finite, not NaN
    if defense["kind"] == "mid":
        assert meta["bottleneck"] == 8 and isinstance(model.head, VariationalBottleneckHead)
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    torch.testing.assert_close(model(x), model(x))  # a deterministic function once loaded
