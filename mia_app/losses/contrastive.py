"""Scheme B3: contrastive identity loss ``id_contrast`` against a bank of negative identities.

The baseline ``id`` loss only pulls E_id(x̂) towards c_y. This term also pushes it away from *other*
identities, so x̂ lands where the identity encoder separates y from its neighbours. Two forms:

* ``hinge`` (default, margin m = 0.4): L = relu(m + max_j cos(ê, n_j) - cos(ê, e_id)), in [0, 2 + m].
  Zero once ê is closer to e_id than to every negative by at least m.
* ``arcface`` (scale s = 64, angular margin m = 0.5): L = -log softmax([s·cos(θ_y + m), s·cos θ_j])_0,
  the additive-angular-margin softmax of ArcFace (Deng et al., CVPR 2019) with e_id as the target "class
  centre" and the negatives as the other class centres. Always >= 0.

Both forms log ``b3_margin`` (mean over the batch) and ``b3_margin_min`` of the hardest-negative gap
cos(ê, e_id) - max_j cos(ê, n_j): the quantity B3 is meant to widen, so a run shows whether it did.

Here ê = E_id(x̂) (``ctx.id_embedding()``), e_id = c_y (``ctx.c``), and the negatives n_j come from a
``NegativeBank``: the other targets' codes and public-face embeddings, with same-class entries masked out
per sample. **Every embedding is L2-normalised right before every cosine**, whatever its producer claims
(the seed skipped this, and also called ``F.normalize(..., keepdim=True)``, which does not exist).

Where the bank comes from: ``ContrastiveIdentityLoss(bank=...)`` (then it is a submodule and travels with
the loss' ``state_dict``), otherwise ``ctx.extras["negative_bank"]``. The engine owns refreshing it.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from mia_app.losses.base import AttackContext, LossTerm
from mia_app.losses.checks import check_embeddings, check_labels

DEFAULT_MARGINS = {"hinge": 0.4, "arcface": 0.5}


def public_bank_label(pid: torch.Tensor) -> torch.Tensor:
    """Bank label of a public identity ``pid`` (>= 0): -1 - pid.

    Private class ids are >= 0, public ones are mapped to <= -1, so a public face can never be mistaken for
    the same class as a target (and masked out), however the two id spaces happen to overlap.
    """
    return -1 - pid.long()


class NegativeBank(nn.Module):
    """At most ``capacity`` unit-norm negative embeddings (K×D) with their identity labels (K).

    Labels: private target classes keep their class id (>= 0); public identities are stored as
    ``public_bank_label(pid)`` = -1 - pid (< 0), so the two id spaces never collide.

    The bank is a constant for the losses (entries are detached): a negative must not be dragged towards x̂.

    Buffers ``embeddings``, ``labels`` and ``last_refresh`` go into ``state_dict``; their sizes change with each
    refresh, so loading resizes them to the saved shapes first.
    """

    embeddings: torch.Tensor
    labels: torch.Tensor
    last_refresh: torch.Tensor

    def __init__(self, capacity: int = 256, refresh_every: int = 50, dim: int = 128, seed: int = 0):
        super().__init__()
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        if refresh_every < 1:
            raise ValueError(f"refresh_every must be >= 1, got {refresh_every}")
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.capacity = capacity
        self.refresh_every = refresh_every
        self.dim = dim
        self.seed = seed
        self.register_buffer("embeddings", torch.zeros(0, dim))
        self.register_buffer("labels", torch.zeros(0, dtype=torch.long))
        # -1: never filled, so the first refresh() call always fills the bank.
        self.register_buffer("last_refresh", torch.tensor(-1, dtype=torch.long))

    def __len__(self) -> int:
        return self.embeddings.shape[0]

    def due(self, step: int) -> bool:
        """True when ``refresh(step, ...)`` would rebuild the bank (never filled, or ``refresh_every`` steps since)."""
        last = int(self.last_refresh)
        return last < 0 or step - last >= self.refresh_every or step < last

    @torch.no_grad()
    def refresh(
        self,
        step: int,
        codes: torch.Tensor | None = None,
        code_labels: torch.Tensor | None = None,
        public_embeddings: torch.Tensor | None = None,
        public_labels: torch.Tensor | None = None,
        force: bool = False,
    ) -> bool:
        """Rebuild the bank if due (every ``refresh_every`` steps, or ``force``); return whether it did.

        Args:
            step: the current optimisation step (a step lower than the last refresh, e.g. a new stage
                restarting at 0, also triggers a rebuild).
            codes: M×D identity codes of the targets (any norm; normalised here), e.g. all current c_y.
            code_labels: M private class ids (>= 0) of ``codes``.
            public_embeddings: P×D E_id embeddings of public faces.
            public_labels: P public identity ids (>= 0); stored as -1 - pid.

        When the pool holds more than ``capacity`` entries a random subset is kept, drawn from a generator
        seeded by (seed, step) so a run is reproducible and a resumed run draws the same subset.

        Raises:
            ValueError: mismatched shapes, NaN, negative ids, or an empty pool.
        """
        if not (force or self.due(step)):
            return False
        parts, labels = [], []
        if (codes is None) != (code_labels is None):
            raise ValueError("codes and code_labels go together")
        if (public_embeddings is None) != (public_labels is None):
            raise ValueError("public_embeddings and public_labels go together")
        if codes is not None:
            check_embeddings("codes", codes, self.dim)
            check_labels("code_labels", code_labels, len(codes))
            if (code_labels < 0).any():
                raise ValueError("private class ids must be >= 0")
            parts.append(codes)
            labels.append(code_labels.long())
        if public_embeddings is not None:
            check_embeddings("public_embeddings", public_embeddings, self.dim)
            check_labels("public_labels", public_labels, len(public_embeddings))
            if (public_labels < 0).any():
                raise ValueError("public identity ids must be >= 0 (they are mapped to -1 - pid internally)")
            parts.append(public_embeddings)
            labels.append(public_bank_label(public_labels))
        if not parts or sum(len(p) for p in parts) == 0:
            raise ValueError("refresh needs at least one negative (codes or public embeddings)")
        device = self.embeddings.device
        pool = torch.cat([F.normalize(p.detach().float().to(device), dim=1) for p in parts])
        pool_labels = torch.cat([lab.to(device) for lab in labels])
        if len(pool) > self.capacity:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + int(step))
            keep = torch.randperm(len(pool), generator=gen)[: self.capacity].sort().values.to(device)
            pool, pool_labels = pool[keep], pool_labels[keep]
        self.embeddings = pool.contiguous()
        self.labels = pool_labels.contiguous()
        self.last_refresh = torch.tensor(int(step), dtype=torch.long, device=device)
        return True

    def negatives_for(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Negatives of each sample: (N×K×D unit embeddings, N×K bool mask of the valid ones).

        mask[i, j] is False where bank entry j has sample i's class y[i] (a same-identity "negative" would
        push x̂ away from its own target). The embeddings are an expanded view of the bank (no copy).

        Raises:
            ValueError: y not a 1-D integer tensor, or the bank is still empty (call ``refresh`` first).
        """
        if not isinstance(y, torch.Tensor) or y.ndim != 1 or y.is_floating_point():
            raise ValueError(f"y must be a 1-D integer tensor of classes, got {tuple(getattr(y, 'shape', ()))}")
        if len(self) == 0:
            raise ValueError("the negative bank is empty: call refresh() with codes or public embeddings first")
        mask = self.labels[None, :] != y.to(self.labels.device)[:, None]
        return self.embeddings.expand(len(y), -1, -1), mask

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args, **kwargs) -> None:
        # The bank's size changes at every refresh, and the default loader copies in place into a tensor of the
        # current shape; resize our buffers to the saved shapes first, then let it copy (and check keys).
        for name in ("embeddings", "labels"):
            saved = state_dict.get(prefix + name)
            if isinstance(saved, torch.Tensor):
                current = self._buffers[name]
                self._buffers[name] = torch.empty(saved.shape, dtype=current.dtype, device=current.device)
        saved = state_dict.get(prefix + "embeddings")
        if isinstance(saved, torch.Tensor) and saved.ndim == 2:
            self.dim = saved.shape[1]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class ContrastiveIdentityLoss(LossTerm):
    """``id_contrast`` (logged ``L_id_contrast``): per-sample contrastive identity loss, >= 0.

    Args:
        form: ``"hinge"`` or ``"arcface"`` (see the module docstring).
        margin: hinge margin (cosine units, default 0.4) or ArcFace angular margin (radians, default 0.5).
        scale: ArcFace logit scale s (default 64); ignored by the hinge form.
        bank: the ``NegativeBank``; if None, read from ``ctx.extras["negative_bank"]``.

    Raises (in ``forward``):
        ValueError: no bank, a sample without any valid negative, NaN in ê or c, or mismatched shapes.
    """

    name = "id_contrast"
    non_negative = True

    def __init__(
        self,
        form: Literal["hinge", "arcface"] = "hinge",
        margin: float | None = None,
        scale: float = 64.0,
        bank: NegativeBank | None = None,
    ):
        super().__init__()
        if form not in DEFAULT_MARGINS:
            raise ValueError(f"form must be 'hinge' or 'arcface', got {form!r}")
        margin = DEFAULT_MARGINS[form] if margin is None else float(margin)
        if form == "hinge" and not 0 <= margin <= 2:
            raise ValueError(f"hinge margin must lie in [0, 2] (a cosine gap), got {margin}")
        if form == "arcface" and not 0 <= margin < math.pi / 2:
            raise ValueError(f"ArcFace angular margin must lie in [0, pi/2) radians, got {margin}")
        if not scale > 0 or not math.isfinite(scale):
            raise ValueError(f"scale must be a positive finite number, got {scale}")
        self.form = form
        self.margin = margin
        self.scale = float(scale)
        self.bank = bank
        # ArcFace's fallback for theta + m > pi, where cos(theta + m) stops decreasing in theta: below the
        # threshold cos(pi - m), use the linear continuation cos(theta) - m·sin(m) (= cos(theta) - sin(pi - m)·m)
        # so the target logit stays monotone (InsightFace's th / mm constants).
        self._cos_m, self._sin_m = math.cos(margin), math.sin(margin)
        self._th = math.cos(math.pi - margin)
        self._mm = math.sin(math.pi - margin) * margin

    def _get_bank(self, ctx: AttackContext) -> NegativeBank:
        bank = self.bank if self.bank is not None else ctx.extras.get("negative_bank")
        if bank is None:
            raise ValueError("id_contrast needs a NegativeBank: pass bank= or set ctx.extras['negative_bank']")
        return bank

    def similarities(self, ctx: AttackContext) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(cos(ê, e_id) N, cos(ê, n_j) N×K, valid mask N×K), all cosines of L2-normalised vectors."""
        e_hat, c = ctx.id_embedding(), ctx.c
        check_embeddings("E_id(x_hat)", e_hat)
        check_embeddings("c", c, e_hat.shape[1])
        if len(c) != len(e_hat) or ctx.y.shape != (len(e_hat),):
            raise ValueError(f"batch sizes differ: E_id(x_hat) {len(e_hat)}, c {len(c)}, y {tuple(ctx.y.shape)}")
        bank = self._get_bank(ctx)
        negatives, mask = bank.negatives_for(ctx.y)
        if negatives.shape[-1] != e_hat.shape[1]:
            raise ValueError(f"bank dimension {negatives.shape[-1]} != embedding dimension {e_hat.shape[1]}")
        if not torch.isfinite(negatives).all():
            raise ValueError("the negative bank contains NaN or inf")
        empty = ~mask.any(1)
        if empty.any():
            raise ValueError(
                f"no negatives for classes {sorted(set(ctx.y[empty].tolist()))}: the bank holds only their own "
                "class; refresh it with other identities"
            )
        e_hat = F.normalize(e_hat, dim=1)
        pos = (e_hat * F.normalize(c, dim=1)).sum(1)
        neg = torch.einsum("nd,nkd->nk", e_hat, F.normalize(negatives.to(e_hat), dim=-1))
        return pos, neg, mask.to(e_hat.device)

    def forward(self, ctx: AttackContext) -> torch.Tensor:
        pos, neg, mask = self.similarities(ctx)
        hardest = neg.masked_fill(~mask, float("-inf")).max(1).values
        # Why B3 helps or not shows in this gap: cos to the own code minus cos to the nearest other identity.
        gap = (pos - hardest).detach()
        ctx.logs["b3_margin"] = gap.mean().item()
        ctx.logs["b3_margin_min"] = gap.min().item()
        if self.form == "hinge":
            return F.relu(self.margin + hardest - pos)
        # ArcFace: target logit s·cos(theta_y + m) (with the monotone fallback), negatives s·cos(theta_j).
        cos = pos.clamp(-1.0, 1.0)
        # sin(theta) from cos; the floor keeps sqrt's gradient finite when cos = ±1 exactly.
        sin = (1.0 - cos.square()).clamp_min(1e-12).sqrt()
        phi = cos * self._cos_m - sin * self._sin_m
        phi = torch.where(cos > self._th, phi, cos - self._mm)
        logits = torch.cat([phi[:, None], neg.masked_fill(~mask, float("-inf"))], dim=1) * self.scale
        return -F.log_softmax(logits, dim=1)[:, 0]
