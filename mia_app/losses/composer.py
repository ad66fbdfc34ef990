"""LossComposer: total = sum_i lambda_i * mean_n L_i(n), with every term logged by name.

This is the single place where terms are combined, so scheme D (uncertainty weighting) replaces the
fixed weights here and nowhere else.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.profiler import record_function

from mia_app.losses.base import AttackContext, LossTerm, check_per_sample


class LossComposer(nn.Module):
    def __init__(self, terms: list[LossTerm], weights: dict[str, float], weighting: nn.Module | None = None):
        super().__init__()
        names = [t.name for t in terms]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate loss names: {names}")
        missing = set(names) - set(weights)
        if missing:
            raise ValueError(f"no weight for losses {sorted(missing)}")
        if any(w < 0 for w in weights.values()):
            raise ValueError("loss weights must be >= 0")
        self.terms = nn.ModuleList(terms)
        self.weights = dict(weights)
        #: Optional adaptive weighting (scheme D): called as weighting({name: scalar}) -> (total, logs).
        self.weighting = weighting

    def param_groups(self, main_lr: float) -> list[dict]:
        """Extra optimiser groups (scheme D's log-variances, at 0.1× the main rate)."""
        return self.weighting.param_groups(main_lr) if self.weighting is not None else []

    def forward(self, ctx: AttackContext) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        """Returns (total scalar, per-sample weighted total N, logs {"L_<name>": mean, "total": ...}).

        The logs also carry the diagnostics the terms wrote to ``ctx.logs`` (e.g. scheme A's ``tw_prior``).
        """
        n = len(ctx.x_hat)
        per_sample: dict[str, torch.Tensor] = {}
        for term in self.terms:
            if self.weights[term.name] == 0 and self.weighting is None:
                continue  # a zero weight costs nothing: skip the forward pass
            with record_function(f"loss: {term.name}"):  # labels for the profiler
                per_sample[term.name] = check_per_sample(term.name, term(ctx), n)
        logs = {f"L_{k}": v.detach().mean().item() for k, v in per_sample.items()}
        logs.update(ctx.logs)
        weighted = sum(self.weights[k] * v for k, v in per_sample.items())
        if self.weighting is not None:
            total, extra = self.weighting({k: v.mean() for k, v in per_sample.items()}, self.weights)
            logs.update(extra)
        else:
            total = weighted.mean()
        logs["total"] = total.detach().item()
        return total, weighted.detach(), logs
