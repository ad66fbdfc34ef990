"""``attack``: run the two-stage inversion on some target classes and write a run folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from mia_app.attack.events import BaseCallback
from mia_app.cli.common import print_json, set_threads


def parse_targets(text: str) -> list[int]:
    """``0,1,2`` or ``0-9`` or a mix (``0-3,7``)."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-")
            out += list(range(int(lo), int(hi) + 1))
        else:
            out.append(int(part))
    if not out:
        raise ValueError(f"no targets in {text!r}")
    return out


class TqdmProgress(BaseCallback):
    def __init__(self):
        self.bar = None

    def on_step(self, e):
        if self.bar is None or self.bar.desc != f"batch {e.batch} stage {e.stage}":
            if self.bar is not None:
                self.bar.close()
            self.bar = tqdm(total=e.steps, desc=f"batch {e.batch} stage {e.stage}")
        self.bar.update(1)
        self.bar.set_postfix(total=f"{e.logs['total']:.3f}", T_conf=f"{e.logs['T_conf']:.3f}")

    def on_end(self, summary):
        if self.bar is not None:
            self.bar.close()


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="invert target classes of T with the diffusion prior; writes a run folder")
    p.add_argument("--config", required=True, help="attack preset, e.g. configs/attack/cpu-quick.yaml")
    p.add_argument("--targets", required=True, help="target classes: '0,1,2', '0-9'")
    p.add_argument("--out", type=Path, required=True, help="run folder (created)")
    p.add_argument("--seed", type=int)
    p.add_argument("--prior", help="override the prior: our prior folder, a diffusers UNet2DModel folder or hub id")
    p.add_argument("--target", help="override the target classifier checkpoint (.safetensors)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mia_app.attack.run import run_attack

    set_threads()
    overrides = {"seed": args.seed, "device": args.device, "prior": args.prior, "target": args.target}
    callbacks = [] if args.quiet else [TqdmProgress()]
    summary = run_attack(args.config, parse_targets(args.targets), args.out, callbacks, **overrides)
    print_json(summary)
    return 0
