"""Peers: the Poincaré loss, PPA's random transforms, the selection floor and PPA on tiny configs, one entry point,
and the same black-box guarantees as our attack (no private data, no E)."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import mia_app.data as data_module
from mia_app.attack.augment import RandomTransforms, confidence_under_transforms
from mia_app.attack.models import load_target
from mia_app.data import load_benchmark
from mia_app.evaluation.evaluate import evaluate_run
from mia_app.losses.classification import poincare_loss
from mia_app.models.classifiers import build_classifier, save_classifier
from mia_app.peers import parse_peer, run_peer
from mia_app.peers.config import PPAPeer, SelectionPeer
from mia_app.peers.ppa import identity_loss, optimise_latents
from mia_app.peers.running import PeerRun
from tests.helpers import record_classifier_loads, tiny_attack_config
from tests.test_attack_isolation import blind_private

FAST_FINAL = {"iterations": 3}


# ---- Poincaré loss --------------------------------------------------------------------------------------
def test_poincare_loss_matches_a_hand_computation():
    logits = torch.tensor([[2.0, -1.0, 1.0]])
    xi = 1e-4
    u = torch.tensor([2.0, -1.0, 1.0]) / 4.0
    v = torch.tensor([1 - xi, 0.0, 0.0])
    delta = 2 * ((u - v) ** 2).sum() / ((1 - (u * u).sum()) * (1 - (v * v).sum()))
    expected = math.acosh(1 + float(delta))
    assert poincare_loss(logits, torch.tensor([0]), xi).item() == pytest.approx(expected, rel=1e-5)


def test_poincare_loss_is_smaller_for_the_predicted_class_and_has_gradients():
    logits = torch.tensor([[5.0, 0.1, 0.2], [0.1, 0.2, 5.0]], requires_grad=True)
    right = poincare_loss(logits, torch.tensor([0, 2]))
    wrong = poincare_loss(logits, torch.tensor([1, 1]))
    assert (right >= 0).all() and (right < wrong).all()
    right.sum().backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_poincare_loss_refuses_bad_input():
    with pytest.raises(ValueError, match="xi"):
        poincare_loss(torch.zeros(1, 3), torch.tensor([0]), xi=1.5)
    with pytest.raises(ValueError):
        poincare_loss(torch.zeros(1, 3), torch.tensor([5]))
    with pytest.raises(ValueError):
        poincare_loss(torch.full((1, 3), float("nan")), torch.tensor([0]))


def test_identity_loss_kinds():
    logits = torch.tensor([[3.0, 1.0, 0.0]])
    y = torch.tensor([0])
    assert identity_loss("max_margin", logits, y).item() == pytest.approx(-2.0)
    assert identity_loss("ce", logits, y).item() == pytest.approx(F.cross_entropy(logits, y).item())
    with pytest.raises(ValueError, match="unknown loss"):
        identity_loss("hinge", logits, y)


# ---- random transforms ------------------------------------------------------------------------------------
def test_random_transforms_identity_flip_and_reproducibility():
    x = torch.rand(3, 3, 8, 8) * 2 - 1
    same = RandomTransforms()(x, torch.Generator().manual_seed(0))
    assert torch.allclose(same, x, atol=1e-5)
    flipped = RandomTransforms(flip=1.0)(x, torch.Generator().manual_seed(0))
    assert torch.allclose(flipped, x.flip(-1), atol=1e-5)
    tau = RandomTransforms(scale=(0.5, 0.9), ratio=(0.8, 1.2), flip=0.5, brightness=0.2, contrast=0.2,
                           saturation=0.2)
    a, b = tau(x, torch.Generator().manual_seed(3)), tau(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not torch.allclose(a, x) and a.shape == x.shape and a.abs().max() <= 1
    leaf = x.clone().requires_grad_(True)
    tau(leaf, torch.Generator().manual_seed(1)).sum().backward()
    assert leaf.grad.abs().sum() > 0


def test_random_transforms_refuse_bad_ranges():
    for kwargs in ({"scale": (0.9, 0.5)}, {"scale": (0.0, 0.5)}, {"flip": 2.0}, {"brightness": 1.0},
                   {"ratio": (0.0, 1.0)}, {"contrast": float("nan")}):
        with pytest.raises(ValueError):
            RandomTransforms(**kwargs)


def test_confidence_under_transforms_is_a_mean_probability():
    model = build_classifier("vgg", 4, 8).eval()
    x = torch.rand(5, 3, 32, 32) * 2 - 1
    y = torch.tensor([0, 1, 2, 3, 0])
    score = confidence_under_transforms(model, x, y, RandomTransforms(), 2, torch.Generator().manual_seed(0))
    with torch.no_grad():
        direct = F.softmax(model(x), 1).gather(1, y[:, None]).squeeze(1)
    assert torch.allclose(score, direct, atol=1e-5)


# ---- configs ------------------------------------------------------------------------------------------------
def test_peer_configs_validate_and_say_whether_they_are_deterministic():
    assert parse_peer({"kind": "selection_only"}).deterministic
    assert not parse_peer({"kind": "selection_only", "source": "generator"}).deterministic
    assert parse_peer({"kind": "miface"}).deterministic
    assert not parse_peer({"kind": "ppa"}).deterministic
    for bad in ({"kind": "ppa", "lr": float("nan")}, {"kind": "ppa", "lr": float("inf")},
                {"kind": "ppa", "lr_milestones": [0.8, 0.6]}, {"kind": "ppa", "betas": [1.0, 0.1]},
                {"kind": "selection_only", "final": {"crop_scale": [0.9, 0.1]}}, {"kind": "nope"},
                {"kind": "miface", "images_per_class": 2}, {"kind": "ppa", "unknown": 1}):
        with pytest.raises(ValueError):
            parse_peer(bad)
    assert PPAPeer(kind="ppa").params()["loss"] == "poincare" and "kind" not in PPAPeer(kind="ppa").params()


# ---- the floor ----------------------------------------------------------------------------------------------
def test_public_floor_is_deterministic_ranks_by_t_and_is_evaluable(tmp_path):
    cfg = tiny_attack_config(tmp_path)
    peer = {"kind": "selection_only", "candidates": 3, "final": FAST_FINAL}
    run_peer(peer, cfg, [0, 2], tmp_path / "a")
    run_peer(peer, cfg.model_copy(update={"seed": 7}), [0, 2], tmp_path / "b")
    a = load_file(str(tmp_path / "a" / "final" / "images.safetensors"))
    b = load_file(str(tmp_path / "b" / "final" / "images.safetensors"))
    assert torch.equal(a["images"], b["images"])  # the seed does not matter: the floor is deterministic
    assert a["labels"].tolist() == [0, 2] and a["images"].shape == (2, 3, 32, 32)  # keep = 1 per class
    # the kept image of each class is one of the 3 public images T ranks highest for it
    bench = load_benchmark(cfg.data)
    target, _ = load_target(cfg.target)
    with torch.no_grad():
        x = bench.public.as_float()
        p = (F.softmax(target(x), 1) + F.softmax(target(x.flip(-1)), 1)) / 2
    for img, y in zip(a["images"], a["labels"].tolist(), strict=True):
        top = x[p[:, y].topk(3).indices]
        assert (top - img).abs().flatten(1).max(1).values.min() < 1e-6
    note = json.loads((tmp_path / "a" / "method.json").read_text())
    assert note["method"] == "selection_only" and note["deterministic"] and len(note["public_index"]) == 6
    metrics = evaluate_run(tmp_path / "a", str(_tiny_eval(tmp_path)), judge="off")
    assert 0 <= metrics["E_acc@1"] <= 1 and metrics["n_images"] == 2


def _tiny_eval(tmp_path):
    path = tmp_path / "eval.safetensors"
    if not path.exists():
        torch.manual_seed(1)
        save_classifier(build_classifier("resnet", 4, 8), path,
                        {"role": "eval", "arch": "resnet", "width": 8, "n_classes": 4, "resolution": 32,
                         "benchmark": "tiny", "benchmark_sha256": "-"})
    return path


def test_generator_floor_depends_on_the_seed(tmp_path):
    cfg = tiny_attack_config(tmp_path)
    peer = SelectionPeer(kind="selection_only", source="generator", search_space=16, candidates=2,
                         final=FAST_FINAL)
    run_peer(peer, cfg, [1], tmp_path / "s0")
    run_peer(peer, cfg.model_copy(update={"seed": 1}), [1], tmp_path / "s1")
    a = load_file(str(tmp_path / "s0" / "final" / "images.safetensors"))["images"]
    b = load_file(str(tmp_path / "s1" / "final" / "images.safetensors"))["images"]
    assert a.shape == (1, 3, 32, 32) and torch.isfinite(a).all() and not torch.equal(a, b)


# ---- PPA ----------------------------------------------------------------------------------------------------
def test_ppa_optimiser_lowers_its_loss(tmp_path):
    from mia_app.peers.generators import load_generator

    cfg = tiny_attack_config(tmp_path)
    peer = PPAPeer(kind="ppa", steps=15, lr=0.1, candidates=2, crop_scale=(1.0, 1.0), flip=0.0, jitter=0.0,
                   lr_milestones=[])
    run = PeerRun(cfg, peer, [0, 3], tmp_path / "opt")
    gen = load_generator("dcgan", 32)
    g = torch.Generator().manual_seed(0)
    z0, y = torch.randn(4, gen.latent_dim, generator=g), torch.tensor([0, 0, 3, 3])
    with torch.no_grad():
        before = poincare_loss(run.target(gen(z0)), y).mean()
    z = optimise_latents(run, gen, z0, y, peer, g)
    with torch.no_grad():
        after = poincare_loss(run.target(gen(z)), y).mean()
    assert after < before and z.shape == z0.shape
    steps = [json.loads(line) for line in (tmp_path / "opt" / "metrics.jsonl").read_text().splitlines()]
    assert len(steps) == 15 and all(math.isfinite(s["logs"]["L_cls"]) for s in steps)


def test_ppa_writes_an_evaluable_run_folder_through_the_entry_point(tmp_path):
    cfg = tiny_attack_config(tmp_path, keep=2)
    peer = {"kind": "ppa", "search_space": 16, "candidates": 3, "steps": 2, "final": FAST_FINAL, "image_every": 1,
            "batch_size": 3}
    summary = run_peer(peer, cfg, [1, 2], tmp_path / "ppa")
    out = tmp_path / "ppa"
    data = load_file(str(out / "final" / "images.safetensors"))
    assert data["labels"].tolist() == [1, 1, 2, 2] and data["images"].abs().max() <= 1
    assert data["conf"].shape == (4,) and summary["seconds"] >= 0
    # batch_size 3 = one identity per batch: two batches of two steps, each with its own grids
    steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(s["batch"], s["step"]) for s in steps] == [(0, 1), (0, 2), (1, 1), (1, 2)]
    assert (out / "stage1" / "batch001_step00002.png").is_file()
    note = json.loads((out / "method.json").read_text())
    assert note["method"] == "ppa" and note["params"]["steps"] == 2 and "DCGAN" in note["generator"]
    metrics = evaluate_run(out, str(_tiny_eval(tmp_path)), judge="off")
    assert metrics["n_images"] == 4 and metrics["n_identities"] == 2


# ---- black box ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("peer", [
    {"kind": "selection_only", "final": FAST_FINAL},
    {"kind": "selection_only", "source": "generator", "search_space": 8, "candidates": 2, "final": FAST_FINAL},
    {"kind": "ppa", "search_space": 8, "candidates": 2, "steps": 1, "final": FAST_FINAL},
    {"kind": "miface", "max_iter": 2, "window_length": 2, "backend": "fallback"},
])
def test_peers_never_touch_private_data_nor_load_e(tmp_path, monkeypatch, peer):
    cfg = tiny_attack_config(tmp_path)
    blinded = blind_private(load_benchmark(cfg.data))
    monkeypatch.setattr(data_module, "load_benchmark", lambda data: blinded)
    loaded = record_classifier_loads(monkeypatch)  # every classifier checkpoint the attack loads
    run_peer(peer, cfg, [0, 1], tmp_path / "run")
    assert (tmp_path / "run" / "final" / "images.safetensors").is_file()
    assert loaded == [cfg.target]  # T only: never E


def test_peer_run_refuses_bad_targets(tmp_path):
    cfg = tiny_attack_config(tmp_path)
    for targets in ([], [9], [0, 0]):
        with pytest.raises(ValueError, match="targets"):
            run_peer({"kind": "selection_only"}, cfg, targets, tmp_path / "bad")


# ---- the evaluation's on-disk feature cache ------------------------------------------------------------------
def test_private_features_are_cached_on_disk_and_give_the_same_metrics(tmp_path, monkeypatch):
    from mia_app.evaluation import evaluate as ev
    from mia_app.evaluation.feature_cache import cache_dir

    cfg = tiny_attack_config(tmp_path)
    run_peer({"kind": "selection_only", "final": FAST_FINAL}, cfg, [0, 1], tmp_path / "run")
    e_path = str(_tiny_eval(tmp_path))
    ev.clear_cache()
    first = evaluate_run(tmp_path / "run", e_path, judge="off")
    files = sorted(cache_dir().glob("*.safetensors"))
    assert len(files) == 2 * 3  # 2 classes × (E, SFace, MobileNetV2 taps; the Fréchet distance reuses the taps)
    ev.clear_cache()

    def no_recompute(*args, **kwargs):
        raise AssertionError("private features recomputed despite the disk cache")

    monkeypatch.setattr(ev, "to_signed", no_recompute)  # only the reference path converts private images
    second = evaluate_run(tmp_path / "run", e_path, judge="off")
    assert second == first
    # another E (other weights) is another key: never stale features
    torch.manual_seed(5)
    other = tmp_path / "eval2.safetensors"
    save_classifier(build_classifier("resnet", 4, 8), other,
                    {"role": "eval", "arch": "resnet", "width": 8, "n_classes": 4, "resolution": 32,
                     "benchmark": "tiny", "benchmark_sha256": "-"})
    with pytest.raises(AssertionError, match="recomputed"):
        evaluate_run(tmp_path / "run", str(other), judge="off")
