"""The 32-px identity encoder: model, checkpoint round trip, registry, distillation loop, verification AUC."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mia_app.assets import AssetError, shipped_entry
from mia_app.attack.config import AttackConfig
from mia_app.config import DistillConfig
from mia_app.distill import teacher_set
from mia_app.distill.teacher_set import build_teacher_set, load_teacher_set, training_latents
from mia_app.distill.train import heldout_figures, train_student
from mia_app.evaluation.verification import rank_auc, verification_auc
from mia_app.models import sface_student
from mia_app.models.id_encoders import load_id_encoder
from mia_app.models.sface_student import SFaceStudent, read_student, save_student
from tests.helpers import TINY_DATA


def test_student_gives_unit_norm_128d_at_any_resolution():
    student = SFaceStudent(8).eval()
    for size in (32, 64, 20):
        e = student(torch.rand(3, 3, size, size) * 2 - 1)
        assert e.shape == (3, 128)
        torch.testing.assert_close(e.norm(dim=1), torch.ones(3))
    with pytest.raises(ValueError, match="N×3×H×W"):
        student(torch.rand(3, 1, 32, 32))
    with pytest.raises(ValueError, match="width"):
        SFaceStudent(4)


def test_student_checkpoint_round_trip_is_fp16_and_strict(tmp_path):
    torch.manual_seed(0)
    student = SFaceStudent(8).eval()
    path = tmp_path / "s.safetensors"
    save_student(student, path)
    from safetensors.torch import load_file

    assert all(v.dtype in (torch.float16, torch.int64) for v in load_file(str(path)).values())
    again = read_student(path)
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    torch.testing.assert_close(again(x), student(x), atol=5e-3, rtol=0)  # fp16 weights


def test_deeper_student_round_trips_and_a_forged_header_is_refused_before_allocating(tmp_path):
    import json

    from safetensors.torch import load_file, save_file

    torch.manual_seed(0)
    deep = SFaceStudent(8, blocks=2).eval()
    assert len(deep.stages) == 8 and sum(p.numel() for p in deep.parameters()) > sum(
        p.numel() for p in SFaceStudent(8).parameters())
    save_student(deep, tmp_path / "deep.safetensors")
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    torch.testing.assert_close(read_student(tmp_path / "deep.safetensors")(x), deep(x), atol=5e-3, rtol=0)
    tensors = load_file(str(tmp_path / "deep.safetensors"))
    for key, value in (("width", 100_000), ("blocks", 0), ("embed_dim", "128")):
        config = {"arch": "sface32", "width": 8, "embed_dim": 128, "blocks": 2, key: value}
        save_file(tensors, str(tmp_path / "forged.safetensors"), metadata={"config": json.dumps(config)})
        with pytest.raises(ValueError, match=f"header {key} must be an integer"):
            read_student(tmp_path / "forged.safetensors")


def test_shipped_student_is_in_the_manifest_and_loads_by_name():
    entry = shipped_entry(sface_student.SHIPPED)
    assert entry["role"] == "id_encoder" and "distill-id-encoder" in entry["provenance"]["command"]
    student = load_id_encoder("sface32")
    assert student(torch.zeros(2, 3, 32, 32)).shape == (2, 128)
    with pytest.raises(ValueError, match="sface32"):
        load_id_encoder("arcface")


def test_missing_student_names_the_command(monkeypatch):
    monkeypatch.setattr(sface_student, "SHIPPED", "assets/id_encoder/absent.safetensors")
    sface_student._load_sface32.cache_clear()
    try:
        with pytest.raises(AssetError, match="distill-id-encoder"):
            sface_student.load_sface32()
    finally:
        sface_student._load_sface32.cache_clear()


def test_attack_config_defaults_to_the_student_and_refuses_unknown_encoders():
    cfg = AttackConfig.from_yaml("configs/attack/cpu-quick.yaml")
    assert cfg.id_encoder == "sface32" and cfg.precision == "bf16"
    with pytest.raises(ValueError, match="id_encoder"):
        AttackConfig.from_yaml("configs/attack/cpu-quick.yaml", id_encoder="facenet")


def test_rank_auc_known_values():
    assert rank_auc(torch.tensor([0.1, 0.2, 0.8, 0.9]), torch.tensor([False, False, True, True])) == 1.0
    assert rank_auc(torch.tensor([0.9, 0.8, 0.2, 0.1]), torch.tensor([False, False, True, True])) == 0.0
    assert rank_auc(torch.ones(6), torch.tensor([True, False] * 3)) == 0.5  # ties count half
    # one positive above one of two negatives: 1/2
    assert rank_auc(torch.tensor([0.0, 0.5, 1.0]), torch.tensor([False, True, False])) == 0.5
    e = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    assert verification_auc(e, torch.tensor([0, 0, 1, 1])) == 1.0


class PixelTeacher(nn.Module):
    """A cheap stand-in for SFace: a fixed random projection of the pixels, unit-norm (N×128)."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(3 * 32 * 32, 128, bias=False)
        self.requires_grad_(False)

    def forward(self, x):
        x = nn.functional.interpolate(x, size=(32, 32), mode="area")
        return nn.functional.normalize(self.proj(x.flatten(1)), dim=1)


