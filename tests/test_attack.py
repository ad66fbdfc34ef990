import json

import pytest
import torch
from safetensors.torch import load_file

from mia_app.attack.config import AttackConfig
from mia_app.attack.events import AttackCancelled, BaseCallback
from mia_app.attack.run import run_attack
from tests.helpers import PRIOR_KINDS, tiny_attack_config


@pytest.mark.parametrize("prior_kind", PRIOR_KINDS)
def test_two_step_smoke_attack_writes_a_run_folder(tmp_path, prior_kind):
    cfg = tiny_attack_config(tmp_path, prior_kind)
    out = tmp_path / "run"
    summary = run_attack(cfg, [0, 1, 2], out)
    # two identities per batch -> two batches, two adapters
    assert sorted(p.name for p in (out / "lora").iterdir()) == ["batch000.safetensors", "batch001.safetensors"]
    assert AttackConfig.from_yaml(out / "config.yaml") == cfg
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 2 * (2 + 2)  # batches × (stage-1 + stage-2 steps)
    for rec in lines:
        assert {"L_prior", "L_id", "L_perc", "L_cls", "total", "T_conf"} <= set(rec["logs"])
    assert {rec["stage"] for rec in lines} == {1, 2}
    final = sorted(p.name for p in (out / "final").glob("*.png"))
    assert final == ["class0000_rank0.png", "class0001_rank0.png", "class0002_rank0.png"]
    images = load_file(str(out / "final" / "images.safetensors"))
    assert images["images"].shape == (3, 3, 32, 32) and images["labels"].tolist() == [0, 1, 2]
    codes = load_file(str(out / "codes.safetensors"))
    torch.testing.assert_close(codes["c_y"].norm(dim=1), torch.ones(3))
    assert (out / "stage1" / "batch000_step00001.png").is_file()
    assert summary["targets"] == [0, 1, 2]


@pytest.mark.parametrize("prior_kind", PRIOR_KINDS)
def test_same_seed_same_images(tmp_path, prior_kind):
    cfg = tiny_attack_config(tmp_path, prior_kind)
    a = run_attack(cfg, [1], tmp_path / "a")
    b = run_attack(cfg, [1], tmp_path / "b")
    run_attack(cfg, [1], tmp_path / "c", seed=5)
    img = lambda run: load_file(str(tmp_path / run / "final" / "images.safetensors"))["images"]  # noqa: E731
    assert torch.equal(img("a"), img("b"))
    assert not torch.equal(img("a"), img("c"))
    assert a["targets"] == b["targets"]


def test_cancel_stops_within_a_step(tmp_path):
    class StopAfterTwo(BaseCallback):
        def __init__(self):
            self.steps = 0

        def on_step(self, event):
            self.steps += 1

        def should_stop(self):
            return self.steps >= 2

    cb = StopAfterTwo()
    with pytest.raises(AttackCancelled):
        run_attack(tiny_attack_config(tmp_path), [0], tmp_path / "run", [cb])
    assert cb.steps == 2


def test_bad_targets_and_configs_fail_early(tmp_path):
    cfg = tiny_attack_config(tmp_path)
    with pytest.raises(ValueError, match="targets"):
        run_attack(cfg, [99], tmp_path / "run")
    with pytest.raises(ValueError, match="keep"):
        tiny_attack_config(tmp_path, keep=5)
    with pytest.raises(ValueError, match="unknown loss"):
        tiny_attack_config(tmp_path, stage1={"steps": 1, "weights": {"idd": 1.0}})


def test_presets_validate():
    for name in ("seed", "cpu-quick", "cpu", "cpu-quick-pixel", "gpu"):
        AttackConfig.from_yaml(f"configs/attack/{name}.yaml")
    seed = AttackConfig.from_yaml("configs/attack/seed.yaml")
    assert seed.stage1.steps == 1000 and seed.stage2.steps == 2000
    assert seed.stage1.weights == {"prior": 0.3, "id": 1.0, "perc": 0.5, "cls": 1.0}
    assert seed.stage2.weights == {"prior": 1.5, "id": 0.8, "perc": 1.0, "cls": 1.0}


