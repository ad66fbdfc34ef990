"""Load any prior folder by the kind its ``prior_config.json`` names (a plain diffusers UNet folder or hub id is a
pixel prior)."""

from __future__ import annotations

import json
from pathlib import Path

from mia_app.prior.base import Prior

PRIOR_KINDS = ("pixel", "latent")


def prior_kind(name_or_path: str | Path) -> str:
    """The kind of the prior at ``name_or_path`` (a folder, also relative to the repository, or a hub id):
    "latent" or "pixel" (the kind of folders without one, and of hub UNets)."""
    from mia_app.assets import REPO_ROOT

    path = Path(name_or_path)
    if not path.is_absolute() and not path.exists() and (REPO_ROOT / path).exists():
        path = REPO_ROOT / path
    meta = path / "prior_config.json"
    kind = json.loads(meta.read_text()).get("kind", "pixel") if meta.is_file() else "pixel"
    if kind not in PRIOR_KINDS:
        raise ValueError(f"{meta}: unknown prior kind {kind!r}; known: {list(PRIOR_KINDS)}")
    return kind


def prior_from_pretrained(name_or_path: str | Path) -> Prior:
    if prior_kind(name_or_path) == "latent":
        from mia_app.prior.latent import LatentPrior

        return LatentPrior.from_pretrained(name_or_path)
    from mia_app.prior.model import IdentityPrior

    return IdentityPrior.from_pretrained(name_or_path)
