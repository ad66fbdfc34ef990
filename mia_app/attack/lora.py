"""LoRA on the prior's ``adapter_host`` (the pixel prior's UNet, the latent prior's denoiser) with peft's low-level
API (``UNet2DModel`` has no ``add_adapter``, and the latent denoiser is a plain ``nn.Module``)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model_state_dict, inject_adapter_in_model, set_peft_model_state_dict
from safetensors import safe_open
from safetensors.torch import save_file

from mia_app.attack.config import LoraSettings
from mia_app.prior.base import Prior


def lora_targets(prior: Prior, settings: LoraSettings) -> list[str]:
    """The module names the adapter goes on: the config's, or the prior kind's default when it names none."""
    return list(settings.target_modules) if settings.target_modules else list(prior.default_lora_targets)


def default_lora_targets(prior: str) -> list[str]:
    """The LoRA targets of the prior kind at ``prior`` (a folder or hub id), without loading its weights."""
    from mia_app.prior.io import prior_kind

    if prior_kind(prior) == "latent":
        from mia_app.prior.latent import LatentPrior

        return list(LatentPrior.default_lora_targets)
    from mia_app.prior.model import IdentityPrior

    return list(IdentityPrior.default_lora_targets)


def lora_config(settings: LoraSettings, targets: list[str]) -> LoraConfig:
    return LoraConfig(r=settings.rank, lora_alpha=settings.alpha, target_modules=targets, lora_dropout=0.0)


def with_lora(prior: Prior, settings: LoraSettings) -> tuple[Prior, list[torch.nn.Parameter]]:
    """A deep copy of ``prior`` whose adapter host carries fresh LoRA adapters; returns (copy, the LoRA parameters).

    The copy keeps the base prior untouched, so each identity batch starts from the same prior.
    """
    tuned = copy.deepcopy(prior)
    tuned.requires_grad_(False)
    targets = lora_targets(prior, settings)
    try:
        inject_adapter_in_model(lora_config(settings, targets), tuned.adapter_host)  # in place
    except ValueError as e:  # peft's message does not name our config field
        raise ValueError(f"lora.target_modules: {targets} do not all match layers of this {prior.kind} prior "
                         f"({e})") from e
    params = [p for n, p in tuned.adapter_host.named_parameters() if "lora_" in n]
    if not params:
        raise ValueError(f"lora.target_modules: none of {targets} is a layer of this {prior.kind} prior")
    for p in params:
        p.requires_grad_(True)
    return tuned, params


def save_lora(prior: Prior, path: str | Path, settings: LoraSettings, meta: dict | None = None) -> dict:
    """Save only the adapter weights (safetensors), with the LoRA settings in the header."""
    state = {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(prior.adapter_host).items()}
    # The resolved targets go in the header, so the file loads the same even if a kind's default changes.
    settings = settings.model_copy(update={"target_modules": lora_targets(prior, settings)})
    header = {"lora": settings.model_dump_json(), "mia_app": json.dumps(meta or {})}
    save_file(state, str(path), metadata=header)
    return state


def load_lora(prior: Prior, path: str | Path) -> Prior:
    """Return a copy of ``prior`` with the saved adapter applied."""
    with safe_open(str(path), framework="pt") as f:
        settings = LoraSettings.model_validate_json(f.metadata()["lora"])
        state = {k: f.get_tensor(k) for k in f.keys()}
    tuned, _ = with_lora(prior, settings)
    result = set_peft_model_state_dict(tuned.adapter_host, state)
    if getattr(result, "unexpected_keys", None):
        raise ValueError(f"adapter {path} has keys the model lacks: {result.unexpected_keys[:3]}")
    return tuned.requires_grad_(False)
