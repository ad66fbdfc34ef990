"""The two-stage inversion, PPA's flow: select -> optimise (stage 1: c_y; stage 2: LoRA + c_y) -> select.

Several target classes are attacked in one batch (``identities_per_batch``): their candidates share
every prior, E_id and T forward pass, so the cost per identity falls with the batch size. The engine talks to
the prior only through ``mia_app.prior.base.Prior``: sources come from its ``source_pool``, samples live in its
space (ẑ) and every image loss sees the decoded face x̂ = prior.decode(ẑ).
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch.profiler import record_function

from mia_app.attack.config import AttackConfig, StageConfig
from mia_app.attack.events import AttackCancelled, BaseCallback, CallbackList, ImageEvent, StepEvent
from mia_app.attack.lora import save_lora, with_lora
from mia_app.attack.models import AttackModels
from mia_app.attack.selection import (
    final_selection,
    initial_code,
    softmax_over_pool,
    target_confidence,
    top_k_public,
)
from mia_app.attack.sharding import Shard
from mia_app.data import Benchmark
from mia_app.data.benchmark import to_signed
from mia_app.losses.base import AttackContext
from mia_app.losses.factory import build_composer
from mia_app.prior.base import Prior, SourcePool
from mia_app.prior.sampler import sdedit_sample


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (AVX512-BF16 or AMX); emulated bf16 is much slower."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


class Inversion:
    def __init__(
        self,
        cfg: AttackConfig,
        models: AttackModels,
        bench: Benchmark,
        out: Path | None = None,
        callbacks: list | None = None,
    ):
        if bench.n_classes != models.target_meta["n_classes"]:
            raise ValueError(f"benchmark has {bench.n_classes} classes, T has {models.target_meta['n_classes']}")
        self.cfg, self.models, self.bench, self.out = cfg, models, bench, out
        self.cb = CallbackList(callbacks or [BaseCallback()])
        self.device = models.device
        self._pool: SourcePool | None = None
        self._public_probs: torch.Tensor | None = None
        self._prior_pool: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        if cfg.precision == "bf16" and self.device.type == "cpu" and not cpu_has_native_bf16():
            # Measured on an AVX2-only AMD EPYC: a cpu-quick step 13x slower in bf16 than in fp32 (README).
            warnings.warn("precision bf16 on a CPU without native bf16 (AVX512-BF16 / AMX): each step runs 10-13x "
                          "slower than with precision: fp32 here", RuntimeWarning, stacklevel=2)

    def autocast(self) -> torch.autocast:
        """The forward pass's precision (``cfg.precision``); backward and optimiser steps run outside it."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.precision == "bf16")

    # ---- select -------------------------------------------------------------------------------------
    def source_pool(self) -> SourcePool:
        """The prior's public SDEdit sources: the public images (pixel prior) or ``search_space`` random
        generator latents (latent prior)."""
        if self._pool is None:
            self._pool = self.models.prior.source_pool(self.bench, self.cfg.search_space, self.cfg.seed)
        return self._pool

    def public_probs(self) -> torch.Tensor:
        if self._public_probs is None:
            with self.autocast():  # ranking 4000 faces is a few seconds of the dashboard's time to a first image
                self._public_probs = softmax_over_pool(self.models.target, self.source_pool().images, self.device)
        return self._public_probs

    def prior_pool(self, size: int = 256, with_ids: bool = False):
        """A fixed subset of the source pool in the prior's space, with E_id codes of its faces (and public
        identity ids): stage 2's prior preservation data and scheme B3's public negatives."""
        if self._prior_pool is None:
            pool = self.source_pool()
            g = torch.Generator().manual_seed(self.cfg.seed + 7)
            idx = torch.randperm(len(pool), generator=g)[: min(size, len(pool))]
            x = to_signed(pool.images[idx].to(self.device))
            with torch.no_grad():
                c = torch.cat([self.models.id_encoder(x[i : i + 64]) for i in range(0, len(x), 64)])
            self._prior_pool = (pool.latents[idx].to(self.device), c, pool.labels[idx].to(self.device))
        return self._prior_pool if with_ids else self._prior_pool[:2]

    def _negative_bank(self, batch: int):
        from mia_app.losses.contrastive import NegativeBank

        s = self.cfg.schemes
        return NegativeBank(s.bank_size, s.bank_refresh_every, seed=self.cfg.seed * 1000 + batch).to(self.device)

    def select_initial(self, targets: list[int], sources: int | None = None):
        """(c0: B×128, z_src: (B·n)×<prior space>, x_src: (B·n)×3×R×R in [-1, 1], y: B·n) from T's pseudo-labels
        of the source pool; n = ``sources`` (default ``candidates``) per class, in T's order."""
        pool, probs = self.source_pool(), self.public_probs()
        n = sources or self.cfg.candidates
        codes, tops = [], []
        for y in targets:
            top = top_k_public(probs, y, max(self.cfg.init_top_k, n))
            codes.append(initial_code(self.models.id_encoder, pool.images[top[: self.cfg.init_top_k]], self.device))
            tops.append(top[:n])
        top = torch.cat(tops)
        y = torch.tensor(targets).repeat_interleave(n).to(self.device)
        x_src = to_signed(pool.images[top].to(self.device))
        return torch.stack(codes), pool.latents[top].to(self.device), x_src, y

    @torch.no_grad()
    def initial_candidates(self, targets: list[int], batch: int):
        """select_initial, then each candidate's fixed SDEdit noise: (c0, z_src, x_src, y, noise).

        With ``init_sources`` / ``init_draws`` set, PPA's initial selection runs on the prior's own output: the
        top init_sources sources per class are SDEdited under c_y^0 with init_draws noises each (no optimisation),
        and the ``candidates`` sources whose best output T is most confident about are kept, each with that
        noise. It spends a few no-grad samples so that the optimisation starts from faces the prior's pass
        keeps in class y, instead of winning T's class back first. Deterministic in (seed, batch)."""
        cfg = self.cfg
        g = torch.Generator().manual_seed(cfg.seed * 7919 + batch)
        m = cfg.init_sources or cfg.candidates
        c0, z_src, x_src, y = self.select_initial(targets, m)
        if m == cfg.candidates and cfg.init_draws == 1:
            return c0, z_src, x_src, y, torch.randn(z_src.shape, generator=g).to(self.device)
        noise = torch.randn((cfg.init_draws, *z_src.shape), generator=g).to(self.device)
        c = F.normalize(c0, dim=1).repeat_interleave(m, 0)
        conf = []
        for draw in noise:  # fp32 whatever cfg.precision: a precision variant then starts where its baseline does
            x_hat = self.models.prior.decode(sdedit_sample(
                self.models.prior, z_src, c, cfg.sampler.strength, cfg.sampler.num_steps, cfg.sampler.guidance,
                noise=draw))
            conf.append(target_confidence(self.models.target, x_hat, y))
        best_conf, best_draw = torch.stack(conf).max(0)
        # Per class in ``targets`` order (c_y's rows follow it), its sources' block, most confident first.
        keep = torch.cat([i * m + best_conf[i * m : (i + 1) * m].argsort(descending=True)[: cfg.candidates]
                          for i in range(len(targets))])
        return c0, z_src[keep], x_src[keep], y[keep], noise[best_draw[keep], keep]

    # ---- optimise -----------------------------------------------------------------------------------
    def _optimise(
        self,
        stage: int,
        scfg: StageConfig,
        prior: Prior,
        c_raw: torch.nn.Parameter,
        param_groups: list[dict],
        z_src: torch.Tensor,
        x_src: torch.Tensor,
        noise: torch.Tensor,
        y: torch.Tensor,
        targets: list[int],
        batch: int,
    ) -> None:
        bank = self._negative_bank(batch) if self.cfg.schemes.B3 else None
        composer = build_composer(self.cfg, stage, scfg, bank)
        extra_groups = composer.param_groups(scfg.lr)
        lora_params = [p for g in param_groups for p in g["params"] if p is not c_raw]
        if not param_groups + extra_groups or scfg.steps == 0:
            return
        opt = torch.optim.Adam(param_groups + extra_groups)
        gen = torch.Generator().manual_seed(self.cfg.seed * 1000 + stage * 100 + batch)
        n = self.cfg.candidates
        t0 = time.time()
        source_cache: dict[str, Any] = {}  # x_src's features: the same at every step of this batch
        for step in range(1, scfg.steps + 1):
            if self.cb.should_stop():
                raise AttackCancelled(f"cancelled at stage {stage} step {step}")
            c = F.normalize(c_raw, dim=1).repeat_interleave(n, 0)
            with record_function("step: prior sampling"), self.autocast():  # labels: benchmarks/step_profile.py
                z_hat = sdedit_sample(prior, z_src, c, self.cfg.sampler.strength, self.cfg.sampler.num_steps,
                                      self.cfg.sampler.guidance, noise=noise,
                                      gradient_checkpointing=self.cfg.sampler.gradient_checkpointing)
                x_hat = prior.decode(z_hat)
            extras: dict[str, Any] = {"generator": gen, "targets": targets, "lora_params": lora_params,
                                      "source_cache": source_cache}
            if bank is not None:
                x_pool, c_pool, pool_ids = self.prior_pool(with_ids=True)
                bank.refresh(step, codes=F.normalize(c_raw.detach(), dim=1), code_labels=torch.tensor(targets),
                             public_embeddings=c_pool, public_labels=pool_ids)
            if stage == 2:
                x_pool, c_pool = self.prior_pool()
                pick = torch.randint(0, len(x_pool), (self.cfg.prior_batch,), generator=gen)
                extras["public_batch"] = (x_pool[pick], c_pool[pick])
            ctx = AttackContext(x_hat, x_src, c, y, stage, step, self.models.as_dict(prior), extras, z_hat=z_hat)
            with record_function("step: losses"), self.autocast():
                total, _, logs = composer(ctx)
            opt.zero_grad(set_to_none=True)
            with record_function("step: backward"):
                total.backward()
            logs.update(self._health(ctx, c_raw, param_groups))
            opt.step()
            with torch.no_grad():
                p_y = F.softmax(ctx.target_logits(), 1).gather(1, y[:, None]).squeeze(1)
            t_conf = {t: p_y[i * n : (i + 1) * n].mean().item() for i, t in enumerate(targets)}
            logs["T_conf"] = p_y.mean().item()
            self.cb.on_step(StepEvent(stage, step, scfg.steps, batch, targets, logs, t_conf, time.time() - t0))
            if step % scfg.image_every == 0 or step == scfg.steps or step == 1:
                self.cb.on_images(ImageEvent(stage, step, batch, targets, x_hat.detach().cpu(), y.cpu()))

    @staticmethod
    @torch.no_grad()
    def _health(ctx: AttackContext, c_raw: torch.nn.Parameter, param_groups: list[dict]) -> dict[str, float]:
        """Doctor readings of this step: gradient norms, embedding norms, cosine range."""
        out = {"grad_norm_c": c_raw.grad.norm().item() if c_raw.grad is not None else 0.0}
        lora = [p for g in param_groups for p in g["params"] if p is not c_raw]
        if lora:
            out["grad_norm_lora"] = sum(p.grad.norm() ** 2 for p in lora if p.grad is not None) ** 0.5
            out["grad_norm_lora"] = float(out["grad_norm_lora"])
        if "id_embedding" in ctx._cache:
            e = ctx._cache["id_embedding"]
            cos = (F.normalize(e, dim=1) * F.normalize(ctx.c, dim=1)).sum(1)
            out.update(emb_norm_max_dev=(e.norm(dim=1) - 1).abs().max().item(), cos_min=cos.min().item(),
                       cos_max=cos.max().item())
        out["code_norm_max_dev"] = (ctx.c.norm(dim=1) - 1).abs().max().item()
        return out

    # ---- the whole flow -----------------------------------------------------------------------------
    def attack_batch(self, targets: list[int], batch: int) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        # The global RNG (LoRA initialisation) is seeded per batch, so a batch gives the same images whichever
        # process runs it and whatever ran before it: a sharded run equals a single-process one.
        torch.manual_seed(cfg.seed * 1_000_003 + batch)
        c0, z_src, x_src, y, noise = self.initial_candidates(targets, batch)  # noise fixed per candidate: paired
        c_raw = torch.nn.Parameter(c0.clone())
        # Stage 1: the code only, under the frozen prior.
        self._optimise(1, cfg.stage1, self.models.prior, c_raw, [{"params": [c_raw], "lr": cfg.stage1.lr}],
                       z_src, x_src, noise, y, targets, batch)
        # Stage 2: LoRA on the UNet (and the code, at its own rate).
        tuned, lora_params = with_lora(self.models.prior, cfg.lora)
        groups = [{"params": lora_params, "lr": cfg.stage2.lr}]
        if cfg.stage2.code_lr > 0:
            groups.append({"params": [c_raw], "lr": cfg.stage2.code_lr})
        self._optimise(2, cfg.stage2, tuned, c_raw, groups, z_src, x_src, noise, y, targets, batch)
        # Final selection by T's confidence.
        with torch.no_grad():
            c = F.normalize(c_raw, dim=1)
            with self.autocast():  # the images the optimisation saw
                z_hat = sdedit_sample(tuned, z_src, c.repeat_interleave(cfg.candidates, 0), cfg.sampler.strength,
                                      cfg.sampler.num_steps, cfg.sampler.guidance, noise=noise)
                x_hat = tuned.decode(z_hat).float()
            conf = target_confidence(self.models.target, x_hat, y)
        keep = final_selection(conf, y, cfg.keep)
        if self.out is not None:
            (self.out / "lora").mkdir(parents=True, exist_ok=True)
            save_lora(tuned, self.out / "lora" / f"batch{batch:03d}.safetensors", cfg.lora, {"targets": targets})
        return {"images": x_hat[keep].cpu(), "labels": y[keep].cpu(), "conf": conf[keep].cpu(),
                "codes": c.detach().cpu(), "targets": torch.tensor(targets)}

    def run(self, targets: list[int], shard: Shard | None = None) -> dict[str, Any]:
        """Attack ``targets`` in batches of ``identities_per_batch``; with a ``shard`` of a multi-process run, only
        the batches it owns (batch i belongs to rank i mod world; the other ranks run the rest)."""
        bad = [t for t in targets if not 0 <= t < self.bench.n_classes]
        if bad or not targets:
            raise ValueError(f"targets must be non-empty class indices in [0, {self.bench.n_classes}); got {bad}")
        t0 = time.time()
        shard = shard or Shard()
        k = self.cfg.identities_per_batch
        batches = [targets[i : i + k] for i in range(0, len(targets), k)]
        mine = shard.take(list(enumerate(batches)))
        if not mine:
            raise ValueError(f"shard {shard.rank} of {shard.world} has no batch of these {len(batches)} batches")
        targets = [t for _, b in mine for t in b]
        self.cb.on_start({"targets": targets, "batches": [b for _, b in mine], "config": self.cfg.model_dump(
            mode="json"), "device": str(self.device), "shard": [shard.rank, shard.world]})
        results = [self.attack_batch(b, i) for i, b in mine]
        merged = {key: torch.cat([r[key] for r in results]) for key in results[0]}
        if self.out is not None:
            save_file({"c_y": merged["codes"].contiguous(), "targets": merged["targets"]},
                      str(self.out / "codes.safetensors"))
        summary = {
            "targets": targets,
            "seconds": round(time.time() - t0, 2),
            "seconds_per_identity": round((time.time() - t0) / len(targets), 2),
            "target_conf_mean": merged["conf"].mean().item(),
            "device": str(self.device),
        }
        self.cb.on_end({**summary, "final": merged})
        return {**summary, "final": merged}
