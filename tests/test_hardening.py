"""Every bad input of the hostile-user pass refused in one line, naming the field (CLI and config layer)."""

from __future__ import annotations

import json
import math
import shutil
import time

import pytest
import torch
from pydantic import ValidationError
from safetensors.torch import load_file, save_file

from mia_app.attack.config import AttackConfig
from mia_app.cli import main
from mia_app.user_input import MAX_YAML_BYTES, dump_yaml, explain, parse_targets, parse_yaml, read_yaml
from tests.helpers import save_tiny_target, tiny_attack_config


def _cli(capsys, *argv: str) -> tuple[int, list[str]]:
    rc = main(list(argv))
    err = capsys.readouterr().err.strip().splitlines()
    return rc, err


def _with(cfg: AttackConfig, **changes) -> dict:
    data = cfg.model_dump(mode="json")
    for dotted, value in changes.items():
        node = data
        *path, last = dotted.split("__")
        for key in path:
            node = node[key]
        node[last] = value
    return data


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, float("1e309")])
@pytest.mark.parametrize("field", ["stage1__weights__id", "stage1__lr", "stage2__code_lr", "sampler__strength",
                                   "schemes__contrast_scale", "schemes__attr_pose_weight", "lora__alpha"])
def test_non_finite_floats_are_refused_naming_the_field(tmp_path, field, value):
    cfg = tiny_attack_config(tmp_path)
    with pytest.raises(ValidationError) as err:
        AttackConfig.model_validate(_with(cfg, **{field: value}))
    assert field.replace("__", ".") in explain(err.value)


def test_huge_weights_and_learning_rates_are_refused_with_the_bound(tmp_path):
    cfg = tiny_attack_config(tmp_path)
    with pytest.raises(ValidationError, match=r"loss weights must be in \[0, 1000\]"):
        AttackConfig.model_validate(_with(cfg, stage1__weights__id=1e30))
    with pytest.raises(ValidationError, match="less than or equal to 10"):
        AttackConfig.model_validate(_with(cfg, stage1__lr=1e6))
    with pytest.raises(ValidationError, match="less than or equal to 100"):
        AttackConfig.model_validate(_with(cfg, schemes__perc_mid_weight=1e9))


def test_targets_are_each_class_once_and_ranges_are_sane():
    assert parse_targets("0-3,7") == [0, 1, 2, 3, 7]
    for text, message in (("0,0", "each class at most once"), ("0-3,2", "each class at most once"),
                          ("5-1", "runs backwards"), ("0-99999999", "more than 100000 classes"),
                          ("x", "not a class index"), ("", "no targets")):
        with pytest.raises(ValueError, match=message):
            parse_targets(text)


def test_cli_refuses_duplicate_targets_in_one_line(tmp_path, capsys):
    config = tmp_path / "a.yaml"
    config.write_text(tiny_attack_config(tmp_path).to_yaml())
    rc, err = _cli(capsys, "attack", "--config", str(config), "--targets", "0,0", "--out", str(tmp_path / "o"))
    assert rc == 2 and err == ["error: each class at most once; repeated: [0]"]


def test_an_alias_bomb_is_refused_at_once_and_big_files_unread(tmp_path):
    bomb = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="anchors and aliases"):
        parse_yaml(bomb)
    assert time.perf_counter() - t0 < 1.0
    big = tmp_path / "big.yaml"
    big.write_text("x: " + "1" * (MAX_YAML_BYTES + 1))
    with pytest.raises(ValueError, match="larger than 256 KiB"):
        read_yaml(big)
    with pytest.raises(ValueError, match="expected a mapping"):
        parse_yaml("just a scalar")
    # what we write, we read back: a repeated object is written out again, not as an alias
    shared = [1, 2]
    assert parse_yaml(dump_yaml({"a": shared, "b": shared})) == {"a": [1, 2], "b": [1, 2]}


def test_a_yaml_scalar_or_a_system_file_as_config_is_one_line(tmp_path, capsys):
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("hello\n")
    for config in (scalar, "/etc/passwd"):
        rc, err = _cli(capsys, "attack", "--config", str(config), "--targets", "0", "--out", str(tmp_path / "o"))
        assert rc == 2 and len(err) == 1 and "expected a mapping" in err[0]


