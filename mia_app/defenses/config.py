"""Typed settings of the training-time defenses against model inversion (SPEC §7), one per ``kind``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from mia_app.strict_model import StrictModel


class NoDefense(StrictModel):
    kind: Literal["none"] = "none"


class NegLSConfig(StrictModel):
    """Negative label smoothing (Struppek et al., ICLR 2024): the smoothing factor starts positive (``alpha_start``,
    the undefended T's 0.1) and is ramped to a *negative* ``alpha`` late in training, so the target's confident
    logits stop pointing back at its classes."""

    kind: Literal["negls"] = "negls"
    alpha_start: float = Field(0.1, ge=0.0, lt=1.0, description="smoothing before the ramp (positive, or 0)")
    alpha: float = Field(-0.05, ge=-1.0, lt=0.0, description="final (negative) smoothing factor; the paper's -0.05")
    start: float = Field(0.5, ge=0.0, lt=1.0, description="fraction of training before the ramp begins")
    full: float = Field(0.75, gt=0.0, le=1.0, description="fraction of training at which alpha is reached")

    @model_validator(mode="after")
    def _ramp(self) -> NegLSConfig:
        if self.full <= self.start:
            raise ValueError(f"full ({self.full}) must come after start ({self.start})")
        return self


class BiDOConfig(StrictModel):
    """BiDO-HSIC (Peng et al., KDD 2022): minimise HSIC(x, h_j) and maximise HSIC(h_j, y) over the hidden
    features h_j of every stage. Weights as the authors' CelebA models: (0.05, 0.5)."""

    kind: Literal["bido"] = "bido"
    lambda_x: float = Field(0.05, ge=0.0, le=100.0, description="weight of HSIC(x, h): input dependence, minimised")
    lambda_y: float = Field(0.5, ge=0.0, le=100.0, description="weight of HSIC(h, y): label dependence, maximised")
    sigma: float = Field(5.0, gt=0.0, le=1000.0, description="Gaussian kernel width on x and h (per dimension)")
    kernel_y: Literal["linear", "gaussian"] = Field("linear", description="kernel on the one-hot labels")


class MIDConfig(StrictModel):
    """MID (Wang et al., AAAI 2021): a variational information bottleneck before the head; the KL term to
    N(0, I), weighted by ``beta``, bounds how much of the input the prediction carries."""

    kind: Literal["mid"] = "mid"
    beta: float = Field(0.01, gt=0.0, le=10.0, description="weight of the KL term; the paper's 0.003-0.02")
    bottleneck: int = Field(128, ge=2, le=4096, description="dimension k of the stochastic code z")


DefenseConfig = Annotated[NoDefense | NegLSConfig | BiDOConfig | MIDConfig, Field(discriminator="kind")]
DEFENSE_KINDS = ("none", "negls", "bido", "mid")
