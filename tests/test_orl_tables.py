"""The ORL judge tables the README quotes are built from the blocks' summaries, floor Δ and stars included."""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "orl_tables.py"


def _load():
    spec = importlib.util.spec_from_file_location("orl_tables", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _stats(mean, lo, hi):
    return {"mean": mean, "ci95": [lo, hi], "n_pairs": 40, "n_resamples": 10}


def _summary(with_pixel: bool) -> dict:
    floor = {"metrics": {"acc@1": _stats(0.5, 0.4, 0.6), "judge_top1": _stats(0.05, 0.0, 0.1),
                         "knn_dist": _stats(40.0, 30.0, 50.0)}}
    ours = {"metrics": {"acc@1": _stats(0.9, 0.8, 1.0), "judge_top1": _stats(0.1, 0.0, 0.2),
                        "knn_dist": _stats(300.0, 60.0, 700.0)},
            "vs_floor": {"acc@1": {"diff": 0.4, "ci95": [0.2, 0.6], "excludes_zero": True},
                         "judge_top1": {"diff": 0.05, "ci95": [-0.05, 0.15], "excludes_zero": False},
                         "knn_dist": {"diff": 260.0, "ci95": [20.0, 660.0], "excludes_zero": True}}}
    variants = {"floor": floor, "A+B3+C+D": ours}
    if with_pixel:
        variants["ours_pixel"] = ours
    return {"seeds": [0, 1], "floor": "floor", "variants": variants}


def test_tables_carry_delta_star_and_mark_rows_a_block_has_not_run(tmp_path):
    module = _load()
    for block, _ in module.BLOCKS:
        (tmp_path / block).mkdir()
        (tmp_path / block / "summary.json").write_text(json.dumps(_summary(with_pixel=block == "target")))
    text = module.orl_tables(tmp_path)
    acc_row = next(line for line in text.splitlines() if line.startswith("| ours, A+B3+C+D (ORL latent prior)"))
    assert "90.0 [80.0, 100.0]<br>Δ +40.0 [+20.0, +60.0] *" in acc_row
    floor_row = next(line for line in text.splitlines() if line.startswith("| floor"))
    assert "Δ" not in floor_row and "50.0 [40.0, 60.0]" in floor_row
    assert "Δ +5.0 [-5.0, +15.0] |" in text  # dlib: CI spans 0, so no star
    pixel_row = next(line for line in text.splitlines() if "ORL pixel prior" in line)
    assert pixel_row.count("not run") == 2


def test_missing_block_names_the_file(tmp_path):
    with pytest.raises(ValueError, match="summary.json is missing"):
        _load().orl_tables(tmp_path)
