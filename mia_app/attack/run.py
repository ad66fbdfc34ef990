"""One call from a config to a finished run folder; shared by the CLI, the dashboard worker and ablations."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from mia_app.attack.config import AttackConfig
from mia_app.attack.doctor import Doctor
from mia_app.attack.engine import Inversion
from mia_app.attack.fingerprint import model_fingerprint, write_fingerprint
from mia_app.attack.models import AttackModels
from mia_app.attack.sharding import Shard, barrier, merge_shards, shard_folder
from mia_app.attack.writer import RunWriter
from mia_app.data import load_benchmark

_MODEL_CACHE: dict[str, AttackModels] = {}


def cached_models(cfg: AttackConfig) -> AttackModels:
    """Models keyed by (prior, target, E_id, device) and by the sha256 of their weights: a worker attacking many
    times loads them once, and again when a file behind one of the paths is re-shipped."""
    fingerprint = model_fingerprint(cfg)
    key = f"{cfg.prior}|{cfg.target}|{cfg.id_encoder}|{cfg.device}|{json.dumps(fingerprint, sort_keys=True)}"
    if key not in _MODEL_CACHE:
        _MODEL_CACHE[key] = AttackModels.load(cfg)
        _MODEL_CACHE[key].fingerprint = fingerprint
    return _MODEL_CACHE[key]


def run_attack(
    config: str | Path | AttackConfig, targets: list[int], out: str | Path, callbacks: list | None = None,
    shard: Shard | None = None, **overrides
) -> dict[str, Any]:
    """Attack ``targets`` into the run folder ``out``. ``shard``: this process's part of a multi-process run
    (``current_shard()`` under torchrun, which the ``attack`` CLI passes); default ``Shard()``, the whole run."""
    if isinstance(config, AttackConfig):
        cfg = config.model_copy(update={k: v for k, v in overrides.items() if v is not None})
        cfg = AttackConfig.model_validate(cfg.model_dump())
    else:
        cfg = AttackConfig.from_yaml(config, **overrides)
    shard = shard or Shard()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if shard.is_main:
        (out / "config.yaml").write_text(cfg.to_yaml())
    folder = shard_folder(out, shard)
    if shard.world > 1 and folder.exists():
        shutil.rmtree(folder)  # a crashed run's leftovers would be appended to and merged
    models = cached_models(cfg)
    if shard.is_main:
        write_fingerprint(out, models.fingerprint)  # the weights behind the paths config.yaml names, as loaded
    bench = load_benchmark(cfg.data)
    if shard.rank < -(-len(targets) // cfg.identities_per_batch):
        writer = RunWriter(folder, cfg.candidates)
        doctor = Doctor.for_config(cfg, folder)
        result = Inversion(cfg, models, bench, folder, [writer, doctor, *(callbacks or [])]).run(targets, shard)
    else:  # more processes than batches: this one has nothing to attack
        result = {"device": str(models.device)}
    if shard.world > 1:
        barrier()
        if shard.is_main:
            merge_shards(out, shard.world, targets, cfg.identities_per_batch, result["device"],
                         Doctor.for_config(cfg, out))
        barrier()
        result = json.loads((out / "summary.json").read_text())
    return {k: v for k, v in result.items() if k != "final"} | {"out": str(out)}
