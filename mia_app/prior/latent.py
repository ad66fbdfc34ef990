"""LatentPrior: latent diffusion with a frozen public generator as decoder, x̂ = G(ẑ).

An identity-conditioned epsilon-prediction denoiser (``LatentDenoiser``) over the generator's latent z ∈ R^D
(the DCGAN's z ∈ R^100 on SynthID), trained on unlimited public pairs (z, E_id(G(z))). SDEdit, the denoising
loss and LoRA all act on z; every image loss sees the decoded face G(ẑ). The diffusion model over a
generator's latent is what DALL·E 2 calls a prior; the generator is never trained and never saved with it.

On disk (``save_pretrained``)::

    folder/denoiser.safetensors     the denoiser's weights (fp16 by default)
    folder/scheduler/               DDPMScheduler config (the training noise schedule)
    folder/prior_config.json        kind "latent", the denoiser's shape, the decoder's name, training provenance
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import DDPMScheduler
from safetensors.torch import load_file, save_file
from torch import nn

from mia_app.data.benchmark import to_uint8
from mia_app.peers.generators import LatentGenerator, load_generator
from mia_app.prior.base import Prior, SourcePool
from mia_app.prior.denoiser import LatentDenoiser

#: Seed offset of the source pool's latents: its own stream, apart from the peers' and the benchmark's.
_SOURCE_STREAM = 3_000_017


def latent_scheduler() -> DDPMScheduler:
    """The cosine schedule: on a unit-Gaussian latent, the linear schedule spends most steps near pure noise."""
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="epsilon")


def _pool_path(decoder: str, resolution: int, seed: int, size: int) -> Path | None:
    from mia_app.evaluation.feature_cache import enabled

    if not enabled():
        return None
    from mia_app.data.synthid import data_root

    return Path(data_root()) / "source-pools" / f"{decoder}-{resolution}px-seed{seed}-{size}.safetensors"


class LatentPrior(Prior):
    """eps_theta(z_t, t, c) over the decoder's latent; z_t N×D, t N ints, c N×code_dim or None (the null code)."""

    kind = "latent"
    # Every block's MLP and its (time + code) modulation: a low-rank update there can move identity.
    default_lora_targets = ("fc1", "fc2", "emb_proj")

    def __init__(self, denoiser: LatentDenoiser, decoder: LatentGenerator, decoder_name: str,
                 scheduler: DDPMScheduler | None = None, clip_sample: float | None = 4.0):
        super().__init__()
        if decoder.latent_dim != denoiser.latent_dim:
            raise ValueError(f"decoder {decoder_name!r} takes z ∈ R^{decoder.latent_dim}, the denoiser "
                             f"R^{denoiser.latent_dim}")
        if clip_sample is not None and not clip_sample > 0:
            raise ValueError("clip_sample must be > 0 or None")
        self.denoiser = denoiser
        self.decoder = decoder.requires_grad_(False)
        self.decoder_name = decoder_name
        self.scheduler = scheduler or latent_scheduler()
        self.code_dim = denoiser.code_dim
        self.conditioned = True
        # A unit-Gaussian latent beyond ±4 is a 1-in-15 000 event per coordinate; the generator's faces there
        # are artefacts, so DDIM's x0 estimate is clipped as the pixel prior's is to [-1, 1].
        self.clip_sample = clip_sample
        #: the E_id its codes were trained on (prior_config.json's ``code_encoder``); None when unknown
        self.code_encoder: str | None = None
        #: sha256 of that encoder's weights (``code_encoder_sha256``); None in priors saved before it was recorded
        self.code_encoder_sha256: str | None = None

    @property
    def resolution(self) -> int:
        return int(self.decoder.resolution)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return (self.denoiser.latent_dim,)

    @property
    def adapter_host(self) -> nn.Module:
        return self.denoiser

    def forward(self, z_t: torch.Tensor, t: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return self.denoiser(z_t, t, self.check_code(c, len(z_t), z_t))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """G(z): N×D -> N×3×R×R in [-1, 1], differentiable in z."""
        return self.decoder(z).clamp(-1, 1)

    @torch.no_grad()
    def source_pool(self, bench, size: int, seed: int) -> SourcePool:
        """``size`` random latents of the generator's own prior (PPA's search space) and their faces; each
        latent is its own public identity.

        Rendering 4000 faces takes ~8 s on 2 cores, most of the dashboard's time to a first image, so the faces
        are kept on disk (``$MIA_DATA_DIR/source-pools/``; ``MIA_FEATURE_CACHE=0`` turns it off): the latents
        are a function of the seed, and the faces of the latents and the generator (a sha-verified wheel file).
        """
        if size < 1:
            raise ValueError("the source pool needs at least one latent")
        if bench.resolution != self.resolution:
            raise ValueError(f"the prior decodes {self.resolution} px faces, the benchmark is {bench.resolution} px")
        g = torch.Generator().manual_seed(seed + _SOURCE_STREAM)
        z = self.decoder.sample_latents(size, g)
        path = _pool_path(self.decoder_name, self.resolution, seed, size)
        if path is not None and path.is_file():
            cached = load_file(str(path))
            if torch.equal(cached["latents"], z):
                return SourcePool(z, cached["images"], torch.arange(size))
        device = next(self.decoder.parameters()).device
        images = torch.cat([to_uint8(self.decode(z[i : i + 256].to(device))).cpu() for i in range(0, size, 256)])
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_file({"latents": z.contiguous(), "images": images.contiguous()}, str(path.with_suffix(".tmp")))
            path.with_suffix(".tmp").replace(path)
        return SourcePool(z, images, torch.arange(size))

    def save_pretrained(self, folder: str | Path, fp16: bool = True, extra: dict | None = None) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        dtype = torch.float16 if fp16 else torch.float32
        state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in self.denoiser.state_dict().items()}
        save_file(state, str(folder / "denoiser.safetensors"))
        self.scheduler.save_pretrained(folder / "scheduler")
        meta = {"kind": self.kind, "code_dim": self.code_dim, "conditioned": True, "denoiser": self.denoiser.config,
                "decoder": self.decoder_name, "resolution": self.resolution, "clip_sample": self.clip_sample,
                **(extra or {})}
        (folder / "prior_config.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> LatentPrior:
        """Load a folder written by ``save_pretrained``; weights in float32, the decoder from its registry name."""
        folder = Path(folder)
        meta = json.loads((folder / "prior_config.json").read_text())
        if meta.get("kind") != cls.kind:
            raise ValueError(f"{folder} holds a {meta.get('kind', 'pixel')!r} prior, not a latent one")
        denoiser = LatentDenoiser(**meta["denoiser"])
        denoiser.load_state_dict({k: v.float() for k, v in load_file(str(folder / "denoiser.safetensors")).items()})
        decoder = load_generator(meta["decoder"], int(meta["resolution"]))
        prior = cls(denoiser, decoder, meta["decoder"], DDPMScheduler.from_pretrained(folder / "scheduler"),
                    meta.get("clip_sample"))
        prior.code_encoder = meta.get("code_encoder")
        prior.code_encoder_sha256 = meta.get("code_encoder_sha256")
        return prior