def test_prior_paths_are_folders_and_missing_ones_are_not_hub_ids(tmp_path, capsys, monkeypatch):
    from mia_app.attack import models

    monkeypatch.delenv("MIA_ONLINE", raising=False)
    config = tmp_path / "a.yaml"
    config.write_text(tiny_attack_config(tmp_path).to_yaml())

    def no_network(*args, **kwargs):
        raise AssertionError("a missing local path must not reach the hub loader")

    from diffusers import UNet2DModel

    monkeypatch.setattr(UNet2DModel, "from_pretrained", classmethod(no_network))
    for prior, message in (("no/such/prior", "not found: no such folder"), ("/etc/passwd", "not a folder"),
                           (str(tmp_path), "no prior_config.json")):
        rc, err = _cli(capsys, "attack", "--config", str(config), "--targets", "0", "--prior", prior,
                       "--out", str(tmp_path / "o"))
        assert rc == 2 and len(err) == 1 and message in err[0], err
        assert str(models.REPO_ROOT) not in err[0]


def test_forged_checkpoint_headers_are_refused_before_allocating(tmp_path, capsys):
    from mia_app.models.classifiers import load_classifier

    good = save_tiny_target(tmp_path / "t.safetensors")
    tensors = load_file(str(good))
    meta = {"role": "target", "arch": "vgg", "width": 8, "n_classes": 4, "resolution": 32}
    for key, value, message in (("width", 100_000, "header width must be an integer in"),
                                ("n_classes", "100", "header n_classes must be an integer"),
                                ("arch", "alexnet", "header arch must be one of")):
        forged = tmp_path / f"forged-{key}.safetensors"
        save_file(tensors, str(forged), metadata={"mia_app": json.dumps({**meta, key: value})})
        with pytest.raises(ValueError, match=message):
            load_classifier(forged)
    # a valid header over the wrong tensors: one line that counts them, not a 60-line state-dict diff
    wrong = tmp_path / "wrong.safetensors"
    save_file(tensors, str(wrong), metadata={"mia_app": json.dumps({**meta, "arch": "resnet"})})
    with pytest.raises(ValueError, match=r"do not match its header \(resnet, width 8, 4 classes\)") as err:
        load_classifier(wrong)
    assert "\n" not in str(err.value)


