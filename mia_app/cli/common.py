"""Helpers shared by subcommands: data-config options and YAML loading."""

from __future__ import annotations

import argparse
import json

import torch

from mia_app.config import DATA_KINDS, SynthIDConfig, data_kind, parse_data_config


def add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--data-config", help="YAML with a data config, kind synthid | orl | folder (default: SynthID)")
    g.add_argument("--n-private", type=int, help="SynthID: number of private identities")
    g.add_argument("--sigma", type=float, help="SynthID: intra-identity latent noise")
    g.add_argument("--resolution", type=int, choices=[32, 64])
    g.add_argument("--seed", type=int)


def data_config(args: argparse.Namespace):
    """The data config of ``--data-config`` (any kind) or the embedded SynthID, with the command-line overrides."""
    overrides = {"n_private": args.n_private, "sigma": args.sigma, "resolution": args.resolution, "seed": args.seed}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if args.data_config:
        from mia_app.user_input import read_yaml

        raw = read_yaml(args.data_config)
        kind = data_kind(raw)
        model = DATA_KINDS.get(kind)
        foreign = sorted(k for k in overrides if model is not None and k not in model.model_fields)
        if foreign:  # e.g. --sigma on ORL: refuse rather than ignore an option the user typed
            raise ValueError(f"--{foreign[0].replace('_', '-')} does not apply to data kind {kind!r}")
        return parse_data_config({**raw, **overrides})
    return SynthIDConfig(**overrides)


def print_json(obj: dict) -> None:
    print(json.dumps(obj, indent=2, default=str))


def set_threads() -> None:
    """Honour MIA_THREADS; several jobs on two cores run faster with one thread each than oversubscribed."""
    import os

    n = int(os.environ.get("MIA_THREADS", "0")) or min(torch.get_num_threads(), 4)
    torch.set_num_threads(max(1, n))
