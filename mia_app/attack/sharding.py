"""Identities sharded across processes (``accelerate launch``), merged back into one run folder.

    accelerate launch --num_processes 2 --cpu -m mia_app attack --config ... --targets 0-99 --out runs/x
    accelerate launch --num_processes 8 -m mia_app attack ...            # 8 GPUs, one process each

Rank r attacks the batches i with i mod world == r (the engine seeds every batch from its index, so a batch's
images do not depend on which process ran it) into ``out/shard-r/``; after a barrier rank 0 merges the shards
into ``out/`` in the single-process order and removes them. Without ``accelerate launch`` (WORLD_SIZE unset
or 1) nothing here starts a process group.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from mia_app.attack.writer import write_final


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


def current_shard() -> Shard:
    """The shard of this process under ``accelerate launch`` / torchrun; ``Shard()`` when run alone."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Shard()
    from accelerate import PartialState

    state = PartialState()  # initialises the process group (gloo on CPU, nccl on GPUs)
    return Shard(state.process_index, state.num_processes)


def barrier() -> None:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from accelerate import PartialState

        PartialState().wait_for_everyone()


def shard_folder(out: Path, shard: Shard) -> Path:
    return out if shard.world == 1 else out / f"shard-{shard.rank}"


def _batch_order(labels: torch.Tensor, targets: list[int], per_batch: int) -> list[int]:
    """Indices that put merged rows in the single-process order: by batch, then by class within a batch."""
    position = {t: i for i, t in enumerate(targets)}
    return sorted(range(len(labels)), key=lambda i: (position[int(labels[i])] // per_batch, int(labels[i])))


def merge_shards(out: Path, world: int, targets: list[int], per_batch: int, device: str) -> dict[str, Any]:
    """Merge ``out/shard-*`` into ``out``: final images, codes, metrics.jsonl, grids, adapters, doctor checks."""
    shards = [out / f"shard-{r}" for r in range(world)]
    ran = [s for s in shards if (s / "final" / "images.safetensors").is_file()]
    finals = [load_file(str(s / "final" / "images.safetensors")) for s in ran]
    final = {k: torch.cat([f[k] for f in finals]) for k in ("images", "labels", "conf")}
    order = _batch_order(final["labels"], targets, per_batch)
    final = {k: v[order] for k, v in final.items()}
    write_final(out, final)
    codes = [load_file(str(s / "codes.safetensors")) for s in ran]
    c_y, code_targets = torch.cat([c["c_y"] for c in codes]), torch.cat([c["targets"] for c in codes])
    corder = _batch_order(code_targets, targets, per_batch)
    save_file({"c_y": c_y[corder].contiguous(), "targets": code_targets[corder].contiguous()},
              str(out / "codes.safetensors"))
    lines = [json.loads(line) for s in ran for line in (s / "metrics.jsonl").read_text().splitlines() if line]
    lines.sort(key=lambda r: (r["batch"], r["stage"], r["step"]))
    (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    for sub in ("stage1", "stage2", "lora"):
        (out / sub).mkdir(exist_ok=True)
        for s in ran:
            for f in sorted((s / sub).glob("*")) if (s / sub).is_dir() else []:
                f.replace(out / sub / f.name)  # names carry the global batch index: no clashes
    checks = []
    for r, s in enumerate(shards):
        if (s / "doctor.json").is_file():
            checks += [{**c, "shard": r} for c in json.loads((s / "doctor.json").read_text())]
    (out / "doctor.json").write_text(json.dumps(checks, indent=1))
    summaries = [json.loads((s / "summary.json").read_text()) for s in ran]
    seconds = max(x["seconds"] for x in summaries)  # the processes ran at the same time
    summary = {"targets": targets, "seconds": seconds, "seconds_per_identity": round(seconds / len(targets), 2),
               "target_conf_mean": final["conf"].mean().item(), "device": device, "processes": world}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    k = per_batch
    (out / "run_info.json").write_text(json.dumps({"targets": targets, "device": device, "processes": world,
                                                   "batches": [targets[i : i + k] for i in range(0, len(targets), k)]}))
    for s in shards:
        if s.exists():
            shutil.rmtree(s)
    return summary
