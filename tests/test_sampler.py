import torch

from mia_app.attack.config import LoraSettings
from mia_app.attack.lora import load_lora, save_lora, with_lora
from mia_app.prior.sampler import sdedit_sample, sdedit_timesteps
from tests.helpers import tiny_prior


def _inputs(n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    x_src = torch.rand(n, 3, 32, 32, generator=g) * 2 - 1
    c = torch.nn.functional.normalize(torch.randn(n, 128, generator=g), dim=1)
    noise = torch.randn(n, 3, 32, 32, generator=g)
    return x_src, c, noise


def test_timesteps_descend_per_sample():
    ts = sdedit_timesteps(torch.tensor([0.5, 1.0]), 4, 1000)
    assert ts.shape == (2, 5)
    assert ts[0, 0] == 500 and ts[1, 0] == 999 and (ts[:, -1] == -1).all()
    assert (ts[:, 1:] < ts[:, :-1]).all()


def test_gradients_reach_code_and_lora():
    prior = tiny_prior()
    tuned, lora_params = with_lora(prior, LoraSettings(rank=2, alpha=2))
    # peft initialises B = 0; perturb so gradients reach A as well as B.
    with torch.no_grad():
        for p in lora_params:
            p.add_(0.01 * torch.randn_like(p))
    x_src, c, noise = _inputs()
    c = c.clone().requires_grad_(True)
    x_hat = sdedit_sample(tuned, x_src, c, 0.6, 3, noise=noise)
    assert x_hat.shape == x_src.shape and x_hat.min() >= -1 and x_hat.max() <= 1
    x_hat.square().mean().backward()
    assert c.grad is not None and c.grad.norm() > 0
    assert all(p.grad is not None for p in lora_params)
    assert sum(p.grad.norm() for p in lora_params) > 0
    # the base prior is frozen and untouched
    assert all(p.grad is None for p in prior.parameters())


def test_checkpointing_gives_the_same_gradients():
    prior = tiny_prior()
    x_src, c, noise = _inputs()
    grads = []
    for ckpt in (True, False):
        cc = c.clone().requires_grad_(True)
        sdedit_sample(prior, x_src, cc, 0.6, 3, noise=noise, gradient_checkpointing=ckpt).sum().backward()
        grads.append(cc.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)


def test_same_noise_same_images_and_guidance_changes_them():
    prior = tiny_prior()
    x_src, c, noise = _inputs()
    with torch.no_grad():
        a = sdedit_sample(prior, x_src, c, 0.5, 2, noise=noise)
        b = sdedit_sample(prior, x_src, c, 0.5, 2, noise=noise)
        g = sdedit_sample(prior, x_src, c, 0.5, 2, guidance=3.0, noise=noise)
    assert torch.equal(a, b)
    assert not torch.allclose(a, g)


def test_lora_round_trip_holds_only_lora_keys(tmp_path):
    prior = tiny_prior()
    tuned, params = with_lora(prior, LoraSettings(rank=2, alpha=4))
    with torch.no_grad():
        for p in params:
            p.add_(0.05 * torch.randn_like(p))
    state = save_lora(tuned, tmp_path / "a.safetensors", LoraSettings(rank=2, alpha=4))
    assert state and all("lora_" in k for k in state)
    n_lora = sum(p.numel() for p in params)
    assert sum(v.numel() for v in state.values()) == n_lora < sum(p.numel() for p in prior.parameters()) / 5
    loaded = load_lora(prior, tmp_path / "a.safetensors")
    x_src, c, noise = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(
            sdedit_sample(tuned, x_src, c, 0.5, 2, noise=noise), sdedit_sample(loaded, x_src, c, 0.5, 2, noise=noise)
        )
        assert not torch.allclose(
            sdedit_sample(prior, x_src, c, 0.5, 2, noise=noise), sdedit_sample(loaded, x_src, c, 0.5, 2, noise=noise)
        )
