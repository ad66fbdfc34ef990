"""Plug & Play Attacks (Struppek et al., ICML 2022) on a public latent generator, as a peer of ours.

select -> optimise -> select, PPA's stage flow:
1. initial selection: ``search_space`` random latents z of the public generator G; T's softmax for y on G(z)
   and its mirror; the ``candidates`` best per identity;
2. optimisation: Adam on z (``lr``, ``betas``), ``steps`` steps of ``loss`` (Poincaré by default) on
   T(τ(G(z))) with a fresh random transform τ (resized crop, flip, colour jitter) each step, the rate divided
   by 10 at each ``lr_milestones`` fraction of the steps;
3. final selection: the ``keep`` best per identity by T's mean confidence under ``final.iterations``
   random transforms.
Only T and the public generator are used: no private image, no E.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F

from mia_app.attack.augment import RandomTransforms
from mia_app.attack.config import AttackConfig
from mia_app.losses.classification import max_margin, poincare_loss
from mia_app.peers.config import PPAPeer
from mia_app.peers.generators import load_generator
from mia_app.peers.running import PeerRun
from mia_app.peers.selection import final_select, generator_search


def identity_loss(kind: str, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample attack loss on T's logits N×K for classes y: ``poincare``, ``max_margin`` or ``ce``."""
    if kind == "poincare":
        return poincare_loss(logits, y)
    if kind == "ce":
        return F.cross_entropy(logits, y, reduction="none")
    if kind == "max_margin":
        return max_margin(logits, y)
    raise ValueError(f"unknown loss {kind!r}")


def optimise_latents(run: PeerRun, gen, z0: torch.Tensor, y: torch.Tensor, peer: PPAPeer,
                     generator: torch.Generator, batch: int = 0) -> torch.Tensor:
    """Stage 2 of PPA on one batch of latents: returns the optimised z (same shape), detached."""
    z = torch.nn.Parameter(z0.clone().to(run.device))
    y = y.to(run.device)
    opt = torch.optim.Adam([z], lr=peer.lr, betas=peer.betas)
    milestones = [max(1, round(m * peer.steps)) for m in peer.lr_milestones]
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=0.1)
    tau = RandomTransforms(scale=peer.crop_scale, ratio=(1.0, 1.0), flip=peer.flip, brightness=peer.jitter,
                           contrast=peer.jitter, saturation=peer.jitter)
    for step in range(1, peer.steps + 1):
        x = gen(z)
        logits = run.target(tau(x, generator))
        loss = identity_loss(peer.loss, logits, y)
        opt.zero_grad(set_to_none=True)
        loss.mean().backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            p_y = F.softmax(logits, 1).gather(1, y[:, None]).squeeze(1)
        t_conf = {int(c): p_y[y == c].mean().item() for c in y.unique()}
        logs = {"L_cls": loss.mean().item(), "total": loss.mean().item(), "T_conf": p_y.mean().item(),
                "lr": opt.param_groups[0]["lr"], "latent_norm": z.detach().norm(dim=1).mean().item()}
        run.step(step, peer.steps, logs, t_conf, batch)
        if step % peer.image_every == 0 or step == peer.steps or step == 1:
            run.images(1, step, x, y, batch)
    return z.detach()


def run_ppa(cfg: AttackConfig, peer: PPAPeer, targets: list[int], out: str | Path,
            callbacks: list | None = None) -> dict:
    """Invert ``targets`` of ``cfg.target`` with PPA; writes a run folder ``evaluate_run`` judges."""
    run = PeerRun(cfg, peer, targets, out, callbacks)
    gen = load_generator(peer.generator, run.bench.resolution, run.device)
    g = torch.Generator().manual_seed(cfg.seed)
    t0 = time.time()
    z, y = generator_search(run.target, gen, peer.search_space, targets, peer.candidates, g, run.device)
    # Batches hold whole identities (candidates of one class stay together for the live grids).
    per_batch = max(1, peer.batch_size // peer.candidates) * peer.candidates
    optimised = []
    for lo in range(0, len(z), per_batch):
        optimised.append(optimise_latents(run, gen, z[lo : lo + per_batch], y[lo : lo + per_batch], peer, g,
                                          lo // per_batch))
    z = torch.cat(optimised) if optimised else z.to(run.device)
    with torch.no_grad():
        x = torch.cat([gen(z[i : i + 500]) for i in range(0, len(z), 500)])
    keep, score = final_select(run.target, x, y, cfg.keep, peer.final, g)
    return run.finish(x[keep], y[keep], score[keep], time.time() - t0,
                      {"generator": gen.description, "latent_dim": gen.latent_dim})
