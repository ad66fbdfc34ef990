"""The differentiable SDEdit sampler's forward + backward under each setting the attack can run it with.

    MIA_THREADS=2 python benchmarks/sampler_precision.py --batch 40 --repeats 5

Settings: fp32 with gradient checkpointing (the old cpu-quick), fp32 without, bf16 autocast without (the
cpu-quick preset now), and bf16 with the UNet and images in channels_last. Timed alternately (one of each per
round, median over ``--repeats`` rounds) on the shipped prior, 4 DDIM steps at strength 0.5, the gradient going
to the codes as in stage 1. Against fp32: the largest pixel difference of x̂ ([-1, 1]) and the cosine of
the codes' gradients. Writes ``results/benchmarks/sampler_precision-<device>.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from mia_app.attack.models import load_prior
from mia_app.prior.sampler import sdedit_sample

OUT = Path("results/benchmarks")
SETTINGS = {  # name: (bf16, gradient checkpointing, channels_last)
    "fp32, checkpointing": (False, True, False),
    "fp32": (False, False, False),
    "bf16": (True, False, False),
    "bf16, channels_last": (True, False, True),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    prior = load_prior("assets/prior").eval().requires_grad_(False)
    g = torch.Generator().manual_seed(0)
    x_src = torch.rand(args.batch, 3, 32, 32, generator=g) * 2 - 1
    noise = torch.randn(x_src.shape, generator=g)
    c = F.normalize(torch.randn(args.batch, 128, generator=g), dim=1)

    def run(bf16: bool, ckpt: bool, channels_last: bool) -> tuple[float, torch.Tensor, torch.Tensor]:
        layout = torch.channels_last if channels_last else torch.contiguous_format
        prior.to(memory_format=layout)
        xs, nz = x_src.contiguous(memory_format=layout), noise.contiguous(memory_format=layout)
        code = c.clone().requires_grad_(True)
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            x_hat = sdedit_sample(prior, xs, code, 0.5, 4, 1.0, noise=nz, gradient_checkpointing=ckpt)
        x_hat.float().sum().backward()
        return time.perf_counter() - t0, x_hat.detach().float(), code.grad

    for setting in SETTINGS.values():
        run(*setting)  # warm-up
    times: dict[str, list[float]] = {name: [] for name in SETTINGS}
    outputs = {}
    for _ in range(args.repeats):
        for name, setting in SETTINGS.items():
            seconds, x_hat, grad = run(*setting)
            times[name].append(seconds)
            outputs[name] = (x_hat, grad)
    ref_x, ref_g = outputs["fp32"]
    rows = {}
    for name in SETTINGS:
        x_hat, grad = outputs[name]
        rows[name] = {"seconds": statistics.median(times[name]),
                      "vs_fp32_checkpointing": statistics.median(times["fp32, checkpointing"]) /
                      statistics.median(times[name]),
                      "max_pixel_diff_vs_fp32": (x_hat - ref_x).abs().max().item(),
                      "grad_cos_vs_fp32": F.cosine_similarity(grad.flatten(), ref_g.flatten(), dim=0).item()}
    result = {"batch": args.batch, "repeats": args.repeats, "threads": args.threads, "num_steps": 4,
              "strength": 0.5, "settings": rows}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "sampler_precision-cpu.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
