import multiprocessing as mp
import os
import time
from pathlib import Path

import pytest

from mia_app.service.store import JobStore


def _store(tmp_path) -> JobStore:
    return JobStore(tmp_path / "jobs.sqlite", tmp_path / "runs")


def test_submit_names_run_folders_deterministically(tmp_path):
    store = _store(tmp_path)
    a = store.submit("attack", "cpu-quick", {"x": 1}, [0, 1], session="s1")
    b = store.submit("attack", "my preset/../x", {"x": 2}, [3])
    assert a.status == "queued" and a.id == 1 and b.id == 2
    assert a.run_dir == str(tmp_path / "runs" / "job-000001-cpu-quick")
    assert b.run_dir == str(tmp_path / "runs" / "job-000002-my-preset-..-x")  # slug: no path separators
    assert store.get(a.id).config == {"x": 1} and store.get(a.id).targets == [0, 1]
    assert store.journal_mode() == "wal"
    # ids are never reused, so a deleted job's folder name never comes back
    store.cancel(b.id)
    store.delete(b.id)
    assert store.submit("attack", "p", {}, [0]).id == 3


def test_claim_is_fifo_and_each_job_goes_to_one_worker(tmp_path):
    store = _store(tmp_path)
    ids = [store.submit("attack", f"j{i}", {}, [i]).id for i in range(3)]
    assert store.claim("w1").id == ids[0]
    assert store.claim("w2").id == ids[1]
    assert store.claim("w1", kinds=("cli",)) is None  # kind filter
    job = store.claim("w1")
    assert (job.id, job.status, job.worker_id) == (ids[2], "running", "w1")
    assert store.claim("w2") is None


def _claim_all(db: str, runs: str, name: str, out: mp.Queue) -> None:
    store = JobStore(db, runs)
    got = []
    while (job := store.claim(name)) is not None:
        got.append(job.id)
    out.put(got)


def test_concurrent_claims_from_processes_never_double_claim(tmp_path):
    store = _store(tmp_path)
    n = 40
    for i in range(n):
        store.submit("attack", "j", {}, [i])
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_claim_all, args=(str(store.db), str(store.runs_root), f"w{k}", q)) for k in range(3)]
    for p in procs:
        p.start()
    claimed = [i for _ in procs for i in q.get(timeout=60)]
    for p in procs:
        p.join(timeout=30)
    assert sorted(claimed) == list(range(1, n + 1))


def test_cancel_queued_is_immediate_running_is_flagged(tmp_path):
    store = _store(tmp_path)
    queued = store.submit("attack", "a", {}, [0])
    running = store.submit("attack", "b", {}, [0])
    store.claim("w")  # takes `queued`
    assert store.cancel(running.id) == "cancelled"
    assert store.get(running.id).status == "cancelled"
    assert not store.cancel_requested(queued.id)
    assert store.cancel(queued.id) == "cancel requested"
    assert store.get(queued.id).status == "running" and store.cancel_requested(queued.id)
    store.finish(queued.id, "cancelled", "cancelled on request")
    assert "nothing to cancel" in store.cancel(queued.id)


def test_finish_only_moves_running_jobs_to_a_final_status(tmp_path):
    store = _store(tmp_path)
    job = store.submit("attack", "a", {}, [0])
    with pytest.raises(ValueError, match="final status"):
        store.finish(job.id, "running")
    store.finish(job.id, "done")  # not running yet: ignored
    assert store.get(job.id).status == "queued"
    store.claim("w")
    store.finish(job.id, "failed", "ValueError: boom")
    got = store.get(job.id)
    assert (got.status, got.error) == ("failed", "ValueError: boom") and got.finished >= got.started


def test_events_are_incremental_and_count_progress(tmp_path):
    store = _store(tmp_path)
    job = store.submit("attack", "a", {}, [0])
    store.claim("w")
    store.set_total_steps(job.id, 4)
    store.add_step(job.id, 1, 1, 0, {"logs": {"L_id": 0.5, "total": 0.5}})
    store.add_images(job.id, 1, 1, 0, "stage1/batch000_step00001.png")
    store.add_step(job.id, 1, 2, 0, {"logs": {"L_id": 0.4, "total": 0.4}})
    steps = store.events(job.id)
    assert [d["logs"]["L_id"] for _, d in steps] == [0.5, 0.4]
    assert store.events(job.id, after_id=steps[0][0])[0][1]["logs"]["L_id"] == 0.4
    assert store.events(job.id, "images")[0][1] == {"path": "stage1/batch000_step00001.png"}
    got = store.get(job.id)
    assert (got.done_steps, got.total_steps) == (2, 4)
    store.finish(job.id, "done")
    store.delete(job.id)  # events go with their job (ON DELETE CASCADE)
    assert store.conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 0


