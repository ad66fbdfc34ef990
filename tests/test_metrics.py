import pytest
import torch

from mia_app.evaluation.metrics import KNNDistance, TopKAccuracy, wilson_interval


def test_topk_on_constructed_logits():
    m = TopKAccuracy(ks=(1, 2))
    logits = torch.tensor([[3.0, 2.0, 1.0], [1.0, 3.0, 2.0], [1.0, 2.0, 3.0], [3.0, 1.0, 2.0]])
    y = torch.tensor([0, 2, 0, 1])
    m.update(logits[:2], y[:2])
    m.update(logits[2:], y[2:])
    out = m.compute()
    assert out["acc@1"] == 0.25  # only the first is right
    assert out["acc@2"] == 0.5  # second: class 2 is runner-up
    assert out["acc@1_per_class"] == {0: 0.5, 1: 0.0, 2: 0.0}
    m.reset()
    assert m.compute()["n"] == 0


def test_topk_rejects_bad_shapes():
    with pytest.raises(ValueError):
        TopKAccuracy().update(torch.zeros(3), torch.zeros(3, dtype=torch.long))


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(5, 5)[1] == 1.0


def test_knn_distance_picks_the_nearest_private_image_of_the_class():
    priv = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1])
    knn = KNNDistance(priv, labels)
    knn.update(torch.tensor([[9.0, 0.0], [0.0, 0.0]]), torch.tensor([0, 1]))
    out = knn.compute()
    assert out["knn_dist_per_class"] == {0: 1.0, 1: 1.0}
    with pytest.raises(ValueError, match="no private images"):
        knn.update(torch.zeros(1, 2), torch.tensor([5]))
