"""The common interface of every face benchmark: private-train / private-test / public splits."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch


@dataclass
class Split:
    """Images N×3×R×R uint8 (0–255, RGB) and integer labels N (identity index within the split's pool)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4 or self.images.shape[1] != 3:
            raise ValueError(f"images must be N×3×R×R uint8, got {self.images.dtype} {tuple(self.images.shape)}")
        if len(self.images) != len(self.labels):
            raise ValueError("images and labels differ in length")

    def __len__(self) -> int:
        return len(self.images)

    def as_float(self, idx: torch.Tensor | slice | None = None) -> torch.Tensor:
        """Images as float32 in [-1, 1]."""
        x = self.images if idx is None else self.images[idx]
        return to_signed(x)

    def of_class(self, y: int) -> torch.Tensor:
        return self.images[self.labels == y]


def to_signed(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 0–255 -> float32 [-1, 1]."""
    return images_uint8.float().div(127.5).sub(1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 0–255 (rounded, clamped)."""
    return x.detach().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)


@dataclass
class Benchmark:
    """Private identities (target classes 0..n_classes-1) and a disjoint public pool of other people."""

    name: str
    private_train: Split
    private_test: Split
    public: Split
    class_names: list[str]

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def resolution(self) -> int:
        # Read off the public split: an attack may ask for it, and must never touch the private ones.
        return int(self.public.images.shape[-1])

    @property
    def gray(self) -> bool:
        """True when every public image has three equal channels (ORL): an attack may then search gray images."""
        x = self.public.images
        return bool(torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2]))

    def content_hash(self) -> str:
        """sha256 over every array's bytes: equal hashes mean byte-identical data."""
        h = hashlib.sha256()
        for split in (self.private_train, self.private_test, self.public):
            h.update(split.images.contiguous().numpy().tobytes())
            h.update(split.labels.to(torch.int64).contiguous().numpy().tobytes())
        return h.hexdigest()

    def summary(self) -> dict:
        return {
            "name": self.name,
            "identities": self.n_classes,
            "resolution": self.resolution,
            "private_train": len(self.private_train),
            "private_test": len(self.private_test),
            "public_images": len(self.public),
            "public_identities": int(self.public.labels.unique().numel()),
            "sha256": self.content_hash(),
        }
