"""bf16 against fp32 for the distillation's two costs: SFace labelling the teacher set, and a student training
step. Both run in one process on the same batch, interleaved A/B/A/B so a noisy machine hits both alike.

    MIA_THREADS=1 python benchmarks/distill_precision.py --out results/benchmarks/distill_precision.json

Reports the median time of each and their ratio (fp32 / bf16), and how far bf16 labels are from fp32 ones
(cosine, on the benchmark's public faces): the labels are the student's targets, so they must stay close.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from mia_app.config import SynthIDConfig
from mia_app.data import load_benchmark
from mia_app.data.benchmark import to_signed
from mia_app.models.sface import load_sface
from mia_app.models.sface_student import SFaceStudent


def _time(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64, help="images per SFace call (the labelling batch)")
    ap.add_argument("--student-batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("MIA_THREADS", "1")))
    faces = to_signed(load_benchmark(SynthIDConfig()).public.images[:512])
    sface = load_sface()

    def label(x: torch.Tensor, bf16: bool) -> torch.Tensor:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return sface(x).float()

    e32 = torch.cat([label(faces[i : i + args.batch], False) for i in range(0, len(faces), args.batch)])
    e16 = torch.cat([label(faces[i : i + args.batch], True) for i in range(0, len(faces), args.batch)])
    cos = F.cosine_similarity(e32, e16, dim=1)

    x = faces[: args.batch]
    sface_t = {False: [], True: []}
    for _ in range(args.repeats):  # interleaved
        for bf16 in (False, True):
            sface_t[bf16] += _time(lambda b=bf16: label(x, b), 1)

    torch.manual_seed(0)
    student = SFaceStudent(32)
    opt = torch.optim.AdamW(student.parameters(), lr=1e-3)
    xs, target = faces[: args.student_batch], e32[: args.student_batch]

    def step(bf16: bool) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            e = student(xs)
        loss = (1 - F.cosine_similarity(e.float(), target, dim=1)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step(False), step(True)  # warm-up
    student_t = {False: [], True: []}
    for _ in range(args.repeats):
        for bf16 in (False, True):
            student_t[bf16] += _time(lambda b=bf16: step(b), 1)

    med = statistics.median
    report = {
        "threads": torch.get_num_threads(), "repeats": args.repeats,
        "cpu_bf16": torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported(),
        "sface_label": {"images": args.batch, "fp32_s": med(sface_t[False]), "bf16_s": med(sface_t[True]),
                        "ratio": med(sface_t[False]) / med(sface_t[True]),
                        "bf16_ms_per_image": 1000 * med(sface_t[True]) / args.batch},
        "label_cosine_bf16_vs_fp32": {"images": len(faces), "min": cos.min().item(), "mean": cos.mean().item()},
        "student_step": {"batch": args.student_batch, "fp32_s": med(student_t[False]), "bf16_s": med(student_t[True]),
                         "ratio": med(student_t[False]) / med(student_t[True])},
    }
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
