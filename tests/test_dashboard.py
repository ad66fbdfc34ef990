"""The dashboard's logic without a browser: settings, the config form, launch validation, folder views."""

from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from mia_app.attack.config import AttackConfig, StageConfig
from mia_app.dashboard.ablation_tab import list_ablations, show_ablation
from mia_app.dashboard.attack_form import AttackForm, scheme_specs
from mia_app.dashboard.settings import DashboardSettings
from mia_app.dashboard.submission import LaunchError, submit_attack
from mia_app.service.jobs import split_evaluate
from mia_app.service.store import JobStore
from tests.helpers import tiny_attack_config


def test_settings_from_env():
    s = DashboardSettings.from_env({"MIA_AUTH": "ann:secret", "MIA_MAX_STEPS": "50", "MIA_RUNS_DIR": "/x/runs",
                                    "MIA_DEMO": "0"})
    assert s.accounts().check("ann", "secret") and not s.accounts().check("ann", "wrong")
    assert s.hosted and s.max_steps == 50 and not s.demo
    assert "secret" not in s.model_dump_json()  # only the salted hash is kept
    assert str(s.db) == "/x/runs/jobs.sqlite"
    assert not DashboardSettings.from_env({}).hosted
    with pytest.raises(ValidationError, match="user:password"):
        DashboardSettings.from_env({"MIA_AUTH": "nopassword"})


def test_form_round_trips_a_preset_and_finds_the_scheme_toggles(tmp_path):
    form = AttackForm.from_model()
    assert [s.path[-1] for s in form.toggles] == ["B3", "A", "C", "D"]
    assert ("schemes", "contrast_margin") in [s.path for s in form.scheme_params]
    cfg = tiny_attack_config(tmp_path)
    assert AttackConfig.model_validate(form.build(cfg, form.values_from(cfg))) == cfg
    values = form.values_from(cfg)
    values[[s.path for s in form.specs].index(("schemes", "D"))] = True
    values[[s.path for s in form.specs].index(("stage1", "weights", "perc"))] = 0  # 0 drops the term
    built = AttackConfig.model_validate(form.build(cfg, values, name="mine"))
    assert built.schemes.D and "perc" not in built.stage1.weights and built.name == "mine"


def test_scheme_toggles_follow_the_config_shape():
    class NoSchemes(BaseModel):
        stage1: StageConfig

    class DictSchemes(BaseModel):
        schemes: dict[str, bool] = {}

    assert scheme_specs(NoSchemes) == ([], [])
    toggles, params = scheme_specs(DictSchemes)
    assert [t.path for t in toggles] == [("schemes", k) for k in ("B3", "A", "C", "D")] and params == []


def _launch(tmp_path, settings=None, targets="0", upload=None, **overrides):
    tmp_path.mkdir(exist_ok=True)
    cfg = tiny_attack_config(tmp_path, **overrides)
    preset = tmp_path / "tiny.yaml"
    preset.write_text(cfg.to_yaml())
    form = AttackForm.from_model()
    settings = settings or DashboardSettings(runs=tmp_path / "runs", db=tmp_path / "runs" / "jobs.sqlite")
    store = JobStore(settings.db, settings.runs)
    return store, lambda values=None, **kw: submit_attack(
        store, settings, form, preset, values or form.values_from(cfg), kw.get("targets", targets), None,
        kw.get("upload", upload), "sess", 4)


def test_only_small_runs_are_judged_as_they_end_and_only_with_an_e_that_exists(tmp_path):
    base = dict(runs=tmp_path / "runs", db=tmp_path / "runs" / "jobs.sqlite")
    _, launch = _launch(tmp_path / "a", DashboardSettings(**base, auto_evaluate=1))
    assert "evaluate" in launch(targets="0").config and "evaluate" not in launch(targets="0,1").config
    _, launch = _launch(tmp_path / "b", DashboardSettings(**base, auto_evaluate=0))
    assert "evaluate" not in launch().config
    _, launch = _launch(tmp_path / "c", DashboardSettings(**base, eval_model="assets/missing.safetensors"))
    assert "evaluate" not in launch().config
    assert DashboardSettings.from_env({"MIA_AUTO_EVALUATE": "3"}).auto_evaluate == 3


