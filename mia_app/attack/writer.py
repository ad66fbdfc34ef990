"""RunWriter: the run folder consumer of engine events.

run/
  config.yaml           resolved AttackConfig
  models.json           sha256 of the prior, T and E_id weights it used
  metrics.jsonl         one line per step: stage, step, every loss term, total, T confidence
  stage1/, stage2/      image grids: batch{B:03d}_step{S:05d}.png (one row per target)
  final/                class{y:04d}_rank{r}.png, images.safetensors (N×3×R×R [-1, 1], labels, conf)
  lora/batch{B}.safetensors, codes.safetensors
  summary.json
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import save_file

from mia_app.attack.events import BaseCallback, ImageEvent, StepEvent
from mia_app.viz import save_grid


class RunWriter(BaseCallback):
    def __init__(self, out: Path, candidates: int, grid_scale: int = 2):
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.candidates = candidates
        self.grid_scale = grid_scale
        self._metrics = open(self.out / "metrics.jsonl", "a", buffering=1)

    def on_start(self, info):
        (self.out / "run_info.json").write_text(json.dumps({k: v for k, v in info.items() if k != "config"}))

    def on_step(self, event: StepEvent):
        self._metrics.write(json.dumps(event.to_json()) + "\n")

    def on_images(self, event: ImageEvent):
        path = self.out / f"stage{event.stage}" / f"batch{event.batch:03d}_step{event.step:05d}.png"
        # One row per target: the engine's batches hold `candidates` per target, a peer's may hold another count.
        per_target, rest = divmod(len(event.images), max(len(event.targets), 1))
        save_grid(event.images, path, nrow=per_target if per_target and not rest else self.candidates,
                  scale=self.grid_scale)

    def on_end(self, summary):
        write_final(self.out, summary["final"])
        self._metrics.close()
        public = {k: v for k, v in summary.items() if k != "final"}
        (self.out / "summary.json").write_text(json.dumps(public, indent=2))


def write_final(out: Path, final: dict) -> None:
    """``final/``: one PNG per kept image (class{y:04d}_rank{r}.png) and images.safetensors (images N×3×R×R
    in [-1, 1], labels N, conf N)."""
    folder = Path(out) / "final"
    folder.mkdir(exist_ok=True)
    ranks: dict[int, int] = {}
    for img, y in zip(final["images"], final["labels"].tolist(), strict=True):
        r = ranks.get(y, 0)
        ranks[y] = r + 1
        save_grid(img[None], folder / f"class{y:04d}_rank{r}.png", nrow=1, scale=1)
    save_file(
        {"images": final["images"].contiguous(), "labels": final["labels"], "conf": final["conf"]},
        str(folder / "images.safetensors"),
    )
