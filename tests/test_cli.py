import subprocess
import sys

import pytest

from mia_app.cli import COMMANDS, build_parser, main
from mia_app.cli.attack import parse_targets


def test_every_command_has_help(capsys):
    for name in COMMANDS:
        with pytest.raises(SystemExit) as e:
            build_parser().parse_args([name, "--help"])
        assert e.value.code == 0
        assert "usage" in capsys.readouterr().out


def test_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "mia_app", "--help"], capture_output=True, text=True, check=True)
    assert "attack" in out.stdout and "train-classifier" in out.stdout


def test_parse_targets():
    assert parse_targets("0,2-4, 7") == [0, 2, 3, 4, 7]
    with pytest.raises(ValueError):
        parse_targets(",")


def test_bad_config_is_one_clear_line(tmp_path, capsys):
    assert main(["attack", "--config", str(tmp_path / "missing.yaml"), "--targets", "0", "--out", str(tmp_path)]) == 2
    assert "no attack config" in capsys.readouterr().err


def test_evaluate_a_fresh_attack_run(tmp_path, capsys):
    import csv
    import json

    from mia_app.attack.run import run_attack
    from mia_app.evaluation.evaluate import PER_IDENTITY_COLUMNS
    from mia_app.models.classifiers import build_classifier, save_classifier
    from tests.helpers import tiny_attack_config

    run = tmp_path / "run"
    run_attack(tiny_attack_config(tmp_path), [0, 2], run)
    e_path = tmp_path / "eval.safetensors"  # a tiny E of another architecture than T, as the shipped one is
    save_classifier(build_classifier("resnet", 4, 8), e_path,
                    {"role": "eval", "arch": "resnet", "width": 8, "n_classes": 4, "resolution": 32,
                     "benchmark": "tiny", "benchmark_sha256": "-"})
    assert main(["evaluate", "--run", str(run), "--eval-model", str(e_path), "--judge", "off"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert json.loads(capsys.readouterr().out)["E_acc@1"] == metrics["E_acc@1"]  # printed = written
    for key in ("n_images", "n_identities", "eval_arch", "E_acc@1", "E_acc@5", "T_acc@1", "knn_dist", "perc_dist",
                "perc_backend", "frechet_sface", "frechet_mobilenet", "judge_note", "seed"):
        assert key in metrics, key
    assert (metrics["n_images"], metrics["n_identities"], metrics["eval_arch"]) == (2, 2, "resnet")
    assert 0 <= metrics["E_acc@1"] <= metrics["E_acc@5"] <= 1 and metrics["judge_dist"] is None
    rows = list(csv.DictReader(open(run / "per_identity.csv")))
    assert list(rows[0]) == PER_IDENTITY_COLUMNS and [r["class"] for r in rows] == ["0", "2"]
    assert all(r["n_images"] == "1" for r in rows)  # keep=1 image per identity


def test_evaluate_with_the_optional_facenet_judge(tmp_path, monkeypatch):
    import json
    import sys
    import types

    from mia_app.attack.run import run_attack
    from mia_app.models.classifiers import build_classifier, save_classifier
    from tests.helpers import tiny_attack_config
    from tests.test_facenet_judge import _RecordingNet

    run = tmp_path / "run"
    run_attack(tiny_attack_config(tmp_path), [0, 2], run)
    e_path = tmp_path / "eval.safetensors"
    save_classifier(build_classifier("resnet", 4, 8), e_path,
                    {"role": "eval", "arch": "resnet", "width": 8, "n_classes": 4, "resolution": 32,
                     "benchmark": "tiny", "benchmark_sha256": "-"})
    argv = ["evaluate", "--run", str(run), "--eval-model", str(e_path), "--judge", "off", "--facenet"]
    monkeypatch.setitem(sys.modules, "facenet_pytorch", None)
    assert main(argv) != 0 and not (run / "metrics.json").exists()  # missing package: clear error, nothing written
    fake = types.ModuleType("facenet_pytorch")
    fake.InceptionResnetV1 = _RecordingNet  # facenet-pytorch cannot be installed here (it pins torchvision)
    monkeypatch.setitem(sys.modules, "facenet_pytorch", fake)
    assert main(argv) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 <= metrics["facenet_dist"] <= 2 and 0 <= metrics["facenet_match@1.1"] <= 1
    assert metrics["facenet_top1"] in (0.0, 0.5, 1.0) and "vggface2" in metrics["facenet"]


def test_attack_cli_runs_a_peer_and_refuses_bad_peer_settings(tmp_path, capsys):
    import json

    from tests.helpers import tiny_attack_config

    preset = tmp_path / "tiny.yaml"
    preset.write_text(tiny_attack_config(tmp_path).to_yaml())
    peer = tmp_path / "peer.yaml"
    peer.write_text("{search_space: 8, candidates: 2, steps: 2, final: {iterations: 2}}\n")
    out = tmp_path / "ppa"
    assert main(["attack", "--config", str(preset), "--targets", "0,1", "--out", str(out), "--method", "ppa",
                 "--peer-config", str(peer), "--quiet"]) == 0
    assert json.loads((out / "method.json").read_text())["params"]["steps"] == 2
    assert (out / "final" / "images.safetensors").is_file()
    capsys.readouterr()
    peer.write_text("{lr: .nan}\n")
    assert main(["attack", "--config", str(preset), "--targets", "0", "--out", str(tmp_path / "x"), "--method",
                 "ppa", "--peer-config", str(peer)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: peer settings") and "lr" in err
    assert main(["attack", "--config", str(preset), "--targets", "0,0", "--out", str(tmp_path / "y")]) == 2
    assert "at most once" in capsys.readouterr().err
