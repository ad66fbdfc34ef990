"""The 32-px student (sface32) against SFace on the same batch: speed, agreement, verification AUC.

    MIA_THREADS=2 python benchmarks/id_encoder.py --batch 40 --repeats 7

* speed: forward + backward (gradient to the image, as in the attack) on one batch of held-out public
  images, the two encoders timed alternately, median of ``--repeats``; ``speedup`` = SFace time / student time;
* agreement: mean cos(student(x), SFace(x)) over the benchmark's public pool (4000 images of 1000 public
  identities, none of them in the distillation set), with its 5th percentile;
* verification AUC over every pair of those images (same identity = positive), for both encoders.

Writes ``results/benchmarks/id_encoder.json`` (``speedup``, ``agreement``, ``auc_sface``, ``auc_student``, ...).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from mia_app.config import SynthIDConfig
from mia_app.data import load_benchmark
from mia_app.data.benchmark import to_signed
from mia_app.evaluation.verification import verification_auc
from mia_app.models.id_encoders import embed_images, load_id_encoder
from mia_app.models.sface_student import read_student

OUT = Path("results/benchmarks")


def forward_backward(encoder: torch.nn.Module, x: torch.Tensor) -> float:
    x = x.clone().requires_grad_(True)
    t0 = time.perf_counter()
    encoder(x).sum().backward()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=40, help="images per timed pass (the cpu-quick step's 40)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--student", type=Path,
                    help="a student checkpoint (distill-id-encoder's --out/sface32.safetensors), not the shipped one")
    ap.add_argument("--out", type=Path, default=OUT / "id_encoder.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    bench = load_benchmark(SynthIDConfig())
    sface = load_id_encoder("sface")
    student = read_student(args.student) if args.student else load_id_encoder("sface32")
    x = to_signed(bench.public.images[: args.batch])
    times: dict[str, list[float]] = {"sface": [], "sface32": []}
    for enc in (sface, student):
        forward_backward(enc, x)  # warm-up
    for _ in range(args.repeats):  # alternate, so load drifts hit both alike
        times["sface"].append(forward_backward(sface, x))
        times["sface32"].append(forward_backward(student, x))
    ratios = [a / b for a, b in zip(times["sface"], times["sface32"], strict=True)]
    e_t, e_s = embed_images(sface, bench.public.images, 200), embed_images(student, bench.public.images, 200)
    cos = (e_t * e_s).sum(1)
    labels = bench.public.labels
    result = {
        "batch": args.batch, "repeats": args.repeats, "threads": args.threads,
        "sface_s": statistics.median(times["sface"]), "student_s": statistics.median(times["sface32"]),
        "speedup": statistics.median(ratios), "speedup_min": min(ratios), "speedup_max": max(ratios),
        "heldout_images": len(labels), "heldout_identities": int(labels.unique().numel()),
        "agreement": cos.mean().item(), "agreement_p05": cos.quantile(0.05).item(),
        "auc_sface": verification_auc(e_t, labels), "auc_student": verification_auc(e_s, labels),
    }
    result["auc_gap"] = result["auc_sface"] - result["auc_student"]
    # For scale: how far SFace's own embedding moves when the 32-px face shifts by one pixel or is mirrored.
    shifted = torch.cat([bench.public.images[:, :, :, :1], bench.public.images[:, :, :, :-1]], dim=-1)
    for name, moved in (("shift_1px", shifted), ("mirror", bench.public.images.flip(-1))):
        c = (e_t * embed_images(sface, moved.contiguous(), 200)).sum(1)
        result[f"sface_self_agreement_{name}"] = {"mean": c.mean().item(), "p05": c.quantile(0.05).item()}
    result["student"] = str(args.student) if args.student else "shipped sface32"
    result["student_config"] = student.config()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
