"""AttackConfig: every knob of the two-stage inversion, validated once (CLI, dashboard and ablation)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, field_validator, model_validator

from mia_app.config import FolderConfig, StrictModel, SynthIDConfig

#: Loss names a stage may weight: the baseline terms, then scheme B3's ``id_contrast`` and scheme C's ``attr`` and
#: ``div`` (scheme C's hierarchical perception replaces ``perc`` under the same name).
KNOWN_LOSSES = ("prior", "id", "perc", "cls", "id_contrast", "attr", "div")


class SamplerConfig(StrictModel):
    """SDEdit from a public source: noise to ``strength`` (t0 / T), then ``num_steps`` DDIM steps."""

    strength: float = Field(0.5, gt=0, le=1)
    num_steps: int = Field(4, ge=1, le=200)
    guidance: float = Field(1.0, ge=0, le=20)
    gradient_checkpointing: bool = True


class StageConfig(StrictModel):
    steps: int = Field(..., ge=0, le=100_000)
    lr: float = Field(0.05, gt=0, description="learning rate of the code c_y (stage 1) or the LoRA weights")
    code_lr: float = Field(0.01, ge=0, description="stage 2: learning rate of c_y (0 freezes it)")
    weights: dict[str, float]
    image_every: int = Field(10, ge=1, description="emit an image event every N steps")

    @field_validator("weights")
    @classmethod
    def _known(cls, w: dict[str, float]) -> dict[str, float]:
        unknown = set(w) - set(KNOWN_LOSSES)
        if unknown:
            raise ValueError(f"unknown loss names {sorted(unknown)}; known: {list(KNOWN_LOSSES)}")
        if any(v < 0 for v in w.values()):
            raise ValueError("loss weights must be >= 0")
        return w


class LoraSettings(StrictModel):
    rank: int = Field(4, ge=1, le=256)
    alpha: float = Field(4.0, gt=0)
    # The prior has no attention; the code enters each block through time_emb_proj, and conv1/conv2
    # shape the block's features, so these are where a low-rank update can change identity.
    target_modules: list[str] = Field(default_factory=lambda: ["conv1", "conv2", "time_emb_proj"])


class AttackConfig(StrictModel):
    name: str = "attack"
    prior: str = Field("assets/prior", description="our prior folder, a diffusers UNet2DModel folder or hub id")
    target: str = Field("assets/target.safetensors", description="the attacked classifier T")
    data: SynthIDConfig | FolderConfig = Field(default_factory=SynthIDConfig, discriminator="kind")
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    stage1: StageConfig
    stage2: StageConfig
    lora: LoraSettings = Field(default_factory=LoraSettings)
    cls_loss: Literal["ce", "max_margin"] = "ce"
    init_top_k: int = Field(8, ge=1, description="public images (top-k by T's softmax) averaged into c_y^0")
    candidates: int = Field(4, ge=1, le=256, description="candidates (public sources) per identity")
    keep: int = Field(2, ge=1, description="final selection: best candidates by T's confidence")
    identities_per_batch: int = Field(8, ge=1, le=1024)
    prior_batch: int = Field(8, ge=1, description="stage 2: public images per prior-preservation step")
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @model_validator(mode="after")
    def _keep_le_candidates(self) -> AttackConfig:
        if self.keep > self.candidates:
            raise ValueError(f"keep ({self.keep}) cannot exceed candidates ({self.candidates})")
        return self

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides) -> AttackConfig:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no attack config at {path}")
        data = yaml.safe_load(path.read_text()) or {}
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(data)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)