@pytest.mark.parametrize("prior_kind", PRIOR_KINDS)
def test_doctor_reads_a_healthy_run(tmp_path, prior_kind):
    from mia_app.attack.doctor import Doctor

    doctor = Doctor()
    run_attack(tiny_attack_config(tmp_path, prior_kind), [0], tmp_path / "run", [doctor])
    status = {c.name: c.status for c in doctor.checks()}
    assert status["embedding norms are 1"] == "pass"
    assert status["cosines lie in [-1, 1]"] == "pass"
    assert status["no loss is inf or NaN"] == "pass"
    assert status["gradients reach c_y"] == "pass"
    assert status["gradients reach LoRA weights"] == "pass"
    written = json.loads((tmp_path / "run" / "doctor.json").read_text())
    assert {c["name"] for c in written} == set(status)
    assert "| check | status |" in doctor.table()


def test_doctor_flags_a_nan_and_dead_gradients():
    from mia_app.attack.doctor import Doctor
    from mia_app.attack.events import StepEvent

    doctor = Doctor()
    doctor.on_step(StepEvent(1, 1, 1, 0, [0], {"L_id": float("nan"), "total": 1.0, "grad_norm_c": 0.0}))
    status = {c.name: c.status for c in doctor.checks()}
    assert status["no loss is inf or NaN"] == "fail" and status["gradients reach c_y"] == "fail"
    assert not doctor.ok()


@pytest.mark.parametrize("prior_kind", PRIOR_KINDS)
@pytest.mark.parametrize("schemes", [{"B3": True}, {"A": True}, {"C": True}, {"D": True},
                                     {"A": True, "B3": True, "C": True, "D": True}])
