"""AblationConfig: which variants and peers to run, on which identities and seeds, judged by which E."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from mia_app.attack.config import SchemesConfig
from mia_app.config import StrictModel
from mia_app.peers.config import MIFacePeer, OursPeer, PeerConfig, PPAPeer, SelectionPeer

__all__ = ["SCHEME_TOGGLES", "AblationConfig", "MIFacePeer", "OursPeer", "PPAPeer", "PeerConfig", "SelectionPeer"]

SCHEME_TOGGLES = ("B3", "A", "C", "D")
#: Attack settings a variant may change besides the schemes: what a speed change buys is ablated like a scheme.
#: ``preset`` swaps the whole attack preset for that row (e.g. the pixel prior's beside the latent prior's);
#: ``prior`` swaps the prior folder only (two trainings of one prior kind, row beside row).
VARIANT_SETTINGS = ("id_encoder", "precision", "preset", "prior")


class AblationConfig(StrictModel):
    name: str = Field(..., pattern=r"^[A-Za-z0-9_.-]+$")
    attack: str = Field(..., description="attack preset YAML, e.g. configs/attack/cpu-quick.yaml")
    targets: str | list[int] = Field(..., description="target classes: '0-9', '0,3,5' or a list")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    baseline: str = "baseline"
    variants: dict[str, dict[str, Any]] = Field(..., description="name -> scheme toggles (B3/A/C/D, others off), "
                                                "optionally id_encoder / precision / preset / prior")
    peers: list[PeerConfig] = Field(default_factory=list)
    floor: str | None = Field(None, description="name of the no-attack row: every row gets a paired CI against it")
    order: list[str] = Field(default_factory=list, description="rows to run first, for every seed, in this "
                             "order (the rows a reader needs first); the rest follow, seed-major")
    target_models: list[str] = Field(default_factory=list, description="attacked classifiers T: every row runs on "
                                     "each (a block per T, ablation.targets); empty: the preset's own T")
    eval_model: str = "assets/eval.safetensors"
    out: Path | None = Field(None, description="default results/ablation-<name>")
    judge: Literal["auto", "on", "off"] = "auto"
    attack_overrides: dict[str, Any] = Field(default_factory=dict, description="applied to every cell, e.g. device")
    bootstrap_resamples: int = Field(2000, ge=100)
    bootstrap_seed: int = 12345

    @field_validator("peers", mode="before")
    @classmethod
    def _peer_shorthand(cls, v):
        return [{"kind": p} if isinstance(p, str) else p for p in (v or [])]

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError(f"seeds must be distinct, got {v}")
        return v

    @field_validator("variants")
    @classmethod
    def _valid_toggles(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        from mia_app.attack.config import AttackConfig

        for name, toggles in v.items():
            toggles = toggles or {}
            settings = {k: toggles[k] for k in VARIANT_SETTINGS if k in toggles}
            # unknown keys or bad values fail here, naming the field
            SchemesConfig.model_validate({k: x for k, x in toggles.items() if k not in settings})
            for key, value in settings.items():
                if key == "preset":
                    if not isinstance(value, str) or not value.endswith((".yaml", ".yml")):
                        raise ValueError(f"variant {name!r}: preset must be an attack preset YAML path, got {value!r}")
                    continue
                if key == "prior":
                    if not isinstance(value, str) or not value.strip():
                        raise ValueError(f"variant {name!r}: prior must be a prior folder path, got {value!r}")
                    continue
                allowed = typing.get_args(AttackConfig.model_fields[key].annotation)  # Literal choices
                if value not in allowed:
                    raise ValueError(f"variant {name!r}: {key} must be one of {list(allowed)}, got {value!r}")
            v[name] = toggles
        return v

    @model_validator(mode="after")
    def _names(self) -> AblationConfig:
        if self.baseline not in self.variants:
            raise ValueError(f"the baseline variant {self.baseline!r} is not among the variants {list(self.variants)}")
        names = list(self.variants) + [self.peer_name(p) for p in self.peers]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"variant / peer names must be unique; repeated: {dup}")
        bad = [n for n in names if not n.replace("+", "").replace("_", "").replace("-", "").isalnum()]
        if bad:
            raise ValueError(f"names may use letters, digits, '+', '_' and '-' only: {bad}")
        if unknown := [n for n in self.order if n not in names]:
            raise ValueError(f"order names rows that do not exist: {unknown}; rows: {names}")
        if self.floor is not None and self.floor not in names:
            raise ValueError(f"floor {self.floor!r} is not among the variants and peers {names}")
        return self

    @staticmethod
    def peer_name(peer: PeerConfig) -> str:
        return peer.display_name()

    def target_list(self) -> list[int]:
        if isinstance(self.targets, list):
            if not self.targets:
                raise ValueError("no targets")
            return list(self.targets)
        from mia_app.user_input import parse_targets

        return parse_targets(self.targets)

    def out_dir(self) -> Path:
        return self.out if self.out is not None else Path("results") / f"ablation-{self.name}"

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides) -> AblationConfig:
        from mia_app.user_input import read_yaml

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no ablation config at {path}")
        data = read_yaml(path)
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(data)
