import pytest
import torch

from mia_app.config import SynthIDConfig

torch.set_num_threads(2)


@pytest.fixture
def tiny_synthid() -> SynthIDConfig:
    """A few identities, a few images each: generated in well under a second."""
    return SynthIDConfig(n_private=4, train_per_id=3, test_per_id=2, n_public=5, public_per_id=2)


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path, monkeypatch):
    # Tests never write into the user's ./data cache, except the ones that load the default benchmark.
    monkeypatch.setenv("MIA_DATA_DIR", str(tmp_path / "data"))
