"""The shipped T and E: accuracy recomputed on the private-test split of the benchmark each was trained on."""

from functools import cache

import pytest
import torch

from mia_app.assets import load_manifest, shipped_path
from mia_app.config import ClassifierTrainConfig, parse_data_config
from mia_app.data import load_benchmark
from mia_app.models.classifiers import build_classifier, load_classifier
from mia_app.train_classifier import accuracy, augment, train_classifier

BARS = {"target": 0.85, "eval": 0.90}


@cache
def bench_of(data_json: str):
    import json

    return load_benchmark(parse_data_config(json.loads(data_json)))


def training_bench(entry: dict):
    """The benchmark a shipped classifier was trained on, from its provenance."""
    import json

    return bench_of(json.dumps(entry["provenance"]["config"]["data"], sort_keys=True))


SHIPPED_CLASSIFIERS = [e["path"] for e in load_manifest()["files"] if e.get("role") in BARS]
# The undefended T of each benchmark, what a defended T of that benchmark is held against
UNDEFENDED_TARGETS = {"synthid": "assets/target.safetensors", "orl": "assets/orl/target.safetensors"}


@pytest.mark.parametrize("path", SHIPPED_CLASSIFIERS)
def test_shipped_classifier_meets_its_bar(path):
    """Every shipped T (undefended and defended) and E: the recorded private-test accuracy is reproduced, and a
    defended T stays within 5 points of the undefended one (issue 14's bar)."""
    entry = next(e for e in load_manifest()["files"] if e["path"] == path)
    bench = training_bench(entry)
    model, meta = load_classifier(shipped_path(entry["path"]))
    assert meta["benchmark"] == bench.name == entry["benchmark"]
    if meta["benchmark_sha256"] != bench.content_hash():
        # The DCGAN's float rounding differs between CPU kinds, so a few uint8 pixels of the generated benchmark
        # can differ from the machine T and E were trained on (seen 2026-12-01: same code, another hash). The
        # accuracy below must then still reproduce the recorded figure: that is what the provenance promises.
        print(f"note: benchmark sha256 {bench.content_hash()[:12]} differs from the training machine's "
              f"{meta['benchmark_sha256'][:12]} (CPU rounding); checking the recorded accuracy instead")
    acc = accuracy(model, bench.private_test.images, bench.private_test.labels)
    assert acc >= BARS[entry["role"]]
    assert abs(acc - entry["test_acc"]) < 0.005
    assert meta.get("defense", "none") == entry.get("defense", "none")
    if entry.get("defense", "none") != "none":
        kind = entry["provenance"]["config"]["data"]["kind"]
        undefended = next(e for e in load_manifest()["files"] if e["path"] == UNDEFENDED_TARGETS[kind])
        assert entry["arch"] == undefended["arch"] and acc >= undefended["test_acc"] - 0.05


def test_target_and_eval_differ_in_architecture():
    entries = [e for e in load_manifest()["files"] if e.get("role") in BARS]
    for benchmark in {e["benchmark"] for e in entries}:
        evals = {e["arch"] for e in entries if e["role"] == "eval" and e["benchmark"] == benchmark}
        targets = [e for e in entries if e["role"] == "target" and e["benchmark"] == benchmark]
        assert evals and targets and all(e["arch"] not in evals for e in targets), benchmark


def test_features_and_logits_shapes():
    for arch in ("vgg", "resnet"):
        m = build_classifier(arch, 7, 8).eval()
        x = torch.rand(2, 3, 32, 32) * 2 - 1
        assert m(x).shape == (2, 7) and m.features(x).ndim == 2
        assert m(torch.rand(1, 3, 64, 64)).shape == (1, 7)
    with pytest.raises(ValueError):
        build_classifier("alexnet", 7)
    for arch in ("softmax", "mlp"):  # Fredrikson et al.'s pixel models: one input size each
        m = build_classifier(arch, 7, 8, resolution=32).eval()
        assert m(x).shape == (2, 7) and m.features(x).ndim == 2
        with pytest.raises(ValueError, match="resolution"):
            build_classifier(arch, 7, 8)


def test_augment_keeps_shape_and_range():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    y = augment(x, g)
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1 and not torch.equal(x, y)


def test_tiny_training_run_learns(tiny_synthid, tmp_path):
    cfg = ClassifierTrainConfig(role="target", width=8, epochs=20, batch_size=8, lr=0.05, label_smoothing=0.0,
                                data=tiny_synthid.model_copy(update={"sigma": 0.2, "train_per_id": 6}))
    report = train_classifier(cfg, tmp_path / "t.safetensors")
    assert report["train_acc"] >= 0.75  # 4 classes: chance is 0.25
    model, meta = load_classifier(tmp_path / "t.safetensors")
    assert meta["role"] == "target" and meta["arch"] == "vgg"
