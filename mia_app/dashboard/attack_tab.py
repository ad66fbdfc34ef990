"""The Attack tab: pick identities, a preset, schemes and weights; launch; watch the job live."""

from __future__ import annotations

import logging
from pathlib import Path

import gradio as gr
from pydantic import ValidationError

from mia_app.ablation.evidence import scheme_evidence
from mia_app.attack.config import SCHEME_DEFAULT_WEIGHTS
from mia_app.dashboard.context import DashboardContext
from mia_app.dashboard.form import FieldSpec
from mia_app.dashboard.identities import Identities, identities
from mia_app.dashboard.live_panel import LivePanel, build_live_panel, job_choices
from mia_app.dashboard.peer_form import METHOD_LABELS, OURS, PeerForm
from mia_app.dashboard.presets import (
    BENCHMARK_LABELS,
    default_preset,
    load_preset,
    missing_models,
    preset_benchmark,
    presets_of,
)
from mia_app.dashboard.submission import LaunchError, check_upload, submit_attack, submit_peer
from mia_app.dashboard.targets import shipped_targets
from mia_app.dashboard.widgets import widget
from mia_app.user_input import explain, parse_targets

log = logging.getLogger("mia_app.dashboard")
PRIVATE_LABEL = "private reference (demo mode only)"


def reference_images(ids: Identities, targets_text: str | None) -> list[tuple]:
    """(image, caption) of the first target class's private references; none while the text does not parse."""
    try:
        first = parse_targets(targets_text or "")[0]
    except ValueError:  # half-typed ("3-") or empty: the Launch button explains a real mistake
        return []
    return [(img, f"class {first}") for img in ids.references.get(first, [])]


