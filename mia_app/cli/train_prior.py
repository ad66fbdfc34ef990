"""``train-prior``: train an identity-conditioned diffusion prior on public data (resumable); the config's ``kind``
picks the pixel prior (a UNet on the public images) or the latent prior (an MLP over the public generator's z)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mia_app.cli.common import print_json, set_threads


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="train a conditional prior (pixel UNet or latent MLP) on public faces; resumes "
                       "from checkpoint-N")
    p.add_argument("--config", default="configs/prior/latent.yaml",
                   help="YAML PriorTrainConfig (kind: pixel) or LatentPriorTrainConfig (kind: latent)")
    p.add_argument("--out", type=Path, help="run folder (checkpoints, samples, logs); default runs/<kind>_prior")
    p.add_argument("--steps", type=int, help="override the number of steps (a smaller value just exports)")
    p.add_argument("--ship", action="store_true",
                   help="copy the EMA prior to assets/ (latent: assets/latent_prior, pixel: assets/prior), recorded")
    p.add_argument("--dest", help="with --ship: the assets/ folder to ship to (default assets/latent_prior or "
                   "assets/prior), e.g. assets/prior-40k to keep the shipped prior beside it")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mia_app.config import LatentPriorTrainConfig, PriorTrainConfig, load_yaml
    from mia_app.user_input import read_yaml

    if args.dest is not None:  # checked before any training, not after it
        if not args.ship:
            raise ValueError("--dest names where --ship copies the prior; add --ship")
        if not args.dest.startswith("assets/") or ".." in Path(args.dest).parts:
            raise ValueError(f"--dest must be a folder under assets/, got {args.dest!r}")
    set_threads()
    kind = read_yaml(args.config).get("kind", "pixel")
    if kind == "latent":
        from mia_app.prior.latent_train import train_latent_prior

        cfg = load_yaml(args.config, LatentPriorTrainConfig, steps=args.steps)
        args.out = args.out or Path("runs/latent_prior")
        report, dest = train_latent_prior(cfg, args.out), "assets/latent_prior"
    else:
        from mia_app.prior.train import train_prior

        cfg = load_yaml(args.config, PriorTrainConfig, steps=args.steps)
        args.out = args.out or Path("runs/prior")
        report, dest = train_prior(cfg, args.out), "assets/prior"
    if args.dest is not None:
        dest = args.dest
    if args.ship:
        from mia_app.prior.ship import ship_prior

        report["shipped"] = ship_prior(args.out / "prior", args.config, cfg, dest)
    print_json(report)
    return 0
