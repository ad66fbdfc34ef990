"""AttackConfig: every knob of the two-stage inversion, validated once (CLI, dashboard and ablation)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from mia_app.config import DataConfig, StrictModel, SynthIDConfig
from mia_app.user_input import dump_yaml, read_yaml

#: Loss names a stage may weight. ``id_contrast`` is scheme B3, ``attr`` / ``div`` scheme C (whose hierarchical
#: perception replaces ``perc`` under the same name), ``reg`` the stage-2 LoRA weight penalty. A scheme's terms
#: are only built when the scheme is on.
KNOWN_LOSSES = ("prior", "id", "perc", "cls", "id_contrast", "attr", "div", "reg")

#: Bounds of what a user may set: far beyond any preset (weights <= 1.5, learning rates <= 0.05), tight enough that
#: a typo (1e30) or a runaway value is refused with the bound in the message instead of running.
MAX_LOSS_WEIGHT = 1000.0
MAX_LR = 10.0

#: Weights used for a scheme's terms when it is on and the stage does not name them.
SCHEME_DEFAULT_WEIGHTS = {"id_contrast": 1.0, "attr": 0.5, "div": 0.1}


class SamplerConfig(StrictModel):
    """SDEdit from a public source: noise to ``strength`` (t0 / T), then ``num_steps`` DDIM steps."""

    strength: float = Field(0.5, gt=0, le=1)
    num_steps: int = Field(4, ge=1, le=200)
    guidance: float = Field(1.0, ge=0, le=20)
    gradient_checkpointing: bool = True


class StageConfig(StrictModel):
    steps: int = Field(..., ge=0, le=100_000)
    lr: float = Field(0.05, gt=0, le=MAX_LR, description="learning rate of the code c_y (stage 1) or the LoRA "
                      "weights")
    code_lr: float = Field(0.01, ge=0, le=MAX_LR, description="stage 2: learning rate of c_y (0 freezes it)")
    weights: dict[str, float]
    image_every: int = Field(10, ge=1, description="emit an image event every N steps")

    @field_validator("weights")
    @classmethod
    def _known(cls, w: dict[str, float]) -> dict[str, float]:
        unknown = set(w) - set(KNOWN_LOSSES)
        if unknown:
            raise ValueError(f"unknown loss names {sorted(unknown)}; known: {list(KNOWN_LOSSES)}")
        if bad := {k: v for k, v in w.items() if not 0 <= v <= MAX_LOSS_WEIGHT}:
            raise ValueError(f"loss weights must be in [0, {MAX_LOSS_WEIGHT:g}]; got {bad}")
        return w


#: Scheme C's per-part weights, as plain float fields of ``SchemesConfig`` (one number box each in the dashboard).
ATTRIBUTE_WEIGHT_FIELDS = {"pose": "attr_pose_weight", "expression": "attr_expression_weight",
                           "illumination": "attr_illumination_weight"}
PERC_TAP_WEIGHT_FIELDS = {"early": "perc_early_weight", "mid": "perc_mid_weight", "deep": "perc_deep_weight"}


class SchemesConfig(StrictModel):
    """The seed's four schemes; each is independent, so an ablation can switch any subset.

    Every weight a scheme uses is a field here: C's attribute weights (``attr_*_weight``, pose / expression /
    illumination 0.3 / 0.3 / 0.2) and its hierarchical perception tap weights (``perc_*_weight``, early / mid /
    deep 0.2 / 0.5 / 0.3). Each group must be >= 0 and not all zero.
    """

    B3: bool = Field(False, description="contrastive identity loss against a negative bank")
    A: bool = Field(False, description="timestep-adaptive prior weight and cosine epsilon loss")
    C: bool = Field(False, description="attributes, bounded diversity, hierarchical perception")
    D: bool = Field(False, description="uncertainty weighting (Kendall et al. 2018)")
    contrast_form: Literal["hinge", "arcface"] = "hinge"
    contrast_margin: float | None = Field(None, ge=0, le=3.2, description="hinge: 0.4 (cosine gap); arcface: 0.5 "
                                          "rad; unset: the form's default")
    contrast_scale: float = Field(64.0, gt=0, le=1000)
    bank_size: int = Field(256, ge=1)
    bank_refresh_every: int = Field(50, ge=1)
    timestep_schedule: Literal["adaptive", "linear", "cosine"] = "adaptive"
    prior_form: Literal["mse", "cosine"] = "cosine"
    diversity_target: float = Field(0.1, gt=0, le=2)
    logvar_clamp: float = Field(4.0, gt=0, le=20)
    attr_pose_weight: float = Field(0.3, ge=0, le=100, description="C: attribute loss, pose")
    attr_expression_weight: float = Field(0.3, ge=0, le=100, description="C: attribute loss, expression")
    attr_illumination_weight: float = Field(0.2, ge=0, le=100, description="C: attribute loss, lighting")
    perc_early_weight: float = Field(0.2, ge=0, le=100, description="C: perception, early taps")
    perc_mid_weight: float = Field(0.5, ge=0, le=100, description="C: perception, mid taps")
    perc_deep_weight: float = Field(0.3, ge=0, le=100, description="C: perception, deep taps")

    @model_validator(mode="after")
    def _weights_not_all_zero(self) -> SchemesConfig:
        # All-zero parts would make scheme C's term a constant 0 while it still counts as "on" (and as a task
        # for D); switching the term off is the stage weight's job.
        for group in (ATTRIBUTE_WEIGHT_FIELDS, PERC_TAP_WEIGHT_FIELDS):
            if not any(getattr(self, f) > 0 for f in group.values()):
                raise ValueError(f"{', '.join(group.values())} cannot all be 0")
        return self

    def active(self) -> list[str]:
        return [k for k in ("B3", "A", "C", "D") if getattr(self, k)]

    def attribute_weights(self) -> dict[str, float]:
        """Scheme C's ``AttributeLoss`` weights, {"pose": ..., "expression": ..., "illumination": ...}."""
        return {part: getattr(self, f) for part, f in ATTRIBUTE_WEIGHT_FIELDS.items()}

    def perc_tap_weights(self) -> dict[str, float]:
        """Scheme C's ``HierarchicalPerceptionLoss`` tap weights, {"early": ..., "mid": ..., "deep": ...}."""
        return {tap: getattr(self, f) for tap, f in PERC_TAP_WEIGHT_FIELDS.items()}


