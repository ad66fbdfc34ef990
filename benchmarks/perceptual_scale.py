"""What a step on our perceptual distance means: anchors of ``perc_dist`` on real faces.

    python benchmarks/perceptual_scale.py --preset configs/attack/cpu-quick.yaml --classes 0-19 \\
        --out results/benchmarks/perceptual_scale.json

The seed states one bar in LPIPS units (A+B+C: perceptual distance better by >= 0.2). Official LPIPS (AlexNet
with learned heads) cannot run here (its backbone comes from torchvision, which this project must not install,
and its weights download at run time), so ``perc_dist`` is LPIPS without learned heads on MobileNetV2 taps
(``mia_app.evaluation.metrics.PerceptualDistance``). This measures three anchors on that scale, each the
distance of an image to the nearest private-train image of class y (what ``perc_dist`` scores):

* ``same_person``: a private-test image of y (a real, unseen photo of the right person: a perfect attack);
* ``other_person``: a private-test image of another private class (a real photo of the wrong person);
* ``public``: a public image (a real stranger from the attacker's pool, as the no-attack floor shows).

The span other_person − same_person is the scale's "identity" range: a Δ is read as a fraction of it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from mia_app.attack.config import AttackConfig
from mia_app.data import load_benchmark, to_signed
from mia_app.evaluation.metrics import PerceptualDistance, mobilenet_taps
from mia_app.user_input import parse_targets


def nearest_private(pd: PerceptualDistance, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    pd.reset()
    pd.update(x, y)
    return torch.cat(pd.values)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", type=Path, default=Path("configs/attack/cpu-quick.yaml"))
    ap.add_argument("--classes", default="0-19")
    ap.add_argument("--per-class", type=int, default=4, help="probe images per class and anchor")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    t0 = time.time()
    cfg = AttackConfig.from_yaml(args.preset)
    bench = load_benchmark(cfg.data)
    classes = parse_targets(args.classes)
    if len(classes) < 2:
        raise SystemExit("--classes needs at least two classes (the other-person anchor)")
    g = torch.Generator().manual_seed(args.seed)
    ref = torch.cat([to_signed(bench.private_train.of_class(c)) for c in classes])
    ref_y = torch.cat([torch.full((len(bench.private_train.of_class(c)),), c) for c in classes])
    pd = PerceptualDistance(mobilenet_taps(ref), ref_y)

    def pick(images: torch.Tensor) -> torch.Tensor:
        return images[torch.randperm(len(images), generator=g)[: args.per_class]]

    same = torch.cat([to_signed(pick(bench.private_test.of_class(c))) for c in classes])
    same_y = torch.cat([torch.full((min(args.per_class, len(bench.private_test.of_class(c))),), c) for c in classes])
    # the wrong person: each probe scored against the next class in the list (a real face, another identity)
    other_y = torch.tensor([classes[(classes.index(int(c)) + 1) % len(classes)] for c in same_y])
    public = to_signed(bench.public.images[torch.randperm(len(bench.public), generator=g)[: len(same_y)]])
    anchors = {"same_person": nearest_private(pd, same, same_y),
               "other_person": nearest_private(pd, same, other_y),
               "public": nearest_private(pd, public, same_y[: len(public)])}
    stats = {k: {"mean": round(v.mean().item(), 4), "std": round(v.std().item(), 4), "n": len(v)}
             for k, v in anchors.items()}
    span = stats["other_person"]["mean"] - stats["same_person"]["mean"]
    report = {"preset": str(args.preset), "benchmark": bench.name, "classes": args.classes,
              "backend": pd.backend, "anchors": stats, "identity_span": round(span, 4),
              "seed_bar_0.2_as_fraction_of_span": round(0.2 / span, 3) if span > 0 else None,
              "seconds": round(time.time() - t0, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    for k, s in stats.items():
        print(f"{k:>13}: {s['mean']:.4f} ± {s['std']:.4f} (n {s['n']})")
    share = report["seed_bar_0.2_as_fraction_of_span"]
    print(f"identity span (other − same person): {span:.4f}; the seed's 0.2 is {share} of it; wrote {args.out}")


if __name__ == "__main__":
    main()
