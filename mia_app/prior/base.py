"""The prior interface: what the engine, the sampler and the losses see of a diffusion prior.

A prior is an identity-conditioned epsilon-prediction model over some space Z (pixels for ``IdentityPrior``, a
public generator's latent for ``LatentPrior``) with a decoder Z -> image. Everything that differs between kinds
sits behind these methods, so no caller branches on the kind:

- ``forward(z_t, t, c)``: eps_theta, N×<sample_shape> -> N×<sample_shape>; ``guided`` adds classifier-free
  guidance. (a) SDEdit sampling (``mia_app.prior.sampler``) and (b) the denoising loss at t
  (``mia_app.losses.prior``) are written once against these.
- ``decode(z)``: N×<sample_shape> -> N×3×R×R images in [-1, 1], differentiable (identity for pixels).
- ``source_pool(bench, size, seed)``: the public starting points of SDEdit, in Z and as images, with their
  public identity labels (PPA's initial-selection pool: the public images, or random generator latents).
- ``adapter_host``: the module (c) a LoRA adapter is injected into (peft), and whose adapter is saved alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from diffusers import DDPMScheduler
from torch import nn


@dataclass
class SourcePool:
    """Public SDEdit starting points: ``latents`` P×<sample_shape> in the prior's space, ``images`` P×3×R×R
    uint8 (what T and E_id see of them) and ``labels`` P public identity ids >= 0 (distinct ids where each
    sample is its own identity, as for random generator latents)."""

    latents: torch.Tensor
    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if not len(self.latents) == len(self.images) == len(self.labels):
            raise ValueError("latents, images and labels of a source pool must have the same length")

    def __len__(self) -> int:
        return len(self.images)


class Prior(nn.Module):
    """Base class of the prior kinds; see the module docstring for the contract."""

    kind: ClassVar[str]
    #: LoRA target module names (in ``adapter_host``) when the attack config names none.
    default_lora_targets: ClassVar[tuple[str, ...]]
    code_dim: int
    conditioned: bool
    scheduler: DDPMScheduler
    #: DDIM clips its x0 estimate to [-clip_sample, clip_sample] (straight-through); None: no clip.
    clip_sample: float | None

    @property
    def resolution(self) -> int:  # pragma: no cover - interface
        """Side of the decoded images, R."""
        raise NotImplementedError

    @property
    def sample_shape(self) -> tuple[int, ...]:  # pragma: no cover - interface
        """Shape of one sample in the prior's space Z: (3, R, R) for pixels, (D,) for a latent."""
        raise NotImplementedError

    @property
    def adapter_host(self) -> nn.Module:  # pragma: no cover - interface
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def source_pool(self, bench, size: int, seed: int) -> SourcePool:  # pragma: no cover - interface
        raise NotImplementedError

    def save_pretrained(self, folder, fp16: bool = True, extra: dict | None = None) -> None:  # pragma: no cover
        raise NotImplementedError

    def check_code(self, c: torch.Tensor | None, n: int, like: torch.Tensor) -> torch.Tensor:
        """c as an N×code_dim tensor (None: the null code)."""
        if c is None:
            return like.new_zeros(n, self.code_dim)
        if c.shape != (n, self.code_dim):
            raise ValueError(f"c must be {n}×{self.code_dim}, got {tuple(c.shape)}")
        return c

    def guided(self, z_t: torch.Tensor, t: torch.Tensor, c: torch.Tensor, guidance: float = 1.0) -> torch.Tensor:
        """Classifier-free guidance: eps_u + w (eps_c - eps_u); w = 1 is the plain conditional model."""
        if guidance == 1.0 or not self.conditioned:
            return self(z_t, t, c)
        eps = self(torch.cat([z_t, z_t]), torch.cat([t, t]), torch.cat([c, torch.zeros_like(c)]))
        eps_c, eps_u = eps.chunk(2)
        return eps_u + guidance * (eps_c - eps_u)

    def alpha_bar(self, t: torch.Tensor, ndim: int) -> torch.Tensor:
        """alpha_bar_t with alpha_bar_{-1} = 1 (the clean end), shaped N×1×...×1 to broadcast over a batch of
        ``ndim``-dimensional samples."""
        table = self.scheduler.alphas_cumprod.to(t.device)
        a = torch.where(t >= 0, table[t.clamp(min=0)], torch.ones_like(t, dtype=table.dtype))
        return a.view(-1, *([1] * (ndim - 1)))
