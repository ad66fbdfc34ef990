"""``PeerRun``: what every peer does around its algorithm, so all run folders look like our attack's.

It loads the benchmark and T (never E), writes ``config.yaml`` (the ``AttackConfig`` giving T, data, seed and
``keep``) and ``method.json`` (the peer's settings), sends step and image events through the same
``RunWriter`` + callbacks as the engine (so the dashboard shows peers live), and writes ``final/`` and
``summary.json`` at the end, which ``evaluate_run`` judges like any of our runs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from mia_app.attack.config import AttackConfig
from mia_app.attack.events import AttackCancelled, CallbackList, ImageEvent, StepEvent
from mia_app.attack.writer import RunWriter

METHODS = {
    "selection_only": "No attack: PPA's initial + final selection, no optimisation (the floor)",
    "ppa": "Plug & Play Attacks (Struppek et al., ICML 2022) on the public generator",
    "miface": "MIFace (Fredrikson, Jha, Ristenpart, CCS 2015)",
    "stage1_only": "ours, stage 1 only (no LoRA)",
    "plg_max_margin": "PLG-MI-style: our prior, max-margin cls + prior only",
}


def describe(peer) -> str:
    """One line saying what a peer row is, with the settings that tell its variants apart."""
    if peer.kind == "selection_only":
        if peer.source == "generator":
            return (f"No attack: best {peer.candidates} of {peer.search_space} random {peer.generator} samples by T "
                    "(PPA, 0 steps)")
        return f"No attack: the {peer.candidates} public images T ranks highest (the floor)"
    if peer.kind == "ppa":
        return (f"PPA (Struppek et al. 2022): {peer.candidates} of {peer.search_space} {peer.generator} latents, "
                f"{peer.steps} Adam steps, {peer.loss} loss")
    if peer.kind == "miface":
        return f"MIFace (Fredrikson et al. 2015): {peer.max_iter} steps, lr {peer.learning_rate:g}"
    return METHODS[peer.kind]


class PeerRun:
    def __init__(self, cfg: AttackConfig, peer, targets: list[int], out: str | Path, callbacks: list | None = None):
        from mia_app.attack.models import load_target, resolve_device
        from mia_app.data import load_benchmark

        self.cfg = AttackConfig.model_validate(cfg.model_dump() | {"name": peer.display_name()})
        self.peer, self.targets, self.out = peer, list(targets), Path(out)
        self.bench = load_benchmark(self.cfg.data)
        bad = [t for t in self.targets if not 0 <= t < self.bench.n_classes]
        if bad or not self.targets:
            raise ValueError(f"targets must be non-empty class indices in [0, {self.bench.n_classes}); got {bad}")
        if len(set(self.targets)) != len(self.targets):
            raise ValueError("targets: each class at most once")
        self.device = resolve_device(self.cfg.device)
        target, self.target_meta = load_target(self.cfg.target)
        if self.target_meta["n_classes"] != self.bench.n_classes:
            raise ValueError(f"benchmark has {self.bench.n_classes} classes, T has {self.target_meta['n_classes']}")
        self.target = target.to(self.device).eval().requires_grad_(False)
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.yaml").write_text(self.cfg.to_yaml())
        self.write_method({})
        self.cb = CallbackList([RunWriter(self.out, 1), *(callbacks or [])])
        self.cb.on_start({"targets": self.targets, "batches": [self.targets], "method": peer.kind,
                          "config": self.cfg.model_dump(mode="json"), "device": str(self.device)})
        self.t0 = time.time()

    def write_method(self, extra: dict) -> None:
        note = {"method": self.peer.kind, "description": describe(self.peer), "name": self.peer.display_name(),
                "params": self.peer.params(), "deterministic": self.peer.deterministic, **extra}
        (self.out / "method.json").write_text(json.dumps(note, indent=2))

    def step(self, step: int, steps: int, logs: dict[str, float], t_conf: dict[int, float], batch: int = 0) -> None:
        if self.cb.should_stop():
            raise AttackCancelled(f"cancelled at step {step}")
        targets = sorted(t_conf) if t_conf else self.targets
        self.cb.on_step(StepEvent(1, step, steps, batch, targets, logs, t_conf, time.time() - self.t0))

    def images(self, stage: int, step: int, x: torch.Tensor, y: torch.Tensor, batch: int = 0) -> None:
        """x: N×3×R×R in [-1, 1] grouped by class (a grid row per class needs equal counts per class)."""
        targets = list(dict.fromkeys(y.tolist()))
        self.cb.on_images(ImageEvent(stage, step, batch, targets, x.detach().float().cpu(), y.cpu()))

    def finish(self, x: torch.Tensor, y: torch.Tensor, conf: torch.Tensor, seconds: float, extra: dict) -> dict:
        x = x.detach().float().clamp(-1, 1).cpu()
        self.write_method(extra)
        summary = {"targets": self.targets, "seconds": round(seconds, 2),
                   "seconds_per_identity": round(seconds / len(self.targets), 3),
                   "target_conf_mean": conf.mean().item(), "device": str(self.device), "method": self.peer.kind}
        self.cb.on_end({**summary, "final": {"images": x.contiguous(), "labels": y.cpu(), "conf": conf.cpu()}})
        return summary | {"out": str(self.out)}
