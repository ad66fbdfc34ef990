"""``evaluate``: judge a finished attack run with the evaluation model E; writes metrics.json + CSV."""

from __future__ import annotations

import argparse
from pathlib import Path

from mia_app.cli.common import print_json, set_threads


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="judge an attack run: E, dlib, LPIPS-style, Fréchet (metrics.json, per_identity.csv)")
    p.add_argument("--run", dest="run_dir", type=Path, required=True, help="run folder written by `attack`")
    p.add_argument("--eval-model", default="assets/eval.safetensors", help="evaluation classifier E")
    p.add_argument("--judge", choices=["auto", "on", "off"], default="auto",
                   help="dlib judge: auto (used if dlib imports), on (required), off")
    p.add_argument("--facenet", action="store_true",
                   help="also judge with FaceNet/VGGFace2 (needs facenet-pytorch and network once; not offline)")
    p.add_argument("--allow-target-as-judge", action="store_true",
                   help="let --eval-model be the attacked T itself (a sanity check; its accuracy is 1.0 by design)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mia_app.evaluation.evaluate import evaluate_run

    set_threads()
    print_json(evaluate_run(args.run_dir, args.eval_model, judge=args.judge, facenet=args.facenet,
                                           allow_target_as_judge=args.allow_target_as_judge))
    return 0
