import json

import torch

from mia_app.assets import REPO_ROOT
from mia_app.config import PriorTrainConfig
from mia_app.prior.model import IdentityPrior
from mia_app.prior.train import heldout_mask, train_prior
from tests.helpers import TINY_DATA


def _cfg(steps: int) -> PriorTrainConfig:
    return PriorTrainConfig(channels=(8, 16), steps=steps, batch_size=4, save_every=2, sample_every=2,
                            data=TINY_DATA)


def test_tiny_training_checkpoints_and_resumes(tmp_path):
    train_prior(_cfg(2), tmp_path)
    assert (tmp_path / "checkpoint-2" / "model.safetensors").is_file()
    assert (tmp_path / "samples-000002.png").is_file()
    report = train_prior(_cfg(4), tmp_path)  # resumes at step 2
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    prior = IdentityPrior.from_pretrained(report["out"])
    assert prior.conditioned and prior.resolution == 32
    assert next(prior.unet.parameters()).dtype == torch.float32  # fp16 on disk, fp32 in memory


def test_heldout_identities_are_whole_identities():
    labels = torch.arange(20).repeat_interleave(3)
    mask = heldout_mask(labels, 0.2, seed=0)
    held_ids = labels[mask].unique()
    assert len(held_ids) == 4
    assert not torch.isin(labels[~mask], held_ids).any()


def test_codes_come_from_the_chosen_encoder_and_the_prior_records_it(tmp_path):
    from safetensors import safe_open

    from mia_app.models.id_encoders import id_encoder_digest

    cfg = _cfg(2).model_copy(update={"id_encoder": "sface32", "precision": "bf16"})
    report = train_prior(cfg, tmp_path)
    prior = IdentityPrior.from_pretrained(report["out"])
    assert prior.code_encoder == "sface32" and prior.code_encoder_sha256 == id_encoder_digest("sface32")
    with safe_open(str(tmp_path / "public_codes.safetensors"), "pt") as f:
        assert f.metadata()["id_encoder_sha256"] == id_encoder_digest("sface32")
    # the same run folder with another encoder must not reuse the cached sface32 codes
    from mia_app.data import load_benchmark
    from mia_app.prior.train import public_codes

    sface = public_codes(load_benchmark(cfg.data), tmp_path / "public_codes.safetensors", "sface")
    with safe_open(str(tmp_path / "public_codes.safetensors"), "pt") as f:
        assert f.metadata()["id_encoder"] == "sface"
    student = public_codes(load_benchmark(cfg.data), tmp_path / "other.safetensors", "sface32")
    assert not torch.allclose(sface, student)


def test_the_shipped_pixel_prior_is_known_to_follow_sface_codes():
    prior = IdentityPrior.from_pretrained(REPO_ROOT / "assets/prior")
    assert prior.code_encoder == "sface"


def test_ship_dest_is_checked_before_training(capsys):
    from mia_app.cli import main

    assert main(["train-prior", "--config", "configs/prior/cpu.yaml", "--dest", "assets/x"]) == 2
    assert "add --ship" in capsys.readouterr().err
    assert main(["train-prior", "--config", "configs/prior/cpu.yaml", "--ship", "--dest", "/etc/x"]) == 2
    assert "under assets/" in capsys.readouterr().err


def test_flip_only_augmentation_draws_as_the_loop_did_before_the_other_knobs():
    """The shipped priors' provenance commands must still reproduce them: a flip-only config consumes the
    generator exactly as the old inline ``x0[flip] = x0[flip].flip(-1)`` did."""
    from mia_app.config import PriorAugment
    from mia_app.prior.augment import augment_faces

    x = torch.rand(8, 3, 16, 16) * 2 - 1
    old = x.clone()
    g = torch.Generator().manual_seed(3)
    flip = torch.rand(8, generator=g) < 0.5
    old[flip] = old[flip].flip(-1)
    new = augment_faces(x, PriorAugment(), torch.Generator().manual_seed(3))
    assert torch.equal(new, old)


def test_augmentation_moves_faces_within_range_and_is_seeded():
    from mia_app.config import PriorAugment
    from mia_app.prior.augment import augment_faces

    x = torch.rand(16, 3, 32, 32) * 2 - 1
    aug = PriorAugment(shift=3, scale=0.1, brightness=0.1, contrast=0.2)
    a = augment_faces(x, aug, torch.Generator().manual_seed(0))
    b = augment_faces(x, aug, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == x.shape and a.abs().max() <= 1
    assert (a - x).abs().mean(dim=(1, 2, 3)).min() > 0.01  # every face changed
    # a pure shift of k pixels moves the content by k pixels (edges repeated)
    ramp = torch.arange(32.0).view(1, 1, 1, 32).expand(1, 3, 32, 32) / 16 - 1
    shifted = augment_faces(ramp, PriorAugment(flip=False, shift=4), torch.Generator().manual_seed(1))
    step = (shifted[0, 0, 16, 16] - ramp[0, 0, 16, 16]).abs() * 16
    assert 0 <= step <= 4 + 1e-4


def test_generator_mix_draws_faces_with_their_own_codes(tmp_path):
    from mia_app.config import GeneratorMix

    cfg = _cfg(2).model_copy(update={"mix": GeneratorMix(generator="dcgan", fraction=0.5, n_faces=32)})
    train_prior(cfg, tmp_path)
    from safetensors.torch import load_file

    pool = load_file(str(tmp_path / "mix_faces.safetensors"))
    assert pool["faces"].shape == (32, 3, 32, 32) and pool["faces"].dtype == torch.uint8
    assert torch.allclose(pool["codes"].norm(dim=1), torch.ones(32), atol=1e-4)
    assert json.loads((tmp_path / "config.json").read_text())["mix"]["n_faces"] == 32
