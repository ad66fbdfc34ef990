import os

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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under MIA_STRICT_TESTS=1 (CI) a skip is a failure: skips here mean a missing wheel or Chromium, and a
    green run that skipped the converter or browser test would hide a broken install."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("MIA_STRICT_TESTS") == "1" and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under MIA_STRICT_TESTS=1 (missing install?): {report.longrepr}"