def test_launch_validates_every_input_with_a_readable_message(tmp_path):
    store, launch = _launch(tmp_path)
    form = AttackForm.from_model()
    job = launch()
    assert job.status == "queued" and job.targets == [0] and job.config["name"] == "tiny"
    with pytest.raises(LaunchError, match="out of range"):
        launch(targets="7")
    with pytest.raises(LaunchError, match="targets"):
        launch(targets="zero")
    assert job.config["evaluate"] == {"eval_model": "assets/eval.safetensors"}  # a small run is judged as it ends
    values = form.values_from(AttackConfig.model_validate(split_evaluate(job.config)[0]))
    values[[s.path for s in form.specs].index(("stage1", "steps"))] = -1
    with pytest.raises(LaunchError, match=r"stage1\.steps: Input should be greater than or equal to 0"):
        launch(values)
    bad_upload = tmp_path / "t.pt"
    bad_upload.write_bytes(b"pickle")
    with pytest.raises(LaunchError, match=r"\.safetensors"):
        launch(upload=str(bad_upload))


def test_hosted_limits_and_missing_models(tmp_path):
    settings = DashboardSettings(runs=tmp_path / "runs", db=tmp_path / "runs" / "jobs.sqlite", auth="u:p",
                                 max_steps=1, max_queued=1)
    _, launch = _launch(tmp_path, settings)
    with pytest.raises(LaunchError, match="stage1.steps is limited to 1"):
        launch()
    _, launch = _launch(tmp_path, settings, stage1={"steps": 1, "weights": {"id": 1.0}},
                        stage2={"steps": 1, "weights": {"id": 1.0}})
    launch()
    with pytest.raises(LaunchError, match="1 queued or running"):
        launch()
    _, launch = _launch(tmp_path / "b", prior=str(tmp_path / "nowhere"))
    with pytest.raises(LaunchError, match="prior not found .* train-prior"):
        launch()


def test_ablation_folders_are_listed_with_their_table(tmp_path):
    assert list_ablations(tmp_path / "results") == []
    folder = tmp_path / "results" / "ablation-000001-x"
    folder.mkdir(parents=True)
    (folder / "table.md").write_text("| scheme | acc |")
    (folder / "gains.png").write_bytes(b"")
    assert list_ablations(tmp_path / "results") == [folder]
    view = show_ablation(folder)
    assert view.full == "| scheme | acc |" and list(view.figures) == ["gains.png"]
    assert "still running" in view.compact.values[0][0]  # no summary.json yet
    (folder / "defenses.md").write_text("# every attack on every target")  # an ablation over several targets
    assert show_ablation(folder).full == "# every attack on every target"
    (folder / "acceptance.md").write_text("### The seed's acceptance table")  # a scheme ablation leads with it
    (folder / "why-B3.png").write_bytes(b"")
    view = show_ablation(folder)
    assert view.full.startswith("### The seed's acceptance table\n") and "why-B3.png" in view.figures


@pytest.mark.parametrize("name", ["ablation-scoreboard", "ablation-defenses"])
def test_the_ablation_tab_leads_with_a_compact_table_of_the_committed_results(name):
    """E acc@1, dlib top-1 and KNN with CIs and Δ vs the floor: 8 columns (9 with T) instead of 21."""
    from mia_app.assets import REPO_ROOT

    view = show_ablation(REPO_ROOT / "results" / name)
    frame = view.compact
    assert list(frame.columns)[-6:] == ["E acc@1 % ↑", "Δ E acc@1 vs floor", "dlib top-1 % ↑ (chance 1.0)",
                                        "Δ dlib top-1 vs floor", "KNN dist ↓", "Δ KNN vs floor"]
    floor = frame[frame["row"] == "floor"].iloc[0]
    assert floor["E acc@1 % ↑"] == "84.5 [79.0, 89.0]" and floor["Δ E acc@1 vs floor"] == "—"
    assert view.figures and all(Path(p).is_file() for p in view.figures.values())
    if name == "ablation-defenses":
        assert frame["T"].iloc[0] == "target (none)" and "target-negls (negls)" in set(frame["T"])


