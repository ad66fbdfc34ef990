"""Real face data laid out one folder per identity (CelebA / FaceScrub style).

Layout::

    root/private/<identity>/*.{jpg,png}   target classes, sorted by folder name
    root/public/<identity>/*.{jpg,png}    other people: the attacker's public data
    root/splits.json                       {"train": [...relative paths], "test": [...]}, written if absent
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mia_app.config import FolderConfig
from mia_app.data.benchmark import Benchmark, Split

_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def _identity_dirs(root: Path) -> list[Path]:
    if not root.is_dir():
        raise ValueError(f"expected a folder of identity folders at {root}")
    dirs = sorted(p for p in root.iterdir() if p.is_dir())
    if not dirs:
        raise ValueError(f"no identity folders under {root}")
    return dirs


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in _SUFFIXES)


def _read(path: Path, resolution: int) -> np.ndarray:
    img = Image.open(path).convert("RGB")
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    img = img.crop((left, top, left + side, top + side)).resize((resolution, resolution), Image.BICUBIC)
    return np.asarray(img).transpose(2, 0, 1)


def _stack(paths: list[Path], labels: list[int], resolution: int) -> Split:
    if not paths:
        return Split(torch.zeros(0, 3, resolution, resolution, dtype=torch.uint8), torch.zeros(0, dtype=torch.int64))
    return Split(
        torch.from_numpy(np.stack([_read(p, resolution) for p in paths])),
        torch.tensor(labels, dtype=torch.int64),
    )


def make_splits(cfg: FolderConfig) -> dict[str, list[str]]:
    """Per identity, a deterministic ``test_fraction`` of its images goes to private-test."""
    rng = random.Random(cfg.seed)
    splits: dict[str, list[str]] = {"train": [], "test": []}
    for ident in _identity_dirs(cfg.root / "private"):
        files = [str(p.relative_to(cfg.root)) for p in _images(ident)]
        rng.shuffle(files)
        n_test = max(1, round(len(files) * cfg.test_fraction)) if len(files) > 1 else 0
        splits["test"] += sorted(files[:n_test])
        splits["train"] += sorted(files[n_test:])
    return splits


def load_folder(cfg: FolderConfig) -> Benchmark:
    split_file = cfg.root / "splits.json"
    if split_file.is_file():
        splits = json.loads(split_file.read_text())
    else:
        splits = make_splits(cfg)
        split_file.write_text(json.dumps(splits, indent=1))
    names = [d.name for d in _identity_dirs(cfg.root / "private")]
    index = {n: k for k, n in enumerate(names)}

    def split(key: str) -> Split:
        rel = splits[key]
        return _stack([cfg.root / r for r in rel], [index[Path(r).parts[1]] for r in rel], cfg.resolution)

    pub_paths, pub_labels = [], []
    for k, ident in enumerate(_identity_dirs(cfg.root / "public")):
        files = _images(ident)
        pub_paths += files
        pub_labels += [k] * len(files)
    return Benchmark(
        name=f"folder-{cfg.root.name}-{cfg.resolution}px",
        private_train=split("train"),
        private_test=split("test"),
        public=_stack(pub_paths, pub_labels, cfg.resolution),
        class_names=names,
    )
