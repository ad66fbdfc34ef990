"""Scheme A: timestep-adaptive weights w(t) for the prior (denoising) loss.

``PriorScoreLoss(timestep_weight=timestep_weight("cosine"))`` multiplies each sample's denoising loss by
w(t) of the timestep t that sample was noised to.

Convention (the seed mixed two; this is the one the code uses):

* diffusers' training timesteps run t = 0 … T-1, with **t = T-1 pure noise** and **t = 0 (almost) clean**;
  T is ``scheduler.config.num_train_timesteps``.
* The seed's schedules are written in *denoising progress* p = 1 - t / (T-1): p = 0 at pure noise, p = 1 at
  the clean end. All three schedules are non-decreasing in p, so **low-noise steps get the LARGER weight**:
  those are the steps where the prior's score is about fine detail of x̂ (texture, identity cues) rather
  than about the coarse layout it would impose on any image.

Schedules (all with values in [0.5, 1.5]):

* ``adaptive``: 0.5 on the highest-noise 20% of the timesteps (t >= 0.8·T), 1.5 on the lowest-noise 20%
  (t < 0.2·T), 1.0 in between. The bands are counted in integer timesteps so that with T = 1000 each holds
  exactly 200 of them.
* ``linear``: 0.5 + p, i.e. 0.5 at t = T-1 rising to 1.5 at t = 0.
* ``cosine``: 0.5 + 0.5·(1 - cos(π·p)). Its range is [0.5, 1.5] (the seed's comment said [0.5, 1.0]: wrong,
  since 1 - cos(π·p) runs over [0, 2]); flat at both ends, steepest mid-way.
* ``constant``: 1.0 everywhere (the baseline; handy for ablations that keep the hook in place).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

SCHEDULES = ("adaptive", "linear", "cosine", "constant")

#: Fraction of the timesteps in each end band of the ``adaptive`` schedule.
ADAPTIVE_BAND = 0.2


def denoising_progress(t: torch.Tensor, T: int) -> torch.Tensor:
    """p = 1 - t / (T-1) as float, in [0, 1]: 0 at pure noise (t = T-1), 1 at the clean end (t = 0).

    Args:
        t: N integer (or integral float) timesteps in [0, T-1].
        T: number of training timesteps (>= 2).

    Raises:
        ValueError: T < 2, t not 1-D, or any t outside [0, T-1] (a wrong convention, e.g. t in 1 … T, shows up
            here instead of silently producing weights outside the schedule's range).
    """
    if not isinstance(T, int) or isinstance(T, bool) or T < 2:
        raise ValueError(f"T must be an int >= 2, got {T!r}")
    if not isinstance(t, torch.Tensor) or t.ndim != 1:
        raise ValueError(f"t must be a 1-D tensor of N timesteps, got {type(t).__name__} {getattr(t, 'shape', '')}")
    if t.is_floating_point() and not torch.isfinite(t).all():
        raise ValueError("t contains NaN or inf")
    if t.numel() and (t.min() < 0 or t.max() > T - 1):
        raise ValueError(f"timesteps must lie in [0, T-1] = [0, {T - 1}], got [{t.min().item()}, {t.max().item()}]")
    return 1.0 - t.float() / (T - 1)


def _adaptive(t: torch.Tensor, T: int) -> torch.Tensor:
    p = denoising_progress(t, T)  # validates t and T
    tf = t.float()
    # Bands in integer timesteps (not in p) so each end holds exactly 20% of the T timesteps.
    high_noise = tf >= (1.0 - ADAPTIVE_BAND) * T
    low_noise = tf < ADAPTIVE_BAND * T
    w = torch.ones_like(p)
    w = torch.where(high_noise, torch.full_like(p, 0.5), w)
    return torch.where(low_noise, torch.full_like(p, 1.5), w)


def _linear(t: torch.Tensor, T: int) -> torch.Tensor:
    return 0.5 + denoising_progress(t, T)


def _cosine(t: torch.Tensor, T: int) -> torch.Tensor:
    p = denoising_progress(t, T)
    return 0.5 + 0.5 * (1.0 - torch.cos(math.pi * p))


def _constant(t: torch.Tensor, T: int) -> torch.Tensor:
    return torch.ones_like(denoising_progress(t, T))


_FUNCTIONS: dict[str, Callable[[torch.Tensor, int], torch.Tensor]] = {
    "adaptive": _adaptive,
    "linear": _linear,
    "cosine": _cosine,
    "constant": _constant,
}


class TimestepWeight:
    """Callable w(t, T) -> N float weights in [0.5, 1.5] for one named schedule (see the module docstring).

    A plain picklable object (not an ``nn.Module``): it has no state, and the prior losses store it as an
    attribute.
    """

    def __init__(self, schedule: str):
        if schedule not in _FUNCTIONS:
            raise ValueError(f"unknown timestep schedule {schedule!r}; known: {list(SCHEDULES)}")
        self.schedule = schedule

    def __call__(self, t: torch.Tensor, T: int) -> torch.Tensor:
        """t: N timesteps in [0, T-1] (diffusers convention, T-1 = pure noise). Returns N weights on t's device."""
        return _FUNCTIONS[self.schedule](t, T)

    def __repr__(self) -> str:
        return f"TimestepWeight({self.schedule!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TimestepWeight) and other.schedule == self.schedule

    def __hash__(self) -> int:
        return hash(("TimestepWeight", self.schedule))


def timestep_weight(schedule: str) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """The weight function of ``schedule`` (one of ``SCHEDULES``), for the prior losses' ``timestep_weight``.

    Raises:
        ValueError: unknown schedule name.
    """
    return TimestepWeight(schedule)
