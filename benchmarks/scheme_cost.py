"""Cost and health of each scheme: a short cpu-quick attack with the baseline, each scheme alone and all four.

    python benchmarks/scheme_cost.py --iters 6 --targets 0

Prints seconds per iteration in each stage (step 1 excluded: warm-up), the ratio to the baseline measured
in the same run, whether any loss was non-finite, and the doctor's verdict.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from mia_app.attack.config import AttackConfig
from mia_app.attack.doctor import Check, Doctor
from mia_app.attack.events import BaseCallback
from mia_app.attack.run import run_attack

VARIANTS = {"baseline": {}, "B3": {"B3": True}, "A": {"A": True}, "C": {"C": True}, "D": {"D": True},
            "A+B3+C+D": {"A": True, "B3": True, "C": True, "D": True}}


class StepTimer(BaseCallback):
    def __init__(self):
        self.t = {1: [], 2: []}
        self.last = None

    def on_step(self, e):
        now = time.perf_counter()
        if e.step > 1:
            self.t[e.stage].append(now - self.last)
        self.last = now


def verdict(checks: list[Check]) -> str:
    """The doctor's verdict; an n/a check (e.g. log-vars after 100 steps in a short run) is not counted as green."""
    fails = [c.name for c in checks if c.status == "fail"]
    na = [c for c in checks if c.status == "n/a"]
    if len(na) == len(checks):
        return "nothing checked (every check n/a)"
    text = f"FAIL: {fails}" if fails else "all green"
    if na:
        text += f" ({len(na)} n/a: {'; '.join(f'{c.name}: {c.measured}' for c in na)})"
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/attack/cpu-quick.yaml")
    ap.add_argument("--iters", type=int, default=6)
    ap.add_argument("--targets", default="0")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    base = AttackConfig.from_yaml(args.config)
    targets = [int(t) for t in args.targets.split(",")]
    rows = {}
    for name, schemes in VARIANTS.items():
        cfg = base.model_copy(update={
            "schemes": base.schemes.model_copy(update=schemes),
            "stage1": base.stage1.model_copy(update={"steps": args.iters + 1, "image_every": 10_000}),
            "stage2": base.stage2.model_copy(update={"steps": args.iters + 1, "image_every": 10_000}),
        })
        timer, doctor = StepTimer(), Doctor.for_config(cfg)
        run_attack(AttackConfig.model_validate(cfg.model_dump()), targets, f"/tmp/mia-schemes/{name}",
                   [timer, doctor])
        s1 = sum(timer.t[1]) / len(timer.t[1])
        s2 = sum(timer.t[2]) / len(timer.t[2])
        rows[name] = {"s_per_iter_stage1": round(s1, 3), "s_per_iter_stage2": round(s2, 3),
                      "doctor": verdict(doctor.checks()),
                      "finite": next(c.status for c in doctor.checks() if c.name.startswith("no loss")) == "pass"}
        print(name, json.dumps(rows[name]), flush=True)
    b1, b2 = rows["baseline"]["s_per_iter_stage1"], rows["baseline"]["s_per_iter_stage2"]
    print("\n| variant | s/iter stage 1 | × baseline | s/iter stage 2 | × baseline | losses finite | doctor |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['s_per_iter_stage1']} | {r['s_per_iter_stage1'] / b1:.2f} | {r['s_per_iter_stage2']} | "
              f"{r['s_per_iter_stage2'] / b2:.2f} | {r['finite']} | {r['doctor']} |")


if __name__ == "__main__":
    main()
