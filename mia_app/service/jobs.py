"""What a worker does with each kind of job.

- ``attack``: ``run_attack`` in the worker's process (models stay cached between jobs), with live events.
- ``peer``: a peer attack (PPA, the selection floor, MIFace, ...; ``mia_app.peers.run_peer``) in the worker's
  process, with the same live events; ``config`` is ``{"attack": AttackConfig, "peer": PeerConfig}``.
- ``cli``: a ``python -m mia_app <argv>`` subprocess (evaluation, ablation); its output goes to a log file
  and cancelling terminates it.

An ``attack`` or ``peer`` job whose config carries ``"evaluate": {"eval_model": path}`` (the dashboard adds it
for runs of a few identities) is judged with E right after the attack, in the same job, so the dashboard can
show a verdict when it ends. Beside it, in ``<run>/floor/``, the no-attack floor on the same identities (the
public images T ranks highest, ~1 s per identity) is judged too: a verdict without what a user would get
without attacking is not a result. If the evaluation fails the attack's images still stand: the reason goes
to ``evaluation_error.txt`` in the run folder, where the verdict panel shows it.
"""

from __future__ import annotations

import logging
import math
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from mia_app.service.progress import StoreProgress
from mia_app.service.store import Job, JobStore

KINDS = ("attack", "peer", "cli")
EVALUATION_ERROR = "evaluation_error.txt"
FLOOR_DIR = "floor"  # the no-attack floor on the same identities, judged beside an auto-evaluated run
FLOOR = {"kind": "selection_only", "name": "floor", "source": "public", "candidates": 4}
log = logging.getLogger("mia_app.worker")


class JobStopped(RuntimeError):
    """A ``cli`` job was stopped on request (the counterpart of the engine's AttackCancelled)."""


def attack_total_steps(config: dict, n_targets: int) -> int:
    batches = math.ceil(n_targets / config["identities_per_batch"])
    return batches * (config["stage1"]["steps"] + config["stage2"]["steps"])


def split_evaluate(config: dict) -> tuple[dict, str | None]:
    """(the job's config without its ``evaluate`` block, E's path or None); a malformed block is refused."""
    config = dict(config)
    block = config.pop("evaluate", None)
    if block is None:
        return config, None
    if not isinstance(block, dict) or set(block) != {"eval_model"} or not isinstance(block["eval_model"], str):
        raise ValueError(f"a job's evaluate block must be {{'eval_model': path}}, got {block!r}")
    return config, block["eval_model"]


def evaluate_after(job: Job, eval_model: str, cfg=None) -> None:
    """Judge the finished run with E (the dlib judge when it imports) and, given the run's ``AttackConfig``, the
    no-attack floor on the same identities beside it; on failure, say why in the run folder."""
    from mia_app.evaluation.evaluate import evaluate_run

    note = Path(job.run_dir) / EVALUATION_ERROR
    try:
        evaluate_run(job.run_dir, eval_model, judge="auto")
        if cfg is not None:
            from mia_app.peers import run_peer

            floor = Path(job.run_dir) / FLOOR_DIR
            run_peer(FLOOR, cfg, job.targets, floor)
            evaluate_run(floor, eval_model, judge="auto")
    except Exception as err:  # the attack's images stand; the verdict panel shows this reason instead
        note.write_text(f"{type(err).__name__}: {err}\n")
        log.warning("job %d: evaluation with %s failed: %s", job.id, eval_model, err)
        return
    note.unlink(missing_ok=True)


def run_attack_job(job: Job, store: JobStore, stopping: Callable[[], bool]) -> None:
    from mia_app.attack.config import AttackConfig
    from mia_app.attack.run import run_attack

    config, eval_model = split_evaluate(job.config)
    cfg = AttackConfig.model_validate(config)  # validated again: the store is a trust boundary
    store.set_total_steps(job.id, attack_total_steps(cfg.model_dump(), len(job.targets)))
    run_attack(cfg, job.targets, job.run_dir, [StoreProgress(store, job.id, Path(job.run_dir), stopping)])
    if eval_model is not None:
        evaluate_after(job, eval_model, cfg)


def peer_total_steps(peer, cfg, n_targets: int) -> int:
    """Step events a peer sends: PPA one per optimisation step and batch of latents, our own peers as our attack
    with their changed preset, the selection floor and MIFace none."""
    if peer.kind == "ppa":
        per_batch = max(1, peer.batch_size // peer.candidates)
        return math.ceil(n_targets / per_batch) * peer.steps
    if peer.kind in ("stage1_only", "plg_max_margin"):
        from mia_app.peers.ours import ours_config

        return attack_total_steps(ours_config(cfg, peer).model_dump(), n_targets)
    return 0


def run_peer_job(job: Job, store: JobStore, stopping: Callable[[], bool]) -> None:
    from mia_app.attack.config import AttackConfig
    from mia_app.peers import parse_peer, run_peer

    config, eval_model = split_evaluate(job.config)
    cfg = AttackConfig.model_validate(config["attack"])  # validated again: the store is a trust boundary
    peer = parse_peer(dict(config["peer"]))
    store.set_total_steps(job.id, peer_total_steps(peer, cfg, len(job.targets)))
    run_peer(peer, cfg, job.targets, job.run_dir, [StoreProgress(store, job.id, Path(job.run_dir), stopping)])
    if eval_model is not None:  # the floor is a peer's own baseline too, unless the peer is the floor
        evaluate_after(job, eval_model, None if peer.kind == "selection_only" else cfg)


def run_cli_job(job: Job, store: JobStore, stopping: Callable[[], bool]) -> None:
    argv = [str(a) for a in job.config["argv"]]
    log = Path(job.config.get("log") or Path(job.run_dir) / "job.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as out:
        proc = subprocess.Popen([sys.executable, "-m", "mia_app", *argv], stdout=out, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            if stopping() or store.cancel_requested(job.id):
                proc.terminate()
                proc.wait(timeout=30)
                raise JobStopped(f"`{' '.join(argv)}` stopped")
            time.sleep(0.5)
    if proc.returncode != 0:
        tail = log.read_text().strip().splitlines()[-3:]
        raise RuntimeError(f"`mia_app {' '.join(argv)}` exited with {proc.returncode}: {' | '.join(tail)}")


RUNNERS: dict[str, Callable[[Job, JobStore, Callable[[], bool]], None]] = {
    "attack": run_attack_job,
    "peer": run_peer_job,
    "cli": run_cli_job,
}
