"""Train the target T or the evaluation model E on private-train only; report private-test accuracy."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from mia_app.config import ClassifierTrainConfig
from mia_app.data import Benchmark, load_benchmark
from mia_app.defenses import TrainingObjective
from mia_app.models.classifiers import build_classifier, save_classifier


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random translation by up to R/16 px (reflect pad + crop) and horizontal flip. x: N×3×R×R in [-1, 1]."""
    n, _, r, _ = x.shape
    pad = max(1, r // 16)
    xp = F.pad(x, (pad,) * 4, mode="reflect")
    dx, dy = torch.randint(0, 2 * pad + 1, (2, n), generator=generator)
    idx = torch.arange(r)
    rows = (dy[:, None] + idx[None]).view(n, 1, r, 1).expand(n, 3, r, r + 2 * pad)
    xp = xp.gather(2, rows)
    cols = (dx[:, None] + idx[None]).view(n, 1, 1, r).expand(n, 3, r, r)
    out = xp.gather(3, cols)
    flip = torch.rand(n, generator=generator) < 0.5
    out[flip] = out[flip].flip(-1)
    return out


@torch.no_grad()
def accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int = 500) -> float:
    """Top-1 accuracy; images uint8 N×3×R×R."""
    model.eval()
    correct = 0
    for i in range(0, len(images), batch):
        x = images[i : i + batch].float().div(127.5).sub(1)
        correct += (model(x).argmax(1) == labels[i : i + batch]).sum().item()
    return correct / max(1, len(images))


def train_classifier(cfg: ClassifierTrainConfig, out: Path, bench: Benchmark | None = None) -> dict:
    """Train, save ``out`` (fp16 safetensors) and return a report with private-test accuracy."""
    torch.manual_seed(cfg.seed)
    bench = bench or load_benchmark(cfg.data)
    train, test = bench.private_train, bench.private_test
    objective = TrainingObjective(cfg.defense, bench.n_classes, cfg.label_smoothing)
    model = build_classifier(cfg.arch, bench.n_classes, cfg.width, objective.bottleneck, bench.resolution)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    warmup = max(1, total // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total)))
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    t0 = time.time()
    bar = tqdm(range(cfg.epochs), desc=f"train {cfg.role} ({cfg.arch})")
    step, terms = 0, {}
    for epoch in bar:
        model.train()
        perm = torch.randperm(len(train), generator=gen)
        for i in range(0, len(train), cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            if len(idx) < 2:  # BiDO's HSIC needs two samples; one image is no step anyway
                continue
            x = augment(train.as_float(idx), gen)
            loss, terms = objective(model, x, train.labels[idx], step / total)
            step += 1
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        if epoch % 5 == 4 or epoch == cfg.epochs - 1:
            bar.set_postfix(loss=f"{loss.item():.3f}", test_acc=f"{accuracy(model, test.images, test.labels):.3f}",
                            **{k: f"{v:.3g}" for k, v in terms.items() if k != "ce"})
    meta = {
        "role": cfg.role,
        "arch": cfg.arch,
        "width": cfg.width,
        "n_classes": bench.n_classes,
        "resolution": bench.resolution,
        "benchmark": bench.name,
        "benchmark_sha256": bench.content_hash(),
        "defense": cfg.defense.kind,
        **({"bottleneck": objective.bottleneck} if objective.bottleneck else {}),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    save_classifier(model, out, meta)
    # Accuracy of what is shipped: reload the fp16 checkpoint rather than trusting the fp32 weights in memory.
    from mia_app.models.classifiers import load_classifier

    shipped, _ = load_classifier(out)
    report = {
        **meta,
        "test_acc": round(accuracy(shipped, test.images, test.labels), 4),
        "train_acc": round(accuracy(shipped, train.images, train.labels), 4),
        "params": sum(p.numel() for p in model.parameters()),
        "seconds": round(time.time() - t0, 1),
        "final_terms": terms,
        "config": json.loads(cfg.model_dump_json()),
    }
    return report
