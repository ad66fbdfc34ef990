"""``attack``: run the two-stage inversion on some target classes and write a run folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from mia_app.attack.events import BaseCallback
from mia_app.cli.common import print_json, set_threads
from mia_app.peers.config import PEER_KINDS
from mia_app.user_input import parse_targets, read_yaml


class TqdmProgress(BaseCallback):
    def __init__(self):
        self.bar = None

    def on_step(self, e):
        if self.bar is None or self.bar.desc != f"batch {e.batch} stage {e.stage}":
            if self.bar is not None:
                self.bar.close()
            self.bar = tqdm(total=e.steps, desc=f"batch {e.batch} stage {e.stage}")
        self.bar.update(1)
        self.bar.set_postfix(total=f"{e.logs.get('total', float('nan')):.3f}", T_conf=f"{e.logs['T_conf']:.3f}")

    def on_end(self, summary):
        if self.bar is not None:
            self.bar.close()


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="invert target classes of T with the diffusion prior (or a peer); writes a run "
                                  "folder")
    p.add_argument("--config", required=True, help="attack preset, e.g. configs/attack/cpu-quick.yaml")
    p.add_argument("--targets", required=True, help="target classes: '0,1,2', '0-9'")
    p.add_argument("--out", type=Path, required=True, help="run folder (created)")
    p.add_argument("--seed", type=int)
    p.add_argument("--prior", help="override the prior: our prior folder, a diffusers UNet2DModel folder or hub id")
    p.add_argument("--target", help="override the target classifier checkpoint (.safetensors)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--method", default="ours", choices=["ours", *PEER_KINDS],
                   help="ours (default) or a peer on the same T, identities, seed and keep: selection_only (the "
                        "no-attack floor), ppa, miface, stage1_only, plg_max_margin")
    p.add_argument("--peer-config", type=Path, help="YAML of the peer's settings (mia_app.peers.config), e.g. "
                   "'{steps: 50, loss: max_margin}' for ppa; default: the peer's defaults")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--evaluate", action="store_true", help="then judge the run folder with E (writes metrics.json; "
                   "under torchrun / accelerate launch, once, on the merged folder)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mia_app.attack.run import run_attack
    from mia_app.attack.sharding import barrier, current_shard

    set_threads()
    overrides = {"seed": args.seed, "device": args.device, "prior": args.prior, "target": args.target}
    callbacks = [] if args.quiet else [TqdmProgress()]
    targets = parse_targets(args.targets)
    if len(set(targets)) != len(targets):
        raise ValueError(f"targets: each class at most once, got {args.targets!r}")
    shard = current_shard()  # under torchrun: this process's share of the batches (and its GPU)
    if args.method == "ours":
        if args.peer_config is not None:
            raise ValueError("--peer-config needs --method <peer>")
        summary = run_attack(args.config, targets, args.out, callbacks, shard=shard, **overrides)
    elif shard.is_main:  # peers are cheap and not sharded: rank 0 runs them, the others wait
        summary = _run_peer(args, targets, overrides, callbacks)
    barrier()
    if not shard.is_main:
        return 0  # rank 0 merged the shards and reports for the whole run
    if args.evaluate:
        from mia_app.evaluation.evaluate import evaluate_run

        summary["metrics"] = evaluate_run(args.out)
    print_json(summary)
    return 0


def _run_peer(args: argparse.Namespace, targets: list[int], overrides: dict, callbacks: list) -> dict:
    from pydantic import ValidationError

    from mia_app.attack.config import AttackConfig
    from mia_app.peers import parse_peer, run_peer

    settings = {}
    if args.peer_config is not None:
        if not args.peer_config.is_file():
            raise FileNotFoundError(f"no peer config at {args.peer_config}")
        settings = read_yaml(args.peer_config)
    try:
        peer = parse_peer({**settings, "kind": args.method})
    except ValidationError as err:
        raise ValueError(f"peer settings: {err}") from err
    cfg = AttackConfig.from_yaml(args.config, **overrides)
    return run_peer(peer, cfg, targets, args.out, callbacks)
