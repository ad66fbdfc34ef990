"""The live view of one job: progress and ETA, image gallery, loss / weight / confidence curves, doctor table.

A gr.Timer polls the store; when nothing new arrived the heavy outputs are skipped (gr.skip), so an idle
page costs one small query per second.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from mia_app.dashboard.context import DashboardContext
from mia_app.dashboard.live import job_view, progress_text
from mia_app.dashboard.media import gallery_items
from mia_app.dashboard.plots import confidence_figure, loss_figure, weights_figure
from mia_app.dashboard.verdict import verdict_html, verdict_signature
from mia_app.service.store import Job

DOCTOR_HEADERS = ["status", "check", "measured", "expected"]


def job_choices(jobs: list[Job]) -> list[tuple[str, int]]:
    # No status in the label: it would go stale between refreshes; the progress line shows it live.
    return [(f"job {j.id} · {j.name} · targets {','.join(map(str, j.targets[:6]))}", j.id) for j in jobs]


@dataclass
class LivePanel:
    watch: gr.Dropdown
    progress: gr.Markdown
    cancel: gr.Button
    verdict: gr.HTML
    gallery: gr.Gallery
    loss: gr.Plot
    weights: gr.Plot
    confidence: gr.Plot
    doctor: gr.Dataframe
    seen: gr.State
    timer: gr.Timer


def build_live_panel(ctx: DashboardContext) -> LivePanel:
    with gr.Row():
        watch = gr.Dropdown(label="Watching job", choices=[], value=None, scale=4, elem_id="watch")
        cancel = gr.Button("Cancel job", variant="stop", scale=1, min_width=100, elem_id="cancel-watched")
    progress = gr.Markdown("No job yet: launch one on the left.", elem_id="progress")
    verdict = gr.HTML(elem_id="verdict")
    gallery = gr.Gallery(label="Generated images (newest first; one row per target, one column per candidate)",
                         columns=4, height=300, object_fit="contain", elem_id="live-gallery",
                         elem_classes=["pixelated"])
    loss = gr.Plot(elem_id="loss-plot", show_label=False)
    with gr.Row():
        weights = gr.Plot(elem_id="weights-plot", show_label=False)
        confidence = gr.Plot(elem_id="conf-plot", show_label=False)
    doctor = gr.Dataframe(headers=DOCTOR_HEADERS, label="Doctor: the seed's debug checks (live)",
                          interactive=False, elem_id="doctor", wrap=True)
    panel = LivePanel(watch, progress, cancel, verdict, gallery, loss, weights, confidence, doctor, gr.State(None),
                      gr.Timer(ctx.settings.poll_s))
    _wire(ctx, panel)
    return panel


def _wire(ctx: DashboardContext, p: LivePanel) -> None:
    outputs = [p.progress, p.cancel, p.verdict, p.gallery, p.loss, p.weights, p.confidence, p.doctor, p.seen]
    heavy = len(outputs) - 3  # the outputs after progress and cancel, before seen

    def tick(job_id: int | None, seen: tuple | None, request: gr.Request):
        ctx.watchdog()
        if job_id is None:
            return (*[gr.skip()] * (heavy + 2), None)
        try:
            job = ctx.store.get(int(job_id))
        except KeyError:
            return f"job {job_id} was deleted", gr.update(interactive=False), "", [], *[gr.skip()] * 4, None
        if not ctx.owns(request, job):
            return "not your job", gr.update(interactive=False), *[gr.skip()] * heavy, None
        view = job_view(ctx.cache, job)
        text = ctx.redact(progress_text(job))
        cancel = gr.update(interactive=job.status in ("queued", "running"))  # nothing to cancel once it ended
        signature = (view.signature, verdict_signature(job))
        if signature == seen:
            return text, cancel, *[gr.skip()] * heavy, seen
        steps = view.steps
        gallery = gallery_items(view.gallery(), ctx.settings.hosted, job.run_dir)
        verdict = ctx.redact(verdict_html(job, bool(ctx.settings.demo), ctx.settings.auto_evaluate))
        return (text, cancel, verdict, gallery, loss_figure(steps), weights_figure(steps), confidence_figure(steps),
                view.doctor_rows(), signature)

    def refresh_choices(current: int | None, request: gr.Request):
        return gr.update(choices=job_choices(ctx.visible_jobs(request, limit=50)), value=current)

    def cancel(job_id: int | None, request: gr.Request):
        if job_id is None:
            gr.Warning("no job selected")
            return
        job = ctx.store.get(int(job_id))
        if not ctx.owns(request, job):
            gr.Warning("not your job")
            return
        gr.Info(f"job {job.id}: {ctx.store.cancel(job.id)}")

    p.timer.tick(tick, [p.watch, p.seen], outputs, show_progress="hidden")
    p.watch.change(tick, [p.watch, gr.State(None)], outputs, show_progress="hidden")
    p.watch.focus(refresh_choices, [p.watch], [p.watch], show_progress="hidden")
    p.cancel.click(cancel, [p.watch], None)
