"""Command-line entry point. Each subcommand module exposes ``add_parser(subparsers)`` and ``run(args)``."""

from __future__ import annotations

import argparse
import importlib
import sys

from mia_app.assets import AssetError
from mia_app.user_input import explain

# Module name per subcommand, imported lazily so `--help` stays fast and torch-free commands stay light.
COMMANDS = {
    "prepare": "mia_app.cli.prepare",
    "train-classifier": "mia_app.cli.train_classifier",
    "train-prior": "mia_app.cli.train_prior",
    "distill-id-encoder": "mia_app.cli.distill_id_encoder",
    "attack": "mia_app.cli.attack",
    "evaluate": "mia_app.cli.evaluate",
    "ablate": "mia_app.cli.ablate",
    "doctor": "mia_app.cli.doctor",
    "report": "mia_app.cli.report",
    "export": "mia_app.cli.export",
    "worker": "mia_app.cli.worker",
    "serve": "mia_app.cli.serve",
    "users": "mia_app.cli.users",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mia_app", description="Diffusion-prior model inversion attacks on face classifiers."
    )
    parser.add_argument("--debug", action="store_true", help="on an error, print the traceback too")
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    for name, module in COMMANDS.items():
        importlib.import_module(module).add_parser(sub, name)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except (ValueError, FileNotFoundError, AssetError) as err:
        # Bad user input (a pydantic ValidationError is a ValueError): one clear line, not a traceback.
        if args.debug:
            raise
        print(f"error: {explain(err)}", file=sys.stderr)
        return 2
    except Exception as err:  # anything else is ours to fix: still one line, the traceback on request
        if args.debug:
            raise
        print(f"error: {type(err).__name__}: {explain(err)} (rerun with `python -m mia_app --debug ...` for the "
              "traceback)", file=sys.stderr)
        return 1
