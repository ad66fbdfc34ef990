"""``ablate``: run (or resume) an ablation; writes results/ablation-<name>/{summary.json, table.md, acc1.png}."""

from __future__ import annotations

import argparse
from pathlib import Path

from mia_app.cli.common import set_threads


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="variants x seeds on the same identities, judged by E, with paired bootstrap CIs")
    p.add_argument("--config", required=True, help="ablation YAML, e.g. configs/ablation/quick.yaml")
    p.add_argument("--out", type=Path, help="override the output folder (default results/ablation-<name>)")
    p.add_argument("--eval-model", help="override the evaluation classifier E")
    p.add_argument("--judge", choices=["auto", "on", "off"], help="dlib judge: auto (if dlib imports), on, off")
    p.add_argument("--summarize-only", action="store_true",
                   help="attack and evaluate nothing: rewrite summary.json / table.md / acc1.png from finished cells")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mia_app.ablation.config import AblationConfig
    from mia_app.ablation.runner import run_ablation

    set_threads()
    cfg = AblationConfig.from_yaml(args.config, out=args.out, eval_model=args.eval_model, judge=args.judge)
    summary = run_ablation(cfg, progress=not args.quiet, run=not args.summarize_only)
    if "shard" in summary:  # a non-main process of torchrun / accelerate: rank 0 reports
        return 0
    out = cfg.out_dir()
    calls = summary["this_call"]
    print(f"cells: {len(calls['ran'])} attacked, {len(calls['evaluated'])} evaluated, {len(calls['skipped'])} "
          f"already finished")
    if cfg.target_models:  # one sub-ablation per T: the side-by-side table is the report
        print(f"wrote {out / 'summary.json'}, {out / 'defenses.md'} and one folder per target")
        print((out / "defenses.md").read_text())
        return 0
    print(f"wrote {out / 'summary.json'}, {out / 'table.md'}, {out / 'acc1.png'}")
    print((out / "table.md").read_text())
    return 0