def test_each_scheme_runs_and_logs_its_terms(tmp_path, schemes, prior_kind):
    from mia_app.attack.doctor import Doctor

    stage2 = {"steps": 2, "lr": 0.01, "weights": {"prior": 1.5, "id": 0.8, "perc": 1.0, "cls": 1.0, "reg": 0.01},
              "image_every": 1}
    cfg = tiny_attack_config(tmp_path, prior_kind, schemes=schemes, stage2=stage2)
    doctor = Doctor()
    run_attack(cfg, [0, 1], tmp_path / "run", [doctor])
    logs = [json.loads(line)["logs"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    keys = set().union(*logs)
    assert ("L_id_contrast" in keys) == schemes.get("B3", False)
    assert ("L_attr" in keys and "L_div" in keys) == schemes.get("C", False)
    # A's timestep weight w(t) is in the prior loss of both stages, and logs its batch mean (in [0.5, 1.5]).
    assert ("tw_prior" in keys) == schemes.get("A", False)
    if schemes.get("A"):
        assert all(0.5 <= rec["tw_prior"] <= 1.5 for rec in logs)  # every step of both stages
    if schemes.get("D"):
        assert {"w_prior", "w_id", "w_perc", "w_cls", "s_reg"} <= keys  # stage 2 adds `reg`
        for rec in logs:
            w = [v for k, v in rec.items() if k.startswith("w_")]
            assert abs(sum(w) - 1) < 1e-5
    assert "L_reg" in keys
    assert all(c.status != "fail" for c in doctor.checks()), doctor.table()


def test_scheme_c_weights_come_from_the_config(tmp_path):
    from pydantic import ValidationError

    from mia_app.losses.attributes import DEFAULT_ATTRIBUTE_WEIGHTS, HierarchicalPerceptionLoss
    from mia_app.losses.factory import build_composer

    def terms(**schemes):
        cfg = tiny_attack_config(tmp_path, schemes={"C": True, **schemes})
        return {t.name: t for t in build_composer(cfg, 1, cfg.stage1).terms}

    # The defaults are the losses' own (so presets keep their numbers), in the same order.
    default = terms()
    assert list(default["attr"].weights.items()) == list(DEFAULT_ATTRIBUTE_WEIGHTS.items())
    assert list(default["perc"].tap_weights.items()) == list(HierarchicalPerceptionLoss.DEFAULT_TAP_WEIGHTS.items())
    custom = terms(attr_pose_weight=0.7, attr_illumination_weight=0.0, perc_early_weight=1.0, perc_mid_weight=0.0)
    assert custom["attr"].weights == {"pose": 0.7, "expression": 0.3, "illumination": 0.0}
    assert custom["perc"].tap_weights == {"early": 1.0, "mid": 0.0, "deep": 0.3}
    with pytest.raises(ValidationError, match="cannot all be 0"):
        tiny_attack_config(tmp_path, schemes={"perc_early_weight": 0, "perc_mid_weight": 0, "perc_deep_weight": 0})
    with pytest.raises(ValidationError, match="cannot all be 0"):
        tiny_attack_config(tmp_path, schemes={"attr_pose_weight": 0, "attr_expression_weight": 0,
                                              "attr_illumination_weight": 0})
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        tiny_attack_config(tmp_path, schemes={"attr_pose_weight": -0.1})
    with pytest.raises(ValidationError, match="finite"):
        tiny_attack_config(tmp_path, schemes={"perc_mid_weight": float("nan")})


def test_scheme_d_refuses_raw_max_margin(tmp_path):
    with pytest.raises(ValueError, match="cls_hinge_margin"):
        tiny_attack_config(tmp_path, schemes={"D": True}, cls_loss="max_margin")


def test_bf16_forward_is_finite_and_close_to_fp32(tmp_path):
    cfg = tiny_attack_config(tmp_path)
    a = run_attack(cfg, [1], tmp_path / "fp32", precision="fp32")
    b = run_attack(cfg, [1], tmp_path / "bf16", precision="bf16")
    img = lambda run: load_file(str(tmp_path / run / "final" / "images.safetensors"))["images"]  # noqa: E731
    x32, x16 = img("fp32"), img("bf16")
    assert x16.dtype == torch.float32 and torch.isfinite(x16).all() and x16.abs().max() <= 1
    assert (x32 - x16).abs().mean() < 0.05 and not torch.equal(x32, x16)
    lines = [json.loads(x) for x in (tmp_path / "bf16" / "metrics.jsonl").read_text().splitlines()]
    assert all(isinstance(v, float) and v == v for r in lines for v in r["logs"].values())
    assert a["targets"] == b["targets"] == [1]


@pytest.mark.parametrize("prior_kind", PRIOR_KINDS)
def test_initial_selection_on_the_priors_output_keeps_the_best_trials_in_target_order(tmp_path, prior_kind):
    import torch.nn.functional as F

    from mia_app.attack.engine import Inversion
    from mia_app.attack.run import cached_models
    from mia_app.attack.selection import target_confidence
    from mia_app.data import load_benchmark
    from mia_app.prior.sampler import sdedit_sample

    cfg = tiny_attack_config(tmp_path, prior_kind).model_copy(update={"candidates": 2, "keep": 1})
    models = cached_models(cfg)
    inv = Inversion(cfg, models, load_benchmark(cfg.data))
    targets = [2, 0]  # not sorted: rows must follow the targets, as c_y's rows do
    # Unset: the top `candidates` sources by T, one fresh noise each (what every earlier run did).
    c0, z, x, y, noise = inv.initial_candidates(targets, batch=3)
    g = torch.Generator().manual_seed(cfg.seed * 7919 + 3)
    assert torch.equal(noise, torch.randn(z.shape, generator=g)) and y.tolist() == [2, 2, 0, 0]
    assert torch.equal(z, inv.select_initial(targets)[1])
    # Trials: 3 sources x 2 noises per class; the 2 kept are the sources whose best trial T likes most.
    trial = AttackConfig.model_validate(cfg.model_dump() | {"init_sources": 3, "init_draws": 2})
    inv = Inversion(trial, models, load_benchmark(cfg.data))
    c0t, zt, xt, yt, nt = inv.initial_candidates(targets, batch=3)
    assert torch.equal(c0t, c0) and yt.tolist() == [2, 2, 0, 0] and nt.shape == zt.shape == z.shape
    _, z_all, _, y_all = inv.select_initial(targets, 3)
    g = torch.Generator().manual_seed(cfg.seed * 7919 + 3)
    draws = torch.randn((2, *z_all.shape), generator=g)
    c = F.normalize(c0, dim=1).repeat_interleave(3, 0)
    with torch.no_grad():
        conf, best_draw = torch.stack([target_confidence(models.target, models.prior.decode(sdedit_sample(
            models.prior, z_all, c, cfg.sampler.strength, cfg.sampler.num_steps, cfg.sampler.guidance, noise=d)),
            y_all) for d in draws]).max(0)
    for i in range(2):  # per class: the kept sources are the top 2 of its 3 by their best trial, best first
        order = (3 * i + conf[3 * i : 3 * i + 3].argsort(descending=True)[:2]).tolist()
        for k, s in zip((2 * i, 2 * i + 1), order, strict=True):
            assert torch.equal(zt[k], z_all[s]) and torch.equal(nt[k], draws[best_draw[s], s])
    again = inv.initial_candidates(targets, batch=3)
    assert all(torch.equal(a, b) for a, b in zip(again, (c0t, zt, xt, yt, nt), strict=True))
    with pytest.raises(ValueError, match="init_sources"):
        AttackConfig.model_validate(cfg.model_dump() | {"init_sources": 1})
