"""The Attack tab's method selector: our attack or a peer (PPA, the selection floor, MIFace).

A peer's widgets come from its pydantic model (``mia_app.peers.config``), so the form follows the config; the
values are written into the model's defaults and validated by ``parse_peer``, the same validation the CLI and
the ablation runner use. The ``AttackConfig`` of the form still gives T, the data, the seed, ``keep`` and the
device of a peer run.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from mia_app.dashboard.form import FieldSpec, get_path, model_specs, set_path
from mia_app.peers.config import MIFacePeer, PPAPeer, SelectionPeer

OURS = "ours"
#: Selector label -> method key (``ours`` or a peer kind), in the order the selector shows them.
METHOD_LABELS = {
    "Ours: diffusion prior (schemes below)": OURS,
    "PPA: Plug & Play Attack on the public generator": "ppa",
    "Selection floor: no attack (public images T ranks highest)": "selection_only",
    "MIFace (Fredrikson et al. 2015)": "miface",
}
PEER_MODELS = {"ppa": PPAPeer, "selection_only": SelectionPeer, "miface": MIFacePeer}
#: Fields not offered as widgets: the row name, and backends a hosted user should not pick.
HIDDEN = {("name",), ("kind",), ("backend",), ("generator",)}


@dataclass
class PeerForm:
    specs: dict[str, list[FieldSpec]]  # kind -> its widgets

    @classmethod
    def build_specs(cls) -> PeerForm:
        return cls({kind: [s for s in model_specs(model) if s.path not in HIDDEN]
                    for kind, model in PEER_MODELS.items()})

    def defaults(self, kind: str) -> dict[str, Any]:
        return PEER_MODELS[kind](kind=kind).model_dump(mode="json")

    def default_values(self, kind: str) -> list[Any]:
        data = self.defaults(kind)
        return [get_path(data, s.path) for s in self.specs[kind]]

    def all_specs(self) -> list[tuple[str, FieldSpec]]:
        """(kind, spec) for every widget, in the order handlers receive their values."""
        return [(kind, s) for kind, specs in self.specs.items() for s in specs]

    def build(self, kind: str, values: list[Any]) -> dict[str, Any]:
        """The peer's defaults with this kind's widget values written in: a dict for ``parse_peer``."""
        if kind not in PEER_MODELS:
            raise ValueError(f"unknown method {kind!r}; choose one of {list(PEER_MODELS)}")
        if len(values) != len(self.specs[kind]):
            raise ValueError(f"expected {len(self.specs[kind])} values for {kind}, got {len(values)}")
        data = copy.deepcopy(self.defaults(kind))
        for spec, value in zip(self.specs[kind], values, strict=True):
            value = spec.coerce(value)
            if value is None and not spec.optional:
                raise ValueError(f"{kind}.{'.'.join(spec.path)}: a value is required")
            set_path(data, spec.path, value)
        return data
