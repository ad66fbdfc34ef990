"""New evaluation metrics on constructed cases, and ``evaluate_run`` on a hand-made run folder."""

from __future__ import annotations

import csv
import json
import os

import pytest
import torch
from safetensors.torch import save_file

from mia_app.data import load_benchmark
from mia_app.evaluation.evaluate import PER_IDENTITY_COLUMNS, evaluate_run
from mia_app.evaluation.metrics import (
    FrechetDistance,
    JudgeDistance,
    PerceptualDistance,
    lpips_style_pairwise,
    mobilenet_taps,
)
from mia_app.models.classifiers import build_classifier, save_classifier
from tests.helpers import tiny_attack_config


@pytest.fixture(autouse=True)
def _threads():
    """Honour MIA_THREADS (conftest pins 2 threads; on a shared 2-core box one thread is much faster)."""
    before = torch.get_num_threads()
    n = int(os.environ.get("MIA_THREADS", "0"))
    if n > 0:
        torch.set_num_threads(n)
    yield
    torch.set_num_threads(before)


def _e(i: int, scale: float = 1.0) -> torch.Tensor:
    v = torch.zeros(128)
    v[i] = scale
    return v


def test_judge_distance_nearest_private_descriptor_and_match_rate():
    priv = torch.stack([torch.zeros(128), _e(0, 2.0), _e(1, 1.0)])
    labels = torch.tensor([0, 0, 1])
    m = JudgeDistance(priv, labels, threshold=0.6)
    # class 0: 0.3 from the origin; 1.5 along e0 is 0.5 from 2·e0; class 1: the origin is 1.0 from e1
    m.update(torch.stack([_e(0, 0.3), _e(0, 1.5)]), torch.tensor([0, 0]))
    m.update(torch.zeros(1, 128), torch.tensor([1]))
    out = m.compute()
    assert out["judge_dist_per_class"][0] == pytest.approx(0.4)
    assert out["judge_dist_per_class"][1] == pytest.approx(1.0)
    assert out["judge_dist"] == pytest.approx((0.3 + 0.5 + 1.0) / 3)
    assert out["judge_match@0.6"] == pytest.approx(2 / 3)
    assert out["judge_match@0.6_per_class"] == {0: 1.0, 1: 0.0}
    # identification: the origin (class 1) is nearer to class 0's private origin than to e1
    assert out["judge_top1"] == pytest.approx(2 / 3) and out["judge_top1_per_class"] == {0: 1.0, 1: 0.0}
    assert out["judge_gallery"] == 2
    m.reset()
    assert m.compute()["judge_dist"] != m.compute()["judge_dist"]  # NaN when empty
    with pytest.raises(ValueError, match="no private images"):
        m.update(torch.zeros(1, 128), torch.tensor([7]))


def test_lpips_style_pairwise_on_constructed_taps():
    # 1×1 maps, 2 channels: orthogonal unit vectors are 2 apart; same direction, other length: 0.
    a = {"t": torch.tensor([[1.0, 0.0], [3.0, 0.0]])[:, :, None, None]}
    b = {"t": torch.tensor([[0.0, 1.0], [5.0, 0.0]])[:, :, None, None]}
    d = lpips_style_pairwise(a, b)
    torch.testing.assert_close(d, torch.tensor([[2.0, 0.0], [2.0, 0.0]]))
    # two taps: averaged by default, summed on request; positions are averaged
    a2 = {"t": a["t"], "u": torch.tensor([[[[1.0, 1.0]], [[0.0, 0.0]]]])}  # 1×2×1×2
    a2["u"] = a2["u"].expand(2, -1, -1, -1)
    b2 = {"t": b["t"], "u": torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]]).expand(2, -1, -1, -1)}
    # tap u: position 0 equal (0), position 1 orthogonal (2) -> mean 1
    torch.testing.assert_close(lpips_style_pairwise(a2, b2), (d + 1.0) / 2)
    torch.testing.assert_close(lpips_style_pairwise(a2, b2, reduce="sum"), d + 1.0)
    with pytest.raises(ValueError, match="differ"):
        lpips_style_pairwise(a, {"x": b["t"]})


def test_perceptual_distance_finds_the_nearest_private_image():
    pixels = lambda x: {"px": x}  # noqa: E731 - raw pixels as the only tap: distances are easy to work out
    priv = torch.zeros(3, 3, 2, 2)
    priv[0, 0] = 1.0  # class 0: red, green
    priv[1, 1] = 1.0
    priv[2, 2] = 1.0  # class 1: blue
    labels = torch.tensor([0, 0, 1])
    m = PerceptualDistance(pixels(priv), labels, taps_fn=pixels)
    x = torch.zeros(2, 3, 2, 2)
    x[0, 1] = 0.5  # green, dimmer: same direction -> 0 to the green private image
    x[1, 0] = 1.0  # red attacked as class 1: orthogonal to blue -> 2
    m.update(x, torch.tensor([0, 1]))
    out = m.compute()
    assert out["perc_dist_per_class"][0] == pytest.approx(0.0, abs=1e-6)
    assert out["perc_dist_per_class"][1] == pytest.approx(2.0)


def test_perceptual_distance_on_mobilenet_taps_is_zero_for_a_private_image():
    g = torch.Generator().manual_seed(0)
    priv = torch.rand(4, 3, 32, 32, generator=g) * 2 - 1
    labels = torch.tensor([0, 0, 1, 1])
    m = PerceptualDistance(mobilenet_taps(priv), labels)
    x = torch.stack([priv[1], (priv[2] + 0.3 * torch.randn(3, 32, 32, generator=g)).clamp(-1, 1)])
    m.update(x, torch.tensor([0, 1]))
    out = m.compute()
    assert out["perc_dist_per_class"][0] == pytest.approx(0.0, abs=1e-4)
    assert out["perc_dist_per_class"][1] > 0.01
    assert out["perc_backend"] == "mobilenet_v2-taps"


