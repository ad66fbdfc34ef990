"""Typed settings of every peer attack; the ablation runner, the CLI and the dashboard validate with these.

A peer runs on the same target T, identities, seed and ``keep`` as an ``AttackConfig`` gives, and is judged by
the same E; its own knobs live here. ``params()`` is what its ``method.json`` records (and what a resumed
ablation compares), ``deterministic`` says whether its result depends on the seed at all.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from mia_app.config import StrictModel

Float = Annotated[float, Field(allow_inf_nan=False)]


def _interval(hi: float):
    """A validator of (lo, hi) pairs with 0 < lo <= hi <= ``hi``."""
    def check(v: tuple[float, float]) -> tuple[float, float]:
        if not 0 < v[0] <= v[1] <= hi:
            raise ValueError(f"must satisfy 0 < lo <= hi <= {hi:g}, got {v}")
        return v

    return AfterValidator(check)


#: Fraction of the image area a random crop keeps, and its aspect ratio range.
CropScale = Annotated[tuple[Float, Float], _interval(1.0)]
CropRatio = Annotated[tuple[Float, Float], _interval(10.0)]


class _Peer(StrictModel):
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_+.-]+$", description="row name; default: the kind")

    @property
    def deterministic(self) -> bool:
        return False

    def params(self) -> dict:
        return self.model_dump(mode="json", exclude={"kind", "name"})

    def display_name(self) -> str:
        return self.name or self.kind  # type: ignore[attr-defined]


class OursPeer(_Peer):
    """A peer built from our own attack by changing the preset.

    ``stage1_only``: stage 2 steps = 0 (no LoRA training; the code c_y only).
    ``plg_max_margin``: PLG-MI-style: our prior, ``cls_loss: max_margin``, only the ``cls`` and ``prior`` weights of
    the preset in each stage (no ``id`` / ``perc``), both stages as the preset, no schemes.
    """

    kind: Literal["stage1_only", "plg_max_margin"]


class MIFacePeer(_Peer):
    """Fredrikson et al.'s MIFace on T (IBM ART when it imports; see ``mia_app.peers.miface``)."""

    kind: Literal["miface"]
    max_iter: int = Field(300, ge=1, le=100_000)
    window_length: int = Field(100, ge=1, le=100_000)
    threshold: Float = Field(1.0, ge=0, le=1, description="ART's threshold; 1.0: every image runs max_iter steps")
    learning_rate: Float = Field(0.1, gt=0, le=1e4)
    images_per_class: int = Field(1, ge=1, le=256)
    init_noise: Float = Field(0.0, ge=0, le=10)
    backend: Literal["auto", "art", "fallback"] = "auto"
    color: Literal["auto", "rgb", "gray"] = Field(
        "auto", description="the space searched: rgb (3×R×R), gray (1×R×R, replicated to T's 3 channels, as "
                            "Fredrikson et al. on gray faces); auto: gray when the benchmark's public images are")

    @model_validator(mode="after")
    def _noise_for_several(self) -> MIFacePeer:
        if self.images_per_class > 1 and self.init_noise <= 0:
            raise ValueError("images_per_class > 1 needs init_noise > 0 (MIFace from zero is deterministic)")
        return self

    @property
    def deterministic(self) -> bool:
        return self.init_noise == 0

    def params(self) -> dict:
        # ART and the fallback are the same algorithm; which ran is in method.json's "implementation".
        # color "auto" is left out so that cells finished before the field existed (RGB benchmarks, where auto is
        # rgb) still count as finished; the space a run searched is in its method.json ("search_space").
        exclude = {"kind", "name", "backend"} | ({"color"} if self.color == "auto" else set())
        return self.model_dump(mode="json", exclude=exclude)


class FinalSelection(StrictModel):
    """PPA's final selection: rank candidates by T's mean confidence over ``iterations`` random transforms."""

    iterations: int = Field(100, ge=1, le=10_000)
    crop_scale: CropScale = (0.5, 0.9)
    crop_ratio: CropRatio = (0.8, 1.2)
    flip: Float = Field(0.5, ge=0, le=1)


class SelectionPeer(_Peer):
    """The no-attack floor (PPA's and PLG-MI's initial selection, no optimisation).

    ``source: public``: the ``candidates`` public images T ranks highest for y (mean of the image and its mirror);
    deterministic (its final selection draws transforms from a fixed RNG, whatever the seed).
    ``source: generator``: ``search_space`` random latents of the public generator, the same ranking (PPA's
    initial selection with 0 optimisation steps); depends on the seed.
    Then keep the ``keep`` best by T under random transforms (``final``).
    """

    kind: Literal["selection_only"]
    source: Literal["public", "generator"] = "public"
    generator: str = "dcgan"
    search_space: int = Field(4000, ge=1, le=1_000_000, description="generator source: random latents ranked")
    candidates: int = Field(8, ge=1, le=1024, description="per identity, before the final selection")
    final: FinalSelection = Field(default_factory=FinalSelection)

    @property
    def deterministic(self) -> bool:
        return self.source == "public"


class PPAPeer(_Peer):
    """Plug & Play Attacks (Struppek et al., ICML 2022) on a public latent generator.

    Initial selection: ``search_space`` random latents, T's confidence on each image and its mirror, the
    ``candidates`` best per identity. Optimisation: Adam (``lr``, ``betas``; PPA: 0.005 on StyleGAN's w, betas
    (0.1, 0.1)) for ``steps`` steps on ``loss`` through random transforms, the rate divided by 10 at each
    fraction of ``lr_milestones`` (PPA: 30 and 40 of 50 steps). Final selection as ``SelectionPeer``'s.
    """

    kind: Literal["ppa"]
    generator: str = "dcgan"
    search_space: int = Field(4000, ge=1, le=1_000_000)
    candidates: int = Field(4, ge=1, le=1024, description="latents optimised per identity")
    steps: int = Field(100, ge=0, le=100_000)
    lr: Float = Field(0.05, gt=0, le=10)
    betas: tuple[Float, Float] = (0.1, 0.1)
    lr_milestones: list[Float] = Field(default_factory=lambda: [0.6, 0.8])
    loss: Literal["poincare", "max_margin", "ce"] = "poincare"
    crop_scale: CropScale = (0.9, 1.0)
    flip: Float = Field(0.5, ge=0, le=1)
    jitter: Float = Field(0.1, ge=0, lt=1, description="brightness / contrast / saturation amplitude")
    batch_size: int = Field(400, ge=1, le=100_000, description="latents optimised together")
    image_every: int = Field(10, ge=1)
    final: FinalSelection = Field(default_factory=FinalSelection)

    @field_validator("betas")
    @classmethod
    def _betas(cls, v):
        if not all(0 <= b < 1 for b in v):
            raise ValueError(f"betas must lie in [0, 1), got {v}")
        return v

    @field_validator("lr_milestones")
    @classmethod
    def _milestones(cls, v):
        if any(not 0 < m < 1 for m in v) or v != sorted(v):
            raise ValueError(f"lr_milestones must be increasing fractions in (0, 1), got {v}")
        return v


PeerConfig = Annotated[OursPeer | MIFacePeer | SelectionPeer | PPAPeer, Field(discriminator="kind")]
PEER_KINDS = ("selection_only", "ppa", "miface", "stage1_only", "plg_max_margin")
