"""Load any prior folder by the kind its ``prior_config.json`` names (a plain diffusers UNet folder or hub id is a
pixel prior)."""

from __future__ import annotations

import json
from pathlib import Path

from mia_app.prior.base import Prior

PRIOR_KINDS = ("pixel", "latent")


def prior_kind(name_or_path: str | Path) -> str:
    """The kind of the prior at ``name_or_path``: "latent" or "pixel" (the default of folders without a kind)."""
    meta = Path(name_or_path) / "prior_config.json"
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
