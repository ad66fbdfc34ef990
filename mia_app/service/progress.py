"""StoreProgress: the engine callback that mirrors a running job into the job store.

Step events go to the events table (the dashboard's curves); image grids are files the RunWriter has already
written (it runs before this callback), so only their path relative to the run folder is recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mia_app.attack.events import BaseCallback, ImageEvent, StepEvent
from mia_app.service.store import JobStore


def grid_path(event: ImageEvent) -> str:
    """Where RunWriter saves an image event's grid (writer.py's layout), relative to the run folder."""
    return f"stage{event.stage}/batch{event.batch:03d}_step{event.step:05d}.png"


class StoreProgress(BaseCallback):
    def __init__(self, store: JobStore, job_id: int, run_dir: Path, stopping: Callable[[], bool] = lambda: False):
        self.store = store
        self.job_id = job_id
        self.run_dir = Path(run_dir)
        self.stopping = stopping  # the worker's own shutdown flag (SIGTERM)

    def on_step(self, event: StepEvent) -> None:
        self.store.add_step(self.job_id, event.stage, event.step, event.batch, event.to_json())

    def on_images(self, event: ImageEvent) -> None:
        rel = grid_path(event)
        if not (self.run_dir / rel).is_file():
            raise RuntimeError(f"image grid {rel} missing: the RunWriter's layout changed, update grid_path()")
        self.store.add_images(self.job_id, event.stage, event.step, event.batch, rel)

    def should_stop(self) -> bool:
        # Read once per engine step: cancelling from the UI takes effect within one step.
        return self.stopping() or self.store.cancel_requested(self.job_id)
