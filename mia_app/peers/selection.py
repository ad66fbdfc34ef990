"""PPA's two selection stages, shared by the floor and PPA, and the floor itself (``selection_only``).

Initial selection: score every candidate image by T's softmax for y, averaged over the image and its mirror
(PPA's candidate search flips), and take the best per identity. Final selection: re-score by T's mean
confidence under ``FinalSelection.iterations`` random transforms and keep the ``keep`` best per identity.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mia_app.attack.augment import RandomTransforms, confidence_under_transforms
from mia_app.attack.config import AttackConfig
from mia_app.attack.selection import final_selection
from mia_app.peers.config import FinalSelection, SelectionPeer
from mia_app.peers.running import PeerRun

#: The floor's final selection draws its transforms from this seed whatever the run's seed: it is deterministic.
FLOOR_SELECTION_SEED = 0


@torch.no_grad()
def mirror_probs(target: nn.Module, x: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """T's softmax averaged over x and its horizontal mirror: N×K; x N×3×R×R in [-1, 1] on T's device."""
    out = []
    for i in range(0, len(x), batch):
        xb = x[i : i + batch]
        out.append(((F.softmax(target(xb), 1) + F.softmax(target(xb.flip(-1)), 1)) / 2).cpu())
    return torch.cat(out)


def top_per_identity(probs: torch.Tensor, targets: list[int], k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(indices (B·k), labels (B·k)): the k pool items T ranks highest for each target, grouped by target."""
    if k > len(probs):
        raise ValueError(f"candidates ({k}) exceed the pool ({len(probs)})")
    idx = torch.cat([probs[:, y].topk(k).indices for y in targets])
    return idx, torch.tensor(targets).repeat_interleave(k)


def final_select(target: nn.Module, x: torch.Tensor, y: torch.Tensor, keep: int, final: FinalSelection,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept indices ordered by class then rank, PPA's score of every candidate) — x on T's device."""
    tau = RandomTransforms(scale=final.crop_scale, ratio=final.crop_ratio, flip=final.flip)
    score = confidence_under_transforms(target, x, y.to(x.device), tau, final.iterations, generator).cpu()
    return final_selection(score, y.cpu(), keep), score


@torch.no_grad()
def generator_search(target: nn.Module, gen: nn.Module, search_space: int, targets: list[int], k: int,
                     generator: torch.Generator, device: torch.device, batch: int = 500):
    """PPA's initial selection: (latents (B·k)×d, labels) of the k best of ``search_space`` random latents."""
    z = gen.sample_latents(search_space, generator)
    probs = torch.cat([mirror_probs(target, gen(z[i : i + batch].to(device))) for i in range(0, len(z), batch)])
    idx, y = top_per_identity(probs, targets, k)
    return z[idx], y


def run_selection_only(cfg: AttackConfig, peer: SelectionPeer, targets: list[int], out: str | Path,
                       callbacks: list | None = None) -> dict:
    """The floor: no optimisation, only PPA's selections. Writes a run folder ``evaluate_run`` judges."""
    run = PeerRun(cfg, peer, targets, out, callbacks)
    t0 = time.time()
    if peer.source == "public":
        pool = run.bench.public
        probs = mirror_probs(run.target, pool.as_float().to(run.device))
        idx, y = top_per_identity(probs, targets, peer.candidates)
        x = pool.as_float(idx).to(run.device)
        g = torch.Generator().manual_seed(FLOOR_SELECTION_SEED)
        origin = {"pool": f"public images of the benchmark ({len(pool)})", "public_index": idx.tolist()}
    else:
        from mia_app.peers.generators import load_generator

        gen = load_generator(peer.generator, run.bench.resolution, run.device)
        g = torch.Generator().manual_seed(cfg.seed)
        z, y = generator_search(run.target, gen, peer.search_space, targets, peer.candidates, g, run.device)
        with torch.no_grad():
            x = gen(z.to(run.device))
        origin = {"pool": f"{peer.search_space} random latents of {peer.generator}: {gen.description}"}
    run.images(1, 0, x, y)
    keep, score = final_select(run.target, x, y, cfg.keep, peer.final, g)
    return run.finish(x[keep], y[keep], score[keep], time.time() - t0, origin)
