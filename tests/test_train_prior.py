import json

import torch

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