def test_an_ablation_is_queued_once_per_output_folder(tmp_path):
    from mia_app.dashboard.ablation_tab import queue_ablation
    from mia_app.dashboard.context import DashboardContext

    settings = DashboardSettings(runs=tmp_path / "runs", db=tmp_path / "runs" / "jobs.sqlite",
                                 results=tmp_path / "results", start_worker=False)
    ctx = DashboardContext.create(settings)
    config = tmp_path / "quick.yaml"
    config.write_text("name: quick\nattack: configs/attack/cpu-quick.yaml\ntargets: 0-1\nvariants: {baseline: {}}\n")
    assert "queued ablation job 1" in queue_ablation(ctx, config, None)
    job = ctx.store.get(1)
    assert job.kind == "cli" and job.run_dir == str(tmp_path / "results" / "ablation-quick")
    assert job.config["argv"][:3] == ["ablate", "--config", str(config)]
    with pytest.raises(LaunchError, match="already running"):
        queue_ablation(ctx, config, None)
    config.write_text("name: quick\nattack: x.yaml\ntargets: 0\nvariants: {baseline: {Z: true}}\n")
    with pytest.raises(LaunchError, match="quick.yaml is invalid"):
        queue_ablation(ctx, config, None)


def test_compare_evaluations_obey_the_per_session_queue_limit(tmp_path):
    from types import SimpleNamespace

    from mia_app.dashboard.compare_tab import queue_evaluations
    from mia_app.dashboard.context import DashboardContext

    settings = DashboardSettings(runs=tmp_path / "runs", db=tmp_path / "runs" / "jobs.sqlite", auth="u:p",
                                 max_queued=2, start_worker=False)
    ctx = DashboardContext.create(settings)
    alice, bob = SimpleNamespace(username="alice", session_hash="a"), SimpleNamespace(username="bob", session_hash="b")
    names = []
    for i in range(3):  # three finished attacks of alice's
        job = ctx.store.submit("attack", f"run{i}", {}, [0], "alice")
        ctx.store.claim("w")
        ctx.store.finish(job.id, "done")
        names.append(Path(job.run_dir).name)
    with pytest.raises(LaunchError, match="3 more jobs would exceed the limit of 2 .*choose at most 2"):
        queue_evaluations(ctx, names, alice)
    assert ctx.store.count_active("alice") == 0  # all or nothing
    assert "queued evaluation jobs [4, 5]" in queue_evaluations(ctx, names[:2], alice)
    assert ctx.store.get(4).config["argv"][:2] == ["evaluate", "--run"] and ctx.store.get(4).session == "alice"
    with pytest.raises(LaunchError, match="you already have 2 queued or running jobs"):
        queue_evaluations(ctx, names[2:], alice)
    with pytest.raises(LaunchError, match="choose runs to evaluate"):
        queue_evaluations(ctx, names, bob)  # bob sees none of alice's runs on a hosted server


def test_references_follow_the_first_typed_target():
    import numpy as np

    from mia_app.dashboard.attack_tab import reference_images
    from mia_app.dashboard.identities import Identities

    img = {y: np.full((4, 4, 3), y, np.uint8) for y in range(3)}
    ids = Identities(3, [img[y] for y in range(3)], {y: [img[y], img[y]] for y in range(3)})
    refs = reference_images(ids, "2, 0-1")
    assert [cap for _, cap in refs] == ["class 2", "class 2"] and int(refs[0][0][0, 0, 0]) == 2
    assert [cap for _, cap in reference_images(ids, "1-2")] == ["class 1", "class 1"]
    for text in ("", None, "3-", "a", ",", "1-2-3"):  # half-typed or wrong: nothing, and no error
        assert reference_images(ids, text) == []
    assert reference_images(ids, "7") == []  # out of range: no images for it
    assert reference_images(Identities(3), "1") == []  # MIA_DEMO=0: no references at all


