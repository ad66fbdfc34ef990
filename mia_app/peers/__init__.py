"""Peer attacks, run on the same target T and judged by the same E as ours, behind one entry point.

``run_peer(peer, cfg, targets, out, callbacks)`` runs any of them: ``peer`` is a ``PeerConfig`` (or its dict),
``cfg`` the ``AttackConfig`` that gives T, the data, the seed, the device and ``keep``. Every peer writes a run
folder with the layout of ours (``config.yaml``, ``method.json``, ``final/``, ``summary.json``), so the
ablation runner, ``evaluate`` and the dashboard treat them alike.

- ``selection_only``: no attack, the floor (``peers.selection``);
- ``ppa``: Plug & Play Attacks on the public generator (``peers.ppa``);
- ``miface``: Fredrikson et al.'s MIFace (``peers.miface``);
- ``stage1_only``, ``plg_max_margin``: our attack with a changed preset (``peers.ours``).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import TypeAdapter

from mia_app.attack.config import AttackConfig
from mia_app.peers.config import PEER_KINDS, PeerConfig

_ADAPTER = TypeAdapter(PeerConfig)


def parse_peer(data: dict | PeerConfig) -> PeerConfig:
    """A ``PeerConfig`` from its dict (validated; errors name the field) or as is."""
    return data if not isinstance(data, dict) else _ADAPTER.validate_python(data)


#: The fields of the attack preset an outside peer (floor, PPA, MIFace) reads; the rest is our attack's own.
PEER_READS = ("name", "data", "target", "device", "seed", "keep")


def peer_attack_config(peer: PeerConfig, cfg: AttackConfig) -> AttackConfig:
    """The ``AttackConfig`` a peer's run folder records in ``config.yaml``."""
    if peer.kind in ("stage1_only", "plg_max_margin"):
        from mia_app.peers.ours import ours_config

        return ours_config(cfg, peer)
    return AttackConfig.model_validate(cfg.model_dump() | {"name": peer.display_name()})


def run_peer(peer: dict | PeerConfig, cfg: AttackConfig, targets: list[int], out: str | Path,
             callbacks: list | None = None) -> dict:
    peer = parse_peer(peer)
    if peer.kind == "selection_only":
        from mia_app.peers.selection import run_selection_only as fn
    elif peer.kind == "ppa":
        from mia_app.peers.ppa import run_ppa as fn
    elif peer.kind == "miface":
        from mia_app.peers.miface import run_miface_peer as fn
    else:
        from mia_app.peers.ours import run_ours_peer as fn
    return fn(cfg, peer, targets, out, callbacks)


__all__ = ["PEER_KINDS", "PEER_READS", "PeerConfig", "parse_peer", "peer_attack_config", "run_peer"]
