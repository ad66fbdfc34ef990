"""DashboardContext: the objects every tab shares (settings, job store, worker supervisor, form, caches)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from mia_app.dashboard.attack_form import AttackForm
from mia_app.dashboard.live import EventCache
from mia_app.dashboard.presets import list_presets
from mia_app.dashboard.settings import DashboardSettings
from mia_app.dashboard.supervisor import WorkerSupervisor
from mia_app.service.store import Job, JobStore

log = logging.getLogger("mia_app.dashboard")


@dataclass
class DashboardContext:
    settings: DashboardSettings
    store: JobStore
    supervisor: WorkerSupervisor
    form: AttackForm = field(default_factory=AttackForm.from_model)
    cache: EventCache = field(init=False)

    _last_watch: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.cache = EventCache(self.store)

    def watchdog(self, every_s: float = 1.0) -> None:
        """Called by every poll (throttled across sessions): a running job whose worker died (``kill -9``, a
        crash, the app instance that started it stopped) is marked interrupted, and queued jobs with no live
        worker get one from this instance, so the page never shows "running" for a job nobody runs."""
        now = time.monotonic()
        if now - self._last_watch < every_s:
            return
        self._last_watch = now
        self.supervisor.ours_alive()  # reaps our worker if it died, so its pid no longer looks alive
        for job_id in self.store.recover_orphans():
            log.warning("job %d: its worker died; marked interrupted", job_id)
        if self.store.jobs(statuses=("queued",), limit=1) and not self.store.live_workers():
            self.supervisor.ensure()

    @classmethod
    def create(cls, settings: DashboardSettings) -> DashboardContext:
        store = JobStore(settings.db, settings.runs)
        return cls(settings, store, WorkerSupervisor(store, settings.start_worker))

    def redact(self, text: str) -> str:
        """On a hosted server, the page shows no server paths: the app's, the runs', the results' and the temp
        folders become short names. A lab dashboard shows them as they are (its user owns the machine)."""
        if not self.settings.hosted or not text:
            return text
        import tempfile

        from mia_app.assets import REPO_ROOT

        roots = {str(self.settings.runs.resolve()): "runs", str(self.settings.results.resolve()): "results",
                 str(self.settings.presets.resolve()): "presets", str(REPO_ROOT): "app",
                 str(Path(tempfile.gettempdir()).resolve()): "tmp", str(Path.home()): "~"}
        for root, name in sorted(roots.items(), key=lambda kv: -len(kv[0])):  # the longest prefix first
            text = text.replace(root, name)
        return text

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
