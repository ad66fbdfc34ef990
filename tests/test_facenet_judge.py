import sys
import types

import pytest
import torch

from mia_app.assets import AssetError
from mia_app.models import facenet_judge
from mia_app.models.facenet_judge import FaceNetJudge, load_facenet_judge


class _RecordingNet(torch.nn.Module):
    """Stands in for InceptionResnetV1 (not installable here): records its input, returns un-normalised 512-d."""

    def __init__(self, pretrained=None):
        super().__init__()
        self.pretrained, self.seen = pretrained, []
        self.proj = torch.nn.Linear(3, 512)

    def forward(self, x):
        self.seen.append(x)
        return 3.0 * self.proj(x.mean(dim=(2, 3)))


def test_missing_package_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "facenet_pytorch", None)  # import of a None entry raises ImportError
    with pytest.raises(AssetError, match="pip install facenet-pytorch"):
        load_facenet_judge()


def test_loads_vggface2_and_feeds_160px_fixed_standardisation(monkeypatch):
    fake = types.ModuleType("facenet_pytorch")
    fake.InceptionResnetV1 = _RecordingNet
    monkeypatch.setitem(sys.modules, "facenet_pytorch", fake)
    judge = load_facenet_judge()
    assert judge.model.pretrained == "vggface2"
    x = torch.full((3, 3, 32, 32), 1.0)
    x[1] = -1.0
    emb = judge.describe(x)
    seen = judge.model.seen[0]
    assert seen.shape == (3, 3, 160, 160)
    # white (255) → (255 - 127.5) / 128, black (0) → -127.5 / 128: FaceNet's fixed_image_standardization
    assert seen[0].max().item() == pytest.approx(127.5 / 128) and seen[1].min().item() == pytest.approx(-127.5 / 128)
    assert emb.shape == (3, 512)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(3))


def test_bad_images_are_refused():
    judge = FaceNetJudge(_RecordingNet())
    with pytest.raises(ValueError, match="N×3×R×R"):
        judge.describe(torch.zeros(3, 32, 32))
    with pytest.raises(ValueError, match="NaN"):
        judge.describe(torch.full((1, 3, 32, 32), float("nan")))
    with pytest.raises(ValueError, match="batch_size"):
        FaceNetJudge(_RecordingNet(), batch_size=0)
    assert facenet_judge.MATCH_THRESHOLD > 0
