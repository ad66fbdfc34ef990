"""Events the engine emits; the CLI, the run-folder writer and the dashboard worker are consumers.

Data flows one way: engine -> callbacks -> files / database -> UI. A callback may ask the engine to stop
(cancel) by returning True from ``should_stop``; the engine checks it once per step.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import torch


@dataclass
class StepEvent:
    stage: int  # 1 = embedding, 2 = LoRA
    step: int  # 1-based within the stage
    steps: int  # total steps of the stage
    batch: int  # index of the identity batch
    targets: list[int]
    logs: dict[str, float]  # "L_<term>", "total", "T_conf", weights...
    t_conf: dict[int, float] = field(default_factory=dict)  # per target class: mean T softmax p(y|x̂)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["t_conf"] = {str(k): v for k, v in self.t_conf.items()}
        return d


@dataclass
class ImageEvent:
    stage: int
    step: int
    batch: int
    targets: list[int]
    images: torch.Tensor  # N×3×R×R in [-1, 1], candidates grouped by target
    labels: torch.Tensor  # N target classes


class AttackCallback(Protocol):
    def on_start(self, info: dict[str, Any]) -> None: ...
    def on_step(self, event: StepEvent) -> None: ...
    def on_images(self, event: ImageEvent) -> None: ...
    def on_end(self, summary: dict[str, Any]) -> None: ...
    def should_stop(self) -> bool: ...


class BaseCallback:
    """No-op defaults so consumers override only what they use."""

    def on_start(self, info: dict[str, Any]) -> None:
        pass

    def on_step(self, event: StepEvent) -> None:
        pass

    def on_images(self, event: ImageEvent) -> None:
        pass

    def on_end(self, summary: dict[str, Any]) -> None:
        pass

    def should_stop(self) -> bool:
        return False


class CallbackList(BaseCallback):
    def __init__(self, callbacks: list[AttackCallback]):
        self.callbacks = list(callbacks)

    def on_start(self, info):
        for cb in self.callbacks:
            cb.on_start(info)

    def on_step(self, event):
        for cb in self.callbacks:
            cb.on_step(event)

    def on_images(self, event):
        for cb in self.callbacks:
            cb.on_images(event)

    def on_end(self, summary):
        for cb in self.callbacks:
            cb.on_end(summary)

    def should_stop(self) -> bool:
        return any(cb.should_stop() for cb in self.callbacks)


class AttackCancelled(RuntimeError):
    """Raised inside the engine when a callback asked to stop."""
