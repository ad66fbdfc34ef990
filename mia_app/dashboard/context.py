"""DashboardContext: the objects every tab shares (settings, job store, worker supervisor, form, caches)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from mia_app.dashboard.attack_form import AttackForm
from mia_app.dashboard.live import EventCache
from mia_app.dashboard.presets import list_presets
from mia_app.dashboard.settings import DashboardSettings
from mia_app.dashboard.supervisor import WorkerSupervisor
from mia_app.service.store import Job, JobStore


@dataclass
class DashboardContext:
    settings: DashboardSettings
    store: JobStore
    supervisor: WorkerSupervisor
    form: AttackForm = field(default_factory=AttackForm.from_model)
    cache: EventCache = field(init=False)

    def __post_init__(self) -> None:
        self.cache = EventCache(self.store)

    @classmethod
    def create(cls, settings: DashboardSettings) -> DashboardContext:
        store = JobStore(settings.db, settings.runs)
        return cls(settings, store, WorkerSupervisor(store, settings.start_worker))

    def presets(self) -> dict[str, Path]:
        return list_presets(self.settings.presets)

    def session(self, request: gr.Request | None) -> str | None:
        """Who submits: the login in hosted mode (stable across reloads), else the browser session."""
        if request is None:
            return None
        return request.username or request.session_hash

    def visible_jobs(self, request: gr.Request | None, limit: int = 200) -> list[Job]:
        """Everyone's jobs on a lab machine; only your own on a hosted server."""
        if self.settings.hosted:
            return self.store.jobs(session=self.session(request), limit=limit)
        return self.store.jobs(limit=limit)

    def owns(self, request: gr.Request | None, job: Job) -> bool:
        return not self.settings.hosted or job.session == self.session(request)
