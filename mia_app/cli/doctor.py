"""``doctor``: run a short attack with the given config and print the seed's debug checks."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from mia_app.cli.common import set_threads


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="short attack + pass/fail table of the seed's debug checks (exit 1 on a fail)")
    p.add_argument("--config", required=True)
    p.add_argument("--targets", default="0")
    p.add_argument("--steps", type=int, help="steps per stage (default: 101 with uncertainty weighting, else 4)")
    p.add_argument("--out", type=Path, help="keep the run folder here (default: a temp dir)")
    p.add_argument("--prior")
    p.add_argument("--target")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mia_app.attack.config import AttackConfig
    from mia_app.attack.doctor import LOGVAR_MOVE_AFTER, Doctor
    from mia_app.attack.run import run_attack
    from mia_app.user_input import parse_targets

    set_threads()
    cfg = AttackConfig.from_yaml(args.config, prior=args.prior, target=args.target)
    uses_d = bool(getattr(cfg, "schemes", None) and cfg.schemes.D)
    steps = args.steps or (LOGVAR_MOVE_AFTER + 1 if uses_d else 4)
    cfg = cfg.model_copy(update={"stage1": cfg.stage1.model_copy(update={"steps": steps}),
                                 "stage2": cfg.stage2.model_copy(update={"steps": steps})})
    out = args.out or Path(tempfile.mkdtemp(prefix="mia-doctor-"))
    doctor = Doctor.for_config(cfg)
    run_attack(cfg, parse_targets(args.targets), out, [doctor])
    print(doctor.table())
    print(f"\nrun folder: {out}")
    return 0 if doctor.ok() else 1
