"""The attack's black-box guarantees, tested rather than true by inspection: it never reads the private splits,
and its model bundle has no evaluation model E."""

import dataclasses

import pytest

import mia_app.attack.run as attack_run
from mia_app.attack.models import AttackModels
from mia_app.data import load_benchmark
from tests.helpers import record_classifier_loads, tiny_attack_config


class Untouchable:
    """Stands in for a private split: any attribute, length, iteration, index or truth test raises."""

    def __init__(self, name: str):
        object.__setattr__(self, "_name", name)

    def _refuse(self, *args, **kwargs):
        raise AssertionError(f"the attack touched {object.__getattribute__(self, '_name')}")

    def __getattribute__(self, attr):
        raise AssertionError(f"the attack touched {object.__getattribute__(self, '_name')}.{attr}")

    __len__ = __iter__ = __getitem__ = __bool__ = __array__ = __eq__ = __hash__ = _refuse


def blind_private(bench):
    """The benchmark with both private splits replaced by ``Untouchable``: the public split stays usable."""
    return dataclasses.replace(bench, private_train=Untouchable("private_train"),
                               private_test=Untouchable("private_test"))


def test_the_untouchable_split_really_raises():
    split = Untouchable("private_train")
    for touch in (lambda: split.images, lambda: len(split), lambda: split[0], lambda: bool(split), lambda: list(split)):
        with pytest.raises(AssertionError, match="private_train"):
            touch()


def test_the_attack_never_touches_private_data_nor_loads_e(tmp_path, monkeypatch):
    cfg = tiny_attack_config(tmp_path)
    blinded = blind_private(load_benchmark(cfg.data))
    monkeypatch.setattr(attack_run, "load_benchmark", lambda data: blinded)
    loaded = record_classifier_loads(monkeypatch)  # every classifier checkpoint the attack loads
    attack_run._MODEL_CACHE.clear()  # load the models under the patch, not from an earlier test

    summary = attack_run.run_attack(cfg, [0, 1], tmp_path / "run")

    assert summary["targets"] == [0, 1] and (tmp_path / "run" / "final" / "images.safetensors").is_file()
    assert loaded == [cfg.target]  # T only: never E
    models = attack_run.cached_models(cfg)
    assert models.target_meta["role"] == "target"
    assert set(models.as_dict()) == {"prior", "target", "id_encoder", "perceptual"}
    fields = {f.name for f in dataclasses.fields(AttackModels)}
    assert fields == {"prior", "target", "target_meta", "id_encoder", "perceptual", "device", "fingerprint"}
    # the fingerprint names the weights the attack loaded: E is not among them
    assert set(models.fingerprint) == {"prior", "target", "id_encoder"}
    assert all(isinstance(v, str) and len(v) == 64 for v in models.fingerprint.values())
    assert not any("eval" in name for name in fields)
