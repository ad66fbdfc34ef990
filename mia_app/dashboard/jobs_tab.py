"""The Jobs tab: the queue with status and progress; cancel, retry, delete, or watch a job in the Attack tab."""

from __future__ import annotations

import time
from pathlib import Path

import gradio as gr

from mia_app.dashboard.context import DashboardContext
from mia_app.dashboard.live import clock
from mia_app.dashboard.live_panel import job_choices
from mia_app.dashboard.media import purge_served
from mia_app.service.store import ACTIVE, Job

HEADERS = ["id", "kind", "name", "status", "targets", "settings", "progress", "created", "duration", "error",
           "run folder"]


def _ours_settings(a: dict) -> str:
    schemes = "+".join(k for k in ("B3", "A", "C", "D") if (a.get("schemes") or {}).get(k)) or "baseline"
    steps = f"{(a.get('stage1') or {}).get('steps', '?')}+{(a.get('stage2') or {}).get('steps', '?')} steps"
    return f"{schemes} · {steps}"


def job_settings(job: Job) -> str:
    """What tells two jobs apart at a glance: T, the method and its main knobs, the seed."""
    config = job.config
    if job.kind == "cli":
        return " ".join(str(a) for a in config.get("argv", []))[:80]
    attack = config.get("attack", config)
    target = Path(str(attack.get("target", "?"))).stem
    if job.kind == "peer":
        peer = config.get("peer") or {}
        knobs = [f"{k} {peer[k]}" for k in ("steps", "max_iter", "search_space", "loss") if k in peer]
        method = " · ".join([str(peer.get("kind", "peer")), *knobs])
    else:
        method = _ours_settings(attack)
    return f"T {target} · {method} · seed {attack.get('seed', '?')}"


def job_row(job: Job, now: float) -> list:
    progress = f"{job.done_steps}/{job.total_steps}" if job.total_steps else ""
    duration = clock((job.finished or now) - job.started) if job.started else ""
    created = time.strftime("%H:%M:%S", time.localtime(job.created))
    targets = ",".join(map(str, job.targets[:8])) + ("…" if len(job.targets) > 8 else "")
    folder = Path(job.run_dir) if job.run_dir else None
    where = f"{folder.parent.name}/{folder.name}" if folder else ""  # full paths are in the store; this fits
    return [job.id, job.kind, job.name, job.status, targets, job_settings(job), progress, created, duration,
            (job.error or "")[:120], where]


def build_jobs_tab(ctx: DashboardContext, watch: gr.Dropdown, tabs: gr.Tabs) -> None:
    worker = gr.Markdown(elem_id="worker-status")
    table = gr.Dataframe(headers=HEADERS, interactive=False, wrap=True, elem_id="jobs-table")
    with gr.Row():
        chosen = gr.Dropdown(label="Job", choices=[], value=None, scale=3, elem_id="job-select")
        watch_btn = gr.Button("Watch in Attack tab", scale=1)
        cancel_btn = gr.Button("Cancel", variant="stop", scale=1, interactive=False, elem_id="jobs-cancel")
        retry_btn = gr.Button("Retry", scale=1, elem_id="retry")
        delete_btn = gr.Button("Delete (job + its run folder)", scale=1)
    message = gr.Markdown()
    timer = gr.Timer(2.0)
    ids_seen = gr.State(None)

    def refresh(current: int | None, seen: tuple | None, request: gr.Request):
        ctx.watchdog()
        jobs = ctx.visible_jobs(request)
        now = time.time()
        ids = tuple((j.id, j.status) for j in jobs)
        choices = gr.skip() if ids == seen else gr.update(choices=job_choices(jobs), value=current)
        status = ctx.supervisor.status() + ("" if jobs else "  \nNo jobs yet: launch an attack in the Attack tab.")
        rows = [[ctx.redact(v) if isinstance(v, str) else v for v in job_row(j, now)] for j in jobs]
        return ctx.redact(status), rows, choices, ids

    def owned(job_id: int | None, request: gr.Request) -> Job | None:
        if job_id is None:
            gr.Warning("choose a job first")
            return None
        try:
            job = ctx.store.get(int(job_id))
        except KeyError:
            gr.Warning(f"job {job_id} no longer exists")
            return None
        if not ctx.owns(request, job):
            gr.Warning("not your job")
            return None
        return job

    def cancel(job_id: int | None, request: gr.Request):
        job = owned(job_id, request)
        return f"job {job.id}: {ctx.store.cancel(job.id)}" if job else gr.skip()

    def retry(job_id: int | None, request: gr.Request):
        job = owned(job_id, request)
        if job is None:
            return gr.skip()
        try:
            if job.kind != "cli" and job.status not in ACTIVE and (folder := ctx.store.owned_folder(job)) is not None:
                purge_served(folder)  # an attack starts over in a fresh folder
            ctx.store.retry(job.id, max_active=ctx.settings.max_queued)
        except ValueError as err:  # not retryable now, or the hosted queue cap
            gr.Warning(str(err))
            return f"⚠️ {err}"
        ctx.supervisor.ensure()
        again = "resumes, skipping finished cells" if job.kind == "cli" else "starts over"
        return f"job {job.id} queued again ({again})"

    def delete(job_id: int | None, request: gr.Request):
        job = owned(job_id, request)
        if job is None:
            return gr.skip(), gr.skip()
        try:
            if job.status not in ACTIVE and (folder := ctx.store.owned_folder(job)) is not None:
                purge_served(folder)  # Gradio's copies of its images go with the folder it created
            ctx.store.delete(job.id)
        except ValueError as err:
            gr.Warning(str(err))
            return f"⚠️ {err}", gr.skip()
        return f"job {job.id} deleted", None

    def show(job_id: int | None, request: gr.Request):
        job = owned(job_id, request)
        if job is None:
            return gr.skip(), gr.skip()
        return gr.update(choices=job_choices(ctx.visible_jobs(request, limit=50)), value=job.id), \
            gr.Tabs(selected="attack")

    def cancellable(job_id: int | None, request: gr.Request):
        """Cancel is offered only for a queued or running job of yours."""
        try:
            job = ctx.store.get(int(job_id)) if job_id is not None else None
        except KeyError:
            job = None
        ok = job is not None and ctx.owns(request, job) and job.status in ACTIVE
        return gr.update(interactive=ok)

    outputs = [worker, table, chosen, ids_seen]
    timer.tick(refresh, [chosen, ids_seen], outputs, show_progress="hidden")
    gr.on([tabs.select], refresh, [chosen, gr.State(None)], outputs, show_progress="hidden")
    cancel_btn.click(cancel, [chosen], [message])
    gr.on([chosen.change, timer.tick], cancellable, [chosen], [cancel_btn], show_progress="hidden")
    retry_btn.click(retry, [chosen], [message])
    delete_btn.click(delete, [chosen], [message, chosen])
    watch_btn.click(show, [chosen], [watch, tabs])
