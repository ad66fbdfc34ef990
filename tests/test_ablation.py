"""Ablation: paired bootstrap, cell configs, MIFace peer, and a tiny end-to-end ablation that resumes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from mia_app.ablation.config import AblationConfig
from mia_app.ablation.runner import plan_cells, run_ablation
from mia_app.ablation.stats import bootstrap_mean, paired_bootstrap
from mia_app.attack.config import AttackConfig
from mia_app.cli import main
from mia_app.models.classifiers import build_classifier, save_classifier
from tests.helpers import save_tiny_eval, save_tiny_target, tiny_attack_config


@pytest.fixture(autouse=True)
def _threads():
    """Honour MIA_THREADS (conftest pins 2 threads; on a shared 2-core box one thread is much faster)."""
    before = torch.get_num_threads()
    n = int(os.environ.get("MIA_THREADS", "0"))
    if n > 0:
        torch.set_num_threads(n)
    yield
    torch.set_num_threads(before)


# ---- paired bootstrap -----------------------------------------------------------------------------------
def _per_seed(values: np.ndarray) -> dict[int, dict[int, float]]:
    """seeds × identities array -> seed -> {identity: value}."""
    return {s: {i: float(v) for i, v in enumerate(row)} for s, row in enumerate(values)}


def test_paired_bootstrap_known_positive_difference_excludes_zero():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.8, size=(2, 20))  # identities differ a lot; the gain is small but consistent
    better = base + 0.05 + rng.normal(0, 0.01, size=base.shape)
    out = paired_bootstrap(_per_seed(better), _per_seed(base))
    assert out["diff"] == pytest.approx(float((better - base).mean()))
    lo, hi = out["ci95"]
    assert 0 < lo < out["diff"] < hi
    assert out["excludes_zero"] and out["n_pairs"] == 40 and out["n_resamples"] == 2000
    # the same data give the same interval (fixed RNG seed)
    assert paired_bootstrap(_per_seed(better), _per_seed(base)) == out
    # unpaired, the identity spread swamps the same gain: the pairing is what makes it detectable
    unpaired = bootstrap_mean({0: (better - base[:, ::-1]).ravel()})
    assert unpaired["ci95"][0] < 0 < unpaired["ci95"][1]


def test_paired_bootstrap_identical_variants_contain_zero():
    rng = np.random.default_rng(1)
    base = rng.uniform(0, 1, size=(2, 10))
    same = paired_bootstrap(_per_seed(base), _per_seed(base))
    assert same["diff"] == 0 and same["ci95"][0] <= 0 <= same["ci95"][1] and not same["excludes_zero"]
    noisy = paired_bootstrap(_per_seed(base + rng.normal(0, 0.1, size=base.shape)), _per_seed(base))
    assert noisy["ci95"][0] < 0 < noisy["ci95"][1]


def test_paired_bootstrap_keeps_pairs_only_and_drops_nan():
    a = {0: {0: 1.0, 1: float("nan"), 2: 3.0}, 1: {0: 1.0}}
    b = {0: {0: 0.0, 1: 0.0, 3: 9.0}}
    out = paired_bootstrap(a, b)
    assert out["n_pairs"] == 1 and out["diff"] == 1.0
    assert paired_bootstrap({}, {})["diff"] is None


# ---- configs --------------------------------------------------------------------------------------------
def _ablation(tmp_path, **over) -> AblationConfig:
    attack = tmp_path / "attack.yaml"
    if not attack.exists():
        cfg = tiny_attack_config(tmp_path, stage1={"steps": 1, "lr": 0.05, "image_every": 1,
                                                   "weights": {"prior": 0.3, "id": 1.0, "perc": 0.5, "cls": 1.0}},
                                 stage2={"steps": 1, "lr": 0.01, "code_lr": 0.01, "image_every": 1,
                                         "weights": {"prior": 1.5, "id": 0.8, "perc": 1.0, "cls": 1.0}})
        attack.write_text(cfg.to_yaml())
    data = dict(name="tiny", attack=str(attack), targets="0-1", seeds=[0],
                variants={"baseline": {}, "+B3": {"B3": True}, "+A": {"A": True}},
                peers=["stage1_only", "plg_max_margin", {"kind": "miface", "max_iter": 3, "window_length": 2}],
                eval_model=str(tmp_path / "eval.safetensors"), out=str(tmp_path / "abl"))
    data.update(over)
    return AblationConfig.model_validate(data)


def test_ablation_config_validation(tmp_path):
    with pytest.raises(ValueError, match="baseline"):
        _ablation(tmp_path, variants={"x": {"B3": True}})
    with pytest.raises(ValueError, match="E"):
        _ablation(tmp_path, variants={"baseline": {}, "bad": {"E": True}})
    with pytest.raises(ValueError, match="unique"):
        _ablation(tmp_path, peers=["miface", "miface"])
    cfg = _ablation(tmp_path, out=None)
    assert str(cfg.out_dir()) == "results/ablation-tiny" and cfg.target_list() == [0, 1]


def test_cells_are_paired_and_peers_change_what_they_say(tmp_path):
    cfg = _ablation(tmp_path, seeds=[0, 3])
    cells = plan_cells(cfg)
    assert [(c.variant, c.seed) for c in cells[:6]] == [("baseline", 0), ("+B3", 0), ("+A", 0), ("stage1_only", 0),
                                                       ("plg_max_margin", 0), ("miface", 0)]
    by = {(c.variant, c.seed): c.config for c in cells}
    strip = lambda c: c.model_dump(exclude={"schemes", "name"})  # noqa: E731
    assert strip(by["+B3", 3]) == strip(by["baseline", 3]) and by["+B3", 3].seed == 3
    assert by["+B3", 3].schemes.active() == ["B3"] and by["baseline", 0].schemes.active() == []
    s1 = by["stage1_only", 0]
    assert s1.stage2.steps == 0 and s1.stage1 == by["baseline", 0].stage1
    plg = by["plg_max_margin", 0]
    assert plg.cls_loss == "max_margin" and set(plg.stage1.weights) == set(plg.stage2.weights) == {"prior", "cls"}
    assert plg.stage2.steps == by["baseline", 0].stage2.steps


def test_a_variant_may_change_the_identity_encoder_and_precision_only(tmp_path):
    cfg = _ablation(tmp_path, variants={"baseline": {}, "sface": {"id_encoder": "sface"},
                                        "B3_fp32": {"B3": True, "precision": "fp32"}}, peers=[])
    by = {c.variant: c.config for c in plan_cells(cfg)}
    assert by["sface"].id_encoder == "sface" and by["baseline"].id_encoder == "sface32"
    assert by["sface"].schemes.active() == [] and by["B3_fp32"].schemes.active() == ["B3"]
    assert by["B3_fp32"].precision == "fp32"
    strip = lambda c: c.model_dump(exclude={"id_encoder", "name"})  # noqa: E731
    assert strip(by["sface"]) == strip(by["baseline"])
    with pytest.raises(ValueError, match="id_encoder must be one of"):
        _ablation(tmp_path, variants={"baseline": {}, "x": {"id_encoder": "arcface"}})
    with pytest.raises(ValueError, match="cls_loss"):
        _ablation(tmp_path, variants={"baseline": {}, "x": {"cls_loss": "ce"}})  # not a variant setting


def test_a_variant_may_run_another_preset_and_a_renamed_row_keeps_its_cells(tmp_path):
    from mia_app.ablation.runner import _same_config

    other = tmp_path / "other.yaml"
    other.write_text(tiny_attack_config(tmp_path, "latent", candidates=3, keep=1).to_yaml())
    cfg = _ablation(tmp_path, variants={"baseline": {}, "latent": {"preset": str(other), "B3": True}}, peers=[])
    by = {c.variant: c for c in plan_cells(cfg)}
    assert by["latent"].config.candidates == 3 and by["latent"].config.schemes.active() == ["B3"]
    assert by["latent"].config.prior.endswith("latent_prior") and by["baseline"].config.candidates == 2
    with pytest.raises(ValueError, match="preset must be an attack preset YAML"):
        _ablation(tmp_path, variants={"baseline": {}, "x": {"preset": 3}})
    # ``prior`` swaps only the prior folder: the row keeps the preset's steps and schemes
    swapped = _ablation(tmp_path, variants={"baseline": {}, "other_prior": {"prior": "elsewhere/prior"}}, peers=[])
    rows = {c.variant: c.config for c in plan_cells(swapped)}
    assert rows["other_prior"].prior == "elsewhere/prior"
    same = {"prior", "name"}
    assert rows["other_prior"].model_dump(exclude=same) == rows["baseline"].model_dump(exclude=same)
    with pytest.raises(ValueError, match="prior must be a prior folder path"):
        _ablation(tmp_path, variants={"baseline": {}, "x": {"prior": ""}})
    # A finished cell saved under another row name, with the LoRA targets written out, is the same config.
    cell = by["baseline"]
    cell.folder.mkdir(parents=True)
    saved = cell.config.model_copy(deep=True, update={"name": "old_row_name"})
    saved.lora.target_modules = ["conv1", "conv2", "time_emb_proj"]  # the pixel prior's default, spelled out
    (cell.folder / "config.yaml").write_text(saved.to_yaml())
    assert _same_config(cell)
    saved.lora.target_modules = ["conv1"]
    (cell.folder / "config.yaml").write_text(saved.to_yaml())
    assert not _same_config(cell)


def test_an_outside_peer_cell_survives_a_change_to_our_attack_settings(tmp_path):
    from mia_app.ablation.runner import _same_config

    cfg = _ablation(tmp_path, peers=[{"kind": "selection_only", "name": "floor", "candidates": 2}, "stage1_only"])
    cells = {c.variant: c for c in plan_cells(cfg)}
    for name in ("floor", "stage1_only"):
        cell = cells[name]
        cell.folder.mkdir(parents=True)
        was = cell.config.model_copy(update={"id_encoder": "sface", "precision": "bf16"})
        (cell.folder / "config.yaml").write_text(was.to_yaml())
        (cell.folder / "method.json").write_text(json.dumps({"params": cell.peer.params()}))
    assert _same_config(cells["floor"])  # the floor never reads E_id or the precision
    assert not _same_config(cells["stage1_only"])  # our own attack does
    changed = cells["floor"].config.model_copy(update={"keep": 2})
    (cells["floor"].folder / "config.yaml").write_text(changed.to_yaml())
    assert not _same_config(cells["floor"])


# ---- MIFace ---------------------------------------------------------------------------------------------
def test_miface_fallback_matches_art(tmp_path):
    pytest.importorskip("art")
    from mia_app.peers.miface import miface_art, miface_fallback

    torch.manual_seed(0)
    model = build_classifier("vgg", 4, 4).eval().requires_grad_(False)
    # an untrained net is flat at exactly zero (no biases, BN at init, ReLU), so start near it
    x0, y = 0.1 * torch.randn(3, 3, 32, 32), torch.tensor([0, 2, 3])
    for threshold, window in ((1.0, 2), (0.5, 3)):  # runs max_iter / stops early by ART's rule
        a = miface_art(model, x0.numpy(), y.numpy(), 4, max_iter=5, window_length=window, threshold=threshold,
                       learning_rate=0.5)
        b = miface_fallback(model, x0, y, max_iter=5, window_length=window, threshold=threshold, learning_rate=0.5)
        torch.testing.assert_close(torch.from_numpy(a), b, atol=1e-5, rtol=1e-4)
    assert not torch.equal(b, x0)


# ---- the tiny ablation ----------------------------------------------------------------------------------
def test_tiny_ablation_writes_outputs_and_resumes(tmp_path, capsys):
    torch.manual_seed(3)
    save_classifier(build_classifier("resnet", 4, 8), tmp_path / "eval.safetensors",
                    {"role": "eval", "arch": "resnet", "width": 8, "n_classes": 4, "resolution": 32,
                     "benchmark": "tiny", "benchmark_sha256": "-"})
    cfg = _ablation(tmp_path)
    out = tmp_path / "abl"
    summary = run_ablation(cfg, progress=False)
    names = ["baseline", "+B3", "+A", "stage1_only", "plg_max_margin", "miface"]
    assert list(summary["variants"]) == names and summary["complete"]
    assert len(summary["this_call"]["ran"]) == 6 and not summary["this_call"]["skipped"]
    on_disk = json.loads((out / "summary.json").read_text())
    b3 = on_disk["variants"]["+B3"]
    assert b3["schemes"] == ["B3"] and b3["metrics"]["acc@1"]["n_pairs"] == 2
    assert set(b3["vs_baseline"]) >= {"acc@1", "acc@5", "knn_dist", "perc_dist", "judge_dist", "judge_match@0.6"}
    assert b3["vs_baseline"]["acc@1"]["n_resamples"] == 2000
    assert b3["metrics"]["frechet_sface"]["N"] == 2 and b3["metrics"]["frechet_sface"]["backbone"]
    assert on_disk["variants"]["baseline"]["vs_baseline"] is None
    assert on_disk["eval_arch"].startswith("resnet") and on_disk["seeds"] == [0]
    assert on_disk["target_arch"] == "vgg (width 8)"
    mi = out / "miface" / "seed0"
    assert json.loads((mi / "method.json").read_text())["params"]["max_iter"] == 3
    assert load_file(str(mi / "final" / "images.safetensors"))["images"].shape == (2, 3, 32, 32)
    table = (out / "table.md").read_text()
    assert "| +B3 |" in table and "miface (peer)" in table and "resnet" in table and "seeds: 0" in table
    assert "identities: 2" in table and "images per identity: 1" in table
    png = (out / "acc1.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    # the seed's rows +B3 and +A are here: the acceptance table and the "why" figures from their logs
    acceptance = (out / "acceptance.md").read_text()
    assert "| B3: +3-5 points | +B3 | E acc@1 | +3 points |" in acceptance
    assert "| +A | dlib top-1 (proxy) |" in acceptance
    assert {p.name for p in out.glob("why-*.png")} == {"why-A.png", "why-B3.png"}
    why = json.loads((out / "why.json").read_text())
    assert set(why["B3"]) == {"+B3: b3_margin"} and set(why["A"]) == {"+A: tw_prior", "+A: L_prior"}

    # Resume: nothing is attacked or evaluated again; finished cells keep their files.
    # Through the CLI this time, from the config it saved.
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/seed0/metrics.json")}
    assert len(stamps) == 6
    capsys.readouterr()
    assert main(["ablate", "--config", str(out / "ablation.yaml"), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "cells: 0 attacked, 0 evaluated, 6 already finished" in printed and "| +B3 |" in printed
    again = json.loads((out / "summary.json").read_text())
    assert again["this_call"]["ran"] == [] and again["this_call"]["evaluated"] == []
    assert len(again["this_call"]["skipped"]) == 6
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert again["variants"]["+B3"]["metrics"] == on_disk["variants"]["+B3"]["metrics"]

    # A cell whose evaluation is missing is evaluated, not attacked again; a changed config is refused.
    (out / "+A" / "seed0" / "metrics.json").unlink()
    third = run_ablation(cfg, progress=False)
    assert third["this_call"]["ran"] == [] and third["this_call"]["evaluated"] == ["+A/seed0"]
    # Every cell records the weights it used: ours all three, an outside peer only T.
    assert set(json.loads((out / "+A" / "seed0" / "models.json").read_text())) == {"prior", "target", "id_encoder"}
    assert set(json.loads((mi / "models.json").read_text())) == {"target"}
    # New weights re-shipped under the same path: refused, naming the model, before anything runs.
    target = tmp_path / "target.safetensors"
    before = target.read_bytes()
    save_tiny_target(target, seed=11)
    assert target.read_bytes() != before
    with pytest.raises(ValueError, match="other weights for target"):
        run_ablation(cfg, progress=False)
    target.write_bytes(before)
    assert run_ablation(cfg, progress=False)["this_call"]["ran"] == []
    raw = yaml.safe_load((tmp_path / "attack.yaml").read_text())
    raw["candidates"] = 3
    (tmp_path / "attack.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ValueError, match="different config"):
        run_ablation(cfg, progress=False)


def test_run_miface_fallback_writes_an_evaluable_run_folder(tmp_path):
    from mia_app.peers.miface import run_miface

    cfg = tiny_attack_config(tmp_path, keep=2)  # keep = images_per_class: no final selection
    out = tmp_path / "mi"
    summary = run_miface(cfg, [1, 3], out, max_iter=2, window_length=2, learning_rate=10.0, images_per_class=2,
                         init_noise=0.1, backend="fallback")
    note = json.loads((out / "method.json").read_text())
    assert note["implementation"].startswith("FALLBACK") and note["params"]["images_per_class"] == 2
    data = load_file(str(out / "final" / "images.safetensors"))
    assert data["labels"].tolist() == [1, 1, 3, 3] and data["images"].abs().max() <= 1
    assert data["images"][0].abs().max() == 0 < data["images"][1].abs().max()  # zero start; noised start (a tiny
    # untrained T is flat at exactly zero, so the zero start does not move here; the real T is not)
    assert sorted(p.name for p in (out / "final").glob("*.png"))[:2] == ["class0001_rank0.png", "class0001_rank1.png"]
    assert summary["seconds"] >= 0 and (out / "config.yaml").is_file()
    with pytest.raises(ValueError, match="init_noise"):
        run_miface(cfg, [1], tmp_path / "bad", images_per_class=2)
    # more starts than kept images: T's most confident per class survive, as in every method's final selection
    picked = run_miface(tiny_attack_config(tmp_path, keep=1), [1, 3], tmp_path / "mi1", max_iter=2, window_length=2,
                        learning_rate=10.0, images_per_class=3, init_noise=0.5, backend="fallback")
    kept = load_file(str(Path(picked["out"]) / "final" / "images.safetensors"))
    assert kept["labels"].tolist() == [1, 3] and "1 of 3" in json.loads(
        (tmp_path / "mi1" / "method.json").read_text())["kept"]


def test_miface_searches_gray_images_when_asked_and_rgb_on_a_color_benchmark(tmp_path):
    from mia_app.peers.config import MIFacePeer
    from mia_app.peers.miface import run_miface

    cfg = tiny_attack_config(tmp_path, keep=2)
    kw = dict(max_iter=3, window_length=2, learning_rate=10.0, images_per_class=2, init_noise=0.5,
              backend="fallback")
    run_miface(cfg, [1, 3], tmp_path / "gray", color="gray", **kw)
    x = load_file(str(tmp_path / "gray" / "final" / "images.safetensors"))["images"]
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2]) and x.abs().max() > 0
    note = json.loads((tmp_path / "gray" / "method.json").read_text())
    assert note["search_space"].startswith("gray") and note["params"]["color"] == "gray"
    run_miface(cfg, [1, 3], tmp_path / "auto", **kw)  # SynthID's public faces are in colour: auto means RGB
    x = load_file(str(tmp_path / "auto" / "final" / "images.safetensors"))["images"]
    assert not torch.equal(x[:, 0], x[:, 1])
    note = json.loads((tmp_path / "auto" / "method.json").read_text())
    assert note["search_space"].startswith("RGB") and "color" not in note["params"]  # cells finished before stay so
    assert MIFacePeer(kind="miface", color="rgb").params()["color"] == "rgb"


@pytest.mark.parametrize("name", ["quick", "full"])
def test_shipped_ablation_configs_plan(name):
    from mia_app.assets import REPO_ROOT

    cfg = AblationConfig.from_yaml(REPO_ROOT / "configs" / "ablation" / f"{name}.yaml")
    cells = plan_cells(cfg)
    variants = ["baseline", "+B3", "+A", "+C", "+D", "A+B3+C", "A+B3+C+D"]
    assert list(cfg.variants) == variants and [cfg.peer_name(p) for p in cfg.peers] == [
        "stage1_only", "plg_max_margin", "miface"]
    # MIFace from the zero image is deterministic: it runs once, in the first seed
    assert len(cells) == 9 * len(cfg.seeds) + 1 and str(cfg.out_dir()) == f"results/ablation-{name}"
    assert [c.seed for c in cells if c.variant == "miface"] == [cfg.seeds[0]]
    assert len(cfg.target_list()) == (10 if name == "quick" else 100)
    assert cells[0].config.name == "baseline" and cells[-1].config.name == "plg_max_margin"


def test_summary_arch_of_an_unreadable_checkpoint_is_none_with_a_warning(tmp_path, caplog):
    from mia_app.ablation.summary import _arch

    e_path = tmp_path / "eval.safetensors"
    save_classifier(build_classifier("resnet", 4, 8), e_path,
                    {"role": "eval", "arch": "resnet", "width": 8, "n_classes": 4, "resolution": 32,
                     "benchmark": "tiny", "benchmark_sha256": "-"})
    assert _arch("eval", str(e_path)) == "resnet (width 8)" and not caplog.records
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a checkpoint")
    with caplog.at_level("WARNING", logger="mia_app.ablation"):
        assert _arch("eval", str(tmp_path / "missing.safetensors")) is None
        assert _arch("eval", str(garbage)) is None
        assert _arch("target", str(tmp_path / "nowhere.safetensors")) is None
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3 and "eval architecture of" in messages[0] and "missing.safetensors" in messages[0]
    assert "garbage.safetensors" in messages[1] and "target architecture of" in messages[2]


def test_scoreboard_rows_pair_with_a_deterministic_floor(tmp_path):
    """A floor that runs once pairs with every seed; every row gets Δ against it; the table opens with it."""
    save_tiny_eval(tmp_path / "eval.safetensors")
    fast = {"iterations": 2}
    cfg = _ablation(tmp_path, seeds=[0, 1], variants={"baseline": {}}, floor="floor", judge="off",
                    order=["floor", "ppa", "baseline"],
                    peers=[{"kind": "selection_only", "name": "floor", "candidates": 2, "final": fast},
                           {"kind": "ppa", "search_space": 8, "candidates": 2, "steps": 1, "final": fast}])
    cells = plan_cells(cfg)
    assert [(c.variant, c.seed) for c in cells] == [("floor", 0), ("ppa", 0), ("baseline", 0), ("ppa", 1),
                                                   ("baseline", 1)]
    summary = run_ablation(cfg, progress=False)
    rows = summary["variants"]
    assert rows["floor"]["deterministic"] and list(rows["floor"]["cells"]) == ["0"]
    assert rows["floor"]["vs_floor"] is None and rows["floor"]["vs_baseline"]["acc@1"]["n_pairs"] == 4
    for name in ("ppa", "baseline"):
        vs = rows[name]["vs_floor"]
        assert vs["acc@1"]["n_pairs"] == 4 and set(vs) >= {"knn_dist", "judge_top1", "perc_dist"}  # 2 seeds × 2 ids
    assert rows["ppa"]["seconds"]["per_identity"] is not None and rows["ppa"]["method"].startswith("PPA (Struppek")
    table = (tmp_path / "abl" / "table.md").read_text()
    assert "### Scoreboard" in table and "**floor**" in table and "chance 50.0" in table
    assert table.index("### Scoreboard") < table.index("Every metric, Δ against our")
    # --summarize-only rewrites the tables from what is finished and runs nothing
    (tmp_path / "abl" / "ppa" / "seed1" / "metrics.json").unlink()
    again = run_ablation(cfg, progress=False, run=False)
    assert again["this_call"]["ran"] == [] and again["this_call"]["evaluated"] == []
    assert again["variants"]["ppa"]["missing_seeds"] == [1] and not again["complete"]
    assert "INCOMPLETE" in (tmp_path / "abl" / "table.md").read_text()
    with pytest.raises(ValueError, match="floor"):
        _ablation(tmp_path, floor="nobody")
    with pytest.raises(ValueError, match="order"):
        _ablation(tmp_path, order=["nobody"])


def test_shipped_scoreboard_config_has_every_method_on_all_identities():
    from mia_app.assets import REPO_ROOT

    cfg = AblationConfig.from_yaml(REPO_ROOT / "configs" / "ablation" / "scoreboard.yaml")
    cells = plan_cells(cfg)
    assert cfg.target_list() == list(range(100)) and len(cfg.seeds) >= 2 and cfg.floor == "floor"
    kinds = {p.kind for p in cfg.peers}
    assert kinds == {"selection_only", "ppa", "miface", "stage1_only", "plg_max_margin"}
    assert set(cfg.variants) == {"baseline", "A+B3+C+D", "baseline_pixel", "A+B3+C+D_pixel", "baseline_sface_pixel",
                                 "baseline_pixel40k"}
    assert cfg.attack.endswith("cpu-quick.yaml")
    pixel = "configs/attack/cpu-quick-pixel.yaml"
    # the student against SFace, paired, on the pixel prior
    assert cfg.variants["baseline_sface_pixel"] == {"preset": pixel, "id_encoder": "sface"}
    by = {c.variant: c.config for c in cells if c.seed == 0}
    assert by["baseline"].prior == "assets/latent_prior" and by["baseline_pixel"].prior == "assets/prior"
    # the retrained pixel prior: the same preset, only the prior differs
    assert by["baseline_pixel40k"].prior == "assets/prior-40k"
    assert by["baseline_pixel40k"].model_dump(exclude={"prior", "name"}) == by["baseline_pixel"].model_dump(
        exclude={"prior", "name"})
    seeds = {}
    for c in cells:
        seeds.setdefault(c.variant, []).append(c.seed)
    stochastic = [n for n, s in seeds.items() if n != "floor"]
    assert seeds["floor"] == [0] and all(len(seeds[n]) >= 2 for n in stochastic)
    assert all(c.config.keep == 2 for c in cells)
    assert [c.variant for c in cells[:2]] == ["floor", "floor_generator"]


def test_every_row_runs_on_every_target_and_defenses_md_pairs_them(tmp_path):
    """target_models: the floor, PPA and ours on an undefended and a 'defended' T, a block per T, Δ paired."""
    save_tiny_eval(tmp_path / "eval.safetensors")
    plain = save_tiny_target(tmp_path / "plain.safetensors", seed=0)
    torch.manual_seed(2)
    defended = tmp_path / "defended-mid.safetensors"
    save_classifier(build_classifier("vgg", 4, 8, bottleneck=4), defended,
                    {"role": "target", "arch": "vgg", "width": 8, "n_classes": 4, "resolution": 32,
                     "benchmark": "tiny", "benchmark_sha256": "-", "defense": "mid", "bottleneck": 4})
    fast = {"iterations": 2}
    cfg = _ablation(tmp_path, variants={"baseline": {}}, floor="floor", judge="off",
                    target_models=[str(plain), str(defended)],
                    peers=[{"kind": "selection_only", "name": "floor", "candidates": 2, "final": fast},
                           {"kind": "ppa", "search_space": 8, "candidates": 2, "steps": 1, "final": fast}])
    result = run_ablation(cfg, progress=False)
    out = tmp_path / "abl"
    for stem, path in (("plain", plain), ("defended-mid", defended)):
        summary = json.loads((out / stem / "summary.json").read_text())
        assert set(summary["variants"]) == {"baseline", "floor", "ppa"} and summary["complete"]
        for row in ("baseline", "ppa"):  # every row attacked this T, peers included
            cell = out / stem / row / "seed0"
            assert AttackConfig.from_yaml(cell / "config.yaml").target == str(path)
    assert result["targets"][str(defended)]["info"]["defense"] == "mid"
    table = (out / "defenses.md").read_text()
    assert "## E acc@1 %" in table and "## dlib top-1 %" in table and "## KNN dist" in table
    assert "defended-mid (vgg, mid" in table
    assert table.count("<br>Δ ") == 3 * 2  # 3 rows x (E, KNN) on the second T; judge off: dlib n/a
    assert "## T = " in table and "### Scoreboard" in table
    # resumable like any ablation: nothing runs again
    again = run_ablation(cfg, progress=False)
    assert all(s["this_call"]["ran"] == [] for s in again["per_target"].values())
    with pytest.raises(ValueError, match="distinct file names"):
        from mia_app.ablation.targets import per_target

        per_target(_ablation(tmp_path, target_models=[str(plain), str(tmp_path / "x" / "plain.safetensors")]))


def test_shipped_defenses_config_attacks_every_shipped_target_with_the_scoreboards_rows():
    from mia_app.ablation.targets import per_target
    from mia_app.assets import REPO_ROOT, load_manifest

    cfg = AblationConfig.from_yaml(REPO_ROOT / "configs" / "ablation" / "defenses.yaml")
    board = AblationConfig.from_yaml(REPO_ROOT / "configs" / "ablation" / "scoreboard.yaml")
    shipped = {e["path"] for e in load_manifest()["files"]
               if e.get("role") == "target" and e["provenance"]["config"]["data"]["kind"] == "synthid"}
    assert cfg.target_models[0] == "assets/target.safetensors" and set(cfg.target_models) == shipped
    assert cfg.target_list() == list(range(100)) and cfg.seeds == board.seeds and cfg.floor == "floor"
    # the same rows as the scoreboard's, so the undefended block can reuse its cells
    assert [p for p in cfg.peers] == [p for p in board.peers if p.display_name() in ("floor", "ppa")]
    assert all(cfg.variants[n] == board.variants[n] for n in cfg.variants)
    for sub, t in zip(per_target(cfg), cfg.target_models, strict=True):
        assert {c.config.target for c in plan_cells(sub)} == {t}


def test_shipped_scheme_ablations_answer_the_seeds_claims_on_two_targets():
    """configs/ablation/schemes*.yaml: the seed's seven variants, the floor and PPA, 100 identities x 3 seeds
    (>= 300 pairs per row), on the undefended and the BiDO T; the same rows and preset as the defenses
    scoreboard, so its cells are reused."""
    from mia_app.ablation.acceptance import SEED_CLAIMS
    from mia_app.assets import REPO_ROOT

    defenses = AblationConfig.from_yaml(REPO_ROOT / "configs" / "ablation" / "defenses.yaml")
    targets = {}
    for name in ("schemes", "schemes-bido"):
        cfg = AblationConfig.from_yaml(REPO_ROOT / "configs" / "ablation" / f"{name}.yaml")
        assert list(cfg.variants) == ["baseline", "+B3", "+A", "+C", "+D", "A+B3+C", "A+B3+C+D"]
        assert {c.row for c in SEED_CLAIMS} <= set(cfg.variants)
        assert len(cfg.target_list()) * len(cfg.seeds) >= 300 and cfg.floor == "floor"
        assert cfg.peers == defenses.peers and cfg.attack == defenses.attack
        assert str(cfg.out_dir()) == f"results/ablation-{name}"
        targets[name] = {c.config.target for c in plan_cells(cfg)}
    assert targets == {"schemes": {"assets/target.safetensors"}, "schemes-bido": {"assets/target-bido.safetensors"}}


def test_orl_scoreboard_attacks_every_orl_target_judged_by_orls_e():
    """configs/ablation/orl.yaml: all 20 private people, 2 seeds, the ORL targets (VGG first, then Fredrikson et
    al.'s softmax regression and MLP), E and the attack preset on ORL, PPA and the generator floor on the gray
    DCGAN."""
    from mia_app.ablation.targets import per_target
    from mia_app.assets import REPO_ROOT, load_manifest

    cfg = AblationConfig.from_yaml(REPO_ROOT / "configs" / "ablation" / "orl.yaml")
    orl = {e["path"]: e for e in load_manifest()["files"] if e["provenance"]["config"]["data"]["kind"] == "orl"
           and e.get("role") in ("target", "eval")}
    assert cfg.target_models[0] == "assets/orl/target.safetensors"
    assert set(cfg.target_models) == {p for p, e in orl.items() if e["role"] == "target"}
    assert orl[cfg.eval_model]["role"] == "eval" and cfg.target_list() == list(range(20)) and len(cfg.seeds) >= 2
    searching = [p for p in cfg.peers if p.kind == "ppa" or getattr(p, "source", None) == "generator"]
    assert len(searching) == 2 and {p.generator for p in searching} == {"dcgan_gray"}
    for sub in per_target(cfg):
        assert all(c.config.data.kind == "orl" for c in plan_cells(sub))
