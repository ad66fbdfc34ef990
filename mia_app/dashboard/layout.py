"""build_demo: the dashboard's page, tabs in the order a new user needs them."""

from __future__ import annotations

import gradio as gr

from mia_app.dashboard.ablation_tab import build_ablation_tab
from mia_app.dashboard.attack_tab import AttackTab
from mia_app.dashboard.compare_tab import build_compare_tab
from mia_app.dashboard.context import DashboardContext
from mia_app.dashboard.jobs_tab import build_jobs_tab

CSS = """
.pixelated img { image-rendering: pixelated; }
#progress progress { height: 12px; }
/* Gradio's container is overflow: hidden, which makes it the scroll container of any sticky child and so
   stops stickiness; clip cuts the same overflow without being one. */
.gradio-container { overflow: clip !important; }
#launch-bar { position: sticky; top: 0; z-index: 20; background: var(--background-fill-primary);
              box-shadow: 0 2px 4px rgba(0, 0, 0, 0.08); }
#ablation-compact table, #compare-metrics table { font-size: 0.82em; }
#verdict .faces { display: flex; flex-wrap: wrap; gap: 10px; }
#verdict .card { border: 1px solid #d0d7de; border-radius: 6px; padding: 6px; max-width: 330px; font-size: 0.85em; }
#verdict img.face { image-rendering: pixelated; width: 96px; height: 96px; border: 1px solid #d0d7de; }
#verdict img.ref { border: 2px dashed #8c959f; }
#verdict .ok { color: #1a7f37; font-weight: 600; }
#verdict .bad { color: #cf222e; font-weight: 600; }
#verdict .note { color: #57606a; }
"""


def intro(ctx: DashboardContext) -> str:
    s = ctx.settings
    mode = "hosted (login; you see your own jobs)" if s.hosted else "lab (no login)"
    where = "" if s.hosted else f" · jobs: `{s.db}` · runs: `{s.runs}`"  # no server paths on a hosted page
    return (
        "# mia_app · model inversion with a diffusion prior\n"
        "Reconstruct what a face classifier's private identities look like, from the classifier alone. "
        "**Attack**: pick target classes, a preset, schemes and loss weights, then **Launch**: a background "
        "worker runs the job (GPU when present) while the curves, images and the doctor's checks update here. "
        "**Compare** finished runs, browse **Ablation** results, manage the queue in **Jobs**.  \n"
        f"<small>mode: {mode}{where}</small>"
    )


def build_demo(ctx: DashboardContext) -> gr.Blocks:
    with gr.Blocks(title="mia_app dashboard", analytics_enabled=False) as demo:
        gr.Markdown(intro(ctx))
        with gr.Tabs() as tabs:
            with gr.Tab("Attack", id="attack"):
                attack = AttackTab(ctx)
                attack.build()
            with gr.Tab("Compare", id="compare"):
                build_compare_tab(ctx, attack.benchmark)
            with gr.Tab("Ablation", id="ablation"):
                build_ablation_tab(ctx, demo)
            with gr.Tab("Jobs", id="jobs"):
                build_jobs_tab(ctx, attack.live.watch, tabs)
        attack.wire(demo)
        demo.load(lambda: ctx.supervisor.ensure(), None, None)
    return demo
