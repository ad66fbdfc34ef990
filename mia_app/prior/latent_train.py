"""Train the latent prior on public pairs (z, E_id(G(z))), diffusers-examples style.

The pairs are built once, in resumable chunks under ``$MIA_DATA_DIR/latent-pairs-<key>/`` (the generator and
E_id forward passes are the slow part, about 9 ms per pair per core). Training: accelerate, EMA, tqdm, per-term
JSONL logs, atomic ``checkpoint-N`` folders, and the conditioning fidelity on held-out public identities (the
benchmark's public pool, which no pair comes from) every ``eval_every`` steps.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from diffusers.training_utils import EMAModel
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from mia_app.config import LatentPriorTrainConfig, check_run_config
from mia_app.data import load_benchmark
from mia_app.data.benchmark import to_signed, to_uint8
from mia_app.data.synthid import data_root
from mia_app.models.id_encoders import embed_images, id_encoder_digest, load_id_encoder
from mia_app.peers.generators import load_generator
from mia_app.prior.denoiser import LatentDenoiser
from mia_app.prior.latent import LatentPrior, latent_scheduler
from mia_app.prior.sampler import sample_from_noise
from mia_app.prior.train import latest_checkpoint, save_checkpoint

CHUNK = 4096  # pairs per chunk file: a killed build loses at most one chunk


def pairs_key(cfg: LatentPriorTrainConfig) -> str:
    """What the pairs depend on (not the denoiser's training hyper-parameters)."""
    fields = {k: getattr(cfg, k) for k in ("decoder", "id_encoder", "n_pairs", "stream")}
    fields.update(resolution=cfg.data.resolution, data_seed=cfg.data.seed)
    fields["id_encoder_sha256"] = id_encoder_digest(cfg.id_encoder)  # a re-shipped student gives new codes
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


def pairs_folder(cfg: LatentPriorTrainConfig) -> Path:
    return Path(data_root()) / f"latent-pairs-{pairs_key(cfg)}"


def chunk_latents(cfg: LatentPriorTrainConfig, chunk: int, latent_dim: int) -> torch.Tensor:
    """The latents of one chunk, from that chunk's own seed: a rebuild of one chunk needs no other."""
    n = min(CHUNK, cfg.n_pairs - chunk * CHUNK)
    g = torch.Generator().manual_seed(cfg.data.seed + cfg.stream + chunk)
    return torch.randn(n, latent_dim, generator=g)


@torch.no_grad()
def build_latent_pairs(cfg: LatentPriorTrainConfig, device: torch.device | str = "cpu") -> Path:
    """Write every missing chunk of (z, c); returns the folder."""
    folder = pairs_folder(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pairs.json").write_text(json.dumps({"key": pairs_key(cfg), "config": cfg.model_dump(mode="json")},
                                                  indent=2))
    n_chunks = -(-cfg.n_pairs // CHUNK)
    missing = [i for i in range(n_chunks) if not (folder / f"chunk-{i:04d}.safetensors").is_file()]
    if not missing:
        return folder
    decoder = load_generator(cfg.decoder, cfg.data.resolution, device)
    encoder = load_id_encoder(cfg.id_encoder, device)
    for i in tqdm(missing, desc="latent pairs", unit="chunk"):
        z = chunk_latents(cfg, i, decoder.latent_dim)
        # The faces go through uint8, as every rendered face the encoder sees in the attack's pools does.
        faces = torch.cat([to_uint8(decoder(z[j : j + 256].to(device))).cpu() for j in range(0, len(z), 256)])
        c = F.normalize(embed_images(encoder, faces.to(device)).float(), dim=1).cpu()
        path = folder / f"chunk-{i:04d}.safetensors"
        save_file({"z": z.contiguous(), "c": c.contiguous()}, str(path.with_suffix(".tmp")))
        path.with_suffix(".tmp").replace(path)  # a chunk is either whole or absent
    return folder


def load_latent_pairs(cfg: LatentPriorTrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(z: n_pairs×D, c: n_pairs×code_dim), all chunks; a missing chunk is an error naming the build step."""
    folder = pairs_folder(cfg)
    paths = [folder / f"chunk-{i:04d}.safetensors" for i in range(-(-cfg.n_pairs // CHUNK))]
    absent = [p.name for p in paths if not p.is_file()]
    if absent:
        raise FileNotFoundError(f"{folder} lacks {len(absent)} chunks ({absent[0]} ...); "
                                "build_latent_pairs writes them")
    parts = [load_file(str(p)) for p in paths]
    return torch.cat([p["z"] for p in parts]), torch.cat([p["c"] for p in parts])


@torch.no_grad()
def heldout_codes(cfg: LatentPriorTrainConfig, encoder: torch.nn.Module, n: int = 64) -> dict[str, torch.Tensor]:
    """Two images of each of ``n`` benchmark public identities, embedded: codes ``c`` (the first image's) and
    ``c_other_image`` (the second's), for the fidelity figure and its ceiling."""
    public = load_benchmark(cfg.data).public
    ids = [int(i) for i in public.labels.unique() if (public.labels == i).sum() >= 2][:n]
    first = torch.stack([(public.labels == i).nonzero()[0, 0] for i in ids])
    second = torch.stack([(public.labels == i).nonzero()[1, 0] for i in ids])
    # embed_images finds the encoder's device itself (SFace holds buffers only, no parameters)
    embed = lambda idx: F.normalize(embed_images(encoder, public.images[idx]).float(), dim=1)  # noqa: E731
    return {"c": embed(first), "c_other_image": embed(second)}


@torch.no_grad()
def fidelity(prior: LatentPrior, encoder: torch.nn.Module, held: dict[str, torch.Tensor], steps: int = 25) -> dict:
    """cos(E_id(G(ẑ)), c) for ẑ sampled from noise under held-out codes c; floor: the same faces against another
    identity's code; ceiling: another real image of the same identity against c."""
    c = held["c"]
    x = sample_from_noise(prior, c, steps)
    e = F.normalize(encoder(to_signed(to_uint8(x))).float(), dim=1)
    return {"fidelity": (e * c).sum(1).mean().item(), "floor": (e * c.roll(1, 0)).sum(1).mean().item(),
            "ceiling": (held["c_other_image"] * c).sum(1).mean().item(), "n": len(c), "ddim_steps": steps}


def _prior(cfg: LatentPriorTrainConfig, denoiser: LatentDenoiser, device) -> LatentPrior:
    return LatentPrior(denoiser, load_generator(cfg.decoder, cfg.data.resolution, device), cfg.decoder,
                       latent_scheduler(), cfg.clip_sample)


def train_latent_prior(cfg: LatentPriorTrainConfig, out: Path) -> dict:
    """Build the pairs, train (resuming from the last ``checkpoint-N``), write the EMA prior to ``out/prior``."""
    out.mkdir(parents=True, exist_ok=True)
    check_run_config(out, cfg, may_change=("steps",))  # constant rate: a resume may train longer
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    device = accelerator.device
    build_latent_pairs(cfg, device)
    z_all, c_all = load_latent_pairs(cfg)
    torch.manual_seed(cfg.seed)
    denoiser = LatentDenoiser(z_all.shape[1], c_all.shape[1], cfg.width, cfg.depth, cfg.emb_dim)
    ema = EMAModel(denoiser.parameters(), decay=cfg.ema_decay)
    opt = torch.optim.AdamW(denoiser.parameters(), lr=cfg.lr, weight_decay=0.0)
    denoiser, opt = accelerator.prepare(denoiser, opt)
    ema.to(device)
    start = 0
    if (ckpt := latest_checkpoint(out)) is not None:
        accelerator.unwrap_model(denoiser).load_state_dict(load_file(str(ckpt / "model.safetensors")))
        ema.load_state_dict(torch.load(ckpt / "ema.pt", map_location="cpu", weights_only=True))
        opt.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location="cpu", weights_only=True))
        start = json.loads((ckpt / "state.json").read_text())["step"]
        accelerator.print(f"resumed from {ckpt}")
    log_path = out / "train_log.jsonl"
    if log_path.is_file():  # drop lines past the checkpoint we resume from: one line per step, no duplicates
        kept = [ln for ln in log_path.read_text().splitlines() if json.loads(ln)["step"] <= start]
        log_path.write_text("".join(ln + "\n" for ln in kept))
    encoder = load_id_encoder(cfg.id_encoder, device)
    held = heldout_codes(cfg, encoder)
    alphas_cumprod = latent_scheduler().alphas_cumprod.to(device)
    T = len(alphas_cumprod)
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + start)
    log, t_start, loss, figures = open(log_path, "a"), time.time(), None, {}
    for step in tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="train latent prior"):
        idx = torch.randint(0, len(z_all), (cfg.batch_size,), generator=gen)
        z0, c = z_all[idx].to(device), c_all[idx].to(device)
        drop = (torch.rand(len(idx), generator=gen) < cfg.p_uncond).to(device)
        c = torch.where(drop[:, None], torch.zeros_like(c), c)  # the null code, for classifier-free guidance
        t = torch.randint(0, T, (len(idx),), generator=gen).to(device)
        eps = torch.randn(z0.shape, generator=gen).to(device)
        a = alphas_cumprod[t][:, None]
        loss = F.mse_loss(denoiser(a.sqrt() * z0 + (1 - a).sqrt() * eps, t, c), eps)
        opt.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        opt.step()
        ema.step(denoiser.parameters())
        done = step + 1
        row = {"step": done, "L_denoise": loss.item(), "seconds": round(time.time() - t_start, 2)}
        if done % cfg.eval_every == 0 or done == cfg.steps:
            figures = fidelity(_ema_prior(cfg, accelerator.unwrap_model(denoiser), ema, device), encoder, held)
            row.update({f"heldout_{k}": v for k, v in figures.items() if k in ("fidelity", "floor", "ceiling")})
            accelerator.print(json.dumps(row))
        log.write(json.dumps(row) + "\n")
        if done % cfg.save_every == 0 or done == cfg.steps:
            save_checkpoint(out, done, accelerator.unwrap_model(denoiser), ema, opt, cfg.keep_checkpoints)
            log.flush()
    log.close()
    final = _ema_prior(cfg, accelerator.unwrap_model(denoiser), ema, device)
    if not figures:  # resumed at the end: measure the final prior once
        figures = fidelity(final, encoder, held)
    final.save_pretrained(out / "prior", fp16=True, extra={"train_config": cfg.model_dump(mode="json"),
                                                           "code_encoder": cfg.id_encoder, "heldout": figures,
                                                           "code_encoder_sha256": id_encoder_digest(cfg.id_encoder)})
    n_params = sum(p.numel() for p in final.denoiser.parameters())
    return {"steps": cfg.steps, "final_loss": loss.item() if loss is not None else None, "parameters": n_params,
            "heldout": figures, "out": str(out / "prior")}


def _ema_prior(cfg: LatentPriorTrainConfig, denoiser: LatentDenoiser, ema: EMAModel, device) -> LatentPrior:
    copy = LatentDenoiser(**denoiser.config).to(device)
    ema.copy_to(copy.parameters())
    return _prior(cfg, copy, device).eval()
