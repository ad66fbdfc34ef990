from pathlib import Path

import pytest
import torch
from diffusers import DDPMScheduler, UNet2DModel
from safetensors import safe_open

from mia_app.prior.model import IdentityPrior
from tests.helpers import tiny_prior


def test_save_and_from_pretrained_round_trip(tmp_path):
    prior = tiny_prior()
    prior.save_pretrained(tmp_path / "p", fp16=False)
    loaded = IdentityPrior.from_pretrained(tmp_path / "p")
    x, t, c = torch.randn(2, 3, 32, 32), torch.tensor([10, 500]), torch.randn(2, 128)
    with torch.no_grad():
        torch.testing.assert_close(prior(x, t, c), loaded(x, t, c))
    assert loaded.conditioned


def _dtypes(path: Path) -> set[str]:
    with safe_open(str(path), "pt") as f:
        return {str(f.get_slice(k).get_dtype()) for k in f.keys()}


def test_fp16_save_is_fp16_on_disk_and_fp32_in_memory(tmp_path):
    prior = tiny_prior()
    prior.save_pretrained(tmp_path / "p")  # fp16 by default
    assert _dtypes(tmp_path / "p" / "unet" / "diffusion_pytorch_model.safetensors") == {"F16"}
    assert _dtypes(tmp_path / "p" / "code_proj.safetensors") == {"F16"}
    loaded = IdentityPrior.from_pretrained(tmp_path / "p")
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}
    x, t, c = torch.randn(2, 3, 32, 32), torch.tensor([10, 500]), torch.randn(2, 128)
    with torch.no_grad():  # fp16 rounding of the weights only
        torch.testing.assert_close(prior(x, t, c), loaded(x, t, c), atol=2e-2, rtol=2e-2)


def test_shipped_prior_weights_are_fp16_on_disk():
    root = Path(__file__).resolve().parent.parent / "assets" / "prior"
    assert _dtypes(root / "unet" / "diffusion_pytorch_model.safetensors") == {"F16"}
    assert _dtypes(root / "code_proj.safetensors") == {"F16"}


def test_diffusers_pipeline_folder_loads_its_unet_and_scheduler(tmp_path):
    unet = UNet2DModel(sample_size=32, block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=8,
                       down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2)
    unet.save_pretrained(tmp_path / "pipe" / "unet")
    DDPMScheduler(num_train_timesteps=500).save_pretrained(tmp_path / "pipe" / "scheduler")
    (tmp_path / "pipe" / "model_index.json").write_text('{"_class_name": "DDPMPipeline"}')
    prior = IdentityPrior.from_pretrained(tmp_path / "pipe")
    assert not prior.conditioned
    assert prior.scheduler.config.num_train_timesteps == 500


def test_plain_diffusers_unet_folder_loads_unconditioned(tmp_path):
    unet = UNet2DModel(sample_size=32, block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=8,
                       down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2)
    unet.save_pretrained(tmp_path / "plain")
    prior = IdentityPrior.from_pretrained(tmp_path / "plain")
    assert not prior.conditioned and prior.code_proj is None
    out = prior(torch.randn(1, 3, 32, 32), torch.tensor([3]), torch.randn(1, 128))
    assert out.shape == (1, 3, 32, 32)


def test_code_changes_the_prediction_and_bad_shapes_fail():
    prior = tiny_prior()
    with torch.no_grad():
        for p in prior.code_proj.parameters():
            p.normal_()
    x, t = torch.randn(2, 3, 32, 32), torch.tensor([100, 100])
    with torch.no_grad():
        a, b = prior(x, t, torch.randn(2, 128)), prior(x, t, torch.randn(2, 128))
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="c must be"):
        prior(x, t, torch.randn(2, 64))
