import pytest
import torch

from mia_app.evaluation.memorisation import memorisation_report, nearest_ratio


def test_a_copied_face_is_a_near_copy_and_a_new_face_is_not():
    g = torch.Generator().manual_seed(0)
    train = torch.rand(40, 3, 8, 8, generator=g) * 2 - 1
    copies = train[:5] + 0.01 * torch.randn(5, 3, 8, 8, generator=g)
    fresh = torch.rand(5, 3, 8, 8, generator=g) * 2 - 1
    _, r_copy = nearest_ratio(copies, train)
    _, r_new = nearest_ratio(fresh, train)
    assert (r_copy < 1 / 3).all() and (r_new > 1 / 3).all()
    report = memorisation_report(torch.cat([copies, fresh]), train, fresh)
    assert report["samples"]["near_copy_rate"] == 0.5 and report["unseen_real"]["near_copy_rate"] == 0.0
    # a mirrored copy is a copy too: the prior trained on the mirrors
    assert memorisation_report(train[:3].flip(-1), train, fresh)["samples"]["near_copy_rate"] == 1.0


def test_too_few_training_faces_is_refused():
    with pytest.raises(ValueError, match="more than k"):
        nearest_ratio(torch.zeros(1, 3, 4, 4), torch.zeros(5, 3, 4, 4), k=10)
