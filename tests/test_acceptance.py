"""The seed's acceptance table (verdicts from paired CIs) and the per-scheme "why" readings from run logs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mia_app.ablation.acceptance import acceptance_rows, cluster_delta, render_acceptance, render_deltas, verdict
from mia_app.ablation.why import step_series, why_figures, why_markdown, why_readings
from mia_app.run_folder import RunFolder


@pytest.mark.parametrize(("gain", "diff", "lo", "hi", "room", "expected"), [
    (3.0, 4.0, 1.0, 7.0, 20.0, "reproduced"),          # CI excludes 0 and the point Δ reaches the bar
    (3.0, 2.0, 0.5, 3.5, 20.0, "inconclusive"),        # excludes 0, below the bar, the bar still in the CI
    (3.0, 1.0, -0.5, 2.5, 20.0, "refuted"),            # the whole CI below the bar
    (3.0, 3.5, -1.0, 8.0, 20.0, "inconclusive"),       # Δ reaches it but the CI holds 0
    (8.0, 0.5, -1.0, 2.0, 1.5, "inconclusive (ceiling: the baseline leaves 1.5 points)"),
    (3.0, -5.0, -8.0, -2.0, 1.5, "refuted"),           # a significant loss is a refutation, ceiling or not
    (-0.2, -0.25, -0.3, -0.21, None, "reproduced"),    # lower is better: mirrored
    (-0.2, -0.02, -0.03, -0.01, None, "refuted"),
    (-0.2, 0.05, 0.02, 0.08, None, "refuted"),         # significantly worse on a lower-is-better metric
    (3.0, None, None, None, None, "not run"),
])
def test_verdicts(gain, diff, lo, hi, room, expected):
    assert verdict(gain, diff, lo, hi, room) == expected


def _entry(schemes, per_identity: dict, seeds=(0, 1, 2)) -> dict:
    """A summary row: per metric the same value for every (seed, identity) of 100 identities, or a list."""
    psi = {k: {str(s): {str(i): (v[i] if isinstance(v, list) else v) for i in range(100)} for s in seeds}
           for k, v in per_identity.items()}
    metrics = {k: {"mean": v if not isinstance(v, list) else sum(v) / len(v)} for k, v in per_identity.items()}
    return {"schemes": schemes, "per_seed_identity": psi, "metrics": metrics,
            "cells": {str(s): f"x/seed{s}" for s in seeds}, "missing_seeds": []}


def test_acceptance_rows_pair_identities_and_read_points_and_room():
    base = {"acc@1": 0.985, "judge_top1": 0.48, "perc_dist": 0.87}
    summary = {"name": "s", "n_identities": 100, "baseline": "baseline", "complete": True, "variants": {
        "baseline": _entry([], base),
        "+B3": _entry(["B3"], {"acc@1": 0.99, "judge_top1": 0.53, "perc_dist": 0.86}),
        "A+B3+C": _entry(["A", "B3", "C"], {"acc@1": 0.985, "judge_top1": 0.56, "perc_dist": 0.62}),
    }}
    rows = {(r["row"], r["metric"]): r for r in acceptance_rows(summary)}
    b3 = rows[("+B3", "acc@1")]
    assert b3["diff"] == pytest.approx(0.5) and b3["room"] == pytest.approx(1.5) and b3["n_pairs"] == 300
    assert b3["verdict"].startswith("inconclusive (ceiling")  # +3 cannot show when 1.5 points are left
    assert b3["seeds"] == ["0", "1", "2"]
    assert rows[("+B3", "judge_top1")]["verdict"] == "bar met (proxy)"  # +5 on every pair, bar +3
    assert rows[("A+B3+C", "perc_dist")]["verdict"] == "reproduced (on our scale, not LPIPS)"  # -0.25, bar -0.2
    assert rows[("A+B3+C", "judge_top1")]["verdict"] == "bar met (proxy)"  # +8 >= +6
    assert rows[("+A", "acc@1")]["verdict"] == "not run"
    text = render_acceptance(summary)
    assert ("| A+B+C: LPIPS better by >= 0.2 | A+B3+C | perceptual dist (LPIPS-style, MobileNetV2 taps) | -0.2 | "
            "0.870 | -0.250 [-0.250, -0.250] *") \
        in text and "PROVISIONAL" not in text
    summary["variants"]["+B3"]["missing_seeds"] = [2]
    assert "**PROVISIONAL**" in render_acceptance(summary)
    # the defenses ablation (baseline and A+B3+C+D, no single-scheme row) gets no seed's table
    assert render_acceptance({"name": "x", "baseline": "baseline", "variants": {
        "baseline": _entry([], base), "A+B3+C+D": _entry(["A", "B3", "C", "D"], base)}}) == ""


def test_the_identity_cluster_bootstrap_is_wider_when_identities_repeat_across_seeds():
    from mia_app.ablation.stats import cluster_paired_bootstrap, paired_bootstrap

    rng = np.random.default_rng(0)
    effect = rng.normal(0, 1, 100)  # each identity's own difference, the same in every seed
    variant = {s: {i: float(effect[i]) for i in range(100)} for s in range(3)}
    baseline = {s: {i: 0.0 for i in range(100)} for s in range(3)}
    within, clustered = paired_bootstrap(variant, baseline), cluster_paired_bootstrap(variant, baseline)
    assert clustered["diff"] == pytest.approx(within["diff"]) and clustered["n_pairs"] == 300
    assert clustered["n_identities"] == 100
    width = lambda d: d["ci95"][1] - d["ci95"][0]  # noqa: E731
    assert width(clustered) > 1.5 * width(within)  # 100 independent draws, not 300: about sqrt(3) wider
    # the p value agrees with the CI: above 0.05 when the CI holds 0, below when it excludes it
    assert (clustered["p_value"] < 0.05) == clustered["excludes_zero"]
    shifted = cluster_paired_bootstrap({s: {i: v + 0.5 for i, v in d.items()} for s, d in variant.items()}, baseline)
    assert shifted["excludes_zero"] and shifted["p_value"] < 0.05
    assert cluster_paired_bootstrap(baseline, baseline)["p_value"] == 1.0  # no difference at all: p = 1


def _cell(folder: Path, rows: list[tuple]) -> Path:
    """metrics.jsonl of (stage, step, steps, logs[, batch]) rows."""
    folder.mkdir(parents=True)
    with open(folder / "metrics.jsonl", "w") as f:
        for stage, step, steps, logs, *batch in rows:
            f.write(json.dumps({"stage": stage, "step": step, "steps": steps, "batch": batch[0] if batch else 0,
                                "logs": logs}) + "\n")
    return folder


def test_why_series_joins_the_stages_and_averages_over_seeds(tmp_path):
    a = _cell(tmp_path / "s0", [(1, 1, 2, {"w_id": 0.5, "w_cls": 0.5}), (1, 2, 2, {"w_id": 0.6, "w_cls": 0.4}),
                                (2, 1, 1, {"w_id": 0.5, "w_cls": 0.5})])
    b = _cell(tmp_path / "s1", [(1, 1, 2, {"w_id": 0.5, "w_cls": 0.5}), (1, 2, 2, {"w_id": 0.8, "w_cls": 0.2}),
                                (2, 1, 1, {"w_id": 0.5, "w_cls": 0.5})])
    xs, ys, stage1 = step_series([RunFolder(a).steps(), RunFolder(b).steps()], "w_id")
    assert xs == [1, 2, 3] and ys == pytest.approx([0.5, 0.7, 0.5]) and stage1 == 2
    # a seed's batches are averaged first, then the seeds: two batches (0.2, 0.4) and one seed at 0.5 give 0.4
    c = _cell(tmp_path / "s2", [(1, 1, 1, {"w_id": 0.2}, 0), (1, 1, 1, {"w_id": 0.4}, 1)])
    assert step_series([RunFolder(a).steps(), RunFolder(c).steps()], "w_id")[1][0] == pytest.approx(0.4)
    summary = {"name": "t", "baseline": "baseline", "variants": {
        "baseline": {"schemes": [], "cells": {}}, "+D": {"schemes": ["D"], "cells": {"0": "elsewhere/seed0"}}}}
    (tmp_path / "+D").mkdir()
    a.rename(tmp_path / "+D" / "seed0")  # found under the ablation's folder, whatever path summary.json holds
    assert why_readings(summary, tmp_path)["D"]["+D: w_id"] == {"first": 0.5, "end_stage1": 0.6, "end_stage2": 0.5,
                                                                "min": 0.5, "max": 0.6, "seeds": 1}
    written = why_figures(summary, tmp_path)
    assert [p.name for p in written] == ["why-D.png"] and written[0].read_bytes()[:4] == b"\x89PNG"


def test_scheme_evidence_gives_each_measured_toggle_its_deltas(tmp_path):
    from mia_app.ablation.evidence import scheme_evidence

    folder = tmp_path / "ablation-schemes-x"
    folder.mkdir()
    base = {"acc@1": 0.9, "judge_top1": 0.4, "knn_dist": 30.0, "perc_dist": 0.9}
    summary = {"name": "schemes-x", "complete": True, "baseline": "baseline", "seeds": [0, 1, 2], "variants": {
        "baseline": _entry([], base),
        "+B3": _entry(["B3"], {"acc@1": 0.92, "judge_top1": 0.45, "knn_dist": 28.5, "perc_dist": 0.9}),
        "+A": {"schemes": ["A"], "cells": {}, "per_seed_identity": {}, "metrics": {}}}}
    (folder / "summary.json").write_text(json.dumps(summary))
    (tmp_path / "ablation-schemes-y").mkdir()
    (tmp_path / "ablation-schemes-y" / "summary.json").write_text('{"name": "sche')  # caught mid-write
    measured = ("measured vs baseline: schemes-x (300 pairs): Δ E acc@1 ↑ +2.0 [+2.0, +2.0] *, "
                "Δ dlib top-1 ↑ +5.0 [+5.0, +5.0] *, Δ KNN ↓ -1.50 [-1.50, -1.50] *, "
                "Δ perceptual ↓ +0.000 [+0.000, +0.000]")
    evidence = scheme_evidence(tmp_path)  # the other ablation's evidence is still to come: no verdict yet
    assert set(evidence) == {"B3"}
    assert evidence["B3"] == "the scheme ablations are still running, so the default stays off; " + measured
    (tmp_path / "ablation-schemes-y" / "summary.json").unlink()
    assert scheme_evidence(tmp_path)["B3"] == (
        "helped: a gain on E or dlib significant after Holm's correction, and no significant loss; " + measured)
    summary["complete"] = False
    (folder / "summary.json").write_text(json.dumps(summary))
    assert "(300 pairs, provisional: still running)" in scheme_evidence(tmp_path)["B3"]


def test_every_row_is_read_against_the_baseline_and_the_floor_pairs_with_every_seed():
    base = {"acc@1": 0.9, "judge_top1": 0.4, "knn_dist": 30.0, "perc_dist": 0.9}
    floor = _entry(None, {"acc@1": 0.5, "judge_top1": 0.1, "knn_dist": 70.0, "perc_dist": 1.1}, seeds=(0,))
    floor["deterministic"] = True
    summary = {"name": "s", "baseline": "baseline", "seeds": [0, 1, 2], "variants": {
        "floor": floor, "baseline": _entry([], base),
        "+D": _entry(["D"], {**base, "judge_top1": [0.4 + 0.1 * (i % 2) for i in range(100)]}, seeds=(0, 1))}}
    text = render_deltas(summary)
    floor_row = next(line for line in text.splitlines() if line.startswith("| floor |"))
    assert "| 0 | 300 | -40.0 [-40.0, -40.0] * | -30.0 [-30.0, -30.0] * | +40.00 [+40.00, +40.00] *" in floor_row
    d_row = next(line for line in text.splitlines() if line.startswith("| +D |"))
    assert "| 0,1 | 200 | +0.0 [+0.0, +0.0] | +5.0 [" in d_row
    d = cluster_delta(summary, "+D", "judge_top1")  # half the identities gain 10 points, half nothing
    assert 0 < d["ci95"][0] < 5.0 < d["ci95"][1] < 10 and d["excludes_zero"] is True


def test_why_markdown_quotes_the_logs_and_the_measured_delta():
    base = {"acc@1": 0.9, "judge_top1": 0.4, "knn_dist": 30.0, "perc_dist": 0.9}
    summary = {"name": "s", "baseline": "baseline", "seeds": [0, 1, 2], "variants": {
        "baseline": _entry([], base), "+D": _entry(["D"], {**base, "acc@1": 0.93}),
        "+C": _entry(["C"], base)}}
    reading = {"first": 0.5, "end_stage1": 0.3, "end_stage2": 0.5, "min": 0.3, "max": 0.5, "seeds": 3}
    text = why_markdown(summary, {
        "D": {"+D: w_cls": reading, "+D: w_id": {**reading, "end_stage1": 0.7, "max": 0.7}},
        "C": {"+C: L_div": {**reading, "first": 0.0, "end_stage1": 0.0, "end_stage2": 0.0, "min": 0.0, "max": 0.0}}})
    assert "start at 1/2 = 0.500 in stage 1 and end it at w_cls 0.300, w_id 0.700." in text
    assert "Measured, `+D` − baseline (300 pairs): E acc@1 ↑ +3.0 [+3.0, +3.0] *" in text
    assert "mean of L_div never exceeds 0.0000" in text
    gaps = {"rows": {"baseline": {"code_gap": {"mean": 0.17}, "private_gap": {"mean": 0.07}},
                     "+D": {"code_gap": {"mean": 0.22, "vs_baseline": {"diff": 0.05, "ci95": [0.04, 0.06],
                                                                        "excludes_zero": True, "n_pairs": 300}},
                            "private_gap": {"mean": 0.07, "vs_baseline": {"diff": 0.0, "ci95": [-0.01, 0.01],
                                                                           "excludes_zero": False, "n_pairs": 300}}}}}
    text = why_markdown(summary, {"D": {"+D: w_cls": reading}}, gaps)
    assert ("the gap to the run's codes moves by +0.050 [+0.040, +0.060] * (baseline 0.170, 300 pairs) and the gap "
            "to the real private faces moves by +0.000 [-0.010, +0.010] (baseline 0.070, 300 pairs)") in text
    del gaps["rows"]["baseline"]["code_gap"]  # baseline cells without codes: only the private gap is quoted
    text = why_markdown(summary, {"D": {"+D: w_cls": reading}}, gaps)
    assert "the run's codes" not in text and "real private faces moves by +0.000" in text


def test_a_scheme_helped_only_with_a_significant_gain_and_no_significant_loss(tmp_path):
    from mia_app.ablation.evidence import scheme_helped

    base = {"acc@1": 0.9, "judge_top1": 0.4, "knn_dist": 30.0, "perc_dist": 0.9}
    summary = {"name": "x", "baseline": "baseline", "seeds": [0, 1, 2], "variants": {
        "baseline": _entry([], base),
        "+B3": _entry(["B3"], {**base, "judge_top1": 0.45}),  # gains on dlib, nothing worse
        "+A": _entry(["A"], {**base, "acc@1": 0.95, "knn_dist": 31.0}),  # gains on E, significantly worse KNN
        "+C": _entry(["C"], {**base, "knn_dist": 29.0}),  # better KNN only: not a gain judge
        # 15 identities gain 10 points, 5 lose 10: the CI excludes 0 (p = 0.02) but not after Holm over 8 tests
        "+D": _entry(["D"], {**base, "judge_top1": [0.5] * 15 + [0.3] * 5 + [0.4] * 80})}}
    (tmp_path / "ablation-schemes-x").mkdir()
    (tmp_path / "ablation-schemes-x" / "summary.json").write_text(json.dumps(summary))
    assert scheme_helped(tmp_path) == {}  # still running: no verdict moves the default
    summary["complete"] = True
    (tmp_path / "ablation-schemes-x" / "summary.json").write_text(json.dumps(summary))
    assert scheme_helped(tmp_path) == {"B3": True, "A": False, "C": False, "D": False}
    (tmp_path / "ablation-schemes-y").mkdir()  # another T started, no cell finished yet: its evidence is to come
    (tmp_path / "ablation-schemes-y" / "ablation.yaml").write_text("name: y\n")
    assert scheme_helped(tmp_path) == {}
    (tmp_path / "ablation-schemes-y" / "summary.json").write_text(json.dumps({**summary, "complete": False}))
    assert scheme_helped(tmp_path) == {}  # still running: it could veto
    worse = {**base, "knn_dist": 31.0}  # the other T done, +B3 significantly worse there on a lower-is-better judge
    y = {**summary, "name": "y", "variants": {**summary["variants"], "+B3": _entry(["B3"], worse)}}
    (tmp_path / "ablation-schemes-y" / "summary.json").write_text(json.dumps(y))
    assert scheme_helped(tmp_path) == {"B3": False, "A": False, "C": False, "D": False}


def test_holm_rejects_step_down_and_stops_at_the_first_it_keeps():
    from mia_app.ablation.evidence import holm

    assert holm({"a": 0.001, "b": 0.03, "c": 0.04}) == {"a"}  # 0.03 >= 0.05 / 2: c is not tested
    assert holm({"a": 0.001, "b": 0.02, "c": 0.04}, alpha=0.1) == {"a", "b", "c"}
    assert holm({"a": 0.5, "b": 0.001}) == {"b"} and holm({}) == set()


def test_the_dashboard_default_turns_on_exactly_the_schemes_that_helped():
    """The preset the dashboard opens with follows the committed scheme ablations (issue 17)."""
    from mia_app.ablation.evidence import scheme_helped
    from mia_app.attack.config import AttackConfig
    from mia_app.dashboard.settings import DashboardSettings

    root = Path(__file__).resolve().parents[1]
    assert list((root / "results").glob("ablation-schemes*/summary.json")), "no scheme ablation is committed"
    helped = scheme_helped(root / "results")  # {} until every scheme ablation is complete: all stay off
    preset = root / "configs" / "attack" / f"{DashboardSettings().default_preset}.yaml"
    schemes = AttackConfig.from_yaml(preset).schemes
    assert {s: getattr(schemes, s) for s in ("B3", "A", "C", "D")} == {s: helped.get(s, False)
                                                                      for s in ("B3", "A", "C", "D")}


def test_identity_gap_reads_the_committed_pngs_and_scores_the_hardest_other_class(tmp_path):
    import torch

    from mia_app.ablation.identity_gap import final_from_png, gap
    from mia_app.viz import save_grid

    x = torch.rand(3, 3, 8, 8) * 2 - 1
    for i, (y, r) in enumerate([(4, 0), (4, 1), (7, 0)]):
        save_grid(x[i : i + 1], tmp_path / "final" / f"class{y:04d}_rank{r}.png", nrow=1, scale=1)
    images, labels = final_from_png(tmp_path)
    assert labels.tolist() == [4, 4, 7] and images.shape == (3, 3, 8, 8)
    assert (images - x).abs().max() <= 1 / 127.5 + 1e-6  # only uint8 rounding separates PNG from tensor
    refs = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    e_hat = torch.tensor([[2.0, 0.0], [0.0, 3.0]])  # unnormalised on purpose
    g = gap(e_hat, torch.tensor([4, 9]), refs, torch.tensor([4, 7, 9]))
    assert g.tolist() == pytest.approx([1.0 - 0.6, 1.0 - 0.8])  # own cosine minus the nearest other class
    with pytest.raises(ValueError, match="exactly once"):
        gap(e_hat, torch.tensor([4, 5]), refs, torch.tensor([4, 7, 9]))


def test_a_deterministic_row_stands_for_every_seed_on_either_side_of_a_frechet_difference():
    from types import SimpleNamespace

    from mia_app.ablation.summary import FRECHET, METRICS, paired_rows

    def row(per_seed: dict, deterministic=False) -> dict:
        return {"cells": {s: f"x/seed{s}" for s in per_seed}, "deterministic": deterministic, "per_seed_identity": {},
                "metrics": {k: {"per_seed": per_seed} for k in FRECHET}}

    floor, base = row({"0": 0.10}, deterministic=True), row({"0": 0.15, "1": 0.17, "2": 0.19})
    acfg = SimpleNamespace(seeds=[0, 1, 2], bootstrap_resamples=200, bootstrap_seed=0)  # what paired_rows reads
    down, up = paired_rows(floor, base, acfg), paired_rows(base, floor, acfg)
    for key in FRECHET:  # the floor's one run pairs with all three baseline seeds, whichever is the reference
        assert down[key]["n_seeds"] == up[key]["n_seeds"] == 3
        assert down[key]["diff"] == pytest.approx(-0.07) and up[key]["diff"] == pytest.approx(0.07)
    assert set(METRICS) <= set(down)