class AttackTab:
    def __init__(self, ctx: DashboardContext):
        self.ctx = ctx
        self.form = ctx.form
        self.widgets: dict[FieldSpec, gr.components.Component] = {}
        self.live: LivePanel | None = None
        self.peer_form = PeerForm.build_specs()
        self.peer_widgets: dict[str, list[gr.components.Component]] = {}
        self.peer_groups: dict[str, gr.Group] = {}
        self.ours_sections: list[gr.components.Component] = []

    # ---- layout -----------------------------------------------------------------------------------------
    def build(self) -> None:
        presets = self.ctx.presets()
        chosen = default_preset(presets, self.ctx.settings.default_preset)
        self.initial = self._initial_values(chosen)
        kinds = [k for k in BENCHMARK_LABELS if any(preset_benchmark(p) == k for p in presets.values())]
        kind = (preset_benchmark(presets[chosen]) if chosen else None) or (kinds[0] if kinds else "synthid")
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=380):
                self.banner = gr.Markdown(elem_id="attack-banner")
                self.benchmark = gr.Radio([(BENCHMARK_LABELS[k], k) for k in kinds] or [(BENCHMARK_LABELS[kind], kind)],
                                          value=kind, label="Benchmark", elem_id="benchmark",
                                          info="the presets, target models, identities and Compare's runs follow it")
                self.preset = gr.Dropdown(list(presets_of(presets, kind)), value=chosen, label="Preset",
                                          info=self.ctx.redact(f"YAML attack configs in {self.ctx.settings.presets}"),
                                          elem_id="preset")
                with gr.Row():
                    self.targets = gr.Textbox("0", label="Target classes", info="e.g. 0 · 0,3,7 · 0-9",
                                              elem_id="targets")
                    self.run_name = gr.Textbox(label="Run name", placeholder="defaults to the preset's name")
                # Launch and its status stay in view (sticky) however far down the form the user scrolls.
                with gr.Group(elem_id="launch-bar"):
                    self.launch = gr.Button("Launch", variant="primary", elem_id="launch")
                    self.status = gr.Markdown(elem_id="launch-status")
                self.method = gr.Radio(list(METHOD_LABELS), value=next(iter(METHOD_LABELS)), label="Method",
                                       info="our attack, or a peer on the same T and identities (for Compare)",
                                       elem_id="method")
                self._picker()
                self._peer_widgets()
                self._form_widgets()
                # Handlers take and return values in form.specs order, whatever the visual layout.
                self.fields = [self.widgets[s] for s in self.form.specs]
                # No file_types filter: the browser would drop a refused file without a word and Launch would
                # then attack the preset's T. Every file reaches check_upload, which says why it is refused.
                self.target_model = gr.Dropdown(
                    [("the preset's T", "")] + shipped_targets(kind), value="", label="Target model T",
                    info="the benchmark's shipped targets: undefended and defended (NegLS, BiDO-HSIC, MID) on "
                         "SynthID; VGG, softmax regression and MLP on ORL. An upload below takes precedence",
                    elem_id="target-model")
                self.upload = gr.File(label="Custom target classifier T (optional, .safetensors only)",
                                      type="filepath", height=90, elem_id="upload")
            with gr.Column(scale=3, min_width=480):
                self.live = build_live_panel(self.ctx)

    def _picker(self) -> None:
        demo = self.ctx.settings.demo
        label = f"Target identities: click one to attack it ({PRIVATE_LABEL})" if demo else "Target identities"
        self.picker = gr.Gallery(label=label, columns=10, fit_columns=False, height=220, allow_preview=False,
                                 object_fit="contain", visible=demo, elem_id="picker", elem_classes=["pixelated"])
        self.picker_note = gr.Markdown(elem_id="picker-note")
        self.references = gr.Gallery(label=f"Selected class: {PRIVATE_LABEL}", columns=6, fit_columns=False,
                                     height=120, allow_preview=False, visible=False, elem_id="references",
                                     elem_classes=["pixelated"])

    def _peer_widgets(self) -> None:
        """One hidden group per peer: its settings (the form's seed, keep, T and device apply too)."""
        from mia_app.peers.running import METHODS

        for kind, specs in self.peer_form.specs.items():
            with gr.Group(visible=False, elem_id=f"peer-{kind}") as group:
                gr.Markdown(f"**{METHODS[kind]}**: seed, keep, device and T come from the form below "
                            "(Advanced); its own settings:")
                values = self.peer_form.default_values(kind)
                with gr.Row():
                    self.peer_widgets[kind] = [widget(s, v, label=".".join(s.path), min_width=140)
                                               for s, v in zip(specs, values, strict=True)]
            self.peer_groups[kind] = group

    def _form_widgets(self) -> None:
        f = self.form
        with gr.Accordion("Schemes", open=True) as schemes:
            self.ours_sections.append(schemes)
            if f.toggles:
                evidence = scheme_evidence(self.ctx.settings.results)  # refreshed on every page load (wire)
                with gr.Row():
                    self._add(f.toggles, lambda s, v: widget(s, v, info=evidence.get(s.path[-1]), min_width=140))
                with gr.Accordion("Scheme parameters", open=False):
                    self._add(f.scheme_params, lambda s, v: widget(s, v))
            else:
                gr.Markdown("This version of the attack config has no `schemes` section: baseline attack only.")
        with gr.Accordion("Steps and loss weights", open=True) as steps:
            self.ours_sections.append(steps)
            with gr.Row():
                self._add(f.steps, lambda s, v: widget(s, v, label=f"{s.path[0]} steps", info=self._steps_info()))
            defaults = ", ".join(f"{k} {v}" for k, v in SCHEME_DEFAULT_WEIGHTS.items())
            gr.Markdown(f"Weight 0 turns a term off; a scheme's own term left at 0 takes its default ({defaults}) "
                        "when the scheme is on.")
            with gr.Row():
                for stage in (1, 2):
                    with gr.Column(min_width=160):
                        gr.Markdown(f"**Stage {stage}** ({'embedding c_y' if stage == 1 else 'LoRA'})")
                        specs = [s for s in f.weights if s.path[0] == f"stage{stage}"]
                        self._add(specs, lambda s, v: widget(s, v, label=f"λ {s.label}", minimum=0))
        with gr.Accordion("Advanced", open=False):
            self._add(f.advanced, lambda s, v: widget(s, v, label=".".join(s.path)))

    def _add(self, specs: list[FieldSpec], make) -> None:
        for spec in specs:
            self.widgets[spec] = make(spec, self.initial.get(spec))

    def _initial_values(self, preset: str | None) -> dict[FieldSpec, object]:
        """The default preset's values, so the form is right before the page's load event refreshes it."""
        try:
            cfg = load_preset(self.ctx.presets()[preset]) if preset else None
        except (KeyError, ValueError):  # an invalid preset: empty widgets, on_preset explains on load
            return {}
        return dict(zip(self.form.specs, self.form.values_from(cfg), strict=True)) if cfg else {}

    def _steps_info(self) -> str | None:
        cap = self.ctx.settings.max_steps
        return f"at most {cap} on this server" if cap else None

    # ---- events -----------------------------------------------------------------------------------------
    def wire(self, demo: gr.Blocks) -> None:
        preset_outputs = [*self.fields, self.picker, self.picker_note, self.references, self.banner]
        self.preset.change(self.on_preset, [self.preset, self.targets], preset_outputs)
        self.benchmark.change(self.on_benchmark, [self.benchmark, self.preset], [self.preset, self.target_model])
        demo.load(self.on_preset, [self.preset, self.targets], preset_outputs)
        if self.form.toggles:
            demo.load(self.on_evidence, None, [self.widgets[s] for s in self.form.toggles])
        self.picker.select(self.on_pick, [self.preset], [self.targets, self.references])
        # Typed targets move the references too, so they never show a class other than the first target.
        self.targets.change(self.on_targets, [self.preset, self.targets], [self.references])
        groups = [*self.ours_sections, *self.peer_groups.values()]
        self.method.change(self.on_method, [self.method], groups)
        inputs = {self.preset, self.targets, self.run_name, self.upload, self.target_model, self.method, *self.fields,
                  *[w for ws in self.peer_widgets.values() for w in ws]}
        self.launch.click(self.on_launch, inputs, [self.status, self.live.watch])
        self.upload.change(self.on_upload, [self.preset, self.upload], [self.status])

    def on_evidence(self) -> list:
        """Each scheme toggle's tooltip: what the scheme ablations measured for it, read again on every page load
        (an ablation still running adds its cells as they finish)."""
        evidence = scheme_evidence(self.ctx.settings.results)
        return [gr.update(info=evidence.get(s.path[-1])) for s in self.form.toggles]

    def on_upload(self, preset: str | None, upload: str | None) -> str:
        """Say at once whether the uploaded T will be used; a refused one also blocks Launch (submission)."""
        if not upload:
            return ""
        try:
            cfg = load_preset(self.ctx.presets()[preset]) if preset in self.ctx.presets() else None
            n_classes = identities(cfg.data, self.ctx.settings.demo).n_classes if cfg else None
            meta = check_upload(upload, n_classes)
        except (LaunchError, ValidationError, ValueError) as err:
            msg = self.ctx.redact(explain(err))
            gr.Warning(msg)
            return f"⚠️ {msg}. Launch is refused until the file is removed or replaced."
        return f"✅ custom T: {Path(upload).name} ({meta['arch']}, {meta['n_classes']} classes) will be attacked"

    def on_method(self, label: str | None):
        """Our attack's sections for ours, the chosen peer's settings otherwise."""
        method = METHOD_LABELS.get(label or "", OURS)
        ours = [gr.update(visible=method == OURS) for _ in self.ours_sections]
        return *ours, *[gr.update(visible=kind == method) for kind in self.peer_groups]

    def on_benchmark(self, kind: str | None, current: str | None):
        """Another benchmark: its presets (the current one kept if it belongs) and its shipped targets."""
        presets = presets_of(self.ctx.presets(), kind)
        names = list(presets)
        value = current if current in presets else default_preset(presets, self.ctx.settings.default_preset)
        targets = [("the preset's T", "")] + shipped_targets(kind)
        return gr.update(choices=names, value=value), gr.update(choices=targets, value="")

    def on_preset(self, name: str | None, targets_text: str | None = None,
                  progress: gr.Progress = gr.Progress(track_tqdm=True)):  # noqa: B008 (Gradio's idiom)
        # track_tqdm: the first load of a benchmark generates it (~40 s for SynthID on 2 cores); its tqdm bars
        # then show as a progress bar on the form instead of a bare spinner.
        presets = self.ctx.presets()
        if not name or name not in presets:
            msg = f"No attack presets in `{self.ctx.settings.presets}`: add a YAML AttackConfig there."
            return *[gr.skip()] * len(self.fields), [], msg, gr.update(visible=False), f"⚠️ {msg}"
        try:
            cfg = load_preset(presets[name])
        except (ValidationError, ValueError) as err:
            reason = explain(err) if isinstance(err, ValidationError) else str(err)
            gr.Warning(f"preset {name} is invalid: {reason}")
            return *[gr.skip()] * len(self.fields), gr.skip(), gr.skip(), gr.skip(), f"⚠️ preset {name}: {reason}"
        ids = identities(cfg.data, self.ctx.settings.demo)
        if ids.error:
            note = f"Pick classes by index ({ids.error})."
        elif ids.thumbnails:
            note = f"{ids.n_classes} identities (classes 0–{ids.n_classes - 1})."
        else:
            note = f"{ids.n_classes} identities: type class indices 0–{ids.n_classes - 1} above."
        thumbs = [(img, f"class {y}") for y, img in enumerate(ids.thumbnails)]
        problems = missing_models(cfg)
        banner = self.ctx.redact("\n".join(f"⚠️ {p}" for p in problems))
        if problems:
            banner += "\n\nThe dashboard works meanwhile (Compare, Jobs, Ablation); Launch needs these files."
        refs = reference_images(ids, targets_text)
        return *self.form.values_from(cfg), thumbs, note, gr.update(value=refs, visible=bool(refs)), banner

    def on_pick(self, preset: str | None, evt: gr.SelectData):
        y = str(int(evt.index))
        return y, self.on_targets(preset, y)

    def on_targets(self, preset: str | None, targets_text: str | None):
        presets = self.ctx.presets()
        refs = []
        if preset in presets:  # identities() is cached: a keystroke costs a YAML read, not a benchmark load
            try:
                ids = identities(load_preset(presets[preset]).data, self.ctx.settings.demo)
            except (ValidationError, ValueError):  # an invalid preset: on_preset already says why
                ids = None
            refs = reference_images(ids, targets_text) if ids else []
        return gr.update(value=refs, visible=bool(refs))

    def on_launch(self, data: dict, request: gr.Request):
        f = self.ctx
        presets = f.presets()
        name = data[self.preset]
        if name not in presets:
            gr.Warning("choose a preset first")
            return "⚠️ choose a preset first", gr.skip()
        try:
            cfg_data = load_preset(presets[name]).data
            ids = identities(cfg_data, f.settings.demo)
            method = METHOD_LABELS.get(data[self.method] or "", OURS)
            common = (f.store, f.settings, self.form, presets[name], [data[c] for c in self.fields])
            if method == OURS:
                job = submit_attack(*common, data[self.targets], data[self.run_name], data[self.upload],
                                    f.session(request), ids.n_classes, data[self.target_model] or None)
            else:
                try:
                    peer = self.peer_form.build(method, [data[w] for w in self.peer_widgets[method]])
                except ValueError as err:
                    raise LaunchError(str(err)) from err
                job = submit_peer(*common, peer, data[self.targets], data[self.run_name], data[self.upload],
                                  f.session(request), ids.n_classes, data[self.target_model] or None)
        except (LaunchError, ValidationError) as err:
            msg = self.ctx.redact(explain(err))
            gr.Warning(msg)
            return f"⚠️ {msg}", gr.skip()
        f.supervisor.ensure()
        log.info("queued job %d (%s) for targets %s", job.id, job.name, job.targets)
        return (f"✅ queued **job {job.id}** → `{self.ctx.redact(job.run_dir)}`",
                gr.update(choices=job_choices(f.visible_jobs(request)), value=job.id))

