"""Scheme D: Kendall et al.'s uncertainty weighting, keyed by task name."""

import math

import pytest
import torch

from mia_app.losses.base import AttackContext, LossTerm
from mia_app.losses.classification import MaxMarginClsLoss
from mia_app.losses.composer import LossComposer
from mia_app.losses.uncertainty import UncertaintyWeighting

STAGE2 = ["prior", "id", "perc", "cls", "reg"]


def scalars(**values):
    return {k: torch.tensor(float(v)) for k, v in values.items()}


def test_hand_computed_total_and_logs():
    uw = UncertaintyWeighting(["a", "b"])
    with torch.no_grad():
        uw.log_vars["a"].fill_(1.0)
        uw.log_vars["b"].fill_(-0.5)
    total, logs = uw(scalars(a=2.0, b=0.4), {"a": 1.0, "b": 3.0})
    # λ outside: 1·(½ e^-1 · 2 + ½) + 3·(½ e^0.5 · 0.4 + ½ · (-0.5))
    expected = (0.5 * math.exp(-1) * 2 + 0.5) + 3 * (0.5 * math.exp(0.5) * 0.4 - 0.25)
    assert total.item() == pytest.approx(expected, rel=1e-6)
    wa = math.exp(-1) / (math.exp(-1) + math.exp(0.5))
    assert logs["w_a"] == pytest.approx(wa) and logs["w_b"] == pytest.approx(1 - wa)
    assert logs["s_a"] == pytest.approx(1.0) and logs["s_b"] == pytest.approx(-0.5)
    # pure Kendall ignores λ
    uw.use_static_weights = False
    total, _ = uw(scalars(a=2.0, b=0.4), {"a": 1.0, "b": 3.0})
    assert total.item() == pytest.approx((0.5 * math.exp(-1) * 2 + 0.5) + (0.5 * math.exp(0.5) * 0.4 - 0.25), rel=1e-6)


def test_five_task_stage_with_reg_is_keyed_by_name():
    uw = UncertaintyWeighting(STAGE2)
    assert sorted(dict(uw.named_parameters())) == sorted(f"log_vars.{t}" for t in STAGE2)
    assert all(p.item() == 0.0 for p in uw.log_vars.values())  # s_i starts at 0
    losses = scalars(prior=0.1, id=0.5, perc=0.2, cls=2.0, reg=0.01)
    # the dict order does not matter: log-vars are found by name, not position
    shuffled = {k: losses[k] for k in reversed(STAGE2)}
    total, logs = uw(shuffled, dict.fromkeys(STAGE2, 1.0))
    assert total.item() == pytest.approx(0.5 * sum(v.item() for v in losses.values()))
    assert set(logs) == {f"w_{t}" for t in STAGE2} | {f"s_{t}" for t in STAGE2}
    total.backward()
    # d/ds_i [½ e^{-s} L + ½ s] at s = 0 is ½ (1 - L_i): each log-var gets its own task's gradient
    for t in STAGE2:
        assert uw.log_vars[t].grad.item() == pytest.approx(0.5 * (1 - losses[t].item()))


def test_optimisation_moves_log_vars_within_clamp_and_total_goes_negative():
    uw = UncertaintyWeighting(STAGE2, clamp=(-4.0, 4.0))
    main_lr = 1.0
    groups = uw.param_groups(main_lr)
    assert groups[0]["lr"] == pytest.approx(0.1 * main_lr) and len(groups[0]["params"]) == 5
    opt = torch.optim.Adam(groups)
    # reg is tiny (optimum log(1e-4) = -9.2, beyond the clamp), cls is large (optimum log 30 = 3.4)
    losses = scalars(prior=0.05, id=0.5, perc=1.0, cls=30.0, reg=1e-4)
    weights = dict.fromkeys(STAGE2, 1.0)
    totals = []
    for _ in range(100):
        opt.zero_grad()
        total, logs = uw(losses, weights)
        total.backward()
        opt.step()
        totals.append(total.item())
    total, logs = uw(losses, weights)  # forward projects onto the clamp range
    s = {t: logs[f"s_{t}"] for t in STAGE2}
    assert all(-4.0 <= v <= 4.0 for v in s.values())
    assert all(-4.0 <= p.item() <= 4.0 for p in uw.log_vars.values())
    assert s["reg"] < -3.0 and s["prior"] < -1.0 and s["cls"] > 2.0  # moved towards log L_i
    assert abs(s["perc"]) < 0.2  # L = 1: already at its optimum log 1 = 0
    assert total.item() < 0 and all(math.isfinite(v) for v in totals)  # negative totals are fine
    w = uw.get_weights()
    assert sum(w.values()) == pytest.approx(1.0)
    assert all(0.0 < v < 1.0 for v in w.values())
    assert max(w, key=w.get) == "reg" and min(w, key=w.get) == "cls"


