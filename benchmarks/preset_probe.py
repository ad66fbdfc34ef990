"""Probe an attack preset on a few classes: run it (with optional overrides) and judge the run by E.

    MIA_THREADS=2 python benchmarks/preset_probe.py --config configs/attack/cpu-quick.yaml \\
        --set '{"sampler": {"strength": 0.8}, "cls_loss": "max_margin"}' --classes 0-9 --out /tmp/probe

Prints E acc@1, T acc@1, KNN distance and seconds per identity. For choosing a preset's settings on a handful
of identities only: the scoreboard (``configs/ablation/scoreboard.yaml``) is the measurement, with the floor and
PPA on the same identities and paired CIs.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from mia_app.attack.config import AttackConfig
from mia_app.attack.run import run_attack
from mia_app.evaluation.evaluate import evaluate_run


def merged(base: dict, overrides: dict) -> dict:
    """base with overrides, one level of nesting merged (``{"sampler": {"strength": 0.8}}`` keeps num_steps)."""
    out = dict(base)
    for k, v in overrides.items():
        out[k] = out[k] | v if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/attack/cpu-quick.yaml")
    ap.add_argument("--set", default="{}", help="JSON overrides of the preset")
    ap.add_argument("--classes", default="0-9", help="'a-b' range of target classes")
    ap.add_argument("--out", required=True, help="run folder")
    ap.add_argument("--judge", choices=["auto", "on", "off"], default="off")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("MIA_THREADS", "2")))
    cfg = AttackConfig.model_validate(merged(AttackConfig.from_yaml(args.config).model_dump(), json.loads(args.set)))
    lo, hi = (int(x) for x in args.classes.split("-"))
    t0 = time.time()
    summary = run_attack(cfg, list(range(lo, hi + 1)), args.out)
    metrics = evaluate_run(args.out, judge=args.judge)
    keep = ("E_acc@1", "E_acc@5", "T_acc@1", "knn_dist", "judge_top1", "judge_dist")
    print(json.dumps({"attack_s": round(time.time() - t0, 1), "s_per_identity": summary["seconds_per_identity"],
                      "T_conf": summary["target_conf_mean"], **{k: metrics[k] for k in keep if k in metrics}},
                     indent=1))


if __name__ == "__main__":
    main()
