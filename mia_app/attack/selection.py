"""PPA's selection steps: pseudo-label the public pool with T (initial codes and sources), and keep the
final candidates T is most confident about."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


@torch.no_grad()
def softmax_over_pool(target: nn.Module, images_uint8: torch.Tensor, device: torch.device, batch: int = 256):
    """T's softmax on every public image: P×C."""
    out = []
    for i in range(0, len(images_uint8), batch):
        x = images_uint8[i : i + batch].to(device).float().div(127.5).sub(1)
        out.append(F.softmax(target(x).float(), 1).cpu())
    return torch.cat(out)


def top_k_public(probs: torch.Tensor, y: int, k: int) -> torch.Tensor:
    """Indices of the k public images T ranks highest for class y (pseudo-labelling, as in PLG-MI/Diff-MI)."""
    if k > len(probs):
        raise ValueError(f"k={k} exceeds the public pool ({len(probs)} images)")
    return probs[:, y].topk(k).indices


@torch.no_grad()
def initial_code(id_encoder: nn.Module, images_uint8: torch.Tensor, device: torch.device) -> torch.Tensor:
    """c_y^0: the normalised mean E_id embedding of the given public images (128,)."""
    e = id_encoder(images_uint8.to(device).float().div(127.5).sub(1))
    return F.normalize(e.mean(0), dim=0)


@torch.no_grad()
def target_confidence(target: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """p_T(y | x) averaged over x and its mirror image (PPA scores under augmentation), N."""
    p = F.softmax(target(x), 1) + F.softmax(target(x.flip(-1)), 1)
    return (p / 2).gather(1, y[:, None]).squeeze(1)


def final_selection(conf: torch.Tensor, y: torch.Tensor, keep: int) -> torch.Tensor:
    """Indices of the ``keep`` most confident candidates of each class, ordered by class then rank."""
    chosen = []
    for cls in y.unique(sorted=True):
        idx = (y == cls).nonzero().squeeze(1)
        chosen.append(idx[conf[idx].argsort(descending=True)[:keep]])
    return torch.cat(chosen)