def test_the_attack_tab_shows_the_references_of_the_typed_target(tmp_path):
    from mia_app.dashboard.attack_tab import AttackTab
    from mia_app.dashboard.context import DashboardContext

    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "tiny.yaml").write_text(tiny_attack_config(tmp_path).to_yaml())
    settings = DashboardSettings(runs=tmp_path / "runs", db=tmp_path / "runs" / "jobs.sqlite",
                                 presets=tmp_path / "presets", start_worker=False)
    tab = AttackTab(DashboardContext.create(settings))
    shown = tab.on_targets("tiny", "3,1")
    assert shown["visible"] and {cap for _, cap in shown["value"]} == {"class 3"}
    assert tab.on_targets("tiny", "3-")["visible"] is False and tab.on_targets("nope", "1")["value"] == []


def test_method_selector_queues_peer_jobs_validated_by_the_peer_config(tmp_path):
    from mia_app.dashboard.peer_form import METHOD_LABELS, PeerForm
    from mia_app.dashboard.submission import submit_peer

    tmp_path.mkdir(exist_ok=True)
    cfg = tiny_attack_config(tmp_path)
    preset = tmp_path / "tiny.yaml"
    preset.write_text(cfg.to_yaml())
    form, peers = AttackForm.from_model(), PeerForm.build_specs()
    assert set(METHOD_LABELS.values()) == {"ours", "ppa", "selection_only", "miface"}
    assert ("steps",) in [s.path for s in peers.specs["ppa"]] and ("final", "iterations") in [
        s.path for s in peers.specs["ppa"]]
    settings = DashboardSettings(runs=tmp_path / "runs", db=tmp_path / "runs" / "jobs.sqlite", auth="u:p",
                                 max_steps=50, max_queued=5)
    store = JobStore(settings.db, settings.runs)

    def launch(kind, **changes):
        values = peers.default_values(kind)
        for path, v in changes.items():
            values[[".".join(s.path) for s in peers.specs[kind]].index(path)] = v
        return submit_peer(store, settings, form, preset, form.values_from(cfg), peers.build(kind, values), "0,2",
                           None, None, "sess", 4)

    job = launch("ppa", steps=20)
    assert job.kind == "peer" and job.name == "ppa" and job.targets == [0, 2]
    assert job.config["peer"]["steps"] == 20 and AttackConfig.model_validate(job.config["attack"]).keep == cfg.keep
    assert launch("selection_only").config["peer"]["source"] == "public"
    with pytest.raises(LaunchError, match="steps are limited to 50"):
        launch("ppa", steps=500)
    with pytest.raises(LaunchError, match="lr"):
        launch("ppa", lr=-1.0)
    with pytest.raises(LaunchError, match="init_noise"):
        launch("miface", images_per_class=2)
    with pytest.raises(ValueError, match="required"):
        peers.build("ppa", [None] * len(peers.specs["ppa"]))


def test_compare_lists_peer_runs_with_their_method(tmp_path):
    import json

    from mia_app.dashboard.compare_tab import diff_table, metrics_table
    from mia_app.run_folder import RunFolder

    ours, peer = tmp_path / "ours", tmp_path / "ppa"
    for folder in (ours, peer):
        folder.mkdir()
        (folder / "config.yaml").write_text(tiny_attack_config(tmp_path).to_yaml())
        (folder / "summary.json").write_text(json.dumps({"seconds": 1.0}))
    (peer / "method.json").write_text(json.dumps({"method": "ppa"}))
    header, rows = metrics_table([RunFolder(ours), RunFolder(peer)])
    assert header == ["metric", "ours", "ppa", "n", "note"] and ["method", "ours (baseline)", "ppa", "", ""] in rows
    assert ["evaluated with E", "no: press Evaluate", "no: press Evaluate", "", ""] in rows
    # an evaluated run: every number with its CI and n; the configs' differences in their own table
    (peer / "metrics.json").write_text(json.dumps({"n_images": 4, "n_identities": 2, "E_acc@1": 0.75,
                                                   "E_acc@1_ci95": [0.3, 0.95], "knn_dist": 12.0}))
    (peer / "config.yaml").write_text(tiny_attack_config(tmp_path, seed=3).to_yaml())
    header, rows = metrics_table([RunFolder(ours), RunFolder(peer)])
    by_metric = {r[0]: r[1:] for r in rows}
    assert by_metric["E acc@1 % ↑"][:3] == ["", "75.0 [30.0, 95.0]", "4 images, 2 identities"]
    diff = diff_table([RunFolder(ours), RunFolder(peer)])
    assert diff.values.tolist() == [["seed", "0", "3"]]


