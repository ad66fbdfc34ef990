"""Helpers shared by subcommands: data-config options and YAML loading."""

from __future__ import annotations

import argparse
import json

import torch

from mia_app.config import FolderConfig, SynthIDConfig, load_yaml


def add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--data-config", help="YAML with a SynthID or folder data config (default: embedded SynthID)")
    g.add_argument("--n-private", type=int, help="SynthID: number of private identities")
    g.add_argument("--sigma", type=float, help="SynthID: intra-identity latent noise")
    g.add_argument("--resolution", type=int, choices=[32, 64])
    g.add_argument("--seed", type=int)


def data_config(args: argparse.Namespace) -> SynthIDConfig | FolderConfig:
    overrides = {"n_private": args.n_private, "sigma": args.sigma, "resolution": args.resolution, "seed": args.seed}
    if args.data_config:
        from mia_app.user_input import read_yaml

        raw = read_yaml(args.data_config)
        model = FolderConfig if raw.get("kind") == "folder" else SynthIDConfig
        if model is FolderConfig:
            overrides = {k: v for k, v in overrides.items() if k in ("resolution", "seed")}
        return load_yaml(args.data_config, model, **overrides)
    return SynthIDConfig(**{k: v for k, v in overrides.items() if v is not None})


def print_json(obj: dict) -> None:
    print(json.dumps(obj, indent=2, default=str))


def set_threads() -> None:
    """Honour MIA_THREADS; several jobs on two cores run faster with one thread each than oversubscribed."""
    import os

    n = int(os.environ.get("MIA_THREADS", "0")) or min(torch.get_num_threads(), 4)
    torch.set_num_threads(max(1, n))