def _tiny_distill(**over) -> DistillConfig:
    data = {k: v for k, v in TINY_DATA.items() if k != "kind"}
    return DistillConfig.model_validate({"n_identities": 6, "per_identity": 2, "width": 8, "epochs": 2,
                                         "batch_size": 8, "lr": 3e-3, "data": data, **over})


def test_teacher_set_is_fresh_identities_in_resumable_chunks(monkeypatch):
    monkeypatch.setattr(teacher_set, "CHUNK", 5)
    cfg = _tiny_distill()
    z, labels = training_latents(cfg)
    assert z.shape == (12, 100) and labels.tolist() == [i // 2 for i in range(12)]
    folder = build_teacher_set(cfg, PixelTeacher())
    assert sorted(p.name for p in folder.glob("chunk-*")) == [f"chunk-{i:04d}.safetensors" for i in range(3)]
    data = load_teacher_set(cfg)
    assert data["images"].shape == (12, 3, 32, 32) and data["images"].dtype == torch.uint8
    assert data["teacher"].shape == data["teacher_flipped"].shape == (12, 128)
    assert not torch.allclose(data["teacher"], data["teacher_flipped"])  # the mirror is labelled on its own
    # A killed run: the missing chunk is rebuilt, the others are not touched.
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.glob("chunk-*")}
    (folder / "chunk-0001.safetensors").unlink()
    build_teacher_set(cfg, PixelTeacher())
    again = {p.name: p.stat().st_mtime_ns for p in folder.glob("chunk-*")}
    assert again["chunk-0000.safetensors"] == stamps["chunk-0000.safetensors"] and len(again) == 3
    (folder / "chunk-0002.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="distill-id-encoder"):
        load_teacher_set(cfg)


def test_distillation_raises_agreement_and_a_resumed_run_equals_an_uninterrupted_one(tmp_path):
    from safetensors.torch import load_file

    torch.manual_seed(0)
    teacher = PixelTeacher()
    cfg = _tiny_distill(epochs=4)
    build_teacher_set(cfg, teacher)
    data = load_teacher_set(cfg)
    held = {"images": data["images"], "labels": data["labels"], "teacher": data["teacher"]}
    before = heldout_figures(SFaceStudent(8), held)["agreement"]
    whole = train_student(cfg, tmp_path / "a", held)
    assert whole["agreement"] > before + 0.05 and 0.0 <= whole["auc_student"] <= 1.0
    assert sorted(p.name for p in (tmp_path / "a").glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-4"]
    # Killed after epoch 3's checkpoint but after epoch 4's log line: the resume replays epoch 4 exactly.
    train_student(cfg, tmp_path / "b", held)
    import shutil

    shutil.rmtree(tmp_path / "b" / "checkpoint-4")
    (tmp_path / "b" / "sface32.safetensors").unlink()
    resumed = train_student(cfg, tmp_path / "b", held)
    log = [json.loads(x) for x in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3, 4]
    a, b = (load_file(str(tmp_path / run / "sface32.safetensors")) for run in ("a", "b"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["agreement"] == pytest.approx(whole["agreement"])
    with pytest.raises(ValueError, match="lr"):
        train_student(cfg.model_copy(update={"lr": 1e-3}), tmp_path / "b", held)


def test_distill_config_bounds_name_the_field():
    with pytest.raises(ValueError, match="lr"):
        DistillConfig(lr=float("nan"))
    with pytest.raises(ValueError, match="per_identity"):
        DistillConfig(per_identity=0)


def test_bf16_labels_and_training_are_options_with_their_own_set(tmp_path):
    from mia_app.distill.teacher_set import set_key

    fp32, bf16 = _tiny_distill(), _tiny_distill(teacher_precision="bf16", precision="bf16")
    assert set_key(fp32) != set_key(bf16)  # bf16 labels are another set, never mixed into an fp32 one
    assert set_key(fp32) == set_key(_tiny_distill(precision="bf16"))  # the student's precision is not the set's
    teacher = PixelTeacher()
    build_teacher_set(fp32, teacher)
    build_teacher_set(bf16, teacher)
    a, b = load_teacher_set(fp32), load_teacher_set(bf16)
    assert torch.equal(a["images"], b["images"]) and b["teacher"].dtype == torch.float32
    cos = (F.normalize(a["teacher"], dim=1) * F.normalize(b["teacher"], dim=1)).sum(1)
    assert not torch.equal(a["teacher"], b["teacher"]) and cos.min() > 0.99
    held = {"images": b["images"], "labels": b["labels"], "teacher": b["teacher"]}
    figures = train_student(bf16.model_copy(update={"epochs": 1}), tmp_path / "s", held)
    assert math.isfinite(figures["train_loss"]) and -1.0 <= figures["agreement"] <= 1.0
    with pytest.raises(ValueError, match="teacher_precision"):
        DistillConfig(teacher_precision="fp16")
