"""``train-classifier``: train T (``--role target``) or E (``--role eval``) on private-train."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mia_app.cli.common import add_data_args, data_config, print_json, set_threads

# What the weights inherit from the data they were trained on.
TRAINING_DATA_TERMS = {
    "synthid": "trained here on SynthID (DCGAN/DigiFace-1M research terms)",
    "orl": "trained here on AT&T/ORL faces (AT&T Laboratories Cambridge: research use with credit)",
    "folder": "trained here on a user's face folder (the folder's own terms)",
}


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="train the target or evaluation classifier; prints private-test accuracy")
    p.add_argument("--role", choices=["target", "eval"], required=True)
    p.add_argument("--config", help="YAML ClassifierTrainConfig (e.g. configs/classifier/target.yaml)")
    p.add_argument("--arch", choices=["vgg", "resnet", "softmax", "mlp"])
    p.add_argument("--width", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--defense", choices=["none", "negls", "bido", "mid"],
                   help="train a defended T with that defense's default settings (a config's `defense:` block sets "
                        "them; NegLS also needs label_smoothing: 0)")
    p.add_argument("--out", type=Path, help="checkpoint path (default assets/<role>.safetensors)")
    p.add_argument("--ship", action="store_true", help="record the checkpoint in assets/manifest.json")
    add_data_args(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mia_app.assets import REPO_ROOT, record_shipped
    from mia_app.config import ClassifierTrainConfig, load_yaml
    from mia_app.train_classifier import train_classifier

    set_threads()
    overrides = {"role": args.role, "arch": args.arch, "width": args.width, "epochs": args.epochs}
    if args.config:
        cfg = load_yaml(args.config, ClassifierTrainConfig, **overrides)
    else:
        cfg = ClassifierTrainConfig(**{k: v for k, v in overrides.items() if v is not None})
    if args.defense is not None and args.defense != cfg.defense.kind:
        cfg = ClassifierTrainConfig.model_validate(cfg.model_dump() | {"defense": {"kind": args.defense}})
    if any(getattr(args, k) is not None for k in ("data_config", "n_private", "sigma", "resolution", "seed")):
        cfg = cfg.model_copy(update={"data": data_config(args)})
    out = args.out or REPO_ROOT / "assets" / f"{args.role}.safetensors"
    report = train_classifier(cfg, Path(out))
    if args.ship:
        rel = str(Path(out).resolve().relative_to(REPO_ROOT))
        cmd = f"python -m mia_app train-classifier --role {args.role}"
        cmd += f" --config {args.config}" if args.config else ""
        cmd += f" --defense {args.defense}" if args.defense else ""
        cmd += f" --out {rel}" if rel != f"assets/{args.role}.safetensors" else ""
        record_shipped(
            rel,
            role=args.role,
            test_acc=report["test_acc"],
            arch=report["arch"],
            defense=report["defense"],
            benchmark=report["benchmark"],
            benchmark_sha256=report["benchmark_sha256"],
            provenance={"command": cmd + " --ship", "config": report["config"]},
            licence=TRAINING_DATA_TERMS[cfg.data.kind],
        )
    Path(out).with_suffix(".json").write_text(json.dumps(report, indent=2))
    print_json({k: v for k, v in report.items() if k != "config"})
    return 0
