"""The Ablation tab: browse finished ablations (``results/ablation-*/``: table.md + figures) and launch one
from an ablation config, as a worker job running ``python -m mia_app ablate`` (resumable: a relaunch skips
the finished cells)."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pandas as pd

from mia_app.dashboard.context import DashboardContext
from mia_app.dashboard.media import gallery_items

SCOREBOARD = "ablation-scoreboard"
NO_ABLATIONS = ("No ablations yet: run `python -m mia_app ablate --config configs/ablation/<name>.yaml` (or launch "
                "one below); its folder `results/ablation-<name>/` shows up here.")


def ablation_available() -> bool:
    return importlib.util.find_spec("mia_app.ablation") is not None


def list_ablations(results: Path) -> list[Path]:
    if not Path(results).is_dir():
        return []
    found = sorted((p for p in Path(results).glob("ablation-*") if p.is_dir()), key=lambda p: p.name, reverse=True)
    # The scoreboard (every attack against the no-attack floor and PPA) is what a reader should see first.
    return sorted(found, key=lambda p: p.name != SCOREBOARD)


@dataclass
class AblationView:
    compact: pd.DataFrame  # the key columns, one row per (target,) row
    full: str  # the whole markdown report (every metric), shown on demand
    figures: dict[str, str]  # caption -> png path


def compact_frame(folder: Path) -> pd.DataFrame:
    """E acc@1, dlib top-1 and KNN with CIs and Δ vs the floor, from ``summary.json``; an ablation over several
    targets (``target_models``) gets one block per T, named in a first column."""
    from mia_app.ablation.tables import compact_table

    f = folder / "summary.json"
    if not f.is_file():
        return pd.DataFrame([["no summary.json yet (still running?)"]], columns=["row"])
    summary = json.loads(f.read_text())
    if "target_models" not in summary:
        if not summary.get("variants"):
            return pd.DataFrame([["no cell has finished yet"]], columns=["row"])
        head, rows = compact_table(summary)
        return pd.DataFrame(rows, columns=head)
    frames = []
    for path, entry in summary["targets"].items():
        sub = folder / Path(entry["folder"]).name / "summary.json"
        part = json.loads(sub.read_text()) if sub.is_file() else {}
        if not part.get("variants"):  # this T's block has not run yet
            continue
        head, rows = compact_table(part)
        info = entry.get("info") or {}
        label = f"{Path(path).stem} ({info.get('defense', '?')})"
        frames.append(pd.DataFrame([[label, *r] for r in rows], columns=["T", *head]))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame([["no target has results yet"]],
                                                                              columns=["T"])


def show_ablation(folder: Path) -> AblationView:
    # an ablation over several targets reports in defenses.md (a block per T); a plain one in table.md
    table = next((folder / n for n in ("defenses.md", "table.md") if (folder / n).is_file()), None)
    text = table.read_text() if table is not None else f"`{folder.name}` has no table.md yet (still running?)"
    if (folder / "acceptance.md").is_file():  # a scheme ablation: the seed's claims first, then why
        why = (folder / "why.md").read_text() + "\n" if (folder / "why.md").is_file() else ""
        text = (folder / "acceptance.md").read_text() + "\n" + why + text
    pngs = sorted(folder.glob("*.png")) + sorted(folder.glob("*/acc1.png"))
    figures = {str(p.relative_to(folder)): str(p) for p in pngs}
    return AblationView(compact_frame(folder), text, figures)


def ablation_configs(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(Path(folder).glob("*.yaml"))}


def queue_ablation(ctx: DashboardContext, config: Path, session: str | None) -> str:
    """Validate the config, refuse a second job on the same folder, queue the CLI job; returns a message."""
    from pydantic import ValidationError

    from mia_app.ablation.config import AblationConfig
    from mia_app.dashboard.submission import LaunchError
    from mia_app.user_input import explain

    if ctx.settings.hosted:
        # The tab hides its button when hosted; this refuses the same launch reaching the endpoint directly.
        raise LaunchError("ablations are not launched on a hosted server: run `python -m mia_app ablate` yourself")
    try:
        acfg = AblationConfig.from_yaml(config)
    except ValidationError as err:
        raise LaunchError(f"{config.name} is invalid: {explain(err)}") from err
    out = ctx.settings.results / f"ablation-{acfg.name}"
    busy = [j.id for j in ctx.store.jobs(statuses=("queued", "running")) if j.run_dir == str(out)]
    if busy:
        raise LaunchError(f"job {busy[0]} is already running this ablation into {out}")
    argv = ["ablate", "--config", str(config), "--out", str(out), "--quiet"]
    job = ctx.store.submit("cli", f"ablation-{acfg.name}", {"argv": argv}, [], session, run_dir=out)
    ctx.supervisor.ensure()
    return f"queued ablation job {job.id} → `{out}` (progress in the Jobs tab; log in `{out}/job.log`)"


def build_ablation_tab(ctx: DashboardContext, demo: gr.Blocks) -> None:
    results = ctx.settings.results
    intro = gr.Markdown(elem_id="ablation-intro")
    with gr.Row():
        chosen = gr.Dropdown(label="Ablation", choices=[], scale=4)
        refresh_btn = gr.Button("↻ Refresh", scale=1)
    compact = gr.Dataframe(label="Key results: value [95% CI]; Δ vs the floor, a paired bootstrap over (seed, "
                                 "identity) (*: the CI excludes 0)", interactive=False, wrap=True,
                           max_height=2000, elem_id="ablation-compact")  # widths: in view_outputs
    with gr.Accordion("Full table: every metric, every difference", open=False):
        table = gr.Markdown(elem_id="ablation-table")
    with gr.Row():
        export_btn = gr.Button("Export this ablation as an HTML report", scale=1, elem_id="ablation-export")
        report = gr.File(label="HTML report", interactive=False, height=70, scale=2, elem_id="ablation-report")
    figure_choice = gr.Dropdown(label="Figure", choices=[], elem_id="ablation-figure-choice")
    figure = gr.Image(show_label=False, interactive=False, elem_id="ablation-figure")
    configs = ablation_configs(ctx.settings.ablations)
    available = ablation_available() and bool(configs) and not ctx.settings.hosted
    with gr.Accordion("Launch an ablation", open=False):
        if ctx.settings.hosted:
            gr.Markdown("Ablations run many attacks; launching them is disabled on a hosted server.")
        elif not ablation_available():
            gr.Markdown("The ablation runner (`mia_app.ablation`, `python -m mia_app ablate`) is not part of this "
                        "installation, so launching is disabled.")
        elif not configs:
            gr.Markdown(f"No ablation configs in `{ctx.settings.ablations}`: add one (an AblationConfig YAML).")
        with gr.Row():
            config = gr.Dropdown(list(configs), value=next(iter(configs), None), label="Ablation config",
                                 interactive=available, scale=3)
            launch = gr.Button("Launch ablation", variant="primary", interactive=available, scale=1)
        message = gr.Markdown()

    def view_outputs(name: str) -> tuple:
        view = show_ablation(results / name)
        first = next(iter(view.figures), None)
        n = len(view.compact.columns)  # the row names get more room than the numbers; nothing scrolls sideways
        widths = ["13%", *[f"{87 / (n - 1):.1f}%"] * (n - 1)] if n > 1 else None
        return (gr.update(value=view.compact, visible=True, column_widths=widths), view.full,
                gr.update(choices=list(view.figures), value=first, visible=bool(view.figures)),
                gr.update(value=figure_file(view.figures.get(first)), visible=first is not None))

    def figure_file(path: str | None) -> str | None:
        if path is None:
            return None
        return gallery_items([(path, "")], ctx.settings.hosted)[0][0]  # hosted: a cache copy, never the folder

    def refresh(current: str | None):
        folders = list_ablations(results)
        if not folders:
            hidden = gr.update(value=None, choices=[], visible=False)
            return (NO_ABLATIONS, hidden, gr.update(visible=False), "", gr.update(choices=[], visible=False),
                    gr.update(value=None, visible=False))
        names = [p.name for p in folders]
        name = current if current in names else names[0]
        lead = ("`ablation-scoreboard` compares every attack with the floor (no attack) and PPA on the same "
                "identities; the scheme ablations below it compare our variants." if SCOREBOARD in names else "")
        return (f"{len(names)} ablation(s) in `{results}`. {lead}",
                gr.update(choices=names, value=name, visible=True), *view_outputs(name))

    def select(name: str | None):
        if not name:
            return gr.update(visible=False), "", gr.update(choices=[]), None
        return view_outputs(name)

    def pick_figure(name: str | None, caption: str | None):
        view = show_ablation(results / name) if name else None
        return figure_file(view.figures.get(caption)) if view and caption else None

    def start(name: str | None, request: gr.Request):
        from mia_app.dashboard.submission import LaunchError

        found = ablation_configs(ctx.settings.ablations)
        if name not in found:
            return "⚠️ choose an ablation config"
        try:
            return queue_ablation(ctx, found[name], ctx.session(request))
        except (LaunchError, FileNotFoundError) as err:
            gr.Warning(str(err))
            return f"⚠️ {err}"

    def export(name: str | None):
        import tempfile

        from mia_app.report.html import ablation_report, write_report

        if not name:
            gr.Warning("choose an ablation first")
            return None
        try:
            text = ctx.redact(ablation_report(results / name))  # hosted: no server paths in the file
        except FileNotFoundError as err:
            gr.Warning(str(err))
            return None
        return str(write_report(text, Path(tempfile.mkdtemp(prefix="mia-report-")) / f"report-{name}.html"))

    export_btn.click(export, [chosen], [report])
    gr.on([refresh_btn.click, demo.load], refresh, [chosen], [intro, chosen, compact, table, figure_choice, figure])
    chosen.select(select, [chosen], [compact, table, figure_choice, figure])
    figure_choice.select(pick_figure, [chosen, figure_choice], [figure])
    launch.click(start, [config], [message])
