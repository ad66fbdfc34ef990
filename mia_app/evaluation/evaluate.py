"""Evaluate a run folder with the evaluation model E (never used by the attack)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from mia_app.assets import shipped_path
from mia_app.attack.config import AttackConfig
from mia_app.attack.models import load_target
from mia_app.data import load_benchmark
from mia_app.evaluation.metrics import KNNDistance, TopKAccuracy
from mia_app.models.classifiers import load_classifier

DEFAULT_EVAL = "assets/eval.safetensors"


@torch.no_grad()
def evaluate_run(run: str | Path, eval_model: str = DEFAULT_EVAL) -> dict:
    run = Path(run)
    final = run / "final" / "images.safetensors"
    if not final.is_file():
        raise FileNotFoundError(f"{run} has no final images; is it a finished attack run?")
    cfg = AttackConfig.from_yaml(run / "config.yaml")
    data = load_file(str(final))
    x, y = data["images"].float(), data["labels"].long()
    bench = load_benchmark(cfg.data)
    E, e_meta = load_classifier(shipped_path(eval_model) if eval_model.startswith("assets/") else eval_model)
    T, _ = load_target(cfg.target)
    if e_meta["n_classes"] != bench.n_classes:
        raise ValueError(f"E has {e_meta['n_classes']} classes, the benchmark {bench.n_classes}")
    acc_e, acc_t = TopKAccuracy(), TopKAccuracy()
    acc_e.update(E(x), y)
    acc_t.update(T(x), y)
    train = bench.private_train
    priv_feat = torch.cat([E.features(train.as_float(slice(i, i + 500))) for i in range(0, len(train), 500)])
    knn = KNNDistance(priv_feat, train.labels)
    knn.update(E.features(x), y)
    e, t, k = acc_e.compute(), acc_t.compute(), knn.compute()
    metrics = {
        "n_images": len(y),
        "n_identities": int(y.unique().numel()),
        "eval_model": eval_model,
        "E_acc@1": e["acc@1"], "E_acc@1_ci95": e["acc@1_ci95"],
        "E_acc@5": e["acc@5"], "E_acc@5_ci95": e["acc@5_ci95"],
        "T_acc@1": t["acc@1"], "T_acc@5": t["acc@5"],
        "knn_dist": k["knn_dist"],
        "seed": cfg.seed,
    }
    (run / "metrics.json").write_text(json.dumps(metrics, indent=2))
    with open(run / "per_identity.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["class", "E_acc@1", "E_acc@5", "T_acc@1", "knn_dist"])
        for c in sorted(e["acc@1_per_class"]):
            w.writerow([c, e["acc@1_per_class"][c], e["acc@5_per_class"][c], t["acc@1_per_class"][c],
                        k["knn_dist_per_class"][c]])
    return metrics
