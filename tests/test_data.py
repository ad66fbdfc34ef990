import json

import numpy as np
import pytest
import torch
from PIL import Image

from mia_app.config import FolderConfig, SynthIDConfig
from mia_app.data import load_benchmark, to_signed, to_uint8
from mia_app.data.synthid import generate_synthid


def test_synthid_same_config_same_bytes(tiny_synthid):
    a, b = generate_synthid(tiny_synthid), generate_synthid(tiny_synthid)
    assert a.content_hash() == b.content_hash()
    other = generate_synthid(tiny_synthid.model_copy(update={"seed": 1}))
    assert other.content_hash() != a.content_hash()


def test_synthid_split_sizes_and_ranges(tiny_synthid):
    bench = generate_synthid(tiny_synthid)
    assert bench.n_classes == 4 and bench.resolution == 32
    assert len(bench.private_train) == 4 * 3 and len(bench.private_test) == 4 * 2
    assert len(bench.public) == 5 * 2 and bench.public.labels.unique().numel() == 5
    assert bench.private_train.labels.bincount().tolist() == [3, 3, 3, 3]
    x = bench.private_train.as_float()
    assert x.min() >= -1 and x.max() <= 1 and x.std() > 0.2  # real images, not a constant


def test_private_identities_differ_from_public_and_each_other(tiny_synthid):
    bench = generate_synthid(tiny_synthid.model_copy(update={"sigma": 0.3}))
    x = bench.private_train.as_float().flatten(1)
    y = bench.private_train.labels
    d = torch.cdist(x, x)
    same = y[:, None] == y[None]
    off_diag = ~torch.eye(len(y), dtype=torch.bool)
    # images of one identity are closer to each other than to other identities, on average
    assert d[same & off_diag].mean() < d[~same].mean()
    # public images never coincide with private ones
    pub = bench.public.as_float().flatten(1)
    assert torch.cdist(pub, x).min() > 1.0


def test_cache_round_trip_equals_fresh_generation(tiny_synthid, tmp_path):
    first = load_benchmark(tiny_synthid)  # generates and caches
    cached = load_benchmark(tiny_synthid)
    assert cached.content_hash() == first.content_hash() == generate_synthid(tiny_synthid).content_hash()
    manifests = list((tmp_path / "data").glob("synthid-*/manifest.json"))
    assert len(manifests) == 1
    assert json.loads(manifests[0].read_text())["summary"]["sha256"] == first.content_hash()


def test_synthid_64px(tiny_synthid):
    bench = generate_synthid(tiny_synthid.model_copy(update={"resolution": 64}))
    assert bench.private_train.images.shape[-2:] == (64, 64)


def test_bad_config_is_rejected():
    with pytest.raises(ValueError):
        SynthIDConfig(n_private=1)
    with pytest.raises(ValueError):
        SynthIDConfig(resolution=48)
    with pytest.raises(ValueError):
        SynthIDConfig(unknown_field=3)


def test_uint8_round_trip():
    x = torch.linspace(-1, 1, 3 * 4 * 4).view(1, 3, 4, 4)
    assert (to_signed(to_uint8(x)) - x).abs().max() <= 1 / 127.5


def _write_faces(root, layout):
    for split, people in layout.items():
        for person, n in people.items():
            d = root / split / person
            d.mkdir(parents=True)
            for i in range(n):
                rgb = np.full((40, 50, 3), (hash(person) + 37 * i) % 255, dtype=np.uint8)
                Image.fromarray(rgb).save(d / f"{i:03d}.png")


def test_folder_loader_same_interface(tmp_path):
    _write_faces(tmp_path, {"private": {"alice": 5, "bob": 4}, "public": {"carol": 3, "dave": 2}})
    cfg = FolderConfig(root=tmp_path, test_fraction=0.25)
    bench = load_benchmark(cfg)
    assert bench.class_names == ["alice", "bob"]
    assert len(bench.private_train) + len(bench.private_test) == 9
    assert set(bench.private_test.labels.tolist()) == {0, 1}
    assert len(bench.public) == 5 and bench.resolution == 32
    # split file written once and reused: same split on reload
    splits = json.loads((tmp_path / "splits.json").read_text())
    assert load_benchmark(cfg).content_hash() == bench.content_hash()
    assert all(p.startswith("private/") for p in splits["train"] + splits["test"])


def test_folder_loader_errors(tmp_path):
    with pytest.raises(ValueError, match="identity folders"):
        load_benchmark(FolderConfig(root=tmp_path / "nowhere"))
