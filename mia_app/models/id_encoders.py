"""The identity encoders E_id the attack can use, by name: ``sface32`` (the 32-px student) and ``sface``."""

from __future__ import annotations

import torch
from torch import nn
from tqdm import tqdm

ID_ENCODERS = ("sface32", "sface")


def load_id_encoder(name: str, device: str | torch.device = "cpu") -> nn.Module:
    """Shared frozen encoder: images N×3×H×W RGB in [-1, 1] -> N×128 unit-norm, in SFace's embedding space."""
    if name == "sface32":
        from mia_app.models.sface_student import load_sface32

        return load_sface32(device)
    if name == "sface":
        from mia_app.models.sface import load_sface

        return load_sface(device)
    raise ValueError(f"unknown id_encoder {name!r}; choose one of {list(ID_ENCODERS)}")


def id_encoder_digest(name: str) -> str:
    """sha256 of the encoder's weights file: the name alone does not say which student a code came from.
    A missing or corrupt file raises the asset error that says how to get it."""
    from mia_app.assets import asset_path, file_digest

    if name == "sface32":
        from mia_app.models.sface_student import shipped_student_path

        return file_digest(shipped_student_path())
    if name == "sface":
        return file_digest(asset_path("sface"))
    raise ValueError(f"unknown id_encoder {name!r}; choose one of {list(ID_ENCODERS)}")


@torch.no_grad()
def embed_images(encoder: nn.Module, images_uint8: torch.Tensor, batch: int = 64, desc: str = "") -> torch.Tensor:
    """Embeddings N×D of uint8 images N×3×R×R, in batches (a progress bar when ``desc`` names it)."""
    # SFace holds buffers only, the student parameters: the first tensor of either says where the encoder lives.
    first = next(iter(encoder.state_dict().values()), None)
    device = first.device if first is not None else torch.device("cpu")
    out = []
    for i in tqdm(range(0, len(images_uint8), batch), desc=desc, leave=False, disable=not desc):
        out.append(encoder(images_uint8[i : i + batch].to(device).float().div(127.5).sub(1)))
    return torch.cat(out)
