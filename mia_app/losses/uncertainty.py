"""Scheme D: homoscedastic uncertainty weighting of the loss terms (Kendall, Gal & Cipolla, CVPR 2018).

    total = Σ_i λ_i · (½·exp(-s_i)·L_i + ½·s_i),    s_i = log σ_i², learnable, initialised at 0.

Plugs into ``LossComposer(weighting=...)``: called as ``weighting({name: scalar mean loss}, {name: λ})`` and
returns ``(total, logs)``.

Design decisions:

* **Keyed by task name.** Log-vars live in an ``nn.ParameterDict`` keyed by the loss names of *one stage*
  (each stage builds its own instance; stage 2 adds ``reg``, so e.g. ``["prior", "id", "perc", "cls", "reg"]``).
  The seed indexed a 4-slot tensor by position, which silently mis-assigned (or overflowed) when a task was
  added. A loss dict with an unknown or a missing task raises ValueError instead.
* **Static λ multiply outside the uncertainty term** (``use_static_weights=True``): for fixed L_i the
  optimum over s_i is s_i* = log L_i whatever λ_i, so s_i stays interpretable as the log of the task's loss
  level, while λ_i keeps the preset's *relative* priority (the gradient weight on L_i at the optimum is
  λ_i / (2·L_i)). A task with λ_i = 0 contributes nothing and its s_i gets no gradient, instead of drifting
  to the clamp. With ``use_static_weights=False`` every task gets λ = 1 (Kendall's original form).
* **Clamp by projection.** s_i is projected onto [clamp[0], clamp[1]] (default [-4, 4], i.e. effective
  weights ½·e^{∓4}) *in place, at the start of every forward* (and by ``project_()``), rather than through
  ``torch.clamp`` in the graph: the stored, used and logged values always agree, the bound holds even if
  the engine never calls a hook, and a log-var sitting on the bound still receives gradient and can move
  back (``torch.clamp`` would zero its gradient for good once the optimiser overshoots).
* **Only non-negative losses.** With L_i < 0 the optimum over s_i is at -∞ (the weight explodes, the
  collapse Kendall's form is prone to), so a negative mean loss raises ValueError; the max-margin ``cls``
  must use its hinge offset (``MaxMarginClsLoss(hinge_margin=...)``) or stay out. ``check_terms`` catches
  terms declared ``non_negative = False`` at build time.
* **The total may be negative** (½·s_i < 0 once L_i < 1); only its gradient matters, and logging takes any
  finite float.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import nn

_TASK_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: Learning-rate multiplier of the log-vars' optimiser group, relative to the main learning rate.
LOGVAR_LR_FACTOR = 0.1


class UncertaintyWeighting(nn.Module):
    """Learned per-task log-variances s_i (``log_vars[name]``, scalars, init 0) over a fixed task set.

    Args:
        tasks: the stage's loss names (unique, identifier-like), e.g. ``["prior", "id", "perc", "cls", "reg"]``.
        clamp: (lo, hi) bounds of every s_i, lo < 0 < hi; a single number c means (-c, c) (the doctor's
            ``logvar_clamp`` convention).
        use_static_weights: multiply each task by the composer's static λ_i (see the module docstring).
    """

    def __init__(
        self,
        tasks: Sequence[str],
        clamp: float | tuple[float, float] = (-4.0, 4.0),
        use_static_weights: bool = True,
    ):
        super().__init__()
        tasks = list(tasks)
        if not tasks:
            raise ValueError("uncertainty weighting needs at least one task")
        if len(set(tasks)) != len(tasks):
            raise ValueError(f"duplicate task names: {tasks}")
        bad = [t for t in tasks if not isinstance(t, str) or not _TASK_NAME.match(t)]
        if bad:
            raise ValueError(f"task names must be identifiers (they key a ParameterDict), got {bad}")
        if isinstance(clamp, (int, float)):
            clamp = (-float(clamp), float(clamp))
        lo, hi = float(clamp[0]), float(clamp[1])
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < 0 < hi):
            raise ValueError(f"clamp must be finite with lo < 0 < hi (s_i starts at 0), got {clamp}")
        self.tasks = tuple(tasks)
        self.clamp = (lo, hi)
        self.use_static_weights = use_static_weights
        self.log_vars = nn.ParameterDict({t: nn.Parameter(torch.zeros(())) for t in tasks})

    @torch.no_grad()
    def project_(self) -> None:
        """Project every s_i onto the clamp range in place (called by ``forward``; cheap to call after a step)."""
        for p in self.log_vars.values():
            p.clamp_(*self.clamp)

    def _check_names(self, names: Iterable[str], what: str) -> None:
        names = set(names)
        unknown, missing = sorted(names - set(self.tasks)), sorted(set(self.tasks) - names)
        if unknown:
            raise ValueError(f"{what} has unknown tasks {unknown}; this stage's tasks are {list(self.tasks)}")
        if missing:
            raise ValueError(f"{what} lacks tasks {missing}; this stage's tasks are {list(self.tasks)}")

    def check_terms(self, terms: Iterable) -> None:
        """Build-time check of a composer's ``LossTerm``s: same task set, all ``non_negative``.

        Raises:
            ValueError: a term may go negative (e.g. the un-hinged max-margin ``cls``), or the names differ.
        """
        terms = list(terms)
        signed = [t.name for t in terms if not getattr(t, "non_negative", True)]
        if signed:
            raise ValueError(
                f"uncertainty weighting refuses losses that can be negative: {signed}. The max-margin cls loss "
                "needs an offset (MaxMarginClsLoss(hinge_margin=...)) or must stay out of the weighted set"
            )
        self._check_names([t.name for t in terms], "the composer's terms")

    def forward(
        self, losses: Mapping[str, torch.Tensor], weights: Mapping[str, float] | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Combine scalar task losses.

        Args:
            losses: {task: scalar tensor >= 0} for exactly this instance's tasks (e.g. the per-sample means).
            weights: static λ per task (>= 0); None or ``use_static_weights=False`` means λ = 1.

        Returns:
            (total scalar, logs) where logs hold ``w_<task>`` (``get_weights``, sum 1) and ``s_<task>`` (log-vars).

        Raises:
            ValueError: unknown/missing task, a non-scalar or non-finite loss, a negative loss, or a bad λ.
        """
        self._check_names(losses, "the loss dict")
        for name, value in losses.items():
            if not isinstance(value, torch.Tensor) or value.numel() != 1:
                raise ValueError(f"loss {name!r} must be a scalar tensor, got {getattr(value, 'shape', value)!r}")
            if not torch.isfinite(value).all():
                raise ValueError(f"loss {name!r} is not finite: {value.item()}")
            if value.item() < 0:
                raise ValueError(
                    f"loss {name!r} is negative ({value.item():.4g}); uncertainty weighting needs L_i >= 0 "
                    "(a max-margin cls loss needs an offset, MaxMarginClsLoss(hinge_margin=...))"
                )
        lambdas = {t: 1.0 for t in self.tasks}
        if self.use_static_weights and weights is not None:
            missing = sorted(set(self.tasks) - set(weights))
            if missing:
                raise ValueError(f"no static weight for tasks {missing}")
            lambdas = {t: float(weights[t]) for t in self.tasks}
            if any(not math.isfinite(w) or w < 0 for w in lambdas.values()):
                raise ValueError(f"static weights must be finite and >= 0, got {lambdas}")
        self.project_()
        total = None
        for t in self.tasks:
            s = self.log_vars[t]
            term = lambdas[t] * (0.5 * torch.exp(-s) * losses[t].reshape(()) + 0.5 * s)
            total = term if total is None else total + term
        logs = {f"w_{t}": w for t, w in self.get_weights().items()}
        logs.update({f"s_{t}": float(self.log_vars[t].detach()) for t in self.tasks})
        return total, logs

    @torch.no_grad()
    def get_weights(self) -> dict[str, float]:
        """Normalised task weights exp(-s_i) / Σ_j exp(-s_j): each in (0, 1) (for >= 2 tasks), summing to 1."""
        s = torch.stack([self.log_vars[t].detach().clamp(*self.clamp) for t in self.tasks])
        w = torch.softmax(-s.double(), dim=0)
        return {t: float(v) for t, v in zip(self.tasks, w, strict=True)}

    def param_groups(self, main_lr: float) -> list[dict]:
        """Optimiser group of the log-vars: 0.1× the main learning rate, no weight decay (it would pull s_i to 0)."""
        if not main_lr > 0:
            raise ValueError(f"main_lr must be > 0, got {main_lr}")
        return [{"params": list(self.log_vars.values()), "lr": LOGVAR_LR_FACTOR * main_lr, "weight_decay": 0.0}]

    def extra_repr(self) -> str:
        return f"tasks={list(self.tasks)}, clamp={self.clamp}, use_static_weights={self.use_static_weights}"
