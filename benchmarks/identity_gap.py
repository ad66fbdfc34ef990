"""Why B3 did or did not help: the identity gap of every row's final images in E_id's space.

    python benchmarks/identity_gap.py --ablation results/ablation-schemes-bido

The ablation runner writes the same ``identity_gap.json`` into the ablation's folder with its other outputs (and
its "why" sentences quote it); this recomputes it for any finished ablation. What the two gaps mean:
``mia_app/ablation/identity_gap.py``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mia_app.ablation.identity_gap import identity_gaps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ablation", type=Path, required=True, help="an ablation's output folder (summary.json)")
    ap.add_argument("--out", type=Path, default=None, help="default: <ablation>/identity_gap.json")
    args = ap.parse_args()
    t0 = time.time()
    summary = json.loads((args.ablation / "summary.json").read_text())
    report = identity_gaps(summary, args.ablation)
    report["seconds"] = round(time.time() - t0, 1)
    out = args.out or args.ablation / "identity_gap.json"
    out.write_text(json.dumps(report, indent=2))
    for name, row in report["rows"].items():
        parts = []
        for key, s in row.items():
            vs = s.get("vs_baseline")
            delta = "" if vs is None else (f", Δ {vs['diff']:+.4f} [{vs['ci95'][0]:+.4f}, {vs['ci95'][1]:+.4f}]"
                                           f"{' *' if vs['excludes_zero'] else ''} ({vs['n_pairs']} pairs)")
            parts.append(f"{key} {s['mean']:.4f}{delta}")
        print(f"{name:>10}: " + "; ".join(parts))
    print(f"wrote {out} in {report['seconds']} s")


if __name__ == "__main__":
    main()
