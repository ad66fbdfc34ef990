"""Target identities for the picker: how many classes, and (demo mode) one private image per class.

Showing private images is only defensible because the embedded benchmark is synthetic; a real deployment
sets MIA_DEMO=0 and the picker falls back to bare class indices.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from mia_app.config import parse_data_config

THUMB_SCALE = 2  # 32 px faces are tiny on screen; nearest-neighbour keeps them honest


@dataclass
class Identities:
    n_classes: int | None
    thumbnails: list[np.ndarray] = field(default_factory=list)  # one per class, H×W×3 uint8
    references: dict[int, list[np.ndarray]] = field(default_factory=dict)  # class -> private-test images
    error: str | None = None


def _to_hwc(images) -> list[np.ndarray]:
    arr = images.permute(0, 2, 3, 1).numpy()
    return [a.repeat(THUMB_SCALE, 0).repeat(THUMB_SCALE, 1) for a in arr]


@lru_cache(maxsize=4)
def _load(data_json: str, with_images: bool) -> Identities:
    from mia_app.data import load_benchmark

    bench = load_benchmark(parse_data_config(json.loads(data_json)))
    if not with_images:
        return Identities(bench.n_classes)
    refs = {}
    for y in range(bench.n_classes):
        images = bench.private_test.of_class(y)[:4]
        refs[y] = _to_hwc(images if len(images) else bench.private_train.of_class(y)[:1])
    return Identities(bench.n_classes, [refs[y][0] for y in range(bench.n_classes)], refs)


def identities(data, demo: bool) -> Identities:
    """Cached per data config; a failure is not cached, so it is retried once the data exists."""
    try:
        return _load(json.dumps(data.model_dump(mode="json"), sort_keys=True), demo)
    except Exception as err:  # the picker degrades to typed class indices; the message says why
        return Identities(None, error=f"benchmark not available ({type(err).__name__}: {err})")
