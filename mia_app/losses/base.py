"""The loss interface: each term is a small module returning per-sample values (shape N) and a name.

Terms read what they need from an ``AttackContext``; expensive shared features (T's logits, the SFace
embedding of x̂, perceptual taps) are computed once per step and cached on the context.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class AttackContext:
    """Everything a loss may look at in one optimisation step.

    x_hat: N×3×R×R in [-1, 1], the generated candidates (differentiable).
    x_src: N×3×R×R in [-1, 1], their public sources.
    c: N×128 unit-norm identity codes used to generate x_hat (c_y repeated per candidate).
    y: N target classes.
    logs: diagnostics a term records for this step (not losses, so no ``L_`` prefix), e.g. scheme A's
        ``tw_prior``; the composer logs them next to the ``L_<name>`` values.
    z_hat: the candidates in the prior's space (x̂ = prior.decode(ẑ)): a latent N×D for the latent prior; None
        where that space is the image itself (the pixel prior), so ``prior_sample`` is x̂.
    """

    x_hat: torch.Tensor
    x_src: torch.Tensor
    c: torch.Tensor
    y: torch.Tensor
    stage: int
    step: int
    models: dict[str, nn.Module]
    extras: dict[str, Any] = field(default_factory=dict)
    _cache: dict[str, Any] = field(default_factory=dict)
    logs: dict[str, float] = field(default_factory=dict)
    z_hat: torch.Tensor | None = None

    @property
    def prior_sample(self) -> torch.Tensor:
        """The candidates in the prior's own space, what the prior's denoising loss scores."""
        return self.x_hat if self.z_hat is None else self.z_hat

    def cached(self, key: str, fn: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    def source_features(self, key: str, fn: Callable[[], Any]) -> Any:
        """Features of x_src, which is data, fixed for a batch's whole optimisation: computed once without a
        graph and kept for every step of the batch in ``extras["source_cache"]`` (the engine's), else per step."""
        store = self.extras.get("source_cache", self._cache)
        if key not in store:
            with torch.no_grad():
                value = fn()
            # detach too: a network that returns its input unchanged would otherwise pass x_src's graph on
            store[key] = ({k: v.detach() for k, v in value.items()} if isinstance(value, dict) else value.detach())
        return store[key]

    def target_logits(self) -> torch.Tensor:
        # .float(): under bf16 autocast the network runs in bf16, the losses read fp32.
        return self.cached("target_logits", lambda: self.models["target"](self.x_hat).float())

    def id_embedding(self) -> torch.Tensor:
        """E_id(x̂), N×128, L2-normalised."""
        # Renormalised in fp32: under bf16 autocast the encoder's own normalisation is good to ~2e-3 only.
        return self.cached("id_embedding",
                           lambda: F.normalize(self.models["id_encoder"](self.x_hat).float(), dim=1))


class LossTerm(nn.Module):
    """Subclasses set ``name`` and implement ``forward(ctx) -> Tensor[N]`` (per-sample, finite)."""

    name: str = "loss"
    #: False for terms that can go negative (e.g. max-margin); uncertainty weighting refuses those.
    non_negative: bool = True

    def forward(self, ctx: AttackContext) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


def check_per_sample(name: str, value: torch.Tensor, n: int) -> torch.Tensor:
    if value.shape != (n,):
        raise ValueError(f"loss {name!r} must return N={n} per-sample values, got shape {tuple(value.shape)}")
    if not torch.isfinite(value).all():
        raise FloatingPointError(f"loss {name!r} is not finite: {value.detach().tolist()}")
    return value.float()  # a term computed under bf16 autocast is summed in fp32
