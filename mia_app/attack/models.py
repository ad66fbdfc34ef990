"""Load the attack's models once: prior, target T, identity encoder E_id and perceptual backbone.

The evaluation model E is deliberately absent: the attack never sees it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from mia_app.assets import REPO_ROOT, AssetError, shipped_path
from mia_app.attack.config import AttackConfig
from mia_app.models.classifiers import load_classifier
from mia_app.prior.base import Prior
from mia_app.prior.io import prior_from_pretrained

logger = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no GPU is visible; use 'auto' or 'cpu'")
    return torch.device(name)


def local_path(path_or_id: str) -> Path | None:
    """A path as given, or relative to the repository root; None when neither exists (a hub id, say)."""
    p = Path(path_or_id)
    if not p.is_absolute():
        p = (REPO_ROOT / p) if (REPO_ROOT / p).exists() else p
    return p if p.exists() else None


def online() -> bool:
    """Hub downloads are tried only when the user says so (``MIA_ONLINE=1``): offline, a typo in a folder name
    must read "not found", not a network error after a timeout."""
    return os.environ.get("MIA_ONLINE", "") == "1"


def load_prior(name: str) -> Prior:
    local = local_path(name)
    if local is None and name.startswith(("assets/", "./", "/")):
        raise AssetError(f"prior {name!r} not found; train one with `python -m mia_app train-prior --ship`")
    if local is None and not online():
        raise AssetError(f"prior {name!r} not found: no such folder (a relative path is read from the working "
                         "directory or the repository); a Hugging Face hub id is fetched only with MIA_ONLINE=1")
    if local is not None and local.resolve().is_relative_to(REPO_ROOT / "assets"):
        for f in sorted(local.resolve().rglob("*")):  # verify the shipped prior against the manifest
            if f.is_file():
                shipped_path(str(f.relative_to(REPO_ROOT)))
    return prior_from_pretrained(local or name)


def load_target(name: str) -> tuple[nn.Module, dict]:
    local = local_path(name)
    if local is None:
        raise AssetError(f"target classifier {name!r} not found")
    rel = str(local.resolve().relative_to(REPO_ROOT)) if local.resolve().is_relative_to(REPO_ROOT) else None
    if rel and rel.startswith("assets/"):
        local = shipped_path(rel)  # verify the shipped checkpoint against the manifest
    return load_classifier(local)


@dataclass
class AttackModels:
    prior: Prior
    target: nn.Module
    target_meta: dict
    id_encoder: nn.Module
    perceptual: nn.Module
    device: torch.device
    #: sha256 of the prior, T and E_id weights (``mia_app.attack.fingerprint``), set by ``run.cached_models``
    fingerprint: dict | None = None

    @classmethod
    def load(cls, cfg: AttackConfig) -> AttackModels:
        from mia_app.models.id_encoders import load_id_encoder
        from mia_app.models.mobilenet_v2 import load_mobilenet_v2

        device = resolve_device(cfg.device)
        if cfg.precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError("precision: this GPU has no bf16; use precision: fp32")
        prior = load_prior(cfg.prior).to(device).eval().requires_grad_(False)
        trained_on = getattr(prior, "code_encoder", None)
        if trained_on is not None and trained_on != cfg.id_encoder:
            # Not an error (E_id's choice is an experiment in itself), but the codes the attack feeds the prior
            # are then from another encoder than the one it learnt to follow.
            logger.warning("id_encoder %r: the prior %s was trained on %r codes", cfg.id_encoder, cfg.prior,
                           trained_on)
        elif (trained_sha := getattr(prior, "code_encoder_sha256", None)) is not None:
            from mia_app.models.id_encoders import id_encoder_digest

            if trained_sha != id_encoder_digest(cfg.id_encoder):
                logger.warning("id_encoder %r: the prior %s was trained on codes of other %r weights (sha256 %s…); "
                               "retrain it with `python -m mia_app train-prior`", cfg.id_encoder, cfg.prior,
                               trained_on, trained_sha[:12])
        target, meta = load_target(cfg.target)
        return cls(prior, target.to(device), meta, load_id_encoder(cfg.id_encoder, device), load_mobilenet_v2(device),
                   device)

    def as_dict(self, prior: Prior | None = None) -> dict[str, nn.Module]:
        return {
            "prior": prior or self.prior,
            "target": self.target,
            "id_encoder": self.id_encoder,
            "perceptual": self.perceptual,
        }
