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


def _row(values: dict, seeds=(0, 1)) -> dict:
    """A summary row whose every (seed, identity) of 20 identities has the given value per metric."""
    psi = {k: {str(s): {str(i): v for i in range(20)} for s in seeds} for k, v in values.items()}
    metrics = {k: {"mean": v, "ci95": [v - 0.1 * abs(v), v + 0.1 * abs(v)]} for k, v in values.items()}
    return {"per_seed_identity": psi, "metrics": metrics, "cells": {str(s): f"x/seed{s}" for s in seeds}}


def _summary(with_pixel: bool) -> dict:
    floor = _row({"acc@1": 0.5, "judge_top1": 0.05, "knn_dist": 40.0}, seeds=(0,))
    floor["deterministic"] = True  # one run, paired with both seeds
    ours = _row({"acc@1": 0.9, "judge_top1": 0.05, "knn_dist": 300.0})
    variants = {"floor": floor, "A+B3+C+D": ours, "new_row": ours}
    if with_pixel:
        variants["ours_pixel"] = ours
    return {"seeds": [0, 1], "floor": "floor", "complete": True, "variants": variants}


def test_tables_carry_clustered_delta_star_and_mark_rows_a_block_has_not_run(tmp_path):
    module = _load()
    for block, _ in module.BLOCKS:
        (tmp_path / block).mkdir()
        (tmp_path / block / "summary.json").write_text(json.dumps(_summary(with_pixel=block == "target")))
    text = module.orl_tables(tmp_path)
    lines = text.splitlines()
    acc_row = next(line for line in lines if line.startswith("| ours, A+B3+C+D (ORL latent prior)"))
    assert "90.0 [81.0, 99.0]<br>Δ +40.0 [+40.0, +40.0] *" in acc_row  # 40 pairs, the floor's run in both seeds
    floor_row = next(line for line in lines if line.startswith("| floor"))
    assert "Δ" not in floor_row and "50.0 [45.0, 55.0]" in floor_row
    assert "Δ +0.0 [+0.0, +0.0] |" in text  # dlib: no difference, so no star
    pixel_row = next(line for line in lines if "ORL pixel prior" in line)
    assert pixel_row.count("not run") == 2
    assert any(line.startswith("| new_row |") for line in lines)  # a row without a label keeps its name
    assert "PROVISIONAL" not in text


def test_missing_block_names_the_file(tmp_path):
    with pytest.raises(ValueError, match="summary.json is missing"):
        _load().orl_tables(tmp_path)
