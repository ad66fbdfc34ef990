"""Public latent generators for the generator-based peers (PPA, the generator floor): any differentiable
``z -> image`` module plugs in.

A ``LatentGenerator`` has ``latent_dim``, ``sample_latents(n, generator)`` (the prior over z) and
``forward(z) -> N×3×R×R`` in [-1, 1] at the benchmark's resolution R. The registry maps a config name to a
factory ``(resolution, device) -> LatentGenerator``; ``register_generator`` adds one (a StyleGAN on a GPU box).
Names, not import paths, go in configs: a hosted dashboard never imports code a user typed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


class LatentGenerator(nn.Module):
    """Interface: ``latent_dim``, ``sample_latents`` and ``forward(z)``; frozen (no trainable parameters)."""

    latent_dim: int
    resolution: int
    description: str = ""

    def sample_latents(self, n: int, generator: torch.Generator) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


class DCGANLatents(LatentGenerator):
    """The public DCGAN of ``gan-face-generate`` (the generator SynthID's faces come from, as in GMI's
    in-distribution setting): z ~ N(0, I_100), G(z) at 64 px, area-downsampled to ``resolution``."""

    description = "DCGAN (gan-face-generate, DigiFace-1M), z ~ N(0, I_100), area-downsampled"

    def __init__(self, resolution: int = 32):
        super().__init__()
        from mia_app.models.dcgan import Z_DIM, load_dcgan

        if resolution not in (32, 64):
            raise ValueError(f"resolution must be 32 or 64, got {resolution}")
        self.G = load_dcgan()
        self.latent_dim = Z_DIM
        self.resolution = resolution

    def sample_latents(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(n, self.latent_dim, generator=generator)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.G(z)
        # The same area downsampling SynthID renders with, so T sees the pipeline's own kind of image.
        return F.adaptive_avg_pool2d(x, self.resolution) if x.shape[-1] != self.resolution else x


class GrayDCGANLatents(DCGANLatents):
    """The same DCGAN, its faces turned gray (ITU-R 601 luma, replicated to 3 channels): the public generator for
    gray benchmarks (ORL), a cross-domain prior as FFHQ's StyleGAN is for FaceScrub in PPA."""

    description = "DCGAN (gan-face-generate, DigiFace-1M) in gray, z ~ N(0, I_100), area-downsampled"
    LUMA = (0.299, 0.587, 0.114)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = super().forward(z)
        luma = torch.tensor(self.LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x * luma).sum(1, keepdim=True).expand(-1, 3, -1, -1)


_REGISTRY: dict[str, Callable[[int], LatentGenerator]] = {"dcgan": DCGANLatents, "dcgan_gray": GrayDCGANLatents}


def register_generator(name: str, factory: Callable[[int], LatentGenerator]) -> None:
    """Make ``generator: <name>`` usable in peer configs; ``factory(resolution)`` builds the module."""
    if not name.isidentifier():
        raise ValueError(f"generator names must be identifiers, got {name!r}")
    _REGISTRY[name] = factory


def generator_names() -> list[str]:
    return sorted(_REGISTRY)


def load_generator(name: str, resolution: int, device: torch.device | str = "cpu") -> LatentGenerator:
    if name not in _REGISTRY:
        raise ValueError(f"unknown generator {name!r}; known: {generator_names()}")
    gen = _REGISTRY[name](resolution)
    if gen.resolution != resolution:
        raise ValueError(f"generator {name!r} gives {gen.resolution} px, the benchmark is {resolution} px")
    return gen.to(device).eval().requires_grad_(False)
