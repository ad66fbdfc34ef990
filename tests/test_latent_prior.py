"""The latent prior: the interface the engine relies on, its denoiser, training and loading."""

import json

import pytest
import torch

from mia_app.attack.config import LoraSettings
from mia_app.attack.lora import load_lora, save_lora, with_lora
from mia_app.config import LatentPriorTrainConfig
from mia_app.prior.denoiser import LatentDenoiser
from mia_app.prior.io import prior_from_pretrained, prior_kind
from mia_app.prior.latent import LatentPrior
from mia_app.prior.sampler import sample_from_noise, sdedit_sample
from tests.helpers import TINY_DATA, tiny_latent_prior, tiny_prior


def test_denoiser_shapes_and_zero_init():
    den = LatentDenoiser(latent_dim=10, code_dim=8, width=16, depth=2, emb_dim=8)
    z, t, c = torch.randn(5, 10), torch.randint(0, 1000, (5,)), torch.randn(5, 8)
    assert torch.equal(den(z, t, c), torch.zeros(5, 10))  # zero-initialised output layer
    with pytest.raises(ValueError, match="z_t must be N×10"):
        den(torch.randn(5, 11), t, c)


def test_sdedit_in_latent_space_is_differentiable_and_decodes_to_faces():
    prior = tiny_latent_prior()
    z_src = torch.randn(3, 100)
    c = torch.nn.Parameter(torch.nn.functional.normalize(torch.randn(3, 128), dim=1))
    z_hat = sdedit_sample(prior, z_src, c, 0.5, 3, noise=torch.randn(3, 100))
    assert z_hat.shape == (3, 100) and z_hat.abs().max() <= prior.clip_sample
    x_hat = prior.decode(z_hat)
    assert x_hat.shape == (3, 3, 32, 32) and x_hat.min() >= -1 and x_hat.max() <= 1
    x_hat.mean().backward()
    assert c.grad is not None and c.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="x_src must be N×100"):
        sdedit_sample(prior, torch.randn(3, 3, 32, 32), c)


def test_both_kinds_speak_the_same_interface():
    from mia_app.config import SynthIDConfig
    from mia_app.data import load_benchmark

    bench = load_benchmark(SynthIDConfig(**{k: v for k, v in TINY_DATA.items() if k != "kind"}))
    for prior, pool_size in ((tiny_prior(), len(bench.public)), (tiny_latent_prior(), 16)):
        pool = prior.source_pool(bench, 16, seed=0)
        assert len(pool) == pool_size and pool.images.dtype == torch.uint8
        assert tuple(pool.latents.shape[1:]) == prior.sample_shape
        # The pool's images are its latents decoded: the faces T ranks are the faces SDEdit starts from.
        decoded = (prior.decode(pool.latents[:4]).add(1).mul(127.5)).round()
        assert (decoded - pool.images[:4].float()).abs().max() <= 1
        x = sample_from_noise(prior, torch.nn.functional.normalize(torch.randn(2, 128), dim=1), num_steps=2)
        assert x.shape == (2, 3, 32, 32)
    # A latent pool is the same for the same seed and different for another.
    latent = tiny_latent_prior()
    assert torch.equal(latent.source_pool(bench, 8, 0).latents, latent.source_pool(bench, 8, 0).latents)
    assert not torch.equal(latent.source_pool(bench, 8, 0).latents, latent.source_pool(bench, 8, 1).latents)


def test_save_load_round_trip_and_kind(tmp_path):
    prior = tiny_latent_prior()
    prior.save_pretrained(tmp_path / "p", fp16=False, extra={"note": "x", "code_encoder": "sface32"})
    assert prior_kind(tmp_path / "p") == "latent"
    loaded = prior_from_pretrained(tmp_path / "p")
    assert isinstance(loaded, LatentPrior) and loaded.code_encoder == "sface32"  # the attack warns on another E_id
    z, t, c = torch.randn(4, 100), torch.randint(0, 1000, (4,)), torch.randn(4, 128)
    torch.testing.assert_close(loaded(z, t, c), prior(z, t, c))
    assert json.loads((tmp_path / "p" / "prior_config.json").read_text())["note"] == "x"
    tiny_prior().save_pretrained(tmp_path / "u")
    assert prior_kind(tmp_path / "u") == "pixel"


def test_lora_goes_on_the_denoiser_and_round_trips(tmp_path):
    prior = tiny_latent_prior()
    settings = LoraSettings(rank=2, alpha=2.0)
    tuned, params = with_lora(prior, settings)
    assert params and all("lora_" in n for n, p in tuned.denoiser.named_parameters() if p.requires_grad)
    assert not any("lora_" in n for n, _ in prior.named_parameters())  # the base prior is untouched
    with torch.no_grad():
        for p in params:
            p.add_(0.1)
    path = tmp_path / "a.safetensors"
    save_lora(tuned, path, settings)
    again = load_lora(prior, path)
    z, t, c = torch.randn(4, 100), torch.randint(0, 1000, (4,)), torch.randn(4, 128)
    torch.testing.assert_close(again(z, t, c), tuned(z, t, c))
    with pytest.raises(ValueError, match="target_modules"):
        with_lora(prior, LoraSettings(target_modules=["conv1"]))


def test_tiny_latent_training_run_resumes_and_writes_a_prior(tmp_path, monkeypatch):
    from mia_app.prior.latent_train import load_latent_pairs, train_latent_prior

    monkeypatch.setenv("MIA_DATA_DIR", str(tmp_path / "data"))
    data = {k: v for k, v in TINY_DATA.items() if k != "kind"}
    cfg = LatentPriorTrainConfig(n_pairs=300, width=16, depth=1, emb_dim=16, steps=4, batch_size=32, save_every=2,
                                 eval_every=4, data=data)
    report = train_latent_prior(cfg, tmp_path / "run")
    z, c = load_latent_pairs(cfg)
    assert z.shape == (300, 100) and c.shape == (300, 128)
    torch.testing.assert_close(c.norm(dim=1), torch.ones(300))
    assert {"fidelity", "floor", "ceiling"} <= set(report["heldout"])
    assert (tmp_path / "run" / "checkpoint-4").is_dir()
    log = [json.loads(x) for x in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    # Resume to 6 steps: the log continues without duplicates; another width is refused.
    train_latent_prior(cfg.model_copy(update={"steps": 6}), tmp_path / "run")
    log = [json.loads(x) for x in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5, 6]
    with pytest.raises(ValueError, match="width"):
        train_latent_prior(cfg.model_copy(update={"width": 32}), tmp_path / "run")
    assert isinstance(prior_from_pretrained(tmp_path / "run" / "prior"), LatentPrior)


def test_heldout_codes_with_sface_which_has_no_parameters():
    """SFace holds buffers only: the held-out codes must not ask it for a parameter (an ORL prior uses SFace)."""
    from mia_app.config import OrlConfig
    from mia_app.models.id_encoders import load_id_encoder
    from mia_app.prior.latent_train import heldout_codes

    cfg = LatentPriorTrainConfig(id_encoder="sface", decoder="dcgan_gray", data=OrlConfig(resolution=32))
    encoder = load_id_encoder("sface")
    assert not list(encoder.parameters())
    held = heldout_codes(cfg, encoder, n=3)
    assert held["c"].shape == held["c_other_image"].shape == (3, 128)
    torch.testing.assert_close(held["c"].norm(dim=1), torch.ones(3))
