"""Tiny models and configs for fast tests: never a real training run."""

from __future__ import annotations

from pathlib import Path

import torch

from mia_app.attack.config import AttackConfig
from mia_app.config import SynthIDConfig
from mia_app.models.classifiers import build_classifier, save_classifier
from mia_app.prior.model import IdentityPrior, default_unet

TINY_DATA = dict(kind="synthid", n_private=4, train_per_id=3, test_per_id=2, n_public=12, public_per_id=2)


def tiny_prior(seed: int = 0) -> IdentityPrior:
    torch.manual_seed(seed)
    return IdentityPrior(default_unet(32, (8, 16)))


def tiny_latent_prior(seed: int = 0):
    """A latent prior with a tiny untrained denoiser over the shipped DCGAN's z (the decoder is the real one)."""
    from mia_app.peers.generators import load_generator
    from mia_app.prior.denoiser import LatentDenoiser
    from mia_app.prior.latent import LatentPrior

    torch.manual_seed(seed)
    denoiser = LatentDenoiser(width=16, depth=2, emb_dim=16)
    torch.nn.init.normal_(denoiser.proj_out.weight, std=0.02)  # not the zero init: gradients reach every layer
    return LatentPrior(denoiser, load_generator("dcgan", 32), "dcgan")


PRIOR_KINDS = ("pixel", "latent")


def save_tiny_target(path: Path, n_classes: int = 4, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    model = build_classifier("vgg", n_classes, 8)
    meta = {"role": "target", "arch": "vgg", "width": 8, "n_classes": n_classes, "resolution": 32,
            "benchmark": "tiny", "benchmark_sha256": "-"}
    save_classifier(model, path, meta)
    return path


def save_tiny_eval(path: Path, seed: int = 1) -> Path:
    """A 4-class ResNet E for the tiny benchmark (a model T never was)."""
    torch.manual_seed(seed)
    save_classifier(build_classifier("resnet", 4, 8), path,
                    {"role": "eval", "arch": "resnet", "width": 8, "n_classes": 4, "resolution": 32,
                     "benchmark": "tiny", "benchmark_sha256": "-"})
    return path


def tiny_attack_config(tmp: Path, prior_kind: str = "pixel", **overrides) -> AttackConfig:
    """A tiny attack on the tiny benchmark; ``prior_kind`` "latent" swaps in ``tiny_latent_prior``."""
    prior_dir = tmp / ("prior" if prior_kind == "pixel" else f"{prior_kind}_prior")
    if not prior_dir.exists():
        (tiny_prior() if prior_kind == "pixel" else tiny_latent_prior()).save_pretrained(prior_dir)
    target = tmp / "target.safetensors"
    if not target.exists():
        save_tiny_target(target)
    cfg = dict(
        name="tiny",
        prior=str(prior_dir),
        target=str(target),
        data=SynthIDConfig(**{k: v for k, v in TINY_DATA.items() if k != "kind"}).model_dump(),
        sampler={"strength": 0.5, "num_steps": 2},
        stage1={"steps": 2, "lr": 0.05, "weights": {"prior": 0.3, "id": 1.0, "perc": 0.5, "cls": 1.0},
                "image_every": 1},
        stage2={"steps": 2, "lr": 0.01, "code_lr": 0.01,
                "weights": {"prior": 1.5, "id": 0.8, "perc": 1.0, "cls": 1.0}, "image_every": 1},
        candidates=2,
        keep=1,
        init_top_k=2,
        identities_per_batch=2,
        prior_batch=2,
        search_space=64,
        device="cpu",
    )
    cfg.update(overrides)
    return AttackConfig.model_validate(cfg)


def record_classifier_loads(monkeypatch) -> list[str]:
    """Patch both bindings of ``load_classifier``; the returned list fills with every checkpoint path loaded."""
    import mia_app.attack.models as attack_models
    import mia_app.models.classifiers as classifiers

    loaded: list[str] = []
    real_load = classifiers.load_classifier

    def recording_load(path, *args, **kwargs):
        loaded.append(str(path))
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(classifiers, "load_classifier", recording_load)
    monkeypatch.setattr(attack_models, "load_classifier", recording_load)
    return loaded
