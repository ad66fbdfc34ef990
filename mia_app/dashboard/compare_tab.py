"""The Compare tab: 2–4 finished runs side by side (final images, metrics, overlaid curves)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr
import pandas as pd

from mia_app.dashboard.context import DashboardContext
from mia_app.dashboard.media import gallery_items
from mia_app.dashboard.plots import compare_figure
from mia_app.dashboard.presets import resolve_local
from mia_app.dashboard.submission import LaunchError, check_queue, submit_capped
from mia_app.dashboard.targets import eval_model_for as eval_model_for_benchmark
from mia_app.evaluation.readout import config_diff, readings
from mia_app.report.html import comparison_report, short_names, write_report
from mia_app.run_folder import RunFolder, list_runs

MAX_RUNS = 4


def runs_for(ctx: DashboardContext, request: gr.Request | None) -> list[RunFolder]:
    """Finished run folders: every one under the runs folder, or only your jobs' on a hosted server."""
    if ctx.settings.hosted:
        jobs = ctx.visible_jobs(request)
        return [RunFolder(Path(j.run_dir)) for j in jobs if j.kind in ("attack", "peer") and j.status == "done"]
    return list_runs(ctx.settings.runs)


def metrics_table(runs: list[RunFolder]) -> tuple[list[str], list[list]]:
    """Rows = what made each run, then every metric as ``value [95% CI]`` (``readings``), with its n and note;
    columns = runs."""
    names = short_names([r.path for r in runs])
    rows = [["benchmark", *[r.benchmark() for r in runs], "", ""],
            ["method", *[r.method() for r in runs], "", ""],
            ["target T", *[r.target() for r in runs], "", ""],
            ["evaluated with E", *["yes" if (r.path / "metrics.json").is_file() else "no: press Evaluate"
                                   for r in runs], "", ""]]
    per_run = [{x.label + {"higher": " ↑", "lower": " ↓"}.get(x.better, ""): x for x in readings(r.path)}
               for r in runs]
    for label in dict.fromkeys(k for m in per_run for k in m):
        cells = [m[label].text() if label in m else "" for m in per_run]
        ns = list(dict.fromkeys(m[label].n for m in per_run if label in m and m[label].n))
        note = next((m[label].note for m in per_run if label in m and m[label].note), "")
        rows.append([label, *cells, " / ".join(ns), note])
    return ["metric", *names, "n", "note"], rows


def diff_table(runs: list[RunFolder]) -> pd.DataFrame:
    """The settings whose values differ between the runs' resolved configs (one row each)."""
    names = short_names([r.path for r in runs])
    rows = config_diff({n: r.config() for n, r in zip(names, runs, strict=True)})
    if not rows:
        return pd.DataFrame([["(the configs are identical)", *[""] * len(names)]], columns=["setting", *names])
    return pd.DataFrame([[d["setting"], *[str(d[n]) for n in names]] for d in rows], columns=["setting", *names])


def eval_model_for(ctx: DashboardContext, run: RunFolder) -> str:
    """E for a run: the server's (``eval_model`` setting) on SynthID, the shipped E of the run's benchmark
    otherwise; a LaunchError when that benchmark has none."""
    benchmark = run.benchmark()
    path = eval_model_for_benchmark(benchmark, ctx.settings.eval_model)
    if path is None:
        raise LaunchError(f"no evaluation model E is shipped for {benchmark} (run {run.name}); train one with "
                          "`python -m mia_app train-classifier --role eval --config ... --ship`")
    return path


def queue_evaluations(ctx: DashboardContext, names: list[str] | None, request: gr.Request | None) -> str:
    """One ``evaluate`` CLI job per chosen run, within the same per-session queue limit as attacks; a message."""
    by_name = {r.name: r for r in runs_for(ctx, request)}
    runs = [by_name[n] for n in dict.fromkeys(names or []) if n in by_name]
    if not runs:
        raise LaunchError("choose runs to evaluate")
    session = ctx.session(request)
    check_queue(ctx.store, ctx.settings, session, len(runs))
    queued = []
    for run in runs:
        argv = ["evaluate", "--run", str(run.path), "--eval-model", eval_model_for(ctx, run)]
        config = {"argv": argv, "log": str(run.path / "evaluate.log")}
        queued.append(submit_capped(ctx.store, ctx.settings, "cli", f"evaluate-{run.name}", config, [], session,
                                    run_dir=run.path).id)
    ctx.supervisor.ensure()
    return f"queued evaluation jobs {queued}; press Compare again when they are done (Jobs tab)"


