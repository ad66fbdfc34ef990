"""A picture for a README: per identity, private images beside each row's first kept reconstruction.

    python scripts/side_by_side.py --ablation results/ablation-orl/target --rows miface ppa baseline \
        --classes 0-5 --seed 0 --out results/ablation-orl/side_by_side.png

Columns: ``--private`` private-test images of the class (what the attack never saw), then one column per row of the
ablation (its ``final/class{y:04d}_rank0.png`` of ``seed{--seed}``; a deterministic row's single run is used when
that seed is absent). Upscaled by ``--scale`` with nearest-neighbour, titled.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mia_app.attack.config import AttackConfig
from mia_app.data import load_benchmark
from mia_app.user_input import parse_targets


def cell_folder(ablation: Path, row: str, seed: int) -> Path:
    seeds = sorted((ablation / row).glob("seed*"))
    wanted = ablation / row / f"seed{seed}"
    if wanted.is_dir():
        return wanted
    if len(seeds) == 1:  # a deterministic row runs once
        return seeds[0]
    raise FileNotFoundError(f"no finished cell {wanted}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ablation", type=Path, required=True, help="an ablation folder (one T's block)")
    ap.add_argument("--rows", nargs="+", required=True)
    ap.add_argument("--classes", default="0-5")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--private", type=int, default=2, help="private-test images shown per class")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    cells = {row: cell_folder(args.ablation, row, args.seed) for row in args.rows}
    cfg = AttackConfig.from_yaml(next(iter(cells.values())) / "config.yaml")
    bench = load_benchmark(cfg.data)
    classes = parse_targets(args.classes)
    if max(classes) >= bench.n_classes:
        raise ValueError(f"--classes: the benchmark has classes 0-{bench.n_classes - 1}")
    r = bench.resolution * args.scale
    titles = [f"private {k + 1}" for k in range(args.private)] + args.rows
    header = 16
    canvas = Image.new("RGB", (len(titles) * (r + 4), header + len(classes) * (r + 4)), "white")
    draw = ImageDraw.Draw(canvas)
    for col, title in enumerate(titles):
        draw.text((col * (r + 4) + 2, 2), title[: r // 6], fill="black")
    for i, y in enumerate(classes):
        faces = [Image.fromarray(np.ascontiguousarray(img.permute(1, 2, 0).numpy()))
                 for img in bench.private_test.of_class(y)[: args.private]]
        for row, cell in cells.items():
            path = cell / "final" / f"class{y:04d}_rank0.png"
            if not path.is_file():
                raise FileNotFoundError(f"{row}: no final image for class {y} in {cell}")
            faces.append(Image.open(path).convert("RGB"))
        for col, face in enumerate(faces):
            face = face.resize((r, r), Image.NEAREST)
            canvas.paste(face, (col * (r + 4) + 2, header + i * (r + 4) + 2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(args.out)
    print(f"wrote {args.out}: classes {classes}, columns {titles}")


if __name__ == "__main__":
    main()
