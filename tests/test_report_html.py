"""The HTML audit report: a run, a comparison and an ablation, from real run folders; the export command."""

from __future__ import annotations

import json
import re

import pytest

from mia_app.cli import main
from mia_app.evaluation.evaluate import evaluate_run
from mia_app.peers.miface import run_miface
from mia_app.report.html import ablation_report, comparison_report, run_report, short_names
from tests.helpers import save_tiny_eval, tiny_attack_config


@pytest.fixture
def runs(tmp_path):
    """Two evaluated MIFace runs (seeds 0 and 1) on the tiny benchmark, judged by a tiny E (no dlib: fast)."""
    e_path = save_tiny_eval(tmp_path / "eval.safetensors")
    out = []
    for seed in (0, 1):
        folder = tmp_path / f"mi{seed}"
        run_miface(tiny_attack_config(tmp_path, seed=seed), [1, 3], folder, max_iter=2, window_length=2,
                   learning_rate=10.0, backend="fallback")
        evaluate_run(folder, str(e_path), judge="off")
        out.append(folder)
    return out


def _images(text: str) -> int:
    return len(re.findall(r'src="data:image/png;base64,', text)) + len(re.findall(r"src='data:image/png;base64,", text))


def test_a_run_report_has_its_images_verdicts_numbers_config_and_models(runs):
    text = run_report(runs[0])
    assert text.startswith("<!DOCTYPE html>") and "http" not in text.split("</style>")[0]  # nothing fetched
    assert _images(text) == 2  # the two final images (classes 1 and 3), inline
    assert "E acc@1 %" in text and "[95% CI]" in text and "200 images" not in text and "2 images, 2 identities" in text
    assert "E top-5:" in text and ("E recognises" in text or "E does not recognise" in text)
    per_image = json.loads((runs[0] / "per_image.json").read_text())
    first = per_image[0]["E_top5"][0]
    assert f"{first[0]} ({first[1]:.0%})" in text  # E's top class with its probability, as the file says
    assert "&quot;seed&quot;: 0" in text and "target T" in text and "evaluation E" in text
    assert "private reference" not in text  # references only when asked
    with_refs = run_report(runs[0], references=True)
    assert _images(with_refs) == 2 + 2 * 2 and "private reference of class 3" in with_refs


def test_an_unevaluated_run_says_so(runs):
    (runs[0] / "metrics.json").unlink()
    text = run_report(runs[0])
    assert "Not evaluated with E" in text and "its confidence is not evidence" in text


def test_a_comparison_shows_both_runs_and_what_differs(runs):
    text = comparison_report(runs)
    assert "comparison of 2 runs" in text and text.count("E acc@1 %") == 1
    assert "<td>seed</td><td>0</td><td>1</td>" in text  # the config diff: only the seed differs
    assert _images(text) == 4
    with pytest.raises(ValueError, match="at least 2"):
        comparison_report(runs[:1])
    with pytest.raises(ValueError, match="twice"):
        comparison_report([runs[0], runs[0]])


def test_short_names_tell_ablation_cells_apart(tmp_path):
    a, b = tmp_path / "ppa" / "seed0", tmp_path / "baseline" / "seed0"
    a.mkdir(parents=True), b.mkdir(parents=True)
    assert short_names([a, b]) == ["ppa/seed0", "baseline/seed0"]


def test_an_ablation_report_renders_its_tables_and_figures(tmp_path):
    folder = tmp_path / "ablation-x"
    (folder / "target").mkdir(parents=True)
    (folder / "x.md").write_text("# x\n\n| row | E acc@1 % |\n|---|---|\n| floor | 84.5 [79.0, 89.0] |\n")
    (folder / "target" / "table.md").write_text("| row | KNN |\n|---|---|\n| ppa | 30.1 |\n")
    from PIL import Image

    Image.new("RGB", (8, 8)).save(folder / "target" / "acc1.png")
    text = ablation_report(folder)
    assert "<td>84.5 [79.0, 89.0]</td>" in text and "<td>30.1</td>" in text and _images(text) == 1
    with pytest.raises(FileNotFoundError, match="ablate"):
        ablation_report(tmp_path / "empty")


def test_export_command(runs, tmp_path, capsys):
    out = tmp_path / "report.html"
    assert main(["export", "--run", str(runs[0]), "--run", str(runs[1]), "--html", str(out)]) == 0
    assert "comparison of 2 runs" in out.read_text() and "wrote" in capsys.readouterr().out
    assert main(["export", "--run", str(runs[0]), "--html", str(tmp_path / "r.txt")]) == 2
    assert ".html" in capsys.readouterr().err
    assert main(["export", "--run", str(tmp_path), "--html", str(out)]) == 2
    assert "not a run folder" in capsys.readouterr().err
