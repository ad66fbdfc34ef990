"""Attack speed: seconds per iteration and per image, batch scaling over identities, peak memory.

    python benchmarks/attack_speed.py                       # cpu-quick preset, 1/4/16 identities
    python benchmarks/attack_speed.py --config configs/attack/gpu.yaml --identities 1 4 16 32

Each cell runs ``--iters`` stage-1 and stage-2 iterations (after one warm-up iteration) on the shipped
prior and target. Ratios measured within one run are the figures to compare: these machines are noisy.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import torch

from mia_app.attack.config import AttackConfig
from mia_app.attack.events import BaseCallback
from mia_app.attack.run import run_attack


class Timer(BaseCallback):
    def __init__(self):
        self.t: dict[int, list[float]] = {1: [], 2: []}
        self.last = None

    def on_step(self, e):
        now = time.perf_counter()
        if e.step > 1 and self.last is not None:  # step 1 pays warm-up (and stage 2 the prior pool)
            self.t[e.stage].append(now - self.last)
        self.last = now


def peak_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/attack/cpu-quick.yaml")
    ap.add_argument("--identities", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--iters", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    base = AttackConfig.from_yaml(args.config)
    rows = []
    for n_id in args.identities:
        cfg = base.model_copy(update={
            "stage1": base.stage1.model_copy(update={"steps": args.iters + 1, "image_every": 10_000}),
            "stage2": base.stage2.model_copy(update={"steps": args.iters + 1, "image_every": 10_000}),
            "identities_per_batch": n_id,
        })
        timer = Timer()
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        summary = run_attack(cfg, list(range(n_id)), f"/tmp/mia-bench/{n_id}", [timer])
        images = n_id * cfg.candidates
        s1 = sum(timer.t[1]) / max(1, len(timer.t[1]))
        s2 = sum(timer.t[2]) / max(1, len(timer.t[2]))
        rows.append({
            "identities": n_id, "images_per_iter": images,
            "s_per_iter_stage1": round(s1, 3), "s_per_iter_stage2": round(s2, 3),
            "s_per_image_iter_stage1": round(s1 / images, 4), "s_per_image_iter_stage2": round(s2 / images, 4),
            "wall_s": round(time.perf_counter() - t0, 1), "peak_mem_mb": round(peak_mb(summary["device"]), 1),
            "device": summary["device"],
        })
        print(json.dumps(rows[-1]))
    ref = rows[0]["s_per_image_iter_stage1"]
    print("\nidentities  s/iter(s1)  s/iter(s2)  s/image-iter(s1)  speed-up per image vs 1 id  peak MB")
    for r in rows:
        print(f"{r['identities']:>10}  {r['s_per_iter_stage1']:>10}  {r['s_per_iter_stage2']:>10}  "
              f"{r['s_per_image_iter_stage1']:>16}  {ref / r['s_per_image_iter_stage1']:>26.2f}  {r['peak_mem_mb']:>7}")


if __name__ == "__main__":
    main()
