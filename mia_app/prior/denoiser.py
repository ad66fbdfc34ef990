"""LatentDenoiser: eps_theta(z_t, t, c), a residual MLP over a generator's latent z ∈ R^D.

Each block is pre-norm MLP whose LayerNorm is modulated by the (time + code) embedding (adaLN, as in DiT):
the code reaches every block, so a LoRA on any block's Linear layers can move identity. The last layer
starts at zero, so an untrained denoiser predicts eps = 0 (the diffusers convention for a fresh residual).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps t (N,) -> N×dim (the DDPM / diffusers embedding)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.cos(), args.sin()], dim=1)


class ResidualBlock(nn.Module):
    """h + fc2(SiLU(fc1(LN(h)·(1 + scale) + shift))), with (scale, shift) = emb_proj(emb)."""

    def __init__(self, width: int, emb_dim: int, expansion: int = 2):
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False)
        self.emb_proj = nn.Linear(emb_dim, 2 * width)
        self.fc1 = nn.Linear(width, expansion * width)
        self.fc2 = nn.Linear(expansion * width, width)
        self.act = nn.SiLU()

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        scale, shift = self.emb_proj(emb).chunk(2, dim=1)
        return h + self.fc2(self.act(self.fc1(self.norm(h) * (1 + scale) + shift)))


class LatentDenoiser(nn.Module):
    """eps_theta(z_t, t, c): z_t N×D (the noised latent), t N ints in [0, T), c N×code_dim or zeros (unconditioned).

    Returns N×D. The code c is a unit-norm identity embedding; c = 0 is the null code of classifier-free guidance.
    """

    def __init__(self, latent_dim: int = 100, code_dim: int = 128, width: int = 384, depth: int = 6,
                 emb_dim: int = 256):
        super().__init__()
        if min(latent_dim, code_dim, width, depth, emb_dim) < 1 or emb_dim % 2:
            raise ValueError("latent_dim, code_dim, width, depth must be >= 1 and emb_dim even")
        self.latent_dim, self.code_dim, self.emb_dim = latent_dim, code_dim, emb_dim
        self.config = {"latent_dim": latent_dim, "code_dim": code_dim, "width": width, "depth": depth,
                       "emb_dim": emb_dim}
        self.time_mlp = nn.Sequential(nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.code_mlp = nn.Sequential(nn.Linear(code_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.proj_in = nn.Linear(latent_dim, width)
        self.blocks = nn.ModuleList(ResidualBlock(width, emb_dim) for _ in range(depth))
        self.norm_out = nn.LayerNorm(width)
        self.proj_out = nn.Linear(width, latent_dim)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, z_t: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        if z_t.ndim != 2 or z_t.shape[1] != self.latent_dim:
            raise ValueError(f"z_t must be N×{self.latent_dim}, got {tuple(z_t.shape)}")
        emb = self.time_mlp(timestep_embedding(t, self.emb_dim).to(z_t.dtype)) + self.code_mlp(c)
        emb = nn.functional.silu(emb)
        h = self.proj_in(z_t)
        for block in self.blocks:
            h = block(h, emb)
        return self.proj_out(self.norm_out(h))
