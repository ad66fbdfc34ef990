"""Train the identity-conditioned prior on the public pool, diffusers-examples style.

accelerate loop, EMA, tqdm, per-term JSONL logs, resumable ``checkpoint-N`` folders and sample grids.
Each batch is augmented (``PriorAugment``) and, with ``mix``, partly drawn from a public generator's faces.
c = E_id(x_public): unit-norm codes of the public images (``id_encoder``: SFace or its 32-px student),
computed once and cached.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from diffusers.training_utils import EMAModel
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from mia_app.config import PriorTrainConfig
from mia_app.data import Benchmark, load_benchmark
from mia_app.models.id_encoders import embed_images, id_encoder_digest, load_id_encoder
from mia_app.prior.augment import augment_faces
from mia_app.prior.model import IdentityPrior, default_unet
from mia_app.prior.sampler import sample_from_noise
from mia_app.viz import save_grid


def public_codes(bench: Benchmark, cache: Path, id_encoder: str = "sface") -> torch.Tensor:
    """E_id(x) of every public image, unit-norm N×128, cached under ``cache`` with the encoder's sha256 (a
    re-shipped student, or another encoder, computes them again)."""
    from safetensors import safe_open

    digest = id_encoder_digest(id_encoder)
    if cache.is_file():
        with safe_open(str(cache), "pt") as f:
            meta = f.metadata() or {}
        codes = load_file(str(cache))["codes"]
        if len(codes) == len(bench.public) and meta.get("id_encoder_sha256") == digest:
            return codes
    codes = embed_images(load_id_encoder(id_encoder), bench.public.images, desc=f"{id_encoder} codes")
    cache.parent.mkdir(parents=True, exist_ok=True)
    save_file({"codes": codes.contiguous()}, str(cache), metadata={"id_encoder": id_encoder,
                                                                    "id_encoder_sha256": digest})
    return codes


def generator_pool(cfg: PriorTrainConfig, resolution: int, cache: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """``cfg.mix.n_faces`` public-generator faces (uint8 N×3×R×R) and their unit-norm codes E_id(G(z)), drawn once
    from the mix's own random stream and cached under ``cache`` with the encoder's sha256."""
    from safetensors import safe_open

    from mia_app.peers.generators import load_generator

    mix = cfg.mix
    digest = id_encoder_digest(cfg.id_encoder)
    key = f"{mix.generator}:{mix.n_faces}:{mix.stream + cfg.seed}:{resolution}"
    if cache.is_file():
        with safe_open(str(cache), "pt") as f:
            meta = f.metadata() or {}
        if meta.get("id_encoder_sha256") == digest and meta.get("key") == key:
            data = load_file(str(cache))
            return data["faces"], data["codes"]
    g = load_generator(mix.generator, resolution)
    rng = torch.Generator().manual_seed(mix.stream + cfg.seed)
    faces = []
    with torch.no_grad():
        for i in range(0, mix.n_faces, 256):
            z = g.sample_latents(min(256, mix.n_faces - i), rng)
            faces.append(g(z).add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8))
    faces = torch.cat(faces)
    codes = embed_images(load_id_encoder(cfg.id_encoder), faces, desc=f"{cfg.id_encoder} codes of {mix.generator}")
    cache.parent.mkdir(parents=True, exist_ok=True)
    save_file({"faces": faces.contiguous(), "codes": codes.contiguous()}, str(cache),
              metadata={"id_encoder_sha256": digest, "key": key})
    return faces, codes


def heldout_mask(labels: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """True for images of the public identities kept out of training (for the fidelity measurement)."""
    ids = labels.unique()
    g = torch.Generator().manual_seed(seed)
    n_out = int(round(len(ids) * fraction))
    out_ids = ids[torch.randperm(len(ids), generator=g)[:n_out]]
    return torch.isin(labels, out_ids)


def latest_checkpoint(out: Path) -> Path | None:
    ckpts = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    return ckpts[-1] if ckpts else None


def train_prior(cfg: PriorTrainConfig, out: Path, bench: Benchmark | None = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(cfg.model_dump_json(indent=2))
    torch.manual_seed(cfg.seed)
    bench = bench or load_benchmark(cfg.data)
    codes = public_codes(bench, out / "public_codes.safetensors", cfg.id_encoder)
    held = heldout_mask(bench.public.labels, cfg.heldout_fraction, cfg.seed)
    train_x, train_c = bench.public.images[~held], codes[~held]
    mix_x, mix_c = generator_pool(cfg, cfg.resolution, out / "mix_faces.safetensors") if cfg.mix else (None, None)

    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    prior = IdentityPrior(default_unet(cfg.resolution, tuple(cfg.channels)))
    ema = EMAModel(prior.parameters(), decay=cfg.ema_decay)
    opt = torch.optim.AdamW(prior.parameters(), lr=cfg.lr, weight_decay=0.0)
    prior, opt = accelerator.prepare(prior, opt)
    ema.to(accelerator.device)
    start = 0
    ckpt = latest_checkpoint(out)
    if ckpt is not None:
        accelerator.unwrap_model(prior).load_state_dict(load_file(str(ckpt / "model.safetensors")))
        ema.load_state_dict(torch.load(ckpt / "ema.pt", map_location="cpu", weights_only=True))
        opt.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location="cpu", weights_only=True))
        start = json.loads((ckpt / "state.json").read_text())["step"]
        accelerator.print(f"resumed from {ckpt}")
    sched = accelerator.unwrap_model(prior).scheduler
    T = sched.config.num_train_timesteps
    alphas_cumprod = sched.alphas_cumprod.to(accelerator.device)
    gen = torch.Generator().manual_seed(cfg.seed + start)
    fixed_codes = codes[held][:16] if held.any() else codes[:16]
    log = open(out / "train_log.jsonl", "a")
    t_start = time.time()
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="train prior")
    for step in bar:
        idx = torch.randint(0, len(train_x), (cfg.batch_size,), generator=gen)
        x_u8, c = train_x[idx], train_c[idx]
        if mix_x is not None:  # each face comes from the generator's pool with probability mix.fraction
            from_gen = torch.rand(len(idx), generator=gen) < cfg.mix.fraction
            gidx = torch.randint(0, len(mix_x), (len(idx),), generator=gen)
            x_u8 = torch.where(from_gen.view(-1, 1, 1, 1), mix_x[gidx], x_u8)
            c = torch.where(from_gen.view(-1, 1), mix_c[gidx], c)
        x0 = augment_faces(x_u8.float().div(127.5).sub(1), cfg.augment, gen).to(accelerator.device)
        c = c.to(accelerator.device)
        drop = (torch.rand(len(idx), generator=gen) < cfg.p_uncond).to(accelerator.device)
        c = torch.where(drop[:, None], torch.zeros_like(c), c)
        t = torch.randint(0, T, (len(idx),), generator=gen).to(accelerator.device)
        eps = torch.randn(x0.shape, generator=gen).to(accelerator.device)
        a = alphas_cumprod[t].view(-1, 1, 1, 1)
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
        with torch.autocast(accelerator.device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
            eps_hat = prior(x_t, t, c)
        loss = F.mse_loss(eps_hat.float(), eps)
        opt.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        opt.step()
        ema.step(prior.parameters())
        done = step + 1
        bar.set_postfix(loss=f"{loss.item():.4f}")
        log.write(json.dumps({"step": done, "L_denoise": loss.item(), "seconds": time.time() - t_start}) + "\n")
        if done % cfg.sample_every == 0 or done == cfg.steps:
            ema_prior = _ema_copy(accelerator.unwrap_model(prior), ema)
            save_grid(sample_from_noise(ema_prior, fixed_codes.to(accelerator.device)), out / f"samples-{done:06d}.png")
        if done % cfg.save_every == 0 or done == cfg.steps:
            save_checkpoint(out, done, accelerator.unwrap_model(prior), ema, opt, cfg.keep_checkpoints)
            log.flush()
    log.close()
    final = _ema_copy(accelerator.unwrap_model(prior), ema)
    final.save_pretrained(out / "prior", fp16=True, extra={"train_config": json.loads(cfg.model_dump_json()),
                                                           "code_encoder": cfg.id_encoder,
                                                           "code_encoder_sha256": id_encoder_digest(cfg.id_encoder)})
    return {"steps": cfg.steps, "final_loss": loss.item() if cfg.steps > start else None, "out": str(out / "prior")}


def _ema_copy(prior: IdentityPrior, ema: EMAModel) -> IdentityPrior:
    copy = IdentityPrior(default_unet_from(prior), prior.scheduler, prior.code_dim).to(next(prior.parameters()).device)
    copy.load_state_dict(prior.state_dict())
    ema.copy_to(copy.parameters())
    return copy.eval()


def default_unet_from(prior: IdentityPrior):
    from diffusers import UNet2DModel

    return UNet2DModel.from_config(prior.unet.config)


def save_checkpoint(out: Path, step: int, prior: torch.nn.Module, ema: EMAModel, opt, keep: int) -> None:
    folder = out / f"checkpoint-{step}"
    tmp = out / f".tmp-checkpoint-{step}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file({k: v.contiguous() for k, v in prior.state_dict().items()}, str(tmp / "model.safetensors"))
    torch.save(ema.state_dict(), tmp / "ema.pt")
    torch.save(opt.state_dict(), tmp / "optimizer.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step}))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)  # atomic: a crash never leaves a half-written checkpoint-N
    ckpts = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    for old in ckpts[:-keep]:
        shutil.rmtree(old)
