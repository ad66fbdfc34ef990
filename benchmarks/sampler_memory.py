"""Sampler memory against K: one forward + backward through K DDIM steps, with and without checkpointing.

    python benchmarks/sampler_memory.py                    # shipped prior, batch 16, K = 2 4 8 16
    python benchmarks/sampler_memory.py --batch 64 --ks 4 16 32

Each (K, checkpointing) cell runs in a fresh process, so one cell's peak cannot hide another's. On CPU the figure
is the peak resident set during the step minus the resident set just before it (after loading and a warm-up
step), which allocator caching makes noisy; on CUDA it is ``max_memory_allocated`` above the allocation before
the step. The exact, device-independent figure is what autograd saves for the backward pass (counted with
``saved_tensors_hooks``, one entry per storage): under checkpointing only each step's inputs are kept.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def one_cell(prior_path: str, batch: int, k: int, checkpointing: bool, device: str) -> dict:
    from mia_app.attack.models import load_prior
    from mia_app.prior.sampler import sdedit_sample

    torch.manual_seed(0)
    prior = load_prior(prior_path).to(device).eval().requires_grad_(False)
    res = prior.unet.config.sample_size
    x_src = torch.rand(batch, 3, res, res, device=device) * 2 - 1
    c = torch.nn.functional.normalize(torch.randn(batch, prior.code_dim, device=device), dim=1).requires_grad_()

    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:  # what autograd keeps for the backward pass, by storage
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    def step(n_steps: int) -> float:
        saved.clear()
        t0 = time.perf_counter()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            x = sdedit_sample(prior, x_src, c, 0.6, n_steps, gradient_checkpointing=checkpointing)
        x.square().mean().backward()
        c.grad = None
        return time.perf_counter() - t0

    step(1)  # warm-up: allocator pools, lazy inits
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        seconds = step(k)
        torch.cuda.synchronize()
        extra = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        base = _rss_mb()
        seconds = step(k)
        extra = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base
    return {"K": k, "checkpointing": checkpointing, "batch": batch, "extra_mb": round(extra, 1),
            "saved_for_backward_mb": round(sum(saved.values()) / 2**20, 2),
            "seconds": round(seconds, 2), "device": device}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prior", default="assets/prior")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--ks", type=int, nargs="+", default=[2, 4, 8, 16])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cell", nargs=2, metavar=("K", "CKPT"), help=argparse.SUPPRESS)  # child process
    args = ap.parse_args()
    if args.batch < 1 or min(args.ks) < 1:
        raise SystemExit("--batch and every K must be >= 1")
    torch.set_num_threads(args.threads)
    if args.cell:
        print(json.dumps(one_cell(args.prior, args.batch, int(args.cell[0]), args.cell[1] == "1", args.device)))
        return
    rows = []
    for ckpt in (True, False):
        for k in args.ks:
            cmd = [sys.executable, __file__, "--prior", args.prior, "--batch", str(args.batch), "--device",
                   args.device, "--threads", str(args.threads), "--cell", str(k), "1" if ckpt else "0"]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            rows.append(json.loads(out))
            print(out, flush=True)
    print(f"\nbatch {args.batch}, {args.device}: one forward+backward through K DDIM steps; 'saved' = tensors "
          "autograd keeps for the backward pass (exact), 'peak' = extra peak memory (on CPU: resident set, noisy)")
    print(f"{'K':>4} {'saved ckpt':>11} {'saved no-ckpt':>14} {'peak ckpt':>10} {'peak no-ckpt':>13} "
          f"{'ckpt s':>7} {'no-ckpt s':>10}   (MB, s)")
    by = {(r["K"], r["checkpointing"]): r for r in rows}
    for k in args.ks:
        on, off = by[(k, True)], by[(k, False)]
        print(f"{k:>4} {on['saved_for_backward_mb']:>11.2f} {off['saved_for_backward_mb']:>14.2f} "
              f"{on['extra_mb']:>10.1f} {off['extra_mb']:>13.1f} {on['seconds']:>7.2f} {off['seconds']:>10.2f}")


if __name__ == "__main__":
    main()
