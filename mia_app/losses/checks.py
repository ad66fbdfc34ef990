"""Input checks shared by the loss terms: a bad tensor fails early with a short ``ValueError``.

Without them a 32 px x̂ against a 64 px source still gives a number (the feature maps are averaged), a batch
of 2 against 1 broadcasts, an out-of-range label is an ``IndexError`` deep in ``cross_entropy``, and NaN
only surfaces as a non-finite loss after the forward pass.
"""

from __future__ import annotations

import torch


def _shape(x: object) -> tuple[int, ...]:
    return tuple(getattr(x, "shape", ()))


def check_finite(name: str, x: torch.Tensor) -> None:
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf")


def check_images(name: str, x: torch.Tensor, n: int | None = None) -> None:
    """x: N×3×H×W float images (our convention: [-1, 1], not enforced), finite; N == n when given."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3 or not x.is_floating_point():
        raise ValueError(f"{name} must be N×3×H×W images in [-1, 1], got shape {_shape(x)}")
    if n is not None and len(x) != n:
        raise ValueError(f"{name} has batch size {len(x)}, expected {n}")
    check_finite(name, x)


def check_latents(name: str, z: torch.Tensor, sample_shape: tuple[int, ...]) -> None:
    """z: N×<sample_shape> float latents, finite."""
    if not isinstance(z, torch.Tensor) or not z.is_floating_point() or tuple(z.shape[1:]) != tuple(sample_shape):
        raise ValueError(f"{name} must be N×{'×'.join(map(str, sample_shape))} latents, got shape {_shape(z)}")
    check_finite(name, z)


def check_image_pair(x_hat: torch.Tensor, x_src: torch.Tensor) -> None:
    """x̂ and its source: both valid images of exactly the same shape (same batch and resolution)."""
    check_images("x_hat", x_hat)
    check_images("x_src", x_src)
    if x_hat.shape != x_src.shape:
        raise ValueError(f"x_hat {tuple(x_hat.shape)} and x_src {tuple(x_src.shape)} differ in shape")


def check_embeddings(name: str, e: torch.Tensor, dim: int | None = None, n: int | None = None) -> None:
    """e: N×D float, finite; D == dim and N == n when given."""
    if not isinstance(e, torch.Tensor) or e.ndim != 2 or not e.is_floating_point():
        raise ValueError(f"{name} must be a float N×D tensor, got {type(e).__name__} {_shape(e)}")
    if dim is not None and e.shape[1] != dim:
        raise ValueError(f"{name} has dimension {e.shape[1]}, expected {dim}")
    if n is not None and len(e) != n:
        raise ValueError(f"{name} has batch size {len(e)}, expected {n}")
    check_finite(name, e)


def check_labels(name: str, labels: torch.Tensor, n: int, num_classes: int | None = None) -> None:
    """labels: integer tensor of shape (n,); each in [0, num_classes) when given."""
    if not isinstance(labels, torch.Tensor) or labels.shape != (n,) or labels.is_floating_point():
        raise ValueError(f"{name} must be an integer tensor of shape ({n},), got {_shape(labels)}")
    if num_classes is not None and n and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"{name} must lie in [0, {num_classes}), got [{labels.min().item()}, {labels.max().item()}]"
        )


def check_logits(name: str, logits: torch.Tensor, n: int) -> None:
    """logits: N×K float, finite."""
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or not logits.is_floating_point():
        raise ValueError(f"{name} must be float N×K logits, got {_shape(logits)}")
    if len(logits) != n:
        raise ValueError(f"{name} has batch size {len(logits)}, expected {n}")
    check_finite(name, logits)