def test_clamped_log_var_can_come_back():
    uw = UncertaintyWeighting(["a", "b"], clamp=(-1.0, 1.0))
    opt = torch.optim.SGD(uw.param_groups(10.0))  # lr 1.0
    for _ in range(20):  # drive s_a to the lower bound
        opt.zero_grad()
        uw(scalars(a=1e-3, b=1.0))[0].backward()
        opt.step()
    uw(scalars(a=1e-3, b=1.0))
    assert uw.log_vars["a"].item() == pytest.approx(-1.0)
    for _ in range(20):  # now the task got hard: it must leave the bound (torch.clamp would freeze it)
        opt.zero_grad()
        uw(scalars(a=5.0, b=1.0))[0].backward()
        opt.step()
    assert uw.log_vars["a"].item() > 0.5


def test_zero_static_weight_leaves_the_log_var_alone():
    uw = UncertaintyWeighting(["a", "b"])
    total, _ = uw(scalars(a=0.3, b=0.7), {"a": 0.0, "b": 1.0})
    total.backward()
    assert uw.log_vars["a"].grad.item() == 0.0 and uw.log_vars["b"].grad.item() != 0.0


def test_errors():
    uw = UncertaintyWeighting(["prior", "id"])
    with pytest.raises(ValueError, match="unknown tasks"):
        uw(scalars(prior=1.0, id=1.0, reg=1.0))
    with pytest.raises(ValueError, match="lacks tasks"):
        uw(scalars(prior=1.0))
    with pytest.raises(ValueError, match="max-margin"):
        uw(scalars(prior=1.0, id=-0.5))
    with pytest.raises(ValueError, match="not finite"):
        uw(scalars(prior=float("nan"), id=1.0))
    with pytest.raises(ValueError, match="scalar"):
        uw({"prior": torch.ones(3), "id": torch.tensor(1.0)})
    with pytest.raises(ValueError, match="no static weight"):
        uw(scalars(prior=1.0, id=1.0), {"prior": 1.0})
    with pytest.raises(ValueError, match=">= 0"):
        uw(scalars(prior=1.0, id=1.0), {"prior": 1.0, "id": -1.0})
    for tasks in ([], ["a", "a"], ["lo.ra"]):
        with pytest.raises(ValueError):
            UncertaintyWeighting(tasks)
    with pytest.raises(ValueError, match="clamp"):
        UncertaintyWeighting(["a"], clamp=(1.0, 4.0))
    with pytest.raises(ValueError, match="clamp"):
        UncertaintyWeighting(["a"], clamp=-2.0)
    assert UncertaintyWeighting(["a"], clamp=3).clamp == (-3.0, 3.0)
    with pytest.raises(ValueError, match="main_lr"):
        uw.param_groups(0.0)


class _Const(LossTerm):
    def __init__(self, name, value):
        super().__init__()
        self.name, self.value = name, value

    def forward(self, ctx):
        return ctx.x_hat.flatten(1).mean(1) * 0 + self.value


def test_composer_integration_and_signed_terms_refused():
    x = torch.zeros(3, 3, 2, 2, requires_grad=True)
    ctx = AttackContext(x_hat=x, x_src=x.detach(), c=torch.zeros(3, 4), y=torch.zeros(3, dtype=torch.long),
                        stage=2, step=0, models={})
    terms = [_Const(name, v) for name, v in zip(STAGE2, [0.1, 0.2, 0.3, 0.4, 0.0], strict=True)]
    uw = UncertaintyWeighting(STAGE2)
    uw.check_terms(terms)
    composer = LossComposer(terms, {"prior": 1.5, "id": 0.8, "perc": 1.0, "cls": 1.0, "reg": 0.0}, weighting=uw)
    total, _, logs = composer(ctx)
    assert {"L_reg", "w_reg", "s_reg", "total"} <= set(logs)
    assert logs["total"] == pytest.approx(0.5 * (1.5 * 0.1 + 0.8 * 0.2 + 0.3 + 0.4))
    with pytest.raises(ValueError, match="hinge_margin"):
        UncertaintyWeighting(["cls"]).check_terms([MaxMarginClsLoss()])
    UncertaintyWeighting(["cls"]).check_terms([MaxMarginClsLoss(hinge_margin=1.0)])
    with pytest.raises(ValueError, match="lacks tasks"):
        UncertaintyWeighting(STAGE2).check_terms(terms[:4])


def test_state_dict_by_name():
    uw = UncertaintyWeighting(STAGE2)
    with torch.no_grad():
        uw.log_vars["reg"].fill_(-2.0)
    other = UncertaintyWeighting(STAGE2)
    other.load_state_dict(uw.state_dict())
    assert other.log_vars["reg"].item() == -2.0 and other.log_vars["prior"].item() == 0.0
    with pytest.raises(RuntimeError):  # a stage-1 instance cannot silently take stage 2's log-vars
        UncertaintyWeighting(["prior", "id", "perc", "cls"]).load_state_dict(uw.state_dict())