def test_delete_removes_only_its_own_folder_and_refuses_active_jobs(tmp_path):
    store = _store(tmp_path)
    mine = store.submit("attack", "a", {}, [0])
    other = tmp_path / "runs" / "job-000001-a"  # an evaluation job pointing at job 1's folder
    evaluation = store.submit("cli", "evaluate", {"argv": []}, [], run_dir=other)
    os.makedirs(mine.run_dir)
    with pytest.raises(ValueError, match="cancel it"):
        store.delete(mine.id)
    store.cancel(mine.id)
    store.cancel(evaluation.id)
    store.delete(evaluation.id)
    assert os.path.isdir(mine.run_dir)
    store.delete(mine.id)
    assert not os.path.exists(mine.run_dir)
    with pytest.raises(KeyError):
        store.get(mine.id)


def test_recover_orphans_marks_jobs_of_dead_workers_interrupted(tmp_path):
    store = _store(tmp_path)
    dead = store.submit("attack", "a", {}, [0])
    alive = store.submit("attack", "b", {}, [0])
    store.register_worker("dead", pid=2**22 + 12345)  # no such pid
    store.register_worker("alive", pid=os.getpid())
    store.claim("dead")
    store.claim("alive")
    assert store.recover_orphans() == [dead.id]
    assert store.get(dead.id).status == "interrupted" and "dead" in store.get(dead.id).error
    assert store.get(alive.id).status == "running"
    # a stale heartbeat also means dead, even when the pid exists (pid reuse)
    store.conn.execute("UPDATE workers SET heartbeat = ? WHERE id = 'alive'", (time.time() - 3600,))
    assert store.recover_orphans() == [alive.id]


def test_count_active_is_per_session(tmp_path):
    store = _store(tmp_path)
    for s in ("a", "a", "b"):
        store.submit("attack", "x", {}, [0], session=s)
    assert store.count_active("a") == 2 and store.count_active("b") == 1 and store.count_active(None) == 0


def test_claims_go_round_robin_by_owner_not_fifo(tmp_path):
    """Eight jobs of one user queued first do not starve the others: one worker serves a, b, c, a, a, ..."""
    store = _store(tmp_path)
    for i in range(4):
        store.submit("attack", f"a{i}", {}, [i], session="a")
    store.submit("attack", "b0", {}, [0], session="b")
    store.submit("attack", "c0", {}, [0], session="c")
    order = []
    while (job := store.claim("w")) is not None:
        order.append(job.name)
        store.finish(job.id, "done")
        time.sleep(0.01)  # distinct start times, as real jobs have
    assert order == ["a0", "b0", "c0", "a1", "a2", "a3"]
    # an owner with a job running waits behind one with none
    store.submit("attack", "a4", {}, [0], session="a")
    running = store.claim("w1")
    store.submit("attack", "a5", {}, [0], session="a")
    store.submit("attack", "b1", {}, [0], session="b")
    assert running.name == "a4" and store.claim("w2").name == "b1"


def _submit_capped(db: str, runs: str, out: mp.Queue) -> None:
    from mia_app.service.store import QueueFull

    store = JobStore(db, runs)
    try:
        store.submit("attack", "x", {}, [0], session="ann", max_active=2)
        out.put("queued")
    except QueueFull:
        out.put("refused")


def test_the_queue_cap_holds_under_concurrent_submissions(tmp_path):
    store = _store(tmp_path)
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_submit_capped, args=(str(store.db), str(store.runs_root), q)) for _ in range(6)]
    for p in procs:
        p.start()
    outcomes = sorted(q.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(timeout=30)
    assert outcomes == ["queued"] * 2 + ["refused"] * 4
    assert store.count_active("ann") == 2


def test_retry_requeues_an_interrupted_job_in_place(tmp_path):
    store = _store(tmp_path)
    job = store.submit("attack", "a", {}, [0], session="ann")
    store.claim("w")
    Path(job.run_dir, "stage1").mkdir(parents=True)  # a partial run
    store.add_step(job.id, 1, 0, 0, {"loss": 1.0})
    store.finish(job.id, "interrupted", "worker died")
    again = store.retry(job.id)
    assert (again.id, again.status, again.error, again.done_steps, again.worker_id) == (job.id, "queued", None, 0, None)
    assert store.events(job.id) == [] and not Path(job.run_dir).exists()  # an attack starts over
    with pytest.raises(ValueError, match="only interrupted, failed or cancelled"):
        store.retry(job.id)
    # a cli job (an ablation) keeps its folder: it resumes from its finished cells
    cli = store.submit("cli", "ablation-x", {"argv": []}, [], session="bob", run_dir=tmp_path / "results" / "x")
    Path(cli.run_dir).mkdir(parents=True)
    assert store.claim("w", kinds=("cli",)).id == cli.id
    store.finish(cli.id, "failed", "boom")
    store.retry(cli.id)
    assert Path(cli.run_dir).is_dir()
    # a retry counts against the owner's cap like a launch: ann has job 1 queued again
    assert store.claim("w", kinds=("attack",)).id == job.id
    store.finish(job.id, "failed", "again")
    store.submit("attack", "b", {}, [0], session="ann")
    from mia_app.service.store import QueueFull

    with pytest.raises(QueueFull):
        store.retry(job.id, max_active=1)
    assert store.get(job.id).status == "failed"  # refused: unchanged
