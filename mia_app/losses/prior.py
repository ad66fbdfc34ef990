"""``prior``: keep x̂ on the prior's manifold (stage 1) or keep the LoRA'd prior intact (stage 2).

Stage 1 (``PriorScoreLoss``): noise the candidate (in the prior's space: the image x̂ for the pixel prior,
the latent ẑ for the latent prior) to a random t, predict epsilon with the frozen prior under c_y, and
penalise ||eps - eps_hat||^2 (mean over elements, per sample). Stage 2 (``PriorPreservationLoss``): the same
denoising loss on public samples with their own codes, through the LoRA'd prior (DreamBooth's prior
preservation).

Both accept the scheme-A hooks: ``form="cosine"`` (1 - cos(eps, eps_hat), flattened per sample) and a
``timestep_weight`` callable w(t) -> N weights (see ``mia_app.losses.timestep``). With a weight, the step's
mean w(t) is logged as ``tw_prior`` (so a run shows that scheme A is in effect).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F

from mia_app.losses.base import AttackContext, LossTerm
from mia_app.losses.checks import check_embeddings, check_images, check_latents


def eps_distance(eps: torch.Tensor, eps_hat: torch.Tensor, form: str) -> torch.Tensor:
    """Per-sample distance between true and predicted noise, N×... -> N (a noise map or a latent)."""
    if form == "mse":
        return (eps - eps_hat).square().flatten(1).mean(1)
    if form == "cosine":
        # Flatten per sample: the cosine is over the whole noise map, not across channels (the seed's dim=1 bug).
        return 1.0 - F.cosine_similarity(eps.flatten(1), eps_hat.flatten(1), dim=1)
    raise ValueError(f"form must be 'mse' or 'cosine', got {form!r}")


class _DenoisingLoss(LossTerm):
    name = "prior"

    def __init__(
        self,
        form: Literal["mse", "cosine"] = "mse",
        t_range: tuple[float, float] = (0.02, 0.98),
        timestep_weight: Callable[[torch.Tensor, int], torch.Tensor] | None = None,
    ):
        super().__init__()
        if form not in ("mse", "cosine"):
            raise ValueError(f"form must be 'mse' or 'cosine', got {form!r}")
        if not 0 <= t_range[0] < t_range[1] <= 1:
            raise ValueError("t_range must satisfy 0 <= lo < hi <= 1")
        self.form = form
        self.t_range = t_range
        self.timestep_weight = timestep_weight

    def denoise(self, ctx: AttackContext, prior, x0: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Per-sample denoising loss of clean samples x0 in the prior's space (M×3×R×R images in [-1, 1], or
        M×D latents) under codes c (M×code_dim), M values >= 0.

        t and eps are drawn from ``ctx.extras["generator"]`` (None: the global RNG).
        """
        if x0.ndim == 4:
            check_images("x0", x0)
        else:
            check_latents("x0", x0, getattr(prior, "sample_shape", x0.shape[1:]))
        # A prior with a code projection knows its code width; a plain UNet (tests) does not say.
        check_embeddings("c", c, getattr(prior, "code_dim", None), len(x0))
        generator = ctx.extras.get("generator")
        T = prior.scheduler.config.num_train_timesteps
        lo, hi = int(self.t_range[0] * (T - 1)), int(self.t_range[1] * (T - 1))
        t = torch.randint(lo, hi + 1, (len(x0),), generator=generator).to(x0.device)
        eps = torch.randn(x0.shape, generator=generator).to(x0.device)
        a = prior.scheduler.alphas_cumprod.to(x0.device)[t].view(-1, *([1] * (x0.ndim - 1)))
        eps_hat = prior(a.sqrt() * x0 + (1 - a).sqrt() * eps, t, c)
        value = eps_distance(eps, eps_hat, self.form)
        if self.timestep_weight is not None:
            w = self.timestep_weight(t, T)
            ctx.logs[f"tw_{self.name}"] = w.float().mean().item()
            value = value * w
        return value


class PriorScoreLoss(_DenoisingLoss):
    """Stage 1: the frozen prior scores the candidates in its space (``ctx.prior_sample``: x̂ N×3×R×R, or ẑ N×D)
    under c (N×128, the prior's code width). N values >= 0.

    Raises (in ``forward``):
        ValueError: the candidates not finite samples of the prior's space, c not a finite N×D code of its width.
    """

    def forward(self, ctx: AttackContext) -> torch.Tensor:
        return self.denoise(ctx, ctx.models["prior"], ctx.prior_sample, ctx.c)


class PriorPreservationLoss(_DenoisingLoss):
    """Stage 2: denoising loss on public samples with their own codes (``ctx.extras['public_batch']``).

    The public batch is (M samples in the prior's space: M×3×R×R images in [-1, 1] or M×D latents; M×128 codes).
    Returns N per-sample values aligned with x̂ (the public batch's mean loss, broadcast), so it composes with the
    other per-sample terms.

    Raises (in ``forward``):
        ValueError: no public batch, or its images / codes are malformed, mismatched or not finite.
    """

    def forward(self, ctx: AttackContext) -> torch.Tensor:
        batch = ctx.extras.get("public_batch")
        if not isinstance(batch, tuple | list) or len(batch) != 2:
            raise ValueError("prior preservation needs ctx.extras['public_batch'] = (images, codes) (stage 2 only)")
        x_pub, c_pub = batch
        value = self.denoise(ctx, ctx.models["prior"], x_pub, c_pub)
        return value.mean().expand(len(ctx.x_hat))
