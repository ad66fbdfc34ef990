"""``sface32``: a 32-px identity encoder distilled from SFace, the attack's default E_id.

SFace runs at 112 px on images that hold 32 px of information; this student reads the 32-px image directly
and is trained (``mia_app.distill``) to give SFace's unit-norm 128-d embedding of the same image, so the
codes it produces live in SFace's space: the prior, trained on SFace codes, takes them unchanged.

Architecture: a small pre-activation ResNet at 32 -> 16 -> 8 -> 4 px and a linear embedding of the whole
4×4 map (like MobileFaceNet's global depthwise layer, it keeps where a feature is, which identity needs).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from mia_app.assets import REPO_ROOT, AssetError, file_digest, shipped_path

STUDENT_SIZE = 32
EMBED_DIM = 128
SHIPPED = "assets/id_encoder/sface32.safetensors"


class _Block(nn.Module):
    """Pre-activation residual block; a strided 1×1 shortcut when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False) if stride != 1 or cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(h)
        h = self.conv1(h)
        return skip + self.conv2(F.relu(self.bn2(h)))


class SFaceStudent(nn.Module):
    """Images N×3×H×W RGB in [-1, 1] (area-resized to 32×32 if needed) -> N×128, L2-normalised.

    Args:
        width: channels at 32 px; the stages have width, 2·width, 4·width, 8·width channels.
        blocks: residual blocks per stage (the first of a stage changes the shape).
    """

    def __init__(self, width: int = 32, embed_dim: int = EMBED_DIM, blocks: int = 1):
        super().__init__()
        if not 8 <= width <= 256:
            raise ValueError(f"width must be in [8, 256], got {width}")
        if not 1 <= blocks <= 8:
            raise ValueError(f"blocks must be in [1, 8], got {blocks}")
        self.width, self.embed_dim, self.blocks = width, embed_dim, blocks
        w = width
        self.stem = nn.Conv2d(3, w, 3, 1, 1, bias=False)
        layers = []
        # 32 -> 16 -> 8 -> 4 px. One flat Sequential, so blocks=1 keeps the shipped checkpoint's key names.
        for cin, cout, stride in ((w, w, 1), (w, 2 * w, 2), (2 * w, 4 * w, 2), (4 * w, 8 * w, 2)):
            layers += [_Block(cin, cout, stride)] + [_Block(cout, cout, 1) for _ in range(blocks - 1)]
        self.stages = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(8 * w)
        self.embed = nn.Linear(8 * w * 16, embed_dim, bias=False)
        self.bn_embed = nn.BatchNorm1d(embed_dim)

    def forward(self, x: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"x must be N×3×H×W RGB in [-1, 1], got {tuple(x.shape)}")
        if tuple(x.shape[-2:]) != (STUDENT_SIZE, STUDENT_SIZE):
            x = F.interpolate(x, size=(STUDENT_SIZE, STUDENT_SIZE), mode="area" if x.shape[-1] > 32 else "bilinear")
        h = F.relu(self.bn(self.stages(self.stem(x))))
        e = self.bn_embed(self.embed(h.flatten(1)))
        return F.normalize(e, dim=1) if normalize else e

    def config(self) -> dict:
        return {"arch": "sface32", "width": self.width, "embed_dim": self.embed_dim, "blocks": self.blocks}


def save_student(student: SFaceStudent, path: Path, extra: dict | None = None) -> None:
    """fp16 safetensors (the weights are a few MB) and the architecture in the file's metadata."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16 if v.is_floating_point() else v.dtype).contiguous()
             for k, v in student.state_dict().items()}
    save_file(state, str(path), metadata={"config": json.dumps(student.config()), **(extra or {})})


def read_student(path: Path) -> SFaceStudent:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        config = json.loads(f.metadata()["config"])
    if config.get("arch") != "sface32":
        raise ValueError(f"{path} is not an sface32 checkpoint (arch {config.get('arch')!r})")
    _check_header(path, config)
    student = SFaceStudent(config["width"], config["embed_dim"], config.get("blocks", 1))
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path)).items()}
    student.load_state_dict(state, strict=True)
    return student.eval().requires_grad_(False)


def _check_header(path: Path, config: dict) -> None:
    """The header's sizes within the constructor's bounds before anything is allocated (a forged header with
    width 100000 would otherwise ask for hundreds of GB)."""
    for key, lo, hi in (("width", 8, 256), ("embed_dim", 8, 1024), ("blocks", 1, 8)):
        value = config.get(key, 1 if key == "blocks" else None)
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise ValueError(f"{path}: header {key} must be an integer in [{lo}, {hi}], got {value!r}")


def shipped_student_path() -> Path:
    """The shipped student's file, verified against the manifest; a missing or corrupt one says how to get it."""
    try:
        return shipped_path(SHIPPED)
    except AssetError as err:
        raise AssetError(f"{err}. The student is trained here: `python -m mia_app distill-id-encoder --ship`, "
                         "or choose `id_encoder: sface`") from err


def load_sface32(device: str | torch.device = "cpu") -> SFaceStudent:
    """The shipped student; one shared frozen instance per device and per version of the file (a re-shipped
    student is loaded again, not served from the cache)."""
    return _load_sface32(str(torch.device(device)), file_digest(shipped_student_path()))


@cache
def _load_sface32(device: str, digest: str) -> SFaceStudent:
    return read_student(REPO_ROOT / SHIPPED).to(device)
