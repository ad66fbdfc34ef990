"""AttackForm: which AttackConfig fields the Attack tab edits, and the round trip config <-> widget values.

Scheme toggles and their parameters come from whatever ``AttackConfig.schemes`` is (a model with bool toggles,
or a plain dict of toggles); without a ``schemes`` field the form simply has none.
"""

from __future__ import annotations

import copy
import typing
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from mia_app.attack.config import KNOWN_LOSSES, AttackConfig
from mia_app.dashboard.form import FieldSpec, get_path, model_specs, set_path, spec_at

STEP_PATHS = [("stage1", "steps"), ("stage2", "steps")]
ADVANCED_PATHS = [
    ("prior",), ("search_space",), ("candidates",), ("keep",), ("identities_per_batch",), ("init_top_k",),
    ("init_sources",), ("init_draws",), ("seed",),
    ("id_encoder",), ("precision",), ("cls_loss",),
    ("cls_hinge_margin",), ("sampler", "strength"), ("sampler", "num_steps"), ("stage1", "lr"), ("stage2", "lr"),
    ("stage2", "code_lr"), ("stage1", "image_every"), ("stage2", "image_every"), ("device",),
]
DEFAULT_TOGGLES = ("B3", "A", "C", "D")


def scheme_specs(model: type[BaseModel] = AttackConfig) -> tuple[list[FieldSpec], list[FieldSpec]]:
    """(toggles, parameters) of the config's schemes section, whatever its shape."""
    field_info = model.model_fields.get("schemes")
    if field_info is None:
        return [], []
    annotation = field_info.annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        specs = model_specs(annotation, ("schemes",))
        toggles = [s for s in specs if s.kind == "bool"]
        toggles = [FieldSpec(s.path, s.kind, f"{s.label}: {s.info}" if s.info else s.label) for s in toggles]
        return toggles, [s for s in specs if s.kind != "bool"]
    if typing.get_origin(annotation) is dict:
        return [FieldSpec(("schemes", k), "bool", k) for k in DEFAULT_TOGGLES], []
    return [], []


@dataclass
class AttackForm:
    steps: list[FieldSpec]
    weights: list[FieldSpec]
    toggles: list[FieldSpec]
    scheme_params: list[FieldSpec]
    advanced: list[FieldSpec]
    losses: tuple[str, ...] = field(default=KNOWN_LOSSES)

    @classmethod
    def from_model(cls, model: type[BaseModel] = AttackConfig) -> AttackForm:
        found = lambda paths: [s for s in (spec_at(model, p) for p in paths) if s is not None]  # noqa: E731
        # 'reg' penalises the LoRA weights, which exist in stage 2 only: a stage-1 box could only ever be invalid.
        weights = [FieldSpec((f"stage{n}", "weights", loss), "float", loss) for n in (1, 2) for loss in KNOWN_LOSSES
                   if not (n == 1 and loss == "reg")]
        toggles, params = scheme_specs(model)
        return cls(found(STEP_PATHS), weights, toggles, params, found(ADVANCED_PATHS))

    @property
    def specs(self) -> list[FieldSpec]:
        """The order of the widgets' values in every handler."""
        return [*self.steps, *self.weights, *self.toggles, *self.scheme_params, *self.advanced]

    def values_from(self, cfg: AttackConfig) -> list[Any]:
        data = cfg.model_dump(mode="json")
        return [get_path(data, s.path, 0.0 if s in self.weights else None) for s in self.specs]

    def build(self, preset: AttackConfig, values: list[Any], name: str | None = None) -> dict[str, Any]:
        """The preset with the widgets' values written in: a plain dict, for AttackConfig to validate."""
        if len(values) != len(self.specs):
            raise ValueError(f"expected {len(self.specs)} form values, got {len(values)}")
        data = copy.deepcopy(preset.model_dump(mode="json"))
        for stage in (1, 2):
            data[f"stage{stage}"]["weights"] = {}
        for spec, value in zip(self.specs, values, strict=True):
            value = spec.coerce(value)
            if spec in self.weights:
                # A zero weight drops the term (no forward pass for it); negatives reach the validator. A box
                # the browser left empty (it blanks what it cannot parse, 1e309 say) is an error, never "off".
                if value is None:
                    raise ValueError(f"{spec.path[0]}.weights.{spec.path[-1]} is empty: type a number "
                                     "(0 turns the term off)")
                if value != 0:
                    set_path(data, spec.path, float(value))
            else:
                set_path(data, spec.path, value)
        if name:
            data["name"] = name
        return data
