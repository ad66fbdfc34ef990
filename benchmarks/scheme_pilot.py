"""Pilot of the scheme ablation: at the preset's step counts, do the schemes act, and what can the design detect?

    python benchmarks/scheme_pilot.py --ablation results/ablation-defenses/target-bido \\
        --out results/benchmarks/scheme_pilot.json

Reads finished cells of an ablation that ran ``baseline`` and ``A+B3+C+D`` (the defenses scoreboard did, on
100 identities and 2 seeds) and reports:

* **whether D acts**: scheme D's normalised weights w_i = softmax(-s)_i at the start and end of each stage, and
  the largest move of any w_i away from its start 1/k (k tasks), per batch;
* **whether A acts**: the range of ``tw_prior`` (the batch-mean timestep weight w(t) of the prior loss; 1.0
  everywhere without A);
* **power**: for each judge, the 95% half-width of A+B3+C+D − baseline (a bootstrap over identities, each with
  all its seeds) over the pilot's pairs, projected to ``--pairs`` pairs (half-width ∝ 1/√n, which assumes the
  new pairs are as independent as the pilot's: more seeds of the same identities help less than that) and the
  pairs a ±3-point half-width would take.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from mia_app.ablation.stats import cluster_paired_bootstrap
from mia_app.run_folder import RunFolder

#: (summary key, unit scale for the report: points for rates, raw for distances)
JUDGES = {"acc@1": 100.0, "judge_top1": 100.0, "knn_dist": 1.0, "perc_dist": 1.0}


def scheme_traces(cell: Path) -> dict:
    """Per stage: D's weights at the first and last step of batch 0, the largest |w_i - 1/k| over every batch's
    last step, and the range of A's tw_prior over all steps."""
    steps = RunFolder(cell).steps()
    out = {}
    for stage in sorted({s["stage"] for s in steps}):
        rows = [s for s in steps if s["stage"] == stage]
        w_keys = sorted(k for k in rows[0]["logs"] if k.startswith("w_"))
        first = {k: rows[0]["logs"][k] for k in w_keys}
        last_of_batch = {}
        for r in rows:
            last_of_batch[r["batch"]] = r  # rows are in step order within a batch
        k = len(w_keys)
        moves = [max(abs(r["logs"][key] - 1 / k) for key in w_keys) for r in last_of_batch.values()] if k else []
        tw = [r["logs"]["tw_prior"] for r in rows if "tw_prior" in r["logs"]]
        batch0 = [r for r in rows if r["batch"] == rows[0]["batch"]]
        out[f"stage{stage}"] = {
            "steps": rows[0]["steps"],
            "D_tasks": [key[2:] for key in w_keys],
            "D_weights_first_step": {key[2:]: round(v, 4) for key, v in first.items()},
            "D_weights_last_step_batch0": {key[2:]: round(batch0[-1]["logs"][key], 4) for key in w_keys},
            "D_max_weight_move_from_1/k": {"min_over_batches": round(min(moves), 4),
                                           "max_over_batches": round(max(moves), 4)} if moves else None,
            "A_tw_prior_range": [round(min(tw), 3), round(max(tw), 3)] if tw else None,
        }
    return out


def power(ablation: Path, variant: str, pairs: int) -> dict:
    """Half-widths of the identity-cluster bootstrap CI (``cluster_paired_bootstrap``: identities recur across
    seeds, so they are resampled with all their seeds), at the pilot's pairs and projected to ``pairs``."""
    summary = json.loads((ablation / "summary.json").read_text())
    rows = summary["variants"]
    if variant not in rows or summary["baseline"] not in rows:
        raise SystemExit(f"{ablation} lacks the rows {variant!r} and {summary['baseline']!r}")
    out = {}
    for key, scale in JUDGES.items():
        d = cluster_paired_bootstrap(rows[variant]["per_seed_identity"][key],
                                     rows[summary["baseline"]]["per_seed_identity"][key])
        if d["diff"] is None:
            out[key] = None  # nothing paired yet (e.g. the judge was off)
            continue
        lo, hi = d["ci95"]
        half = scale * (hi - lo) / 2
        n = d["n_pairs"]
        out[key] = {"diff": round(scale * d["diff"], 3), "pilot_pairs": n, "pilot_identities": d["n_identities"],
                    "pilot_half_width": round(half, 3),
                    f"half_width_at_{pairs}_pairs": round(half * math.sqrt(n / pairs), 3),
                    "pairs_for_half_width_3": math.ceil(n * (half / 3) ** 2) if scale == 100.0 else None}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ablation", type=Path, required=True, help="a finished ablation folder with the two rows")
    ap.add_argument("--variant", default="A+B3+C+D", help="the row with every scheme on")
    ap.add_argument("--pairs", type=int, default=300, help="(seed, identity) pairs of the planned design")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    cells = sorted((args.ablation / args.variant).glob("seed*"))
    if not cells:
        raise SystemExit(f"no {args.variant} cells in {args.ablation}")
    report = {"ablation": str(args.ablation), "variant": args.variant,
              "traces": {c.name: scheme_traces(c) for c in cells},
              "power": power(args.ablation, args.variant, args.pairs)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    for seed, trace in report["traces"].items():
        for stage, t in trace.items():
            print(f"{seed} {stage} ({t['steps']} steps): D weights {t['D_weights_first_step']} -> "
                  f"{t['D_weights_last_step_batch0']}; max move from 1/k {t['D_max_weight_move_from_1/k']}; "
                  f"A tw_prior {t['A_tw_prior_range']}")
    for key, p in report["power"].items():
        if p is None:
            print(f"{key}: no paired values")
            continue
        print(f"{key}: diff {p['diff']}, half-width {p['pilot_half_width']} at {p['pilot_pairs']} pairs, "
              f"{p[f'half_width_at_{args.pairs}_pairs']} at {args.pairs}; pairs for ±3 points: "
              f"{p['pairs_for_half_width_3']}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
