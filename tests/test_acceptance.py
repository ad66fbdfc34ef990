"""The seed's acceptance table (verdicts from paired CIs) and the per-scheme "why" readings from run logs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mia_app.ablation.acceptance import acceptance_rows, render_acceptance, verdict
from mia_app.ablation.why import step_series, why_figures, why_readings


@pytest.mark.parametrize(("gain", "diff", "lo", "hi", "room", "expected"), [
    (3.0, 4.0, 1.0, 7.0, 20.0, "reproduced"),          # CI excludes 0 and Δ reaches the bar
    (3.0, 2.0, 0.5, 3.5, 20.0, "inconclusive"),        # excludes 0, below the bar, the bar still in the CI
    (3.0, 1.0, -0.5, 2.5, 20.0, "refuted"),            # the whole CI below the bar
    (3.0, 3.5, -1.0, 8.0, 20.0, "inconclusive"),       # Δ reaches it but the CI holds 0
    (8.0, 0.5, -1.0, 2.0, 1.5, "inconclusive (ceiling: the baseline leaves 1.5 points)"),
    (-0.2, -0.25, -0.3, -0.21, None, "reproduced"),    # lower is better: mirrored
    (-0.2, -0.02, -0.03, -0.01, None, "refuted"),
    (3.0, None, None, None, None, "not run"),
])
def test_verdicts(gain, diff, lo, hi, room, expected):
    assert verdict(gain, diff, lo, hi, room) == expected


def _entry(schemes, diffs: dict | None, base: dict | None = None) -> dict:
    vs = None if diffs is None else {k: {"diff": d, "ci95": [d - 0.01, d + 0.01], "n_pairs": 300,
                                         "excludes_zero": True} for k, d in diffs.items()}
    metrics = {k: {"mean": v} for k, v in (base or {}).items()}
    return {"schemes": schemes, "vs_baseline": vs, "metrics": metrics, "cells": {}}


def test_acceptance_rows_read_points_and_room_from_the_summary():
    base = {"acc@1": 0.985, "judge_top1": 0.48, "perc_dist": 0.87}
    summary = {"name": "s", "n_identities": 100, "seeds": [0, 1, 2], "baseline": "baseline", "variants": {
        "baseline": _entry([], None, base),
        "+B3": _entry(["B3"], {"acc@1": 0.005, "judge_top1": 0.05, "perc_dist": -0.01}),
        "A+B3+C": _entry(["A", "B3", "C"], {"acc@1": 0.0, "judge_top1": 0.08, "perc_dist": -0.25}),
    }}
    rows = {(r["row"], r["metric"]): r for r in acceptance_rows(summary)}
    b3 = rows[("+B3", "acc@1")]
    assert b3["diff"] == pytest.approx(0.5) and b3["room"] == pytest.approx(1.5) and b3["n_pairs"] == 300
    assert b3["verdict"].startswith("inconclusive (ceiling")  # +3 cannot show when 1.5 points are left
    assert rows[("+B3", "judge_top1")]["verdict"] == "reproduced"  # +5 [+4, +6] on the judge, bar +3
    assert rows[("A+B3+C", "perc_dist")]["verdict"] == "reproduced"  # -0.25, bar -0.2
    assert rows[("A+B3+C", "judge_top1")]["verdict"] == "reproduced"  # +8 >= +6
    assert rows[("+A", "acc@1")]["verdict"] == "not run"
    text = render_acceptance(summary)
    assert "| A+B+C: LPIPS better by >= 0.2 | A+B3+C | perceptual dist | -0.2 | 0.870 | -0.250" in text
    assert render_acceptance({"name": "x", "baseline": "b", "variants": {"b": _entry([], None, base)}}) == ""


def _cell(folder: Path, rows: list[tuple[int, int, int, dict]]) -> Path:
    folder.mkdir(parents=True)
    with open(folder / "metrics.jsonl", "w") as f:
        for stage, step, steps, logs in rows:
            f.write(json.dumps({"stage": stage, "step": step, "steps": steps, "batch": 0, "logs": logs}) + "\n")
    return folder


def test_why_series_joins_the_stages_and_averages_over_seeds(tmp_path):
    a = _cell(tmp_path / "s0", [(1, 1, 2, {"w_id": 0.5, "w_cls": 0.5}), (1, 2, 2, {"w_id": 0.6, "w_cls": 0.4}),
                                (2, 1, 1, {"w_id": 0.5, "w_cls": 0.5})])
    b = _cell(tmp_path / "s1", [(1, 1, 2, {"w_id": 0.5, "w_cls": 0.5}), (1, 2, 2, {"w_id": 0.8, "w_cls": 0.2}),
                                (2, 1, 1, {"w_id": 0.5, "w_cls": 0.5})])
    xs, ys, stage1 = step_series([a, b], "w_id")
    assert xs == [1, 2, 3] and ys == pytest.approx([0.5, 0.7, 0.5]) and stage1 == 2
    summary = {"name": "t", "baseline": "baseline", "variants": {
        "baseline": {"schemes": [], "cells": {}},
        "+D": {"schemes": ["D"], "cells": {"0": str(a), "1": str(b)}}}}
    assert why_readings(summary)["D"]["+D: w_id"] == {"first": 0.5, "end_stage1": 0.7, "end_stage2": 0.5}
    written = why_figures(summary, tmp_path)
    assert [p.name for p in written] == ["why-D.png"] and written[0].read_bytes()[:4] == b"\x89PNG"


def test_scheme_evidence_gives_each_measured_toggle_its_deltas(tmp_path):
    from mia_app.ablation.evidence import scheme_evidence

    folder = tmp_path / "ablation-schemes-x"
    folder.mkdir()
    vs = {k: {"diff": d, "ci95": [d - 0.01, d + 0.01], "n_pairs": 300, "excludes_zero": True}
          for k, d in {"acc@1": 0.02, "judge_top1": 0.05, "knn_dist": -1.5}.items()}
    summary = {"name": "schemes-x", "variants": {"+B3": {"vs_baseline": vs}, "+A": {"vs_baseline": None}}}
    (folder / "summary.json").write_text(json.dumps(summary))
    (tmp_path / "ablation-schemes-y").mkdir()
    (tmp_path / "ablation-schemes-y" / "summary.json").write_text('{"name": "sche')  # caught mid-write
    evidence = scheme_evidence(tmp_path)
    assert set(evidence) == {"B3"}
    assert evidence["B3"] == ("measured vs baseline: schemes-x (300 pairs): Δ E acc@1 +2.0 [+1.0, +3.0] *, "
                              "Δ dlib top-1 +5.0 [+4.0, +6.0] *, Δ KNN -1.50 [-1.51, -1.49] *")
