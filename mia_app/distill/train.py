"""Distil SFace into the 32-px student, diffusers-examples style: accelerate loop, tqdm, per-epoch JSONL log,
resumable ``checkpoint-N`` folders (one per epoch), held-out figures after every epoch.

Loss: 1 - cos(S(x), SFace(x)) per image (the attack only ever uses the direction of the embedding). With
``flip`` each image is shown as itself or as its mirror, with the teacher's embedding of what was shown.
Held out: the benchmark's public pool (identities the set never contains): mean cosine agreement with
SFace, and verification AUC of student and teacher on the same pairs.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from mia_app.config import DistillConfig, check_run_config
from mia_app.data import load_benchmark
from mia_app.data.benchmark import to_signed
from mia_app.distill.teacher_set import load_teacher_set, set_folder
from mia_app.evaluation.verification import verification_auc
from mia_app.models.id_encoders import embed_images
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
           "teacher": embed_images(teacher, bench.public.images).contiguous()}
    cache.parent.mkdir(parents=True, exist_ok=True)
    save_file(out, str(cache.with_suffix(".tmp")))
    cache.with_suffix(".tmp").replace(cache)  # atomic: a killed run leaves no half file
    return out


@torch.no_grad()
def heldout_figures(student: torch.nn.Module, held: dict[str, torch.Tensor], batch: int = 256) -> dict[str, float]:
    """agreement: mean cos(S(x), SFace(x)); auc_student / auc_sface: verification AUC on the same pairs."""
    was_training = student.training
    student.eval()
    device = next(student.parameters()).device
    e = torch.cat([student(to_signed(held["images"][i : i + batch]).to(device)).cpu()
                   for i in range(0, len(held["images"]), batch)])
    student.train(was_training)
    cos = (e * F.normalize(held["teacher"], dim=1)).sum(1)
    return {"agreement": cos.mean().item(), "agreement_p05": cos.quantile(0.05).item(),
            "auc_student": verification_auc(e, held["labels"]),
            "auc_sface": verification_auc(held["teacher"], held["labels"])}


def learning_rate(peak: float, step: int, total: int, warmup: float = 0.05) -> float:
    """Linear warm-up over the first 5% of the steps, then cosine to 0: a function of the step, so a resumed run
    (same config, checked) continues the schedule without scheduler state."""
    w = max(1, int(warmup * total))
    if step < w:
        return peak * (step + 1) / w
    return 0.5 * peak * (1 + math.cos(math.pi * min(1.0, (step - w) / max(1, total - w))))


def _latest(out: Path) -> Path | None:
    ckpts = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    return ckpts[-1] if ckpts else None


def train_student(cfg: DistillConfig, out: Path, held: dict | None = None) -> dict:
    """Train (resuming from the last ``checkpoint-N``) and write ``out/sface32.safetensors``; returns figures."""
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    data = load_teacher_set(cfg)
    held = held if held is not None else heldout_set(cfg)
    torch.manual_seed(cfg.seed)
    student = SFaceStudent(cfg.width, blocks=cfg.blocks)
    opt = torch.optim.AdamW(student.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(data["images"])
    steps_per_epoch = n // cfg.batch_size
    total_steps = cfg.epochs * steps_per_epoch
    student, opt = accelerator.prepare(student, opt)
    out.mkdir(parents=True, exist_ok=True)
    check_run_config(out, cfg)
    start_epoch = 0
    if (last := _latest(out)) is not None:
        accelerator.load_state(str(last))
        start_epoch = int(last.name.split("-")[1])
    log = out / "log.jsonl"
    if log.is_file():  # a kill between the log line and its checkpoint: keep one line per saved epoch
        lines = log.read_text().splitlines()[:start_epoch]
        log.write_text("".join(line + "\n" for line in lines))
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
            with torch.autocast(accelerator.device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
                e = student(x)
            loss = (1 - F.cosine_similarity(e.float(), target, dim=1)).mean()
            opt.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            for group in opt.param_groups:
                group["lr"] = learning_rate(cfg.lr, epoch * steps_per_epoch + step, total_steps)
            opt.step()
            total += loss.item()
            bar.set_postfix(loss=f"{loss.item():.4f}")
        figures = {"epoch": epoch + 1, "train_loss": total / steps_per_epoch, "seconds": round(time.time() - t0, 1),
                   **heldout_figures(accelerator.unwrap_model(student), held)}
        with log.open("a") as f:
            f.write(json.dumps(figures) + "\n")
        partial = out / f"partial-checkpoint-{epoch + 1}"
        accelerator.save_state(str(partial))
        partial.replace(out / f"checkpoint-{epoch + 1}")  # a kill mid-save leaves no checkpoint-N to resume from
        for old in sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))[:-2]:
            shutil.rmtree(old)  # keep the last two
    if not figures:  # already finished: report the final checkpoint's figures
        figures = {"epoch": cfg.epochs, **heldout_figures(accelerator.unwrap_model(student), held)}
    final = accelerator.unwrap_model(student).eval()
    save_student(final, out / "sface32.safetensors", {"heldout": json.dumps(figures)})
    return figures
