"""Seconds per candidate-step of our attack, PPA and MIFace, in one run on the same candidates; ours split by part.

    MIA_THREADS=2 python benchmarks/peer_cost.py --identities 10 --repeats 5

The candidates: the cpu-quick preset's (10 identities × 4 candidates = 40, the top-4 public sources of each
class under T). Every figure is the median of ``--repeats`` timed forward + backward passes after one warm-up,
divided by the number of candidates:

* ours, whole step: a stage-1 and a stage-2 step of ``run_attack`` (baseline and all four schemes), timed by
  the engine's own step events;
* ours, by part, each forward + backward on the same 40 candidates: the prior's differentiable SDEdit
  (4 DDIM steps at strength 0.5, gradient to c), T, E_id (SFace at 112 px), the perceptual taps (MobileNetV2),
  scheme C's attributes (3DDFA_V2 + illumination); "decode" is n/a for the pixel prior (no decoder);
* PPA: one optimisation step on 40 DCGAN latents (G, random transforms, T, Poincaré loss, Adam);
* MIFace: one step on 40 images (T's softmax gradient, clip).

Writes ``results/benchmarks/peer_cost-<device>.json`` and prints a markdown table with ratios to PPA from the
same run (this machine is noisy: only the ratios of one run are comparable).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from scheme_cost import StepTimer  # benchmarks/ is on sys.path when a script here runs

from mia_app.attack.augment import OPTIMISATION, RandomTransforms
from mia_app.attack.config import AttackConfig
from mia_app.attack.run import cached_models, run_attack
from mia_app.data import load_benchmark
from mia_app.losses.classification import poincare_loss
from mia_app.peers.generators import load_generator
from mia_app.prior.sampler import sdedit_sample

OUT = Path("results/benchmarks")


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up: allocator, lazy loads
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def our_step(base: AttackConfig, targets: list[int], schemes: dict, repeats: int) -> dict[str, float]:
    cfg = AttackConfig.model_validate(base.model_dump() | {
        "schemes": base.schemes.model_dump() | schemes,
        "stage1": base.stage1.model_dump() | {"steps": repeats + 1, "image_every": 10_000},
        "stage2": base.stage2.model_dump() | {"steps": repeats + 1, "image_every": 10_000},
        "identities_per_batch": len(targets)})
    timer = StepTimer()
    run_attack(cfg, targets, "/tmp/mia-peer-cost/ours", [timer])
    return {f"stage{s}": statistics.median(timer.t[s]) for s in (1, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/attack/cpu-quick.yaml")
    ap.add_argument("--identities", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    base = AttackConfig.from_yaml(args.config)
    targets = list(range(args.identities))
    models = cached_models(base)
    dev = models.device
    bench = load_benchmark(base.data)
    from mia_app.attack.engine import Inversion

    c0, x_src, y = Inversion(base, models, bench).select_initial(targets)
    n = len(x_src)
    c = F.normalize(c0, dim=1).repeat_interleave(base.candidates, 0)
    s = base.sampler
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(x_src.shape, generator=g)
    x_fixed = sdedit_sample(models.prior, x_src, c, s.strength, s.num_steps, s.guidance, noise=noise).detach()

    def prior_part():
        code = c.clone().requires_grad_(True)
        x = sdedit_sample(models.prior, x_src, code, s.strength, s.num_steps, s.guidance, noise=noise,
                          gradient_checkpointing=s.gradient_checkpointing)
        x.sum().backward()

    def image_part(fn):
        def run():
            x = x_fixed.clone().requires_grad_(True)
            out = fn(x)
            (sum(v.sum() for v in out.values()) if isinstance(out, dict) else out.sum()).backward()
        return run

    from mia_app.losses.attributes import load_attribute_predictors

    attrs = load_attribute_predictors(dev)
    parts = {
        "prior sampling (SDEdit, grad to c)": prior_part,
        "decode": None,
        "T": image_part(models.target),
        "E_id (SFace 112 px)": image_part(models.id_encoder),
        "perceptual (MobileNetV2 taps)": image_part(models.perceptual),
        "attributes (3DDFA_V2 + light, scheme C)": image_part(attrs),
    }
    rows: dict[str, float | None] = {}
    for name, fn in parts.items():
        rows[name] = None if fn is None else median_time(fn, args.repeats) / n
        print(f"ours · {name}: {rows[name]}", flush=True)

    gen = load_generator("dcgan", bench.resolution, dev)
    tau = RandomTransforms(**OPTIMISATION)
    z = torch.nn.Parameter(torch.randn(n, gen.latent_dim, generator=g))
    opt = torch.optim.Adam([z], lr=0.05, betas=(0.1, 0.1))

    def ppa_step():
        loss = poincare_loss(models.target(tau(gen(z), g)), y).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    def miface_step():
        x = torch.zeros_like(x_src).requires_grad_(True)
        p = F.softmax(models.target(x), 1).gather(1, y[:, None]).sum()
        (grad,) = torch.autograd.grad(p, x)
        (x.detach() + 10.0 * grad).clamp(-1, 1)

    peers = {"PPA (DCGAN + transforms + T, Poincaré)": median_time(ppa_step, args.repeats) / n,
             "MIFace (T gradient ascent)": median_time(miface_step, args.repeats) / n}
    print(json.dumps(peers), flush=True)
    whole = {"ours baseline": our_step(base, targets, {}, args.repeats),
             "ours A+B3+C+D": our_step(base, targets, {"A": True, "B3": True, "C": True, "D": True}, args.repeats)}
    print(json.dumps(whole), flush=True)
    ppa = peers["PPA (DCGAN + transforms + T, Poincaré)"]
    result = {
        "candidates": n, "identities": len(targets), "threads": args.threads, "device": str(dev),
        "repeats": args.repeats, "preset": args.config, "unit": "seconds per candidate-step (median)",
        "ours_parts": rows, "peers": peers,
        "ours_step": {k: {st: v / n for st, v in d.items()} for k, d in whole.items()},
    }
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"peer_cost-{dev.type}.json"
    path.write_text(json.dumps(result, indent=2))
    lines = [f"Seconds per candidate-step, {n} candidates ({len(targets)} identities × {base.candidates}), "
             f"{args.threads} threads, median of {args.repeats}; ratio = this / PPA's step, same run.", "",
             "| what | s / candidate-step | × PPA |", "|---|---|---|"]
    for name, d in result["ours_step"].items():
        for st, v in d.items():
            lines.append(f"| {name}, whole {st} step | {v:.4f} | {v / ppa:.1f} |")
    for name, v in rows.items():
        lines.append(f"| ours part: {name} | {'n/a (pixel prior)' if v is None else f'{v:.4f}'} | "
                     f"{'—' if v is None else f'{v / ppa:.1f}'} |")
    for name, v in peers.items():
        lines.append(f"| {name}, whole step | {v:.4f} | {v / ppa:.1f} |")
    text = "\n".join(lines)
    print("\n" + text)
    (OUT / f"peer_cost-{dev.type}.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
