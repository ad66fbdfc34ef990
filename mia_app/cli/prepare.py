"""``prepare``: generate (or load) the benchmark and print its summary."""

from __future__ import annotations

import argparse

from mia_app.cli.common import add_data_args, data_config, print_json


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="generate / cache the face benchmark and print its splits")
    add_data_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mia_app.data import load_benchmark

    print_json(load_benchmark(data_config(args)).summary())
    return 0
