"""LoRA on the prior's UNet with peft's low-level API (``UNet2DModel`` has no ``add_adapter``)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model, set_peft_model_state_dict
from safetensors import safe_open
from safetensors.torch import save_file

from mia_app.attack.config import LoraSettings
from mia_app.prior.model import IdentityPrior


def lora_config(settings: LoraSettings) -> LoraConfig:
    return LoraConfig(
        r=settings.rank, lora_alpha=settings.alpha, target_modules=list(settings.target_modules), lora_dropout=0.0
    )


def with_lora(prior: IdentityPrior, settings: LoraSettings) -> tuple[IdentityPrior, list[torch.nn.Parameter]]:
    """A deep copy of ``prior`` whose UNet carries fresh LoRA adapters; returns (copy, the LoRA parameters).

    The copy keeps the base prior untouched, so each identity batch starts from the same prior.
    """
    tuned = copy.deepcopy(prior)
    tuned.requires_grad_(False)
    tuned.unet = inject_adapter_in_model(lora_config(settings), tuned.unet)
    params = [p for n, p in tuned.unet.named_parameters() if "lora_" in n]
    if not params:
        raise ValueError(f"no LoRA layer matched target_modules={settings.target_modules}")
    for p in params:
        p.requires_grad_(True)
    return tuned, params


def save_lora(prior: IdentityPrior, path: str | Path, settings: LoraSettings, meta: dict | None = None) -> dict:
    """Save only the adapter weights (safetensors), with the LoRA settings in the header."""
    state = {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(prior.unet).items()}
    header = {"lora": settings.model_dump_json(), "mia_app": json.dumps(meta or {})}
    save_file(state, str(path), metadata=header)
    return state


def load_lora(prior: IdentityPrior, path: str | Path) -> IdentityPrior:
    """Return a copy of ``prior`` with the saved adapter applied."""
    with safe_open(str(path), framework="pt") as f:
        settings = LoraSettings.model_validate_json(f.metadata()["lora"])
        state = {k: f.get_tensor(k) for k in f.keys()}
    tuned, _ = with_lora(prior, settings)
    result = set_peft_model_state_dict(tuned.unet, state)
    if getattr(result, "unexpected_keys", None):
        raise ValueError(f"adapter {path} has keys the model lacks: {result.unexpected_keys[:3]}")
    return tuned.requires_grad_(False)