def test_forged_prior_headers_are_refused_before_allocating(tmp_path):
    from mia_app.prior.io import prior_from_pretrained

    cfg = tiny_attack_config(tmp_path, "latent")
    forged = tmp_path / "forged_latent"
    shutil.copytree(cfg.prior, forged)
    meta = json.loads((forged / "prior_config.json").read_text())
    meta["denoiser"]["width"] = 100_000
    (forged / "prior_config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="header width=100000 is outside the training config's bounds"):
        prior_from_pretrained(forged)
    pixel = tiny_attack_config(tmp_path)
    forged = tmp_path / "forged_pixel"
    shutil.copytree(pixel.prior, forged)
    unet = json.loads((forged / "unet" / "config.json").read_text())
    unet["block_out_channels"] = [100_000, 100_000]
    (forged / "unet" / "config.json").write_text(json.dumps(unet))
    with pytest.raises(ValueError, match="header (channels|block_out_channels)"):
        prior_from_pretrained(forged)
    unet["block_out_channels"], unet["layers_per_block"] = [8, 16], 100_000
    (forged / "unet" / "config.json").write_text(json.dumps(unet))
    with pytest.raises(ValueError, match="header layers_per_block must be an integer in"):
        prior_from_pretrained(forged)
    (forged / "prior_config.json").unlink()  # a plain diffusers UNet folder gets the same checks
    with pytest.raises(ValueError, match="header layers_per_block"):
        prior_from_pretrained(forged)


def test_the_judge_must_not_be_the_target(tmp_path, capsys):
    from mia_app.evaluation.evaluate import check_judge_is_not_target

    target = save_tiny_target(tmp_path / "t.safetensors")
    copy = tmp_path / "copy-of-t.safetensors"
    shutil.copyfile(target, copy)
    other = save_tiny_target(tmp_path / "other.safetensors", seed=1)
    with pytest.raises(ValueError, match="is the attacked classifier T itself"):
        check_judge_is_not_target(copy, str(target))
    check_judge_is_not_target(copy, str(target), allow=True)
    check_judge_is_not_target(other, str(target))
    # through the CLI: refused before metrics.json is touched
    run = tmp_path / "run"
    (run / "final").mkdir(parents=True)
    (run / "config.yaml").write_text(tiny_attack_config(tmp_path, target=str(target)).to_yaml())
    save_file({"images": torch.zeros(1, 3, 32, 32), "labels": torch.zeros(1, dtype=torch.long)},
              str(run / "final" / "images.safetensors"))
    (run / "metrics.json").write_text('{"E_acc@1": 0.25}')
    rc, err = _cli(capsys, "evaluate", "--run", str(run), "--eval-model", str(copy), "--judge", "off")
    assert rc == 2 and len(err) == 1 and "--allow-target-as-judge" in err[0]
    assert json.loads((run / "metrics.json").read_text()) == {"E_acc@1": 0.25}


def test_compute_units_bound_a_hosted_job(tmp_path):
    from mia_app.dashboard.settings import HOSTED_COMPUTE, DashboardSettings
    from mia_app.dashboard.submission import LaunchError, check_limits

    cfg = tiny_attack_config(tmp_path)
    assert cfg.compute_units(3) == 3 * (2 + 2) * 2 * 2
    heavy = AttackConfig.model_validate(_with(cfg, sampler__num_steps=200, sampler__strength=1.0,
                                              stage1__steps=100, stage2__steps=100))
    hosted = DashboardSettings(auth=("ann", "pw"), max_steps=100)
    assert hosted.compute_cap == HOSTED_COMPUTE and DashboardSettings().compute_cap is None
    check_limits(cfg, hosted, 3)
    with pytest.raises(LaunchError, match="sampler passes"):
        check_limits(heavy, hosted, 10)  # 200 x 200 x 2 x 10 = 800 000 > 400 000, every per-stage cap kept
    check_limits(heavy, DashboardSettings(), 10)  # lab mode: no cap


def test_unexpected_errors_are_one_line_unless_debug(monkeypatch, capsys):
    import mia_app.cli as cli

    def boom(args):
        raise RuntimeError("something\nspanning lines")

    real_build = cli.build_parser

    def parser_with_boom():
        parser = real_build()
        for action in parser._subparsers._group_actions:
            action.choices["doctor"].set_defaults(run=boom)
        return parser

    monkeypatch.setattr(cli, "build_parser", parser_with_boom)
    rc, err = _cli(capsys, "doctor", "--config", "x.yaml")
    assert rc == 1 and len(err) == 1 and err[0].startswith("error: RuntimeError: something spanning lines")
    with pytest.raises(RuntimeError):
        main(["--debug", "doctor", "--config", "x.yaml"])


def test_a_blank_weight_box_is_an_error_never_off(tmp_path):
    from mia_app.dashboard.attack_form import AttackForm

    form = AttackForm.from_model()
    cfg = tiny_attack_config(tmp_path)
    paths = [s.path for s in form.specs]
    values = form.values_from(cfg)
    values[paths.index(("stage1", "weights", "id"))] = None  # what the browser sends for "1e309" or ""
    with pytest.raises(ValueError, match=r"stage1\.weights\.id is empty: type a number \(0 turns the term off\)"):
        form.build(cfg, values)
    values = form.values_from(cfg)
    values[paths.index(("stage1", "lr"))] = None
    with pytest.raises(ValidationError) as err:
        AttackConfig.model_validate(form.build(cfg, values))
    assert explain(err.value).startswith("stage1.lr:")


def test_a_refused_upload_blocks_launch_with_the_reason_and_no_server_path(tmp_path):
    from mia_app.dashboard.submission import LaunchError, check_upload

    pickle = tmp_path / "t.pt"
    pickle.write_bytes(b"\x80\x04pickle")
    with pytest.raises(LaunchError, match=r"must be a \.safetensors file, got 't\.pt'"):
        check_upload(pickle)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(LaunchError) as err:
        check_upload(garbage)
    assert "garbage.safetensors is not a mia_app classifier" in str(err.value) and str(tmp_path) not in str(err.value)
    good = save_tiny_target(tmp_path / "good.safetensors")
    assert check_upload(good, 4)["arch"] == "vgg"
    with pytest.raises(LaunchError, match="has 4 classes; the preset's benchmark has 100"):
        check_upload(good, 100)


def test_the_ablation_endpoint_refuses_when_hosted(tmp_path):
    from mia_app.dashboard.ablation_tab import queue_ablation
    from mia_app.dashboard.context import DashboardContext
    from mia_app.dashboard.settings import DashboardSettings
    from mia_app.dashboard.submission import LaunchError

    settings = DashboardSettings(runs=tmp_path / "runs", db=tmp_path / "runs" / "jobs.sqlite", auth=("ann", "pw"),
                                 results=tmp_path / "results", start_worker=False)
    ctx = DashboardContext.create(settings)
    config = tmp_path / "quick.yaml"
    config.write_text("name: quick\nattack: configs/attack/cpu-quick.yaml\ntargets: 0-1\nvariants: {baseline: {}}\n")
    with pytest.raises(LaunchError, match="not launched on a hosted server"):
        queue_ablation(ctx, config, "ann")
    assert ctx.store.jobs() == []


def test_accounts_several_users_salted_hashes_and_a_users_file(tmp_path, capsys, monkeypatch):
    import io

    from mia_app.dashboard.accounts import hash_password, verify_password
    from mia_app.dashboard.settings import DashboardSettings

    s = DashboardSettings.from_env({"MIA_AUTH": "ann:1,bob:2"})
    accounts = s.accounts()
    assert accounts.check("ann", "1") and accounts.check("bob", "2") and not accounts.check("ann", "1,bob:2")
    assert not accounts.check("eve", "1") and s.hosted
    for bad in ("ann", "ann:1,bob", "ann:1,ann:2", "a b:1"):
        with pytest.raises(ValidationError):
            DashboardSettings.from_env({"MIA_AUTH": bad})
    a, b = hash_password("pw"), hash_password("pw")
    assert a != b and verify_password("pw", a) and not verify_password("pw", "garbage")  # salted
    users = tmp_path / "users"
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret,with:odd chars\n"))
    assert main(["users", "add", "carol", "--file", str(users), "--password-stdin"]) == 0
    assert "s3cret" not in users.read_text() and (users.stat().st_mode & 0o777) == 0o600
    hosted = DashboardSettings.from_env({"MIA_USERS": str(users)})
    assert hosted.hosted and hosted.accounts().check("carol", "s3cret,with:odd chars")
    with pytest.raises(ValidationError, match="no users file"):
        DashboardSettings.from_env({"MIA_USERS": str(tmp_path / "missing")})


def test_hosted_hides_private_faces_by_default_and_lab_on_a_public_port_warns():
    from mia_app.dashboard.server import exposure_warning
    from mia_app.dashboard.settings import DashboardSettings

    assert not DashboardSettings.from_env({"MIA_AUTH": "ann:1"}).demo
    assert DashboardSettings.from_env({"MIA_AUTH": "ann:1", "MIA_DEMO": "1"}).demo  # asked for
    assert DashboardSettings.from_env({}).demo
    assert exposure_warning(DashboardSettings.from_env({})) is None
    assert "anyone who reaches this port" in exposure_warning(DashboardSettings.from_env({"MIA_HOST": "0.0.0.0"}))
    assert exposure_warning(DashboardSettings.from_env({"MIA_HOST": "0.0.0.0", "MIA_AUTH": "ann:1"})) is None


def test_each_poll_marks_a_dead_workers_job_interrupted_and_finds_queued_jobs_a_worker(tmp_path, monkeypatch):
    import os

    from mia_app.dashboard.context import DashboardContext
    from mia_app.dashboard.settings import DashboardSettings

    ctx = DashboardContext.create(DashboardSettings(runs=tmp_path / "runs", db=tmp_path / "runs" / "jobs.sqlite",
                                                    start_worker=False))
    started = []
    monkeypatch.setattr(ctx.supervisor, "ensure", lambda: started.append(1))
    job = ctx.store.submit("attack", "a", {}, [0])
    ctx.store.register_worker("killed", pid=2**22 + 4321)  # kill -9: no such process, heartbeat still fresh
    ctx.store.claim("killed")
    ctx.watchdog(every_s=0)
    assert ctx.store.get(job.id).status == "interrupted" and started == []  # nothing queued: no new worker
    ctx.store.submit("attack", "b", {}, [0])
    ctx.watchdog(every_s=0)
    assert started == [1]  # queued work and no live worker: this instance starts one
    ctx.store.register_worker("alive", pid=os.getpid())
    ctx.watchdog(every_s=0)
    assert started == [1]


# ---- the review's findings ------------------------------------------------------------------------------
def test_a_long_target_list_is_refused_before_it_is_built():
    from mia_app.user_input import MAX_TARGETS

    text = ",".join(f"{i * 100000}-{i * 100000 + 99999}" for i in range(30))  # 3 million classes in 418 chars
    with pytest.raises(ValueError, match=f"more than {MAX_TARGETS} classes"):
        parse_targets(text)
    with pytest.raises(ValueError, match="nested too deeply"):
        parse_yaml("[" * 5000)


def test_hosted_caps_cover_search_space_peers_and_the_prior(tmp_path):
    from mia_app.dashboard.settings import DashboardSettings
    from mia_app.dashboard.submission import LaunchError, check_hosted_prior, check_limits, check_peer_limits
    from mia_app.peers import parse_peer

    hosted = DashboardSettings(auth=("ann", "pw"))
    cfg = tiny_attack_config(tmp_path)
    with pytest.raises(LaunchError, match="search_space is limited to 16,000"):
        check_limits(cfg.model_copy(update={"search_space": 1_000_000}), hosted, 1)
    ppa = parse_peer({"kind": "ppa", "search_space": 500_000})
    with pytest.raises(LaunchError, match="search_space is limited"):
        check_peer_limits(ppa, hosted, 1)
    heavy_final = parse_peer({"kind": "ppa", "steps": 0, "final": {"iterations": 10_000}})
    with pytest.raises(LaunchError, match="passes"):
        check_peer_limits(heavy_final, hosted, 20)  # (1 + 10 000) x 4 x 20 > 400 000: the final selection counts
    check_hosted_prior(cfg, cfg, hosted)  # the preset's own prior
    check_hosted_prior(cfg.model_copy(update={"prior": "assets/latent_prior"}), cfg, hosted)  # a shipped one
    for prior in ("/etc", "someone/some-hub-model", "assets/../runs"):
        with pytest.raises(LaunchError, match="the preset's .* or a shipped one"):
            check_hosted_prior(cfg.model_copy(update={"prior": prior}), cfg, hosted)
    check_hosted_prior(cfg.model_copy(update={"prior": "/etc"}), cfg, DashboardSettings())  # lab: the user's call


def test_an_unknown_user_costs_one_hash_like_a_known_one(monkeypatch):
    import hashlib

    from mia_app.dashboard.accounts import Accounts, hash_password

    accounts = Accounts({"ann": hash_password("pw")})
    calls = []
    real = hashlib.pbkdf2_hmac
    monkeypatch.setattr(hashlib, "pbkdf2_hmac", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert not accounts.check("ann", "wrong") and len(calls) == 1
    assert not accounts.check("nobody", "wrong") and len(calls) == 2


def test_a_worker_taken_for_dead_cannot_finish_a_retried_job(tmp_path):
    from mia_app.service.store import JobStore

    store = JobStore(tmp_path / "jobs.sqlite", tmp_path / "runs")
    job = store.submit("attack", "a", {}, [0])
    store.claim("old")
    store.finish(job.id, "interrupted", "taken for dead", worker_id="old")
    store.retry(job.id)
    store.claim("new")
    store.finish(job.id, "done", worker_id="old")  # the old worker, still running somewhere, is ignored
    assert store.get(job.id).status == "running" and store.get(job.id).worker_id == "new"
    store.finish(job.id, "done", worker_id="new")
    assert store.get(job.id).status == "done"
    evaluation = store.submit("cli", "evaluate-x", {"argv": []}, [], run_dir=tmp_path / "runs" / "job-000001-a")
    (tmp_path / "runs" / "job-000001-a").mkdir(parents=True)
    assert store.owned_folder(evaluation) is None  # another job's run: not this job's to purge or delete


def test_a_worker_crashing_at_start_is_not_restarted_at_every_poll(tmp_path):
    import subprocess
    import sys

    from mia_app.dashboard.supervisor import WorkerSupervisor
    from mia_app.service.store import JobStore

    sup = WorkerSupervisor(JobStore(tmp_path / "jobs.sqlite"), enabled=True)
    started = []
    monkey_popen = subprocess.Popen
    sup.proc = monkey_popen([sys.executable, "-c", "raise SystemExit(3)"])
    sup.started_at = __import__("time").time()
    sup.proc.wait()
    assert not sup.ours_alive() and sup.backing_off()
    sup.store.submit("attack", "a", {}, [0])
    real = subprocess.Popen
    subprocess.Popen = lambda *a, **k: started.append(a) or real([sys.executable, "-c", "pass"])
    try:
        sup.ensure()
        assert started == []  # backing off: no new process
        sup.started_at -= 120  # the back-off has passed
        sup.ensure()
        assert len(started) == 1
    finally:
        subprocess.Popen = real
    killed = real([sys.executable, "-c", "import time; time.sleep(30)"])
    killed.kill()
    killed.wait()
    sup.proc, sup.exited_at = killed, None
    sup.started_at = __import__("time").time()
    assert not sup.backing_off()  # killed by a signal is no start-up crash


def test_the_live_view_forgets_a_retried_jobs_old_events(tmp_path):
    from mia_app.dashboard.live import EventCache
    from mia_app.service.store import JobStore

    store = JobStore(tmp_path / "jobs.sqlite", tmp_path / "runs")
    job = store.submit("attack", "a", {}, [0])
    first = store.claim("w")
    store.add_step(job.id, 1, 0, 0, {"loss": 1.0})
    cache = EventCache(store)
    assert len(cache.read(job.id, first.started)[0]) == 1
    store.finish(job.id, "failed", "x")
    store.retry(job.id)
    again = store.claim("w")
    store.add_step(job.id, 1, 0, 0, {"loss": 2.0})
    steps, _ = cache.read(job.id, again.started)
    assert steps == [{"loss": 2.0}]
