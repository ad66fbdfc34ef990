"""The readable results of a run: n and CI on every number, chance and caveats, and the config diff."""

import json

import pytest

from mia_app.evaluation.readout import config_diff, flatten, readings


def _run(tmp_path, gallery=3, judge=True):
    run = tmp_path / "run"
    run.mkdir()
    m = {"n_images": 6, "n_identities": 3, "eval_model": "assets/eval.safetensors", "eval_arch": "resnet",
         "E_acc@1": 0.5, "E_acc@1_ci95": [0.19, 0.81], "E_acc@5": 1.0, "E_acc@5_ci95": [0.61, 1.0],
         "T_acc@1": 1.0, "knn_dist": 30.0, "perc_dist": 0.9, "perc_backend": "mobilenet",
         "judge_top1": 1 / 3 if judge else None, "judge_dist": 0.45 if judge else None, "judge_gallery": gallery,
         "frechet_sface": {"value": 0.2, "N": 6, "N_private": 180, "backbone": "SFace", "dim": 128}}
    (run / "metrics.json").write_text(json.dumps(m))
    rows = ["class,E_acc@1,knn_dist,judge_dist,judge_top1,perc_dist,n_images",
            "0,1.0,20.0,0.4,1.0,0.8,2", "1,0.5,30.0,0.45,0.0,0.9,2", "2,0.0,40.0,0.5,0.0,1.0,2"]
    (run / "per_identity.csv").write_text("\n".join(rows) + "\n")
    return run


def test_every_number_has_its_n_and_ci_and_dlib_its_chance(tmp_path):
    by_key = {r.key: r for r in readings(_run(tmp_path))}
    e = by_key["E_acc@1"]
    assert e.text() == "50.0 [19.0, 81.0]" and e.n == "6 images, 3 identities" and "chance 1.0%" in e.note
    knn = by_key["knn_dist"]
    assert knn.value == 30.0 and knn.ci is not None and 20.0 <= knn.ci[0] < 30.0 < knn.ci[1] <= 40.0
    assert "3 identities" in knn.n
    assert "chance 1/3 = 33.3%" in by_key["judge_top1"].note and by_key["judge_top1"].ci is not None
    assert by_key["frechet_sface"].n == "N = 6 vs 180 private" and "equal N" in by_key["frechet_sface"].note
    assert "not that it worked" in by_key["T_acc@1"].note
    assert by_key["E_acc@1"].as_row()["metric"] == "E acc@1 % ↑" and by_key["knn_dist"].as_row()["metric"].endswith("↓")


def test_a_one_class_gallery_is_called_out(tmp_path):
    top1 = {r.key: r for r in readings(_run(tmp_path, gallery=1))}["judge_top1"]
    assert "by construction" in top1.note


def test_without_the_judge_or_evaluation_the_rows_say_so(tmp_path):
    run = _run(tmp_path, judge=False)
    m = json.loads((run / "metrics.json").read_text()) | {"judge_note": "dlib judge skipped: no dlib"}
    (run / "metrics.json").write_text(json.dumps(m))
    top1 = {r.key: r for r in readings(run)}["judge_top1"]
    assert top1.text() == "n/a" and "no dlib" in top1.note
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "summary.json").write_text(json.dumps({"targets": [1, 2], "target_conf_mean": 0.9}))
    (only,) = readings(bare)
    assert only.value == pytest.approx(0.9) and "not evaluated with E" in only.note and only.n == "2 identities"


def test_config_diff_lists_only_what_differs():
    a = {"seed": 0, "schemes": {"D": False, "A": True}, "stage1": {"steps": 60}}
    b = {"seed": 1, "schemes": {"D": True, "A": True}, "stage1": {"steps": 60}, "extra": [1]}
    assert flatten(a)["schemes.D"] is False
    rows = config_diff({"r1": a, "r2": b})
    assert [r["setting"] for r in rows] == ["extra", "schemes.D", "seed"]
    assert rows[0] == {"setting": "extra", "r1": "—", "r2": [1]}
    assert config_diff({"r1": a, "r2": dict(a)}) == []
