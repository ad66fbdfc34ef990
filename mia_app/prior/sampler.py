"""Differentiable SDEdit + DDIM sampler.

x_src (a public face, N×3×R×R in [-1, 1]) is noised to strength t0 and denoised with K deterministic
DDIM steps (eta = 0) under the identity code c, so x̂ keeps the source's pose and lighting and takes
on identity c. Unlike the diffusers pipelines (``@torch.no_grad``), every step is differentiable with
respect to c and to any trainable (LoRA) weight in the UNet. Each step runs under activation
checkpointing: autograd keeps only each step's x_t and recomputes the UNet's activations in the backward pass,
so the graph's memory is flat in K up to x_t itself (``benchmarks/sampler_memory.py``).

Convention (diffusers): t = 0 is clean, t = T - 1 is (almost) pure noise; alpha_bar_t decreases in t.
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

from mia_app.prior.model import IdentityPrior


def sdedit_timesteps(strength: torch.Tensor, num_steps: int, num_train_timesteps: int) -> torch.Tensor:
    """Per-sample DDIM timesteps, N×(K+1): from t0 = strength·(T-1) down to -1 (which means "clean").

    strength: N values in (0, 1]; 1 starts from pure noise (ignoring the source).
    """
    if num_steps < 1:
        raise ValueError("num_steps must be >= 1")
    if (strength <= 0).any() or (strength > 1).any():
        raise ValueError("strength must lie in (0, 1]")
    t0 = (strength * (num_train_timesteps - 1)).round()
    frac = torch.linspace(1.0, 0.0, num_steps + 1, device=strength.device)
    ts = (t0[:, None] + 1) * frac[None] - 1  # t0 ... -1
    return ts.round().long()


def _alpha_bar(alphas_cumprod: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """alpha_bar_t with alpha_bar_{-1} = 1 (the clean end); shape N×1×1×1."""
    a = torch.where(t >= 0, alphas_cumprod[t.clamp(min=0)], torch.ones_like(t, dtype=alphas_cumprod.dtype))
    return a.view(-1, 1, 1, 1)


def ddim_step(
    prior: IdentityPrior, x_t: torch.Tensor, t: torch.Tensor, t_prev: torch.Tensor, c: torch.Tensor, guidance: float
) -> torch.Tensor:
    alphas_cumprod = prior.scheduler.alphas_cumprod.to(x_t.device)
    a_t, a_prev = _alpha_bar(alphas_cumprod, t), _alpha_bar(alphas_cumprod, t_prev)
    eps = prior.guided(x_t, t.clamp(min=0), c, guidance)
    x0_hat = (x_t - (1 - a_t).sqrt() * eps) / a_t.sqrt()
    # Clip x0_hat to the data range, as diffusers' DDIM does (clip_sample): at high noise 1/sqrt(alpha_bar)
    # amplifies any eps error. Straight-through, so pixels outside the range still pass gradients back.
    x0_hat = x0_hat + (x0_hat.clamp(-1, 1) - x0_hat).detach()
    eps = (x_t - a_t.sqrt() * x0_hat) / (1 - a_t).sqrt()
    return a_prev.sqrt() * x0_hat + (1 - a_prev).sqrt() * eps


def sdedit_sample(
    prior: IdentityPrior,
    x_src: torch.Tensor,
    c: torch.Tensor | None,
    strength: float | torch.Tensor = 0.6,
    num_steps: int = 8,
    guidance: float = 1.0,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    gradient_checkpointing: bool = True,
) -> torch.Tensor:
    """x̂ = sample(c, x_src): N×3×R×R in [-1, 1].

    ``noise`` fixes the SDEdit noise (for paired comparisons); otherwise it is drawn from ``generator``.
    """
    if x_src.ndim != 4:
        raise ValueError(f"x_src must be N×3×R×R, got {tuple(x_src.shape)}")
    n = len(x_src)
    if c is None:
        c = x_src.new_zeros(n, prior.code_dim)
    strength_t = torch.as_tensor(strength, dtype=torch.float32, device=x_src.device).expand(n).contiguous()
    T = prior.scheduler.config.num_train_timesteps
    ts = sdedit_timesteps(strength_t, num_steps, T)
    if noise is None:
        noise = torch.randn(x_src.shape, generator=generator, device="cpu").to(x_src.device)
    a0 = _alpha_bar(prior.scheduler.alphas_cumprod.to(x_src.device), ts[:, 0])
    x = a0.sqrt() * x_src + (1 - a0).sqrt() * noise
    for k in range(num_steps):
        args = (prior, x, ts[:, k], ts[:, k + 1], c, guidance)
        needs_grad = torch.is_grad_enabled() and (x.requires_grad or c.requires_grad or _has_trainable(prior))
        if gradient_checkpointing and needs_grad:
            x = checkpoint(ddim_step, *args, use_reentrant=False)
        else:
            x = ddim_step(*args)
    return x.clamp(-1, 1)


def _has_trainable(module: torch.nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters())


@torch.no_grad()
def sample_from_noise(
    prior: IdentityPrior, c: torch.Tensor, num_steps: int = 25, guidance: float = 1.0, seed: int = 0
) -> torch.Tensor:
    """Unconditional-start generation (strength 1): N×3×R×R in [-1, 1]."""
    r = prior.resolution
    g = torch.Generator().manual_seed(seed)
    x_src = torch.zeros(len(c), 3, r, r, device=c.device)
    noise = torch.randn(x_src.shape, generator=g).to(c.device)
    return sdedit_sample(prior, x_src, c, 1.0, num_steps, guidance, noise=noise, gradient_checkpointing=False)
