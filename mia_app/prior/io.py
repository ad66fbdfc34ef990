"""Load any prior folder by the kind its ``prior_config.json`` names (a plain diffusers UNet folder or hub id is a
pixel prior)."""

from __future__ import annotations

import json
from pathlib import Path

from mia_app.prior.base import Prior

PRIOR_KINDS = ("pixel", "latent")


#: Header files are a few KB; a bigger one is not ours.
_MAX_HEADER_BYTES = 1 << 20


def read_json_header(path: Path) -> dict:
    """A small JSON object file (a prior's ``prior_config.json``, a UNet's ``config.json``), or a one-line error."""
    if path.stat().st_size > _MAX_HEADER_BYTES:
        raise ValueError(f"{path}: larger than {_MAX_HEADER_BYTES >> 10} KiB; not a prior header")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not JSON ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


def _check_int(where: Path, key: str, value: object, lo: int, hi: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise ValueError(f"{where}: header {key} must be an integer in [{lo}, {hi}], got {value!r}")


def check_prior_header(folder: Path) -> str:
    """The kind of the prior folder, after its header's sizes are checked against the bounds of the training
    configs (before anything is allocated: a forged ``width: 100000`` would ask for hundreds of GB).

    A folder that is not a prior (no ``prior_config.json``, no ``unet/config.json`` and no ``config.json``) is
    a ``ValueError``; a plain diffusers UNet folder is a pixel prior."""
    from pydantic import ValidationError

    from mia_app.config import LatentPriorTrainConfig, PriorTrainConfig

    if not folder.is_dir():
        raise ValueError(f"prior {folder}: not a folder (a prior is a folder with prior_config.json, or a "
                         "diffusers UNet2DModel folder)")
    meta_file = folder / "prior_config.json"
    unet_config = next((f for f in (folder / "unet" / "config.json", folder / "config.json") if f.is_file()), None)
    if not meta_file.is_file() and unet_config is None:
        raise ValueError(f"prior {folder}: no prior_config.json, unet/config.json or config.json in it")
    meta = read_json_header(meta_file) if meta_file.is_file() else {}
    kind = meta.get("kind", "pixel")
    if kind not in PRIOR_KINDS:
        raise ValueError(f"{meta_file}: unknown prior kind {kind!r}; known: {list(PRIOR_KINDS)}")
    checks: list[tuple[type, str, object]] = []
    if kind == "latent":
        denoiser = meta.get("denoiser")
        if not isinstance(denoiser, dict):
            raise ValueError(f"{meta_file}: 'denoiser' must be an object of sizes")
        checks += [(LatentPriorTrainConfig, k, denoiser.get(k)) for k in ("width", "depth", "emb_dim")]
        for key in ("latent_dim", "code_dim"):
            _check_int(meta_file, f"denoiser {key}", denoiser.get(key), 1, 4096)
    elif unet_config is not None:
        unet = read_json_header(unet_config)
        if meta_file.is_file():  # our pixel prior: the sizes its training allows
            checks.append((PriorTrainConfig, "channels", unet.get("block_out_channels")))
            _check_int(meta_file, "code_dim", meta.get("code_dim", 128), 1, 4096)
        # any UNet folder, ours or a plain diffusers one: sizes no 64-px face model needs are refused
        channels = unet.get("block_out_channels")
        if not isinstance(channels, list) or not 1 <= len(channels) <= 8:
            raise ValueError(f"{unet_config}: block_out_channels must be a list of 1-8 sizes, got {channels!r}")
        for c in channels:
            _check_int(unet_config, "block_out_channels", c, 1, 4096)
        _check_int(unet_config, "layers_per_block", unet.get("layers_per_block", 2), 1, 8)
        _check_int(unet_config, "sample_size", unet.get("sample_size", 32), 8, 1024)
    for model, field, value in checks:
        try:  # validate_assignment checks one field against the training config's own bounds
            setattr(model.model_construct(), field, value)
        except ValidationError as err:
            raise ValueError(f"{meta_file}: header {field}={value!r} is outside the training config's bounds "
                             f"({err.errors()[0]['msg']})") from None
    return kind


def prior_kind(name_or_path: str | Path) -> str:
    """The kind of the prior at ``name_or_path`` (a folder, also relative to the repository, or a hub id):
    "latent" or "pixel" (the kind of folders without one, and of hub UNets)."""
    from mia_app.assets import REPO_ROOT

    path = Path(name_or_path)
    if not path.is_absolute() and not path.exists() and (REPO_ROOT / path).exists():
        path = REPO_ROOT / path
    return check_prior_header(path) if path.exists() else "pixel"


def prior_from_pretrained(name_or_path: str | Path) -> Prior:
    if prior_kind(name_or_path) == "latent":
        from mia_app.prior.latent import LatentPrior

        return LatentPrior.from_pretrained(name_or_path)
    from mia_app.prior.model import IdentityPrior

    return IdentityPrior.from_pretrained(name_or_path)
