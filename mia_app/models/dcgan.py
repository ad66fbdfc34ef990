"""The DCGAN generator shipped in the ``gan-face-generate`` wheel (trained on DigiFace-1M).

Rewritten here with the wheel's key names so we can load its weights without importing the package
(its ``inference`` module imports torchvision, which must never be installed here).
"""

from __future__ import annotations

import torch
from torch import nn

from mia_app.assets import asset_path

Z_DIM = 100


class DCGANGenerator(nn.Module):
    """z (N×100) -> image N×3×64×64 in [-1, 1]."""

    def __init__(self, nz: int = Z_DIM, ngf: int = 64, nc: int = 3):
        super().__init__()

        def up(cin: int, cout: int, stride: int, pad: int) -> list[nn.Module]:
            return [nn.ConvTranspose2d(cin, cout, 4, stride, pad, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]

        self.main = nn.Sequential(
            *up(nz, ngf * 8, 1, 0),
            *up(ngf * 8, ngf * 4, 2, 1),
            *up(ngf * 4, ngf * 2, 2, 1),
            *up(ngf * 2, ngf, 2, 1),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != Z_DIM:
            raise ValueError(f"z must be N×{Z_DIM}, got {tuple(z.shape)}")
        return self.main(z[:, :, None, None])


def load_dcgan() -> DCGANGenerator:
    """Frozen generator in eval mode (BatchNorm running statistics, as in the wheel's own inference)."""
    state = torch.load(asset_path("dcgan_digiface"), map_location="cpu", weights_only=True)["netG_state_dict"]
    generator = DCGANGenerator()
    generator.load_state_dict(state, strict=True)
    return generator.eval().requires_grad_(False)
