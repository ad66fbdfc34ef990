"""IdentityPrior: a diffusers ``UNet2DModel`` predicting epsilon, conditioned on a unit-norm identity code c.

c (N×128, an SFace embedding) is projected by a small MLP into the time-embedding space and added to
the time embedding (the UNet's ``class_embed_type="identity"`` path). The null code c = 0 means
"unconditioned": training drops c to 0 with probability ``p_uncond`` so classifier-free guidance works.

On disk (``save_pretrained``)::

    folder/unet/                        diffusers UNet2DModel (config.json + safetensors)
    folder/scheduler/                   DDPMScheduler config (the training noise schedule)
    folder/code_proj.safetensors        the code projection
    folder/prior_config.json            code_dim, training provenance

Any plain diffusers UNet2DModel (folder or hub id) also loads; it then ignores c (``conditioned=False``),
and the attack steers it through LoRA and the losses alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import DDPMScheduler, UNet2DModel
from safetensors.torch import load_file, save_file
from torch import nn

from mia_app.data.benchmark import to_signed
from mia_app.prior.base import Prior, SourcePool

CODE_DIM = 128


def default_unet(resolution: int = 32, channels: tuple[int, ...] = (32, 64, 64)) -> UNet2DModel:
    """No attention blocks: they cost 3× on CPU (SPEC §4) and buy little at 32 px."""
    return UNet2DModel(
        sample_size=resolution,
        in_channels=3,
        out_channels=3,
        layers_per_block=1,
        block_out_channels=channels,
        down_block_types=("DownBlock2D",) * len(channels),
        up_block_types=("UpBlock2D",) * len(channels),
        class_embed_type="identity",
        norm_num_groups=8,
    )


def default_scheduler() -> DDPMScheduler:
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", prediction_type="epsilon")


class IdentityPrior(Prior):
    """The pixel prior: eps_theta(x_t, t, c). x_t: N×3×R×R (the noised image in [-1, 1] scale), t: N int, c: N×128
    or None. Its space is the image itself: ``decode`` is the identity and the SDEdit sources are the public
    images."""

    kind = "pixel"
    # The prior has no attention; the code enters each block through time_emb_proj, and conv1/conv2
    # shape the block's features, so these are where a low-rank update can change identity.
    default_lora_targets = ("conv1", "conv2", "time_emb_proj")
    clip_sample = 1.0

    def __init__(self, unet: UNet2DModel, scheduler: DDPMScheduler | None = None, code_dim: int = CODE_DIM):
        super().__init__()
        self.unet = unet
        self.scheduler = scheduler or default_scheduler()
        self.code_dim = code_dim
        self.conditioned = unet.config.class_embed_type == "identity"
        #: the E_id its codes were trained on and that encoder's sha256 (prior_config.json); None when unknown
        self.code_encoder: str | None = None
        self.code_encoder_sha256: str | None = None
        if self.conditioned:
            dim = unet.time_embedding.linear_2.out_features
            self.code_proj = nn.Sequential(nn.Linear(code_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        else:
            self.code_proj = None

    @property
    def resolution(self) -> int:
        return int(self.unet.config.sample_size)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (int(self.unet.config.in_channels), self.resolution, self.resolution)

    @property
    def adapter_host(self) -> nn.Module:
        return self.unet

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z.clamp(-1, 1)

    def source_pool(self, bench, size: int, seed: int) -> SourcePool:
        """All of the benchmark's public images (``size`` and ``seed`` concern generator latents only)."""
        images = bench.public.images
        return SourcePool(to_signed(images), images, bench.public.labels)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if x_t.ndim != 4:
            raise ValueError(f"x_t must be N×C×H×W, got {tuple(x_t.shape)}")
        class_labels = None
        if self.conditioned:
            class_labels = self.code_proj(self.check_code(c, len(x_t), x_t))
        return self.unet(x_t, t, class_labels=class_labels).sample

    def save_pretrained(self, folder: str | Path, fp16: bool = True, extra: dict | None = None) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        unet = self.unet
        if fp16:
            # load_state_dict copies into the module's own dtype, so the copy must be half before loading
            unet = default_unet_like(unet).half()
            unet.load_state_dict(self.unet.state_dict())
        unet.save_pretrained(folder / "unet", safe_serialization=True)
        self.scheduler.save_pretrained(folder / "scheduler")
        if self.code_proj is not None:
            state = {k: (v.half() if fp16 else v).contiguous() for k, v in self.code_proj.state_dict().items()}
            save_file(state, str(folder / "code_proj.safetensors"))
        meta = {"kind": self.kind, "code_dim": self.code_dim, "conditioned": self.conditioned, **(extra or {})}
        (folder / "prior_config.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, **kwargs) -> IdentityPrior:
        """Load our prior folder, a plain diffusers UNet2DModel folder, a diffusers pipeline folder (its
        ``unet/`` and ``scheduler/``), or a hub id (online users). Weights are returned in float32."""
        path = Path(name_or_path)
        if path.is_dir() and (path / "unet").is_dir() and not (path / "prior_config.json").is_file():
            name_or_path, kwargs = path, {"subfolder": "unet", **kwargs}
        elif path.is_dir() and (path / "unet").is_dir():
            unet = UNet2DModel.from_pretrained(path / "unet", **kwargs).float()
            scheduler = DDPMScheduler.from_pretrained(path / "scheduler")
            meta = json.loads((path / "prior_config.json").read_text())
            prior = cls(unet, scheduler, code_dim=meta["code_dim"])
            # Priors shipped before the encoder was recorded were trained on SFace codes (their train_config
            # has no id_encoder); the attack warns when it feeds codes of another encoder.
            prior.code_encoder = meta.get("code_encoder", "sface" if "train_config" in meta else None)
            prior.code_encoder_sha256 = meta.get("code_encoder_sha256")
            if prior.code_proj is not None:
                state = load_file(str(path / "code_proj.safetensors"))
                prior.code_proj.load_state_dict({k: v.float() for k, v in state.items()})
            return prior
        unet = UNet2DModel.from_pretrained(str(name_or_path), **kwargs).float()
        try:
            scheduler = DDPMScheduler.from_pretrained(str(name_or_path), subfolder="scheduler")
        except (OSError, ValueError):
            # Many hub UNets ship without a scheduler folder; fall back to the standard DDPM schedule.
            scheduler = default_scheduler()
        if unet.config.class_embed_type == "identity":
            raise ValueError(
                f"{name_or_path} expects identity class labels but has no code projection; save it with "
                "IdentityPrior.save_pretrained"
            )
        return cls(unet, scheduler)


def default_unet_like(unet: UNet2DModel) -> UNet2DModel:
    return UNet2DModel.from_config(unet.config)
