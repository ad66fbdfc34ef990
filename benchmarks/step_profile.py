"""Where one attack step goes: the PyTorch profiler over a few stage-1 and stage-2 steps of a preset.

    MIA_THREADS=2 python benchmarks/step_profile.py --steps 3 --before --tag before
    MIA_THREADS=2 python benchmarks/step_profile.py --steps 3 --tag after

``--before``: the preset with the settings it had before the speed work (E_id SFace, fp32, gradient
checkpointing), as ``benchmarks/peer_cost.py`` defines them.

The engine and the loss composer label their regions (``step: prior sampling``, ``step: losses``,
``loss: <name>``, ``step: backward``), so the table splits a step by part, and the profiler's operator list
says what inside a part costs. The run is ``run_attack`` itself on the preset's candidates
(``--identities`` × candidates), with the image events off; ``--schemes all`` turns on A, B3, C and D.

Writes ``results/benchmarks/step_profile-<tag>.json`` and ``.md``: the labelled regions (total CPU seconds per
step, share of the step) and the top operators by self CPU time.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from mia_app.attack.config import AttackConfig
from mia_app.attack.run import run_attack

OUT = Path("results/benchmarks")


def profiled_config(base: AttackConfig, args: argparse.Namespace) -> AttackConfig:
    schemes = {"A": True, "B3": True, "C": True, "D": True} if args.schemes == "all" else {}
    data = base.model_dump() | {
        "schemes": base.schemes.model_dump() | schemes,
        "stage1": base.stage1.model_dump() | {"steps": args.steps, "image_every": 10_000},
        "stage2": base.stage2.model_dump() | {"steps": args.steps, "image_every": 10_000},
        "identities_per_batch": args.identities,
    }
    if args.before:
        from peer_cost import BEFORE  # benchmarks/ is on sys.path when a script here runs

        data |= BEFORE | {"sampler": data["sampler"] | {"gradient_checkpointing": True}}
    if args.id_encoder:
        data["id_encoder"] = args.id_encoder
    return AttackConfig.model_validate(data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/attack/cpu-quick.yaml")
    ap.add_argument("--identities", type=int, default=10)
    ap.add_argument("--steps", type=int, default=3, help="steps per stage under the profiler")
    ap.add_argument("--schemes", choices=["none", "all"], default="none")
    ap.add_argument("--id-encoder", choices=["sface32", "sface"], help="override the preset's E_id")
    ap.add_argument("--before", action="store_true", help="E_id SFace, fp32, gradient checkpointing")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tag", default="cpu")
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = profiled_config(AttackConfig.from_yaml(args.config), args)
    targets = list(range(args.identities))
    run_attack(cfg.model_copy(update={"stage1": cfg.stage1.model_copy(update={"steps": 1}),
                                      "stage2": cfg.stage2.model_copy(update={"steps": 1})}),
               targets, "/tmp/mia-step-profile/warmup")  # loads and warms every model outside the profile
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run_attack(cfg, targets, "/tmp/mia-step-profile/run")
    wall = time.perf_counter() - t0
    steps = 2 * args.steps
    n = args.identities * cfg.candidates
    events = prof.key_averages()
    regions = {e.key: e.cpu_time_total / 1e6 / steps for e in events if e.key.startswith(("step: ", "loss: "))}
    step_total = sum(v for k, v in regions.items() if k.startswith("step: "))
    ops = sorted((e for e in events if not e.key.startswith(("step: ", "loss: ", "ProfilerStep"))),
                 key=lambda e: e.self_cpu_time_total, reverse=True)[: args.top]
    top = [{"op": e.key, "self_s_per_step": e.self_cpu_time_total / 1e6 / steps, "calls_per_step": e.count / steps}
           for e in ops]
    result = {"preset": args.config, "id_encoder": cfg.id_encoder, "precision": cfg.precision,
              "gradient_checkpointing": cfg.sampler.gradient_checkpointing,
              "schemes": args.schemes, "threads": args.threads,
              "candidates": n, "steps_profiled": steps, "wall_s_whole_run": wall,
              "regions_s_per_step": regions, "labelled_step_s": step_total,
              "labelled_s_per_candidate_step": step_total / n, "top_ops": top}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"step_profile-{args.tag}.json").write_text(json.dumps(result, indent=2))
    lines = [f"One step of {args.config} (E_id {cfg.id_encoder}, {cfg.precision}, gradient checkpointing "
             f"{cfg.sampler.gradient_checkpointing}, schemes {args.schemes}), {n} candidates, "
             f"{args.threads} threads, mean over {steps} profiled steps (stage 1 and 2).", "",
             "| region | CPU s / step | share of labelled step |", "|---|---|---|"]
    for k, v in sorted(regions.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {k} | {v:.3f} | {v / step_total:.0%} |")
    lines += ["", f"Labelled step: {step_total:.3f} s = {step_total / n:.4f} s per candidate-step.", "",
              "| operator (top by self CPU) | self s / step | calls / step |", "|---|---|---|"]
    lines += [f"| `{o['op']}` | {o['self_s_per_step']:.3f} | {o['calls_per_step']:.0f} |" for o in top]
    text = "\n".join(lines)
    print(text)
    (OUT / f"step_profile-{args.tag}.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
