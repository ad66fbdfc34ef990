"""Peers made from our own attack by changing the preset: ``stage1_only`` and ``plg_max_margin``."""

from __future__ import annotations

import json
from pathlib import Path

from mia_app.attack.config import AttackConfig
from mia_app.peers.config import OursPeer


def _validated(cfg: AttackConfig, **update) -> AttackConfig:
    return AttackConfig.model_validate(cfg.model_dump() | update)


def ours_config(base: AttackConfig, peer: OursPeer) -> AttackConfig:
    """The preset turned into the peer: schemes off, then the peer's change (see ``OursPeer``)."""
    schemes = base.schemes.model_dump() | {k: False for k in ("B3", "A", "C", "D")}
    cfg = _validated(base, schemes=schemes, name=peer.display_name())
    if peer.kind == "stage1_only":
        return _validated(cfg, stage2=cfg.stage2.model_dump() | {"steps": 0})
    if peer.kind == "plg_max_margin":
        def cls_prior(stage):
            w = stage.weights
            return stage.model_dump() | {"weights": {"prior": w.get("prior", 0.0), "cls": w.get("cls", 1.0)}}

        return _validated(cfg, cls_loss="max_margin", cls_hinge_margin=None,
                          stage1=cls_prior(cfg.stage1), stage2=cls_prior(cfg.stage2))
    raise ValueError(f"unknown peer kind {peer.kind!r}")


def run_ours_peer(cfg: AttackConfig, peer: OursPeer, targets: list[int], out: str | Path,
                  callbacks: list | None = None) -> dict:
    from mia_app.attack.run import run_attack
    from mia_app.peers.running import METHODS

    result = run_attack(ours_config(cfg, peer), targets, out, callbacks)
    note = {"method": peer.kind, "description": METHODS[peer.kind], "name": peer.display_name(),
            "params": peer.params(), "deterministic": False}
    (Path(out) / "method.json").write_text(json.dumps(note, indent=2))
    return result
