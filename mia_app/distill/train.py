"""Distil SFace into the 32-px student, diffusers-examples style: accelerate loop, tqdm, per-epoch JSONL log,
resumable ``checkpoint-N`` folders (one per epoch), held-out figures after every epoch.

Loss: 1 - cos(S(x), SFace(x)) per image (the attack only ever uses the direction of the embedding). With
``flip`` each image is shown as itself or as its mirror, with the teacher's embedding of what was shown.
Held out: the benchmark's public pool (identities the set never contains): mean cosine agreement with
SFace, and verification AUC of student and teacher on the same pairs.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from mia_app.config import DistillConfig
from mia_app.data import load_benchmark
from mia_app.data.benchmark import to_signed
from mia_app.distill.teacher_set import load_teacher_set, set_folder, teacher_embeddings
from mia_app.evaluation.verification import verification_auc
from mia_app.models.sface_student import SFaceStudent, save_student


def heldout_set(cfg: DistillConfig, teacher: torch.nn.Module | None = None) -> dict[str, torch.Tensor]:
    """The benchmark's public pool with SFace's embeddings (cached beside the teacher set)."""
    bench = load_benchmark(cfg.data)
    cache = set_folder(cfg) / "heldout.safetensors"
    if cache.is_file():
        cached = load_file(str(cache))
        if torch.equal(cached["images"], bench.public.images):
            return cached
    if teacher is None:
        from mia_app.models.sface import load_sface

        teacher = load_sface()
    out = {"images": bench.public.images.contiguous(), "labels": bench.public.labels.contiguous(),
           "teacher": teacher_embeddings(teacher, bench.public.images).contiguous()}
    cache.parent.mkdir(parents=True, exist_ok=True)
    save_file(out, str(cache))
    return out


@torch.no_grad()
def heldout_figures(student: torch.nn.Module, held: dict[str, torch.Tensor], batch: int = 256) -> dict[str, float]:
    """agreement: mean cos(S(x), SFace(x)); auc_student / auc_sface: verification AUC on the same pairs."""
    was_training = student.training
    student.eval()
    e = torch.cat([student(to_signed(held["images"][i : i + batch])) for i in range(0, len(held["images"]), batch)])
    student.train(was_training)
    cos = (e * F.normalize(held["teacher"], dim=1)).sum(1)
    return {"agreement": cos.mean().item(), "agreement_p05": cos.quantile(0.05).item(),
            "auc_student": verification_auc(e, held["labels"]),
            "auc_sface": verification_auc(held["teacher"], held["labels"])}


def _latest(out: Path) -> Path | None:
    ckpts = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    return ckpts[-1] if ckpts else None


def train_student(cfg: DistillConfig, out: Path, held: dict | None = None) -> dict:
    """Train (resuming from the last ``checkpoint-N``) and write ``out/sface32.safetensors``; returns figures."""
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    data = load_teacher_set(cfg)
    held = held if held is not None else heldout_set(cfg)
    torch.manual_seed(cfg.seed)
    student = SFaceStudent(cfg.width)
    opt = torch.optim.AdamW(student.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(data["images"])
    steps_per_epoch = n // cfg.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.epochs * steps_per_epoch,
                                                pct_start=0.1)
    student, opt = accelerator.prepare(student, opt)
    out.mkdir(parents=True, exist_ok=True)
    start_epoch = 0
    if (last := _latest(out)) is not None:
        accelerator.load_state(str(last))
        sched.load_state_dict(torch.load(last / "scheduler.pt", weights_only=True))
        start_epoch = int(last.name.split("-")[1])
    log = out / "log.jsonl"
    figures: dict = {}
    for epoch in range(start_epoch, cfg.epochs):
        g = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)  # per epoch: resuming replays the same order
        order = torch.randperm(n, generator=g)
        mirror = torch.rand(n, generator=g) < 0.5 if cfg.flip else torch.zeros(n, dtype=torch.bool)
        student.train()
        t0, total = time.time(), 0.0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False)
        for step in bar:
            idx = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            x = to_signed(data["images"][idx])
            m = mirror[idx]
            x = torch.where(m[:, None, None, None], x.flip(-1), x)
            target = data["teacher"][idx]
            if cfg.flip:
                target = torch.where(m[:, None], data["teacher_flipped"][idx], target)
            x, target = x.to(accelerator.device), target.to(accelerator.device)
            loss = (1 - F.cosine_similarity(student(x), target, dim=1)).mean()
            opt.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            opt.step()
            sched.step()
            total += loss.item()
            bar.set_postfix(loss=f"{loss.item():.4f}")
        figures = {"epoch": epoch + 1, "train_loss": total / steps_per_epoch, "seconds": round(time.time() - t0, 1),
                   **heldout_figures(accelerator.unwrap_model(student), held)}
        with log.open("a") as f:
            f.write(json.dumps(figures) + "\n")
        ckpt = out / f"checkpoint-{epoch + 1}"
        accelerator.save_state(str(ckpt))
        torch.save(sched.state_dict(), ckpt / "scheduler.pt")
        for old in sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))[:-2]:
            shutil.rmtree(old)  # keep the last two
    if not figures:  # already finished: report the final checkpoint's figures
        figures = {"epoch": cfg.epochs, **heldout_figures(accelerator.unwrap_model(student), held)}
    final = accelerator.unwrap_model(student).eval()
    save_student(final, out / "sface32.safetensors", {"heldout": json.dumps(figures)})
    return figures
