import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mia_app.service.store import JobStore
from mia_app.service.worker import JobWorker
from tests.helpers import PRIOR_KINDS, save_tiny_eval, tiny_attack_config


def _store(tmp_path) -> JobStore:
    return JobStore(tmp_path / "jobs.sqlite", tmp_path / "runs")


def _submit(store: JobStore, tmp_path: Path, targets=(0,), **overrides):
    cfg = tiny_attack_config(tmp_path, **overrides)
    return store.submit("attack", cfg.name, cfg.model_dump(mode="json"), list(targets))


def _wait(predicate, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _long(steps: int = 1000) -> dict:
    return {"stage1": {"steps": steps, "weights": {"id": 1.0, "cls": 1.0}, "image_every": 1}}


@pytest.mark.parametrize("prior_kind", PRIOR_KINDS)
def test_worker_runs_an_attack_and_mirrors_it_into_the_store(tmp_path, prior_kind):
    store = _store(tmp_path)
    job = _submit(store, tmp_path, prior_kind=prior_kind)
    done = JobWorker(store).run_one()
    assert (done.id, done.status, done.error) == (job.id, "done", None)
    assert (done.total_steps, done.done_steps) == (4, 4)  # one batch × (2 + 2) steps
    steps = [d for _, d in store.events(job.id)]
    assert [(d["stage"], d["step"]) for d in steps] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert {"L_id", "total", "T_conf"} <= set(steps[0]["logs"])
    images = [d["path"] for _, d in store.events(job.id, "images")]
    assert images and all((Path(job.run_dir) / p).is_file() for p in images)
    assert (Path(job.run_dir) / "summary.json").is_file() and (Path(job.run_dir) / "doctor.json").is_file()


def test_a_failing_job_is_marked_failed_and_the_worker_goes_on(tmp_path):
    store = _store(tmp_path)
    bad = _submit(store, tmp_path, targets=[99])  # the tiny benchmark has 4 classes
    good = _submit(store, tmp_path)
    JobWorker(store).serve(exit_when_idle=True)
    failed = store.get(bad.id)
    assert failed.status == "failed" and failed.error.startswith("ValueError: targets must be")
    assert "Traceback" in (Path(bad.run_dir) / "error.log").read_text()
    assert store.get(good.id).status == "done"


def test_cancel_takes_effect_within_one_step(tmp_path):
    store = _store(tmp_path)
    job = _submit(store, tmp_path, **_long(200))
    worker = JobWorker(store)
    thread = threading.Thread(target=worker.run_one)
    thread.start()
    _wait(lambda: store.get(job.id).done_steps >= 2, 120, "two steps")
    assert store.cancel(job.id) == "cancel requested"
    at_cancel = store.get(job.id).done_steps
    thread.join(timeout=60)
    got = store.get(job.id)
    assert (got.status, got.error) == ("cancelled", "cancelled on request")
    assert got.done_steps <= at_cancel + 1, "more than one step ran after the cancel request"


def _spawn_worker(store: JobStore) -> subprocess.Popen:
    env = {**os.environ, "MIA_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "mia_app", "worker", "--db", str(store.db), "--runs",
                             str(store.runs_root), "--poll", "0.2"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_sigterm_interrupts_and_a_killed_workers_job_is_interrupted_on_restart(tmp_path):
    store = _store(tmp_path)
    # SIGTERM: the worker stops within a step, marks its job interrupted and exits cleanly.
    first = _submit(store, tmp_path, **_long())
    proc = _spawn_worker(store)
    _wait(lambda: store.get(first.id).done_steps >= 1, 120, "the worker's first step")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, proc.stderr.read()
    assert store.get(first.id).status == "interrupted"
    assert "SIGTERM" in store.get(first.id).error

    # SIGKILL: nothing runs in the worker, the job stays `running` until the next worker starts.
    second = _submit(store, tmp_path, **_long())
    proc = _spawn_worker(store)
    _wait(lambda: store.get(second.id).done_steps >= 1, 120, "the worker's first step")
    proc.kill()
    proc.wait(timeout=30)
    proc.stderr.close()
    assert store.get(second.id).status == "running"
    third = _submit(store, tmp_path)
    restarted = JobWorker(store)
    restarted.start()
    try:
        got = store.get(second.id)
        assert got.status == "interrupted" and "died" in got.error
        assert restarted.run_one().id == third.id and store.get(third.id).status == "done"
    finally:
        restarted.stop()


def test_a_cli_job_that_fails_reports_the_command_output(tmp_path):
    store = _store(tmp_path)
    missing = tmp_path / "runs" / "not-a-run"
    job = store.submit("cli", "evaluate", {"argv": ["evaluate", "--run", str(missing)]}, [], run_dir=missing)
    JobWorker(store).run_one()
    got = store.get(job.id)
    assert got.status == "failed" and "exited with 2" in got.error and "no final images" in got.error
    assert (missing / "job.log").is_file()


def test_dashboard_restart_keeps_finished_jobs_and_interrupts_orphans(tmp_path, caplog):
    from mia_app.dashboard.server import recover

    store = _store(tmp_path)
    finished = _submit(store, tmp_path)
    worker = JobWorker(store)
    assert worker.run_one().status == "done"
    store.stop_worker(worker.id)  # the whole app went down: that worker is gone too
    run_dir = Path(finished.run_dir)
    before = {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert {"summary.json", "config.yaml", "doctor.json"} <= {str(p) for p in before}
    orphan = store.submit("attack", "orphan", {}, [0])
    store.register_worker("dead", pid=2**22 + 12345)  # no such pid: killed mid-job
    store.claim("dead")

    with caplog.at_level("WARNING", logger="mia_app.dashboard"):
        assert recover(store) == [orphan.id]
    assert f"jobs [{orphan.id}]" in caplog.text
    got = store.get(orphan.id)
    assert got.status == "interrupted" and "died" in got.error
    kept = store.get(finished.id)
    assert (kept.status, kept.error, kept.done_steps) == ("done", None, 4)
    after = {p.relative_to(run_dir): p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    assert after == before  # not a byte of the finished run changed
    assert recover(store) == [] and store.get(orphan.id).status == "interrupted"  # a second restart: no-op


def test_worker_runs_a_peer_job_live(tmp_path):
    store = _store(tmp_path)
    cfg = tiny_attack_config(tmp_path)
    peer = {"kind": "ppa", "search_space": 8, "candidates": 2, "steps": 3, "image_every": 1,
            "final": {"iterations": 2}}
    job = store.submit("peer", "ppa", {"attack": cfg.model_dump(mode="json"), "peer": peer}, [0, 1])
    done = JobWorker(store).run_one()
    assert (done.status, done.error) == ("done", None) and (done.total_steps, done.done_steps) == (3, 3)
    steps = [d for _, d in store.events(job.id)]
    assert {"L_cls", "T_conf"} <= set(steps[0]["logs"])
    images = [d["path"] for _, d in store.events(job.id, "images")]
    assert images and all((Path(job.run_dir) / p).is_file() for p in images)
    assert (Path(job.run_dir) / "final" / "images.safetensors").is_file()
    bad = store.submit("peer", "bad", {"attack": cfg.model_dump(mode="json"), "peer": {"kind": "ppa", "lr": -1}},
                       [0])
    failed = JobWorker(store).run_one()
    assert failed.id == bad.id and failed.status == "failed" and "lr" in failed.error


def test_a_small_job_is_judged_with_e_when_it_ends_and_the_verdict_panel_shows_it(tmp_path):
    import json

    from mia_app.dashboard.verdict import verdict_html

    store = _store(tmp_path)
    cfg = tiny_attack_config(tmp_path)
    e_path = save_tiny_eval(tmp_path / "eval.safetensors")
    config = cfg.model_dump(mode="json") | {"evaluate": {"eval_model": str(e_path)}}
    job = store.submit("attack", cfg.name, config, [0, 2])
    done = JobWorker(store).run_one()
    assert (done.status, done.error) == ("done", None)
    run = Path(done.run_dir)
    per_image = json.loads((run / "per_image.json").read_text())
    assert [r["class"] for r in per_image] == [0, 2] and (run / "metrics.json").is_file()
    html = verdict_html(store.get(job.id), demo=True, auto_evaluate=10)
    assert "E recognises the target in" in html and "E top-5:" in html
    # the no-attack floor on the same identities, judged beside it
    floor = json.loads((run / "floor" / "per_image.json").read_text())
    assert [r["class"] for r in floor] == [0, 2] and "No attack (the public images T ranks highest" in html
    assert html.count("private reference of class") >= 2  # demo mode: the references beside each image
    assert "private reference" not in verdict_html(store.get(job.id), demo=False, auto_evaluate=10)


def test_a_failed_evaluation_keeps_the_attack_and_says_why(tmp_path):
    from mia_app.dashboard.verdict import verdict_html

    store = _store(tmp_path)
    cfg = tiny_attack_config(tmp_path)
    # E = T itself: refused by evaluate (E must be a model T never was), after the attack has finished
    job = store.submit("attack", cfg.name, cfg.model_dump(mode="json") | {"evaluate": {"eval_model": cfg.target}},
                       [0])
    done = JobWorker(store).run_one()
    assert done.status == "done" and (Path(done.run_dir) / "final" / "images.safetensors").is_file()
    reason = (Path(done.run_dir) / "evaluation_error.txt").read_text()
    assert reason.strip() and reason.split(":")[0].endswith("Error")
    assert "could not judge this run" in verdict_html(store.get(job.id), demo=False, auto_evaluate=10)


def test_a_malformed_evaluate_block_is_refused_before_the_attack(tmp_path):
    from mia_app.service.jobs import split_evaluate

    assert split_evaluate({"a": 1}) == ({"a": 1}, None)
    assert split_evaluate({"a": 1, "evaluate": {"eval_model": "e"}}) == ({"a": 1}, "e")
    with pytest.raises(ValueError, match="evaluate block"):
        split_evaluate({"evaluate": {"eval_model": "e", "cmd": "rm"}})
    store = _store(tmp_path)
    cfg = tiny_attack_config(tmp_path)
    job = store.submit("attack", cfg.name, cfg.model_dump(mode="json") | {"evaluate": "x"}, [0])
    done = JobWorker(store).run_one()
    assert done.status == "failed" and "evaluate block" in done.error
    assert not (Path(job.run_dir) / "final").exists()
