"""The distillation set: fresh public-generator faces and SFace's embedding of each, built in resumable chunks.

Attacker-side only. The faces are DCGAN identities from their own random stream (``DistillConfig.stream``),
so they are neither the benchmark's private identities nor its public pool (which stays held out). The
teacher sees what the attack's SFace sees: the R-px image (area-downsampled like the benchmark) upsampled
bilinearly to 112 px. Labelling is the slow part (about 0.05 s per image per core), so it is written one
chunk at a time under ``$MIA_DATA_DIR/distill-<key>/`` and a rerun skips the chunks already there.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from mia_app.config import DistillConfig
from mia_app.data.synthid import data_root, identity_latents, render
from mia_app.models.dcgan import load_dcgan
from mia_app.models.id_encoders import embed_images

CHUNK = 1024  # images per chunk file: a killed run loses at most one chunk of labelling


def set_key(cfg: DistillConfig) -> str:
    """What the set's content depends on (not the student's training hyper-parameters)."""
    fields = {k: getattr(cfg, k) for k in ("n_identities", "per_identity", "sigma", "stream", "flip")}
    if cfg.teacher_precision != "fp32":  # fp32 sets keep the key they had before the option existed
        fields["teacher_precision"] = cfg.teacher_precision
    fields["resolution"] = cfg.data.resolution
    fields["data_seed"] = cfg.data.seed
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


def set_folder(cfg: DistillConfig) -> Path:
    return Path(data_root()) / f"distill-{set_key(cfg)}"


def training_latents(cfg: DistillConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(z: (n_identities·per_identity)×100, identity labels), deterministic in the config."""
    z = identity_latents(cfg.data.seed + cfg.stream, cfg.n_identities, cfg.per_identity, cfg.sigma)
    return z, torch.arange(cfg.n_identities).repeat_interleave(cfg.per_identity)


@torch.no_grad()
def build_teacher_set(cfg: DistillConfig, teacher: torch.nn.Module | None = None) -> Path:
    """Write every missing chunk of the set; returns its folder. ``teacher`` defaults to the shipped SFace."""
    folder = set_folder(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "set.json").write_text(json.dumps({"key": set_key(cfg), "config": cfg.model_dump(mode="json")},
                                                indent=2, default=str))
    z, labels = training_latents(cfg)
    chunks = range(0, len(z), CHUNK)
    missing = [i for i in chunks if not (folder / f"chunk-{i // CHUNK:04d}.safetensors").is_file()]
    if not missing:
        return folder
    device = "cuda" if torch.cuda.is_available() else "cpu"  # on a GPU box the labelling takes minutes
    if teacher is None:
        from mia_app.models.sface import load_sface

        teacher = load_sface(device)
    generator = load_dcgan()
    bf16 = cfg.teacher_precision == "bf16"

    def label(images: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            return embed_images(teacher, images).float().cpu().contiguous()

    for start in tqdm(missing, desc="teacher set", unit="chunk"):
        x = render(generator, z[start : start + CHUNK], cfg.data.resolution)
        tensors = {"images": x.contiguous(), "labels": labels[start : start + CHUNK].contiguous(),
                   "teacher": label(x)}
        if cfg.flip:
            tensors["teacher_flipped"] = label(x.flip(-1))
        path = folder / f"chunk-{start // CHUNK:04d}.safetensors"
        save_file(tensors, str(path.with_suffix(".tmp")))
        path.with_suffix(".tmp").replace(path)  # a chunk is either whole or absent
    return folder


def load_teacher_set(cfg: DistillConfig) -> dict[str, torch.Tensor]:
    """The whole set: images N×3×R×R uint8, labels N, teacher N×128 (and teacher_flipped if ``cfg.flip``)."""
    folder = set_folder(cfg)
    n_chunks = -(-cfg.n_identities * cfg.per_identity // CHUNK)
    paths = [folder / f"chunk-{i:04d}.safetensors" for i in range(n_chunks)]
    absent = [p.name for p in paths if not p.is_file()]
    if absent:
        raise FileNotFoundError(f"teacher set {folder} lacks {len(absent)} chunks; run `python -m mia_app "
                                "distill-id-encoder` (it builds them, resumably)")
    parts = [load_file(str(p)) for p in paths]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