def test_frechet_distance_reports_n_and_backbone():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(400, 3, generator=g)
    shift = torch.tensor([3.0, 0.0, 4.0])
    m = FrechetDistance("toy")
    m.update(real + shift)
    m.update(real, real=True)
    out = m.compute()
    # equal covariances: FD = ||mu_a - mu_b||^2 = 25
    assert out["value"] == pytest.approx(25.0, rel=1e-6)
    assert (out["N"], out["N_private"], out["backbone"], out["dim"]) == (400, 400, "toy", 3)
    m.reset()
    m.update(real[:1])
    m.update(real, real=True)
    assert m.compute()["value"] is None  # fewer than 2 attack images


@pytest.fixture
def fake_run(tmp_path):
    """A run folder whose 'attack images' are private-train images themselves: every distance is 0."""
    cfg = tiny_attack_config(tmp_path)
    torch.manual_seed(1)
    e_path = tmp_path / "eval.safetensors"
    save_classifier(build_classifier("resnet", 4, 8), e_path,
                    {"role": "eval", "arch": "resnet", "width": 8, "n_classes": 4, "resolution": 32,
                     "benchmark": "tiny", "benchmark_sha256": "-"})
    bench = load_benchmark(cfg.data)
    run = tmp_path / "run"
    (run / "final").mkdir(parents=True)
    (run / "config.yaml").write_text(cfg.to_yaml())
    keep = (bench.private_train.labels == 0) | (bench.private_train.labels == 2)
    x, y = bench.private_train.as_float(keep), bench.private_train.labels[keep]
    save_file({"images": x.contiguous(), "labels": y}, str(run / "final" / "images.safetensors"))
    return run, e_path


def test_evaluate_run_new_keys_on_private_images(fake_run):
    pytest.importorskip("dlib")
    run, e_path = fake_run
    m = evaluate_run(run, str(e_path))
    for key in ("E_acc@1", "E_acc@5", "T_acc@1", "knn_dist", "judge_dist", "judge_match@0.6", "perc_dist",
                "frechet_sface", "frechet_mobilenet"):
        assert key in m
    assert m["knn_dist"] == pytest.approx(0.0, abs=1e-4)
    assert m["judge_dist"] == pytest.approx(0.0, abs=1e-4) and m["judge_match@0.6"] == 1.0
    assert m["perc_dist"] == pytest.approx(0.0, abs=1e-4)
    for key in ("frechet_sface", "frechet_mobilenet"):
        assert m[key]["N"] == 6 and m[key]["N_private"] == 6 and m[key]["backbone"]
        assert m[key]["value"] == pytest.approx(0.0, abs=1e-3)  # the same images on both sides
    assert json.loads((run / "metrics.json").read_text())["frechet_sface"]["N"] == 6
    rows = list(csv.DictReader(open(run / "per_identity.csv")))
    assert list(rows[0]) == PER_IDENTITY_COLUMNS
    assert [r["class"] for r in rows] == ["0", "2"] and float(rows[0]["judge_match@0.6"]) == 1.0
    assert m["judge_top1"] == 1.0 and m["judge_gallery"] == 2 and float(rows[1]["judge_top1"]) == 1.0
    # per image: E's top classes, whether its top-1 is the class, the judge at distance 0 (private images)
    per_image = json.loads((run / "per_image.json").read_text())
    assert len(per_image) == 6 and [r["class"] for r in per_image] == [0, 0, 0, 2, 2, 2]
    assert [r["rank"] for r in per_image] == [0, 1, 2, 0, 1, 2]
    for r in per_image:
        assert len(r["E_top5"]) == 4 and r["E_top5"][0][1] >= r["E_top5"][-1][1]  # top-5 of a 4-class E
        assert r["E_recognises"] == (r["E_top5"][0][0] == r["class"])
        assert r["dlib_dist"] == pytest.approx(0.0, abs=1e-3) and r["dlib_top1"] is True


def test_evaluate_run_without_dlib_says_why(fake_run, monkeypatch, capsys):
    import mia_app.models.dlib_judge as dj

    def missing(*a, **k):
        raise ImportError(f"DlibJudge needs dlib, which is not importable (No module named 'dlib'). Run: {dj.DLIB_PIP}")

    monkeypatch.setattr(dj, "load_dlib_judge", missing)
    run, e_path = fake_run
    m = evaluate_run(run, str(e_path))
    assert m["judge_dist"] is None and m["judge_match@0.6"] is None
    assert "pip install dlib-bin" in m["judge_note"] and "dlib judge skipped" in capsys.readouterr().err
    assert m["perc_dist"] == pytest.approx(0.0, abs=1e-4)  # the rest still runs
    assert json.loads((run / "per_image.json").read_text())[0]["dlib_dist"] is None  # no judge: no distance
    with pytest.raises(ImportError, match="dlib"):
        evaluate_run(run, str(e_path), judge="on")


def test_official_lpips_that_cannot_load_falls_back_with_a_warning(monkeypatch, caplog):
    import sys

    import mia_app.evaluation.evaluate as ev

    monkeypatch.setitem(sys.modules, "lpips", None)  # `import lpips` raises ImportError
    monkeypatch.setattr(ev, "_PERC_BACKEND", {})
    with caplog.at_level("WARNING", logger="mia_app.evaluation"):
        assert ev._official_lpips() is None
    assert "official LPIPS skipped (ModuleNotFoundError" in caplog.text and "MobileNetV2" in caplog.text
