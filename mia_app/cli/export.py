"""``export``: a self-contained HTML audit report of a run, a comparison of runs, or an ablation."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="write a self-contained HTML report (images, metrics with CIs, config, provenance)")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--run", dest="runs", type=Path, action="append",
                      help="run folder; give --run twice or more for a side-by-side comparison")
    what.add_argument("--ablation", type=Path, help="ablation folder written by `ablate` (results/ablation-*)")
    p.add_argument("--html", type=Path, required=True, help="the .html file to write")
    p.add_argument("--with-references", action="store_true",
                   help="include the private reference images of the attacked classes (the report leaves the "
                        "machine: off by default)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mia_app.report.html import ablation_report, comparison_report, run_report, write_report

    if args.html.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"--html must name an .html file, got {args.html}")
    for folder in args.runs or []:
        if not (folder / "config.yaml").is_file():
            raise FileNotFoundError(f"{folder} is not a run folder (no config.yaml)")
    if args.ablation is not None:
        text = ablation_report(args.ablation)
    elif len(args.runs) == 1:
        text = run_report(args.runs[0], references=args.with_references)
    else:
        text = comparison_report(args.runs, references=args.with_references)
    out = write_report(text, args.html)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0
