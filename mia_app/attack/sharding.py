"""Identities sharded across processes, merged back into one run folder.

    torchrun --standalone --nproc_per_node 2 -m mia_app attack --config ... --targets 0-99 --out runs/x  # CPU
    accelerate launch --multi_gpu --num_processes 8 -m mia_app attack ...                              # 8 GPUs

(On CPU, ``accelerate launch`` starts several processes only through mpirun; torchrun needs nothing more.)
Rank r attacks the batches i with i mod world == r (the engine seeds every batch from its index, so a batch's
images do not depend on which process ran it) into ``out/shard-r/``; after a barrier rank 0 merges the shards
into ``out/`` in the single-process order and removes them. A process started alone (no WORLD_SIZE, or 1)
never touches torch.distributed.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from mia_app.attack.events import StepEvent
from mia_app.attack.writer import write_final

#: Env variables that carry the world size under torchrun / accelerate, MPI and MVAPICH.
WORLD_SIZE_VARS = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
#: Barriers wait for the slowest shard; an attack batch or an ablation cell can run for hours on a CPU.
BARRIER_TIMEOUT = timedelta(hours=48)


@dataclass(frozen=True)
class Shard:
    """This process's part of a run: rank in [0, world)."""

    rank: int = 0
    world: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world:
            raise ValueError(f"rank must be in [0, world), got rank {self.rank}, world {self.world}")

    def take(self, items: list) -> list:
        """Every world-th item, starting at rank (round robin: shards differ in size by at most one)."""
        return items[self.rank :: self.world]

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_world_size() -> int:
    for var in WORLD_SIZE_VARS:
        if os.environ.get(var):
            return int(os.environ[var])
    return 1


def current_shard() -> Shard:
    """The shard of this process under torchrun / ``accelerate launch`` / mpirun; ``Shard()`` when run alone.

    On GPUs this also binds the process to its own device (``cuda:local_rank``): call it before loading models.
    """
    world = launched_world_size()
    if world <= 1:
        return Shard()
    from accelerate import PartialState

    # gloo on CPU, nccl on GPUs; cpu=True is what makes accelerate join a CPU process group at all.
    state = PartialState(cpu=not torch.cuda.is_available(), timeout=BARRIER_TIMEOUT)
    if state.num_processes != world:
        raise RuntimeError(f"launched with {world} processes but the process group has {state.num_processes}")
    return Shard(state.process_index, state.num_processes)


def barrier() -> None:
    if launched_world_size() > 1:
        from accelerate import PartialState

        PartialState().wait_for_everyone()


def broadcast_from_main(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (so all processes act on one plan)."""
    if launched_world_size() <= 1:
        return obj
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([obj], from_process=0)[0]


def shard_folder(out: Path, shard: Shard) -> Path:
    return out if shard.world == 1 else out / f"shard-{shard.rank}"


def _final_order(labels: torch.Tensor, targets: list[int], per_batch: int) -> list[int]:
    """Final images in the single-process order: by batch, then by class within a batch (final selection's)."""
    position = {t: i for i, t in enumerate(targets)}
    return sorted(range(len(labels)), key=lambda i: (position[int(labels[i])] // per_batch, int(labels[i])))


def _code_order(code_targets: torch.Tensor, targets: list[int]) -> list[int]:
    """Codes in the single-process order: the order of ``targets``."""
    position = {t: i for i, t in enumerate(targets)}
    return sorted(range(len(code_targets)), key=lambda i: position[int(code_targets[i])])


def merge_shards(out: Path, world: int, targets: list[int], per_batch: int, device: str, doctor) -> dict[str, Any]:
    """Merge ``out/shard-*`` into ``out``: final images, codes, metrics.jsonl, grids, adapters and the doctor's
    checks (recomputed over every shard's steps by ``doctor``, a fresh ``Doctor`` writing to ``out``)."""
    n_batches = -(-len(targets) // per_batch)
    shards = [out / f"shard-{r}" for r in range(min(world, n_batches))]  # ranks >= n_batches had nothing to do
    for s in shards:
        missing = [f for f in ("final/images.safetensors", "codes.safetensors", "summary.json", "metrics.jsonl")
                   if not (s / f).is_file()]
        if missing:
            raise RuntimeError(f"shard {s} is incomplete (no {', '.join(missing)}); its process failed")
    finals = [load_file(str(s / "final" / "images.safetensors")) for s in shards]
    final = {k: torch.cat([f[k] for f in finals]) for k in ("images", "labels", "conf")}
    if set(final["labels"].tolist()) != set(targets):
        raise RuntimeError(f"merged shards cover classes {sorted(set(final['labels'].tolist()))}, not {targets}")
    order = _final_order(final["labels"], targets, per_batch)
    final = {k: v[order] for k, v in final.items()}
    write_final(out, final)
    codes = [load_file(str(s / "codes.safetensors")) for s in shards]
    c_y, code_targets = torch.cat([c["c_y"] for c in codes]), torch.cat([c["targets"] for c in codes])
    corder = _code_order(code_targets, targets)
    save_file({"c_y": c_y[corder].contiguous(), "targets": code_targets[corder].contiguous()},
              str(out / "codes.safetensors"))
    lines = [json.loads(line) for s in shards for line in (s / "metrics.jsonl").read_text().splitlines() if line]
    lines.sort(key=lambda r: (r["batch"], r["stage"], r["step"]))
    (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    for r in lines:  # the doctor sees the steps of every shard, in order, as in one process
        doctor.on_step(StepEvent(**{**r, "t_conf": {int(k): v for k, v in r["t_conf"].items()}}))
    doctor.on_end({})
    for sub in ("stage1", "stage2", "lora"):
        (out / sub).mkdir(exist_ok=True)
        for s in shards:
            for f in sorted((s / sub).glob("*")) if (s / sub).is_dir() else []:
                f.replace(out / sub / f.name)  # names carry the global batch index: no clashes
    summaries = [json.loads((s / "summary.json").read_text()) for s in shards]
    seconds = max(x["seconds"] for x in summaries)  # the processes ran at the same time
    summary = {"targets": targets, "seconds": seconds, "seconds_per_identity": round(seconds / len(targets), 2),
               "target_conf_mean": final["conf"].mean().item(), "device": device, "processes": world}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    k = per_batch
    (out / "run_info.json").write_text(json.dumps({"targets": targets, "device": device, "processes": world,
                                                   "batches": [targets[i : i + k] for i in range(0, len(targets), k)]}))
    for s in out.glob("shard-*"):
        shutil.rmtree(s)
    return summary
