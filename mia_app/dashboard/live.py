"""JobView: everything the live view shows of one job, read from the store and its run folder.

The store is read incrementally (events after the last id seen), so a poll costs only the new steps.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mia_app.run_folder import RunFolder, grid_caption
from mia_app.service.store import Job, JobStore

RECENT_GRIDS = 8
STATUS_TEXT = {"pass": "✔ PASS", "fail": "✘ FAIL", "n/a": "– n/a"}


class EventCache:
    """Step and image events per job, appended to on each read; a few jobs kept (LRU)."""

    def __init__(self, store: JobStore, size: int = 8):
        self.store = store
        self.size = size
        self._jobs: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def read(self, job_id: int, started: float | None = None) -> tuple[list[dict[str, Any]], list[str]]:
        """``started``: the job's start time; a retried job starts again, and its old events are dropped."""
        with self._lock:
            entry = self._jobs.pop(job_id, None)
            if entry is None or entry["started"] != started:
                entry = {"started": started, "step_id": 0, "image_id": 0, "steps": [], "images": []}
            self._jobs[job_id] = entry
            while len(self._jobs) > self.size:
                self._jobs.popitem(last=False)
            new_steps = self.store.events(job_id, "step", entry["step_id"])
            new_images = self.store.events(job_id, "images", entry["image_id"])
            if new_steps:
                entry["step_id"] = new_steps[-1][0]
                entry["steps"] += [d for _, d in new_steps]
            if new_images:
                entry["image_id"] = new_images[-1][0]
                entry["images"] += [d["path"] for _, d in new_images]
            return list(entry["steps"]), list(entry["images"])


def clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def progress_text(job: Job, now: float | None = None) -> str:
    now = time.time() if now is None else now
    head = f"**job {job.id}** · `{job.name}` · targets {job.targets} · **{job.status}**"
    if job.status == "queued":
        return head + " · waiting for a worker"
    total, done = job.total_steps, job.done_steps
    elapsed = ((job.finished or now) - job.started) if job.started else 0.0
    parts = [head, f"step {done}/{total or '?'}", f"elapsed {clock(elapsed)}"]
    if job.status == "running" and total and done:
        parts.append(f"ETA {clock(elapsed / done * (total - done))}")
    text = " · ".join(parts)
    if total:
        text += f'\n\n<progress value="{done}" max="{total}" style="width:100%"></progress>'
    if job.error:
        text += f"\n\n> {job.error}"
    return text


@dataclass
class JobView:
    job: Job
    steps: list[dict[str, Any]]
    images: list[str]

    @property
    def signature(self) -> tuple:
        """Changes exactly when the figures or the gallery would."""
        return self.job.id, len(self.steps), len(self.images), self.job.status

    def gallery(self) -> list[tuple[str, str]]:
        run = RunFolder(Path(self.job.run_dir))
        recent = [(str(run.path / rel), grid_caption(rel)) for rel in reversed(self.images[-RECENT_GRIDS:])]
        finals = [(p, f"final · {cap}") for p, cap in run.final_images()] if self.job.status == "done" else []
        return finals + [(p, c) for p, c in recent if Path(p).is_file()]

    def doctor_rows(self) -> list[list[str]]:
        checks = RunFolder(Path(self.job.run_dir)).doctor()
        return [[STATUS_TEXT.get(c["status"], c["status"]), c["name"], c["measured"], c["expected"]]
                for c in checks]


def job_view(cache: EventCache, job: Job) -> JobView:
    steps, images = cache.read(job.id, job.started)
    return JobView(job, steps, images)