class LoraSettings(StrictModel):
    rank: int = Field(4, ge=1, le=256)
    alpha: float = Field(4.0, gt=0, le=1024)
    target_modules: list[str] | None = Field(
        None, description="layers that get an adapter; unset: the prior kind's own (pixel: conv1, conv2, "
        "time_emb_proj; latent: fc1, fc2, emb_proj)")


class AttackConfig(StrictModel):
    name: str = "attack"
    prior: str = Field("assets/latent_prior", description="our prior folder (latent: assets/latent_prior, pixel: "
                       "assets/prior), a diffusers UNet2DModel folder or hub id")
    target: str = Field("assets/target.safetensors", description="the attacked classifier T")
    data: DataConfig = Field(default_factory=SynthIDConfig)
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    stage1: StageConfig
    stage2: StageConfig
    lora: LoraSettings = Field(default_factory=LoraSettings)
    schemes: SchemesConfig = Field(default_factory=SchemesConfig)
    id_encoder: Literal["sface32", "sface"] = Field(
        "sface32", description="E_id of the losses and the initial code: the 32-px student (default) or SFace")
    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="compute dtype of the step's forward pass (autocast: convolutions and matmuls in bf16, "
        "networks' outputs and the loss sum in fp32); bf16 is ~1.8x faster on CPUs with AVX512-BF16 and on GPUs")
    cls_loss: Literal["ce", "max_margin"] = "ce"
    cls_hinge_margin: float | None = Field(None, ge=0, le=100, description="max-margin as a hinge (>= 0), needed by D")
    init_top_k: int = Field(8, ge=1, description="public images (top-k by T's softmax) averaged into c_y^0")
    search_space: int = Field(4000, ge=1, le=1_000_000, description="latent prior: random generator latents T "
                              "ranks for the initial selection (PPA's search space); the pixel prior ranks the "
                              "public images instead")
    candidates: int = Field(4, ge=1, le=256, description="candidates (public sources) per identity")
    init_sources: int | None = Field(
        None, ge=1, le=1024, description="initial selection on the prior's own output: the top init_sources "
        "sources by T are each SDEdited under c_y^0 (init_draws noises each, zero optimisation steps) and the "
        "`candidates` whose output T is most confident about are kept, with that noise; unset: the top "
        "`candidates` sources, one noise each, no trial")
    init_draws: int = Field(1, ge=1, le=64, description="SDEdit noises tried per source in that selection")
    keep: int = Field(2, ge=1, description="final selection: best candidates by T's confidence")
    identities_per_batch: int = Field(8, ge=1, le=1024)
    prior_batch: int = Field(8, ge=1, description="stage 2: public images per prior-preservation step")
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @model_validator(mode="after")
    def _keep_le_candidates(self) -> AttackConfig:
        if self.keep > self.candidates:
            raise ValueError(f"keep ({self.keep}) cannot exceed candidates ({self.candidates})")
        if self.init_sources is not None and self.init_sources < self.candidates:
            raise ValueError(f"init_sources ({self.init_sources}) cannot be below candidates ({self.candidates})")
        if self.schemes.D and self.cls_loss == "max_margin" and self.cls_hinge_margin is None:
            # Uncertainty weighting assumes L_i >= 0; a raw max-margin loss would let s_i run away.
            raise ValueError("scheme D needs a non-negative cls: set cls_hinge_margin (e.g. 1.0) or cls_loss: ce")
        if self.stage1.weights.get("reg", 0) > 0:
            raise ValueError("'reg' penalises the LoRA weights, which only exist in stage 2")
        return self

    def compute_units(self, n_identities: int) -> int:
        """The attack's cost in one number: sampler passes (one DDIM step of one candidate) over the whole run,
        (stage1.steps + stage2.steps) x sampler.num_steps x candidates per identity, plus the initial selection's
        trials. What hosted caps bound; per identity ``cpu-quick`` is 3 392, ``cpu`` 11 520, ``seed`` 384 000."""
        if n_identities < 1:
            raise ValueError(f"n_identities must be >= 1, got {n_identities}")
        optimised = (self.stage1.steps + self.stage2.steps) * self.sampler.num_steps * self.candidates
        trials = (self.init_sources or 0) * self.init_draws * self.sampler.num_steps
        return n_identities * (optimised + trials)

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides) -> AttackConfig:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no attack config at {path}")
        data = read_yaml(path)
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(data)

    def to_yaml(self) -> str:
        return dump_yaml(self.model_dump(mode="json"))
