"""Seconds per candidate-step of our attack, PPA and MIFace, in one run on the same identities; ours split by part,
for three settings of our attack (same run):

    MIA_THREADS=2 python benchmarks/peer_cost.py --identities 10 --repeats 5

* ``latent``: the preset as committed (cpu-quick: the latent prior over the DCGAN's z, E_id sface32, bf16);
* ``pixel``: the same preset on the pixel prior (assets/prior, 4 DDIM steps at strength 0.5, no checkpointing),
  the speed issue's "after";
* ``before``: the pixel prior with E_id SFace at 112 px, fp32 and gradient checkpointing, the speed issue's
  "before".

The candidates: each setting's own initial selection for the preset's identities (10 × 4 candidates = 40, the
top-4 sources of each class under T: public images for the pixel prior, random DCGAN latents for the latent one).
Every figure is the median of ``--repeats`` timed forward + backward passes after one warm-up, divided by the
number of candidates:

* ours, whole step: a stage-1 and a stage-2 step of ``run_attack`` (baseline and all four schemes), timed by
  the engine's own step events;
* ours, by part, each forward + backward on the same candidates: the prior's differentiable SDEdit (gradient
  to c), the decode (the DCGAN for the latent prior; the identity for the pixel prior), T, E_id, the perceptual
  taps (MobileNetV2), scheme C's attributes (3DDFA_V2 + illumination);
* PPA: one optimisation step on 40 DCGAN latents (G, random transforms, T, Poincaré loss, Adam);
* MIFace: one step on 40 images (T's softmax gradient, clip).

Writes ``results/benchmarks/peer_cost.json`` (and ``peer_cost-<device>.json`` / ``.md``) and prints a markdown
table with ratios to PPA from the same run (this machine is noisy: only the ratios of one run are comparable).
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


PIXEL = {"prior": "assets/prior",
         "sampler": {"strength": 0.5, "num_steps": 4, "guidance": 1.0, "gradient_checkpointing": False}}
BEFORE = {"id_encoder": "sface", "precision": "fp32"}


def variants(latent: AttackConfig) -> dict[str, AttackConfig]:
    pixel = AttackConfig.model_validate(latent.model_dump() | PIXEL)
    before = AttackConfig.model_validate(pixel.model_dump() | BEFORE | {
        "sampler": pixel.sampler.model_dump() | {"gradient_checkpointing": True}})
    return {"before": before, "pixel": pixel, "latent": latent}


def our_step(base: AttackConfig, targets: list[int], schemes: dict, repeats: int) -> dict[str, float]:
    cfg = AttackConfig.model_validate(base.model_dump() | {
        "schemes": base.schemes.model_dump() | schemes,
        "stage1": base.stage1.model_dump() | {"steps": repeats + 1, "image_every": 10_000},
        "stage2": base.stage2.model_dump() | {"steps": repeats + 1, "image_every": 10_000},
        "identities_per_batch": len(targets)})
    timer = StepTimer()
    run_attack(cfg, targets, "/tmp/mia-peer-cost/ours", [timer])
    return {f"stage{s}": statistics.median(timer.t[s]) for s in (1, 2)}


def part_timings(cfg: AttackConfig, models, z_src, c, noise, attrs, repeats: int) -> dict[str, float]:
    """Forward + backward of each part of one step on the same candidates, under ``cfg``'s precision."""
    s = cfg.sampler
    n = len(z_src)
    prior = models.prior
    autocast = torch.autocast(z_src.device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")
    with torch.no_grad(), autocast:
        z_fixed = sdedit_sample(prior, z_src, c, s.strength, s.num_steps, s.guidance, noise=noise).float()
        x_fixed = prior.decode(z_fixed).float()

    def prior_part():
        code = c.clone().requires_grad_(True)
        with autocast:
            z = sdedit_sample(prior, z_src, code, s.strength, s.num_steps, s.guidance, noise=noise,
                              gradient_checkpointing=s.gradient_checkpointing)
        z.float().sum().backward()

    def on(fn, fixed):
        def run():
            x = fixed.clone().requires_grad_(True)
            with autocast:
                out = fn(x)
            (sum(v.float().sum() for v in out.values()) if isinstance(out, dict) else out.float().sum()).backward()
        return run

    from mia_app.models.id_encoders import load_id_encoder

    parts = {
        "prior sampling (SDEdit, grad to c)": prior_part,
        f"decode ({prior.kind} prior)": on(prior.decode, z_fixed),
        "T": on(models.target, x_fixed),
        f"E_id ({cfg.id_encoder})": on(load_id_encoder(cfg.id_encoder, z_src.device), x_fixed),
        "perceptual (MobileNetV2 taps)": on(models.perceptual, x_fixed),
        "attributes (3DDFA_V2 + light, scheme C)": on(attrs, x_fixed),
    }
    return {name: median_time(fn, repeats) / n for name, fn in parts.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/attack/cpu-quick.yaml")
    ap.add_argument("--identities", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    configs = variants(AttackConfig.from_yaml(args.config))
    latent = configs["latent"]
    targets = list(range(args.identities))
    bench = load_benchmark(latent.data)
    from mia_app.attack.engine import Inversion
    from mia_app.losses.attributes import load_attribute_predictors

    parts = {}
    for label, cfg in configs.items():
        models = cached_models(cfg)
        # Each setting's own candidates and initial codes (the student's codes are SFace-space codes).
        c0, z_src, x_src, y = Inversion(cfg, models, bench).select_initial(targets)
        c = F.normalize(c0, dim=1).repeat_interleave(cfg.candidates, 0)
        noise = torch.randn(z_src.shape, generator=torch.Generator().manual_seed(0)).to(models.device)
        attrs = load_attribute_predictors(models.device)
        parts[label] = part_timings(cfg, models, z_src, c, noise, attrs, args.repeats)
        print(f"ours parts, {label}: {json.dumps(parts[label])}", flush=True)
    dev = models.device
    n = len(x_src)
    g = torch.Generator().manual_seed(0)

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
    all_four = {"A": True, "B3": True, "C": True, "D": True}
    whole = {}
    for label, cfg in configs.items():
        whole[f"ours baseline, {label}"] = our_step(cfg, targets, {}, args.repeats)
        whole[f"ours A+B3+C+D, {label}"] = our_step(cfg, targets, all_four, args.repeats)
        print(json.dumps(whole), flush=True)
    ppa = peers["PPA (DCGAN + transforms + T, Poincaré)"]
    step = {k: {st: v / n for st, v in d.items()} for k, d in whole.items()}
    mean_step = {k: statistics.mean(d.values()) for k, d in step.items()}
    result = {
        "candidates": n, "identities": len(targets), "threads": args.threads, "device": str(dev),
        "repeats": args.repeats, "preset": args.config,
        "settings": {"before": PIXEL | BEFORE | {"gradient_checkpointing": True}, "pixel": PIXEL, "latent": {}},
        "unit": "seconds per candidate-step (median)", "ours_parts": parts, "peers": peers, "ours_step": step,
        "ours_over_ppa": mean_step["ours baseline, latent"] / ppa,
        "ours_over_ppa_all_four": mean_step["ours A+B3+C+D, latent"] / ppa,
        "ours_over_ppa_pixel": mean_step["ours baseline, pixel"] / ppa,
        "ours_over_ppa_before": mean_step["ours baseline, before"] / ppa,
        "speedup_baseline": mean_step["ours baseline, before"] / mean_step["ours baseline, pixel"],
        "speedup_all_four": mean_step["ours A+B3+C+D, before"] / mean_step["ours A+B3+C+D, pixel"],
        "speedup_latent_over_before": mean_step["ours baseline, before"] / mean_step["ours baseline, latent"],
    }
    OUT.mkdir(parents=True, exist_ok=True)
    for name in ("peer_cost.json", f"peer_cost-{dev.type}.json"):  # the latest, and the latest on this device
        (OUT / name).write_text(json.dumps(result, indent=2))
    lines = [f"Seconds per candidate-step, {n} candidates ({len(targets)} identities × {latent.candidates}), "
             f"{args.threads} threads, median of {args.repeats}; × PPA = this / PPA's step, same run. latent = "
             f"{args.config} as committed; pixel = the same on the pixel prior; before = pixel with E_id SFace, fp32, "
             "gradient checkpointing.", "",
             "| what | s / candidate-step | × PPA |", "|---|---|---|"]
    for name, d in step.items():
        for st, v in d.items():
            lines.append(f"| {name}, whole {st} step | {v:.4f} | {v / ppa:.1f} |")
    for label, rows in parts.items():
        for name, v in rows.items():
            lines.append(f"| ours part ({label}): {name} | {v:.4f} | {v / ppa:.2f} |")
    for name, v in peers.items():
        lines.append(f"| {name}, whole step | {v:.4f} | {v / ppa:.1f} |")
    lines += ["", f"Whole step, baseline: before / pixel = {result['speedup_baseline']:.2f}× (A+B3+C+D: "
              f"{result['speedup_all_four']:.2f}×), before / latent = {result['speedup_latent_over_before']:.2f}×. "
              f"Ours / PPA: {result['ours_over_ppa_before']:.1f} before, {result['ours_over_ppa_pixel']:.1f} pixel, "
              f"{result['ours_over_ppa']:.2f} latent (A+B3+C+D: {result['ours_over_ppa_all_four']:.2f})."]
    text = "\n".join(lines)
    print("\n" + text)
    (OUT / f"peer_cost-{dev.type}.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