def build_compare_tab(ctx: DashboardContext, benchmark: gr.components.Component | None = None) -> None:
    """``benchmark``: the Attack tab's benchmark selector; the run list then offers that benchmark's runs."""
    gr.Markdown("Pick 2–4 finished runs of one benchmark. Each number is `value [95% CI]` with its n: E acc@k "
                "with Wilson's interval over images, the distances and dlib top-1 with a bootstrap over identities. "
                "An unevaluated run shows T's confidence only (not evidence): press Evaluate.")
    with gr.Row():
        chosen = gr.Dropdown(label="Runs", multiselect=True, max_choices=MAX_RUNS, choices=[], scale=4,
                             elem_id="compare-runs")
        refresh_btn = gr.Button("↻ Refresh list", scale=1)
        compare_btn = gr.Button("Compare", variant="primary", scale=1, elem_id="compare-btn")
    eval_ready = resolve_local(ctx.settings.eval_model) is not None
    evaluate_btn = gr.Button("Evaluate the chosen runs with E (queued as jobs)", interactive=eval_ready)
    if not eval_ready:
        gr.Markdown(f"Evaluation model `{ctx.settings.eval_model}` not found: train it with "
                    "`python -m mia_app train-classifier --role eval --config configs/classifier/eval.yaml --ship`.")
    message = gr.Markdown(elem_id="compare-message")
    # max_height: every row in view, no scrolling inside the box
    table = gr.Dataframe(label="Metrics: value [95% CI]", interactive=False, wrap=True, max_height=2000,
                         elem_id="compare-metrics")
    notes = gr.Markdown(elem_id="compare-notes")
    diff = gr.Dataframe(label="What differs in the configs", interactive=False, wrap=True, max_height=2000,
                        elem_id="compare-diff")
    with gr.Row():
        export_btn = gr.Button("Export an HTML report of the chosen runs", scale=1, elem_id="compare-export")
        report = gr.File(label="HTML report", interactive=False, scale=2, height=70, elem_id="compare-report")
    columns, titles, galleries = [], [], []
    with gr.Row():
        for i in range(MAX_RUNS):
            with gr.Column(visible=False, min_width=200) as col:
                titles.append(gr.Markdown())
                galleries.append(gr.Gallery(columns=3, height=260, allow_preview=True, object_fit="contain",
                                            show_label=False, elem_id=f"compare-gallery-{i}",
                                            elem_classes=["pixelated"]))
            columns.append(col)
    curves = gr.Plot(show_label=False, elem_id="compare-curves")

    def refresh(current: list | None, kind: str | None, request: gr.Request):
        names = [r.name for r in runs_for(ctx, request) if kind is None or r.benchmark() == kind]
        return gr.update(choices=names, value=[c for c in (current or []) if c in names])

    def compare(names: list | None, request: gr.Request):
        names = names or []
        by_name = {r.name: r for r in runs_for(ctx, request)}
        runs = [by_name[n] for n in names if n in by_name]
        if not 2 <= len(runs) <= MAX_RUNS:
            gr.Warning("choose 2 to 4 finished runs")
            return "⚠️ choose 2 to 4 finished runs", *[gr.skip()] * (4 + 3 * MAX_RUNS)
        if len({r.benchmark() for r in runs}) > 1:  # another benchmark's E, classes and references
            message = "⚠️ these runs attacked different benchmarks: compare runs of one benchmark"
            gr.Warning(message)
            return message, *[gr.skip()] * (4 + 3 * MAX_RUNS)
        headers, rows = metrics_table(runs)
        updates = []
        for i in range(MAX_RUNS):
            if i < len(runs):
                r = runs[i]
                updates += [gr.Column(visible=True), f"**{r.name}** · {r.method()}",
                            gallery_items(r.final_images(), ctx.settings.hosted, r.path)]
            else:
                updates += [gr.Column(visible=False), "", []]
        figure = compare_figure({r.name: r.steps() for r in runs})
        # the notes go under the table, so that the table itself fits the page
        notes = "  \n".join(f"**{r[0]}**: {r[-1]}" for r in rows if r[-1])
        # fixed shares of the width, cells wrapping inside them: the table never scrolls sideways
        widths = ["24%", *[f"{60 / len(runs):.0f}%"] * len(runs), "16%"]
        frame = gr.update(value=pd.DataFrame([r[:-1] for r in rows], columns=headers[:-1]), column_widths=widths)
        return (f"comparing {len(runs)} runs", frame, notes,
                diff_table(runs), figure, *updates)

    def export(names: list | None, request: gr.Request):
        by_name = {r.name: r for r in runs_for(ctx, request)}
        runs = [by_name[n] for n in names or [] if n in by_name]
        if not 1 <= len(runs) <= MAX_RUNS:
            gr.Warning("choose 1 to 4 finished runs")
            return "⚠️ choose 1 to 4 finished runs", None
        from mia_app.report.html import run_report

        demo = bool(ctx.settings.demo)  # private references in the file only where the page shows them too
        text = ctx.redact(run_report(runs[0].path, references=demo) if len(runs) == 1  # hosted: no server paths
                          else comparison_report([r.path for r in runs], references=demo))
        stem = "-vs-".join(r.name for r in runs)[:120]
        # A fresh temporary folder: Gradio serves it for the download (hosted too, where run folders are not
        # served), and one user's report is never written where another's could be fetched.
        out = write_report(text, Path(tempfile.mkdtemp(prefix="mia-report-")) / f"report-{stem}.html")
        return f"HTML report of {len(runs)} run(s) below: download it, open it in a browser, hand it on", str(out)

    def evaluate(names: list | None, request: gr.Request):
        try:
            return queue_evaluations(ctx, names, request)
        except LaunchError as err:
            gr.Warning(str(err))
            return f"⚠️ {err}"

    panels = [x for triple in zip(columns, titles, galleries, strict=True) for x in triple]
    outputs = [message, table, notes, diff, curves, *panels]
    kind = benchmark if benchmark is not None else gr.State(None)
    refresh_btn.click(refresh, [chosen, kind], [chosen])
    chosen.focus(refresh, [chosen, kind], [chosen])
    if benchmark is not None:
        benchmark.change(refresh, [chosen, kind], [chosen])
    compare_btn.click(compare, [chosen], outputs)
    evaluate_btn.click(evaluate, [chosen], [message])
    export_btn.click(export, [chosen], [message, report])