def test_the_scoreboard_is_listed_first(tmp_path):
    for name in ("ablation-quick", "ablation-scoreboard", "ablation-zeta"):
        (tmp_path / name).mkdir()
    assert [p.name for p in list_ablations(tmp_path)] == ["ablation-scoreboard", "ablation-zeta", "ablation-quick"]


def test_the_target_picker_lists_shipped_targets_and_launch_uses_the_choice(tmp_path):
    from mia_app.dashboard.targets import shipped_targets

    choices = shipped_targets("synthid")
    assert choices[0][1] == "assets/target.safetensors" and "undefended" in choices[0][0]
    assert all("private-test acc" in label for label, _ in choices)
    store, launch = _launch(tmp_path)
    form = AttackForm.from_model()
    cfg = AttackConfig.model_validate(split_evaluate(launch().config)[0])
    job = submit_attack(store, DashboardSettings(runs=tmp_path / "runs", db=tmp_path / "runs" / "jobs.sqlite"),
                        form, tmp_path / "tiny.yaml", form.values_from(cfg), "0", None, None, "sess", None,
                        "assets/target.safetensors")
    assert job.config["target"] == "assets/target.safetensors"
    with pytest.raises(LaunchError, match="not a shipped target"):
        submit_attack(store, DashboardSettings(runs=tmp_path / "runs", db=tmp_path / "runs" / "jobs.sqlite"),
                      form, tmp_path / "tiny.yaml", form.values_from(cfg), "0", None, None, "sess", None,
                      "/etc/passwd")


def test_a_defended_checkpoint_uploads_like_any_and_compare_names_the_defense(tmp_path):
    from mia_app.dashboard.submission import check_upload
    from mia_app.models.classifiers import build_classifier, save_classifier
    from mia_app.run_folder import RunFolder

    mid = tmp_path / "mid.safetensors"
    save_classifier(build_classifier("vgg", 4, 8, bottleneck=4), mid,
                    {"role": "target", "arch": "vgg", "width": 8, "n_classes": 4, "resolution": 32,
                     "benchmark": "tiny", "benchmark_sha256": "-", "defense": "mid", "bottleneck": 4})
    assert check_upload(mid, 4)["defense"] == "mid"
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(tiny_attack_config(tmp_path, target=str(mid)).to_yaml())
    assert RunFolder(run).target() == "mid (mid)"


