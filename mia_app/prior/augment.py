"""The pixel prior's training-time augmentation (``PriorAugment``): mirror, shift, zoom and light, applied to a
batch in [-1, 1] with one draw per face from the training loop's generator (so a resumed run repeats them)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mia_app.config import PriorAugment


def augment_faces(x0: torch.Tensor, aug: PriorAugment, generator: torch.Generator) -> torch.Tensor:
    """x0: N×C×R×R in [-1, 1] -> the same shape and range, each face transformed independently."""
    n, _, _, r = x0.shape
    # The mirror draw comes first and alone, as before the other knobs existed: a flip-only config (the shipped
    # SynthID priors') consumes the generator exactly as it did, so its provenance command still reproduces it.
    flip = (torch.rand(n, generator=generator) < 0.5).to(x0.device)
    if aug.flip:
        x0 = torch.where(flip.view(-1, 1, 1, 1), x0.flip(-1), x0)
    if not (aug.shift or aug.scale or aug.contrast or aug.brightness):
        return x0
    u = torch.rand(n, 6, generator=generator).to(x0.device)
    if aug.shift > 0 or aug.scale > 0:
        zoom = 1 + aug.scale * (2 * u[:, 1] - 1)
        # affine_grid works in [-1, 1] coordinates: a shift of k pixels is 2k/R there
        shift = (2 * u[:, 2:4] - 1) * (2 * aug.shift / r)
        theta = torch.zeros(n, 2, 3, device=x0.device, dtype=x0.dtype)
        theta[:, 0, 0] = theta[:, 1, 1] = 1 / zoom
        theta[:, :, 2] = shift
        grid = F.affine_grid(theta, list(x0.shape), align_corners=False)
        x0 = F.grid_sample(x0, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if aug.contrast > 0:
        mean = x0.mean(dim=(1, 2, 3), keepdim=True)
        x0 = mean + (x0 - mean) * (1 + aug.contrast * (2 * u[:, 4] - 1)).view(-1, 1, 1, 1)
    if aug.brightness > 0:
        x0 = x0 + aug.brightness * (2 * u[:, 5] - 1).view(-1, 1, 1, 1)
    return x0.clamp(-1, 1)
