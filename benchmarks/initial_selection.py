"""What the initial selection on the prior's output costs: ``Inversion.initial_candidates`` for one batch of
identities with the preset's trials (``init_sources`` × ``init_draws``) and with them off, interleaved in one
process, against the whole attack of the same batch.

    MIA_THREADS=2 python benchmarks/initial_selection.py --out results/benchmarks/initial_selection.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from mia_app.attack.config import AttackConfig
from mia_app.attack.engine import Inversion
from mia_app.attack.run import cached_models
from mia_app.data import load_benchmark


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/attack/cpu-quick.yaml")
    ap.add_argument("--identities", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("MIA_THREADS", "2")))
    cfg = AttackConfig.from_yaml(args.config)
    off = cfg.model_copy(update={"init_sources": None, "init_draws": 1})
    models, bench = cached_models(cfg), load_benchmark(cfg.data)
    targets = list(range(args.identities))
    runs = {"trials": Inversion(cfg, models, bench), "off": Inversion(off, models, bench)}
    for inv in runs.values():
        inv.initial_candidates(targets, 0)  # warm-up: the source pool is ranked once per Inversion
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.repeats):
        for name, inv in runs.items():
            t0 = time.perf_counter()
            inv.initial_candidates(targets, 0)
            times[name].append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    Inversion(cfg, models, bench).attack_batch(targets, 0)
    attack_s = time.perf_counter() - t0
    med = {k: statistics.median(v) for k, v in times.items()}
    report = {"config": args.config, "identities": args.identities, "threads": torch.get_num_threads(),
              "init_sources": cfg.init_sources, "init_draws": cfg.init_draws, "repeats": args.repeats,
              "selection_s": med, "added_s": med["trials"] - med["off"], "attack_batch_s": attack_s,
              "added_share_of_attack": (med["trials"] - med["off"]) / attack_s}
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
