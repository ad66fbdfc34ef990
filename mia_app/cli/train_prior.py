"""``train-prior``: train the identity-conditioned diffusion prior on the public pool (resumable)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mia_app.cli.common import print_json, set_threads


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="train the conditional UNet prior on public faces; resumes from checkpoint-N")
    p.add_argument("--config", default="configs/prior/cpu.yaml", help="YAML PriorTrainConfig")
    p.add_argument("--out", type=Path, default=Path("runs/prior"), help="run folder (checkpoints, samples, logs)")
    p.add_argument("--steps", type=int, help="override the number of steps (a smaller value just exports)")
    p.add_argument("--ship", action="store_true", help="copy the EMA prior to assets/prior and record it")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mia_app.config import PriorTrainConfig, load_yaml
    from mia_app.prior.train import train_prior

    set_threads()
    cfg = load_yaml(args.config, PriorTrainConfig, steps=args.steps)
    report = train_prior(cfg, args.out)
    if args.ship:
        from mia_app.prior.ship import ship_prior

        report["shipped"] = ship_prior(args.out / "prior", args.config, cfg)
    print_json(report)
    return 0