def test_the_benchmark_selector_filters_presets_targets_and_evaluation(tmp_path):
    """SynthID / ORL: each offers its own presets and shipped targets; a target of the other benchmark is refused at
    launch; an ORL run is evaluated with ORL's E; Compare refuses runs of two benchmarks."""
    from mia_app.dashboard.compare_tab import eval_model_for, metrics_table
    from mia_app.dashboard.presets import list_presets, preset_benchmark, presets_of
    from mia_app.dashboard.targets import check_shipped_target, shipped_eval, shipped_targets
    from mia_app.run_folder import RunFolder

    presets = list_presets(Path("configs/attack"))
    assert preset_benchmark(presets["orl"]) == "orl" and preset_benchmark(presets["cpu-quick"]) == "synthid"
    assert set(presets_of(presets, "orl")) == {"orl", "orl-pixel"} and "cpu-quick" in presets_of(presets, "synthid")
    orl_targets = [p for _, p in shipped_targets("orl")]
    assert orl_targets[0] == "assets/orl/mlp.safetensors" and "assets/orl/softmax.safetensors" in orl_targets
    assert not set(orl_targets) & {p for _, p in shipped_targets("synthid")}
    assert any("softmax regression" in label for label, _ in shipped_targets("orl"))
    with pytest.raises(ValueError, match="another benchmark"):
        check_shipped_target("assets/orl/target.safetensors", "synthid")
    assert shipped_eval("orl") == "assets/orl/eval.safetensors"

    class Ctx:
        settings = DashboardSettings(runs=tmp_path / "runs", db=tmp_path / "jobs.sqlite")

    runs = []
    for name, data in (("synth", {"kind": "synthid"}), ("orl", {"kind": "orl"})):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.yaml").write_text(f"data: {{kind: {data['kind']}}}\n")
        runs.append(RunFolder(tmp_path / name))
    assert [eval_model_for(Ctx, r) for r in runs] == [Ctx.settings.eval_model, "assets/orl/eval.safetensors"]
    headers, rows = metrics_table(runs)
    assert ["benchmark", "synthid", "orl", "", ""] in rows


def test_scheme_d_shows_raw_log_variances_and_sigma_and_compare_never_overlays_the_total():
    import math

    from mia_app.dashboard.plots import COMPARE_KEYS, compare_figure, weights_figure

    records = [{"stage": 1, "batch": 0, "logs": {"w_id": 0.5 + i / 100, "w_cls": 0.5 - i / 100, "s_id": -i / 10,
                                                 "s_cls": i / 10, "L_cls": 1.0, "L_id": 0.5, "L_prior": 0.2,
                                                 "total": 9.0, "T_conf": 0.5}} for i in range(3)]
    fig = weights_figure(records)
    names = [(t.name, t.xaxis) for t in fig.data]
    assert sorted(names) == [("cls", "x"), ("cls", "x2"), ("id", "x"), ("id", "x2")]
    s_id = next(t for t in fig.data if t.name == "id" and t.xaxis == "x2")
    assert list(s_id.y) == [0.0, -0.1, -0.2] and s_id.customdata[2] == pytest.approx(math.exp(-0.1))
    assert fig.layout.yaxis.range is None  # auto-scaled: weights near 0.25 stay readable
    cmp = compare_figure({"a": records, "b": records})
    assert len(cmp.data) == 2 * len(COMPARE_KEYS) and "total" not in COMPARE_KEYS
    assert [a.text for a in cmp.layout.annotations] == ["L_cls", "L_id", "L_prior", "T confidence"]


def test_jobs_say_what_they_run_and_unnamed_jobs_are_named_after_their_schemes(tmp_path):
    from mia_app.dashboard.jobs_tab import HEADERS, job_row, job_settings

    store, launch = _launch(tmp_path)
    form = AttackForm.from_model()
    cfg = tiny_attack_config(tmp_path)
    values = form.values_from(cfg)
    values[[s.path for s in form.specs].index(("schemes", "D"))] = True
    job = launch(values)
    assert job.name == "tiny-D" and job.run_dir.endswith("-tiny-D")
    assert job_settings(job) == "T target · D · 2+2 steps · seed 0"
    assert dict(zip(HEADERS, job_row(job, 0.0), strict=True))["settings"] == job_settings(job)
    peer = store.submit("peer", "ppa", {"attack": cfg.model_dump(mode="json"),
                                        "peer": {"kind": "ppa", "steps": 4, "search_space": 32}}, [0])
    assert job_settings(peer) == "T target · ppa · steps 4 · search_space 32 · seed 0"
    cli = store.submit("cli", "ablation-x", {"argv": ["ablate", "--config", "x.yaml"]}, [])
    assert job_settings(cli) == "ablate --config x.yaml"
