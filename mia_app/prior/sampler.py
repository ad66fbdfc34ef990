"""Differentiable SDEdit + DDIM sampler, in the prior's own space (``Prior.sample_shape``).

z_src (a public source in the prior's space: an image N×3×R×R in [-1, 1] for the pixel prior, a generator
latent N×D for the latent prior) is noised to strength t0 and denoised with K deterministic DDIM steps
(eta = 0) under the identity code c, so the result keeps the source's pose and lighting and takes on
identity c; ``prior.decode`` turns it into the face x̂. Unlike the diffusers pipelines (``@torch.no_grad``),
every step is differentiable with respect to c and to any trainable (LoRA) weight in the prior. Each step can
run under activation checkpointing: autograd keeps only each step's x_t and recomputes the network's
activations in the backward pass,
so the graph's memory is flat in K up to x_t itself (``benchmarks/sampler_memory.py``).

Convention (diffusers): t = 0 is clean, t = T - 1 is (almost) pure noise; alpha_bar_t decreases in t.
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

from mia_app.prior.base import Prior


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


def ddim_step(
    prior: Prior, x_t: torch.Tensor, t: torch.Tensor, t_prev: torch.Tensor, c: torch.Tensor, guidance: float
) -> torch.Tensor:
    a_t, a_prev = prior.alpha_bar(t, x_t.ndim), prior.alpha_bar(t_prev, x_t.ndim)
    eps = prior.guided(x_t, t.clamp(min=0), c, guidance)
    x0_hat = (x_t - (1 - a_t).sqrt() * eps) / a_t.sqrt()
    if prior.clip_sample is not None:
        # Clip x0_hat to the data range, as diffusers' DDIM does (clip_sample): at high noise 1/sqrt(alpha_bar)
        # amplifies any eps error. Straight-through, so values outside the range still pass gradients back.
        x0_hat = x0_hat + (x0_hat.clamp(-prior.clip_sample, prior.clip_sample) - x0_hat).detach()
    eps = (x_t - a_t.sqrt() * x0_hat) / (1 - a_t).sqrt()
    return a_prev.sqrt() * x0_hat + (1 - a_prev).sqrt() * eps


def sdedit_sample(
    prior: Prior,
    x_src: torch.Tensor,
    c: torch.Tensor | None,
    strength: float | torch.Tensor = 0.6,
    num_steps: int = 8,
    guidance: float = 1.0,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    gradient_checkpointing: bool = True,
) -> torch.Tensor:
    """ẑ = sample(c, x_src) in the prior's space, N×<prior.sample_shape> (images: in [-1, 1]); ``prior.decode(ẑ)``
    is the face.

    ``noise`` fixes the SDEdit noise (for paired comparisons); otherwise it is drawn from ``generator``.
    """
    if tuple(x_src.shape[1:]) != tuple(prior.sample_shape):
        raise ValueError(f"x_src must be N×{'×'.join(map(str, prior.sample_shape))}, got {tuple(x_src.shape)}")
    n = len(x_src)
    if c is None:
        c = x_src.new_zeros(n, prior.code_dim)
    strength_t = torch.as_tensor(strength, dtype=torch.float32, device=x_src.device).expand(n).contiguous()
    T = prior.scheduler.config.num_train_timesteps
    ts = sdedit_timesteps(strength_t, num_steps, T)
    if noise is None:
        noise = torch.randn(x_src.shape, generator=generator, device="cpu").to(x_src.device)
    a0 = prior.alpha_bar(ts[:, 0], x_src.ndim)
    x = a0.sqrt() * x_src + (1 - a0).sqrt() * noise
    for k in range(num_steps):
        args = (prior, x, ts[:, k], ts[:, k + 1], c, guidance)
        needs_grad = torch.is_grad_enabled() and (x.requires_grad or c.requires_grad or _has_trainable(prior))
        if gradient_checkpointing and needs_grad:
            x = checkpoint(ddim_step, *args, use_reentrant=False)
        else:
            x = ddim_step(*args)
    return x.clamp(-prior.clip_sample, prior.clip_sample) if prior.clip_sample is not None else x


def _has_trainable(module: torch.nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters())


@torch.no_grad()
def sample_from_noise(
    prior: Prior, c: torch.Tensor, num_steps: int = 25, guidance: float = 1.0, seed: int = 0
) -> torch.Tensor:
    """Generation from pure noise (strength 1), decoded: N×3×R×R faces in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    x_src = torch.zeros(len(c), *prior.sample_shape, device=c.device)
    noise = torch.randn(x_src.shape, generator=g).to(c.device)
    z = sdedit_sample(prior, x_src, c, 1.0, num_steps, guidance, noise=noise, gradient_checkpointing=False)
    return prior.decode(z)
