"""Sharding across processes: 2 CPU processes (gloo, ``accelerate launch``) give what one process gives."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from mia_app.ablation.config import AblationConfig
from mia_app.ablation.runner import run_ablation
from mia_app.attack.run import run_attack
from mia_app.attack.sharding import Shard, _batch_order
from mia_app.models.classifiers import build_classifier, save_classifier
from tests.helpers import tiny_attack_config


def test_shards_are_disjoint_and_cover_every_item():
    items = list(range(7))
    parts = [Shard(r, 3).take(items) for r in range(3)]
    assert parts == [[0, 3, 6], [1, 4], [2, 5]]
    assert sorted(sum(parts, [])) == items
    with pytest.raises(ValueError, match="rank"):
        Shard(2, 2)


def test_merge_order_is_the_single_process_order():
    # targets [5, 1, 9, 3] in batches of 2: batch 0 = {5, 1} (sorted by class: 1, 5), batch 1 = {9, 3} (3, 9)
    labels = torch.tensor([9, 3, 5, 1])  # as two shards might return them
    order = _batch_order(labels, [5, 1, 9, 3], per_batch=2)
    assert labels[order].tolist() == [1, 5, 3, 9]


def _launch(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "MIA_THREADS": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--cpu",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "mia_app", *args]
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_two_process_attack_equals_one_process(tmp_path):
    torch.set_num_threads(1)  # the same kernels as each launched process
    cfg = tiny_attack_config(tmp_path)
    (tmp_path / "attack.yaml").write_text(cfg.to_yaml())
    single = tmp_path / "single"
    run_attack(cfg, [0, 1, 2, 3], single, shard=Shard())
    sharded = tmp_path / "sharded"
    _launch("attack", "--config", str(tmp_path / "attack.yaml"), "--targets", "0-3", "--out", str(sharded),
            "--quiet", cwd=os.getcwd())
    assert not list(sharded.glob("shard-*")), "the shard folders are merged and removed"
    a, b = (load_file(str(run / "final" / "images.safetensors")) for run in (single, sharded))
    assert b["labels"].tolist() == a["labels"].tolist() == [0, 1, 2, 3]
    torch.testing.assert_close(b["images"], a["images"], rtol=0, atol=1e-5)
    torch.testing.assert_close(b["conf"], a["conf"], rtol=0, atol=1e-5)
    ca, cb = (load_file(str(run / "codes.safetensors")) for run in (single, sharded))
    torch.testing.assert_close(cb["c_y"], ca["c_y"], rtol=0, atol=1e-5)
    lines = lambda run: [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    assert [(r["batch"], r["stage"], r["step"]) for r in lines(sharded)] == \
        [(r["batch"], r["stage"], r["step"]) for r in lines(single)]
    assert sorted(p.name for p in (sharded / "lora").iterdir()) == ["batch000.safetensors", "batch001.safetensors"]
    summary = json.loads((sharded / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["targets"] == [0, 1, 2, 3]


def test_two_process_ablation_merges_into_one_summary(tmp_path):
    torch.manual_seed(3)
    save_classifier(build_classifier("resnet", 4, 8), tmp_path / "eval.safetensors",
                    {"role": "eval", "arch": "resnet", "width": 8, "n_classes": 4, "resolution": 32,
                     "benchmark": "tiny", "benchmark_sha256": "-"})
    cfg = tiny_attack_config(tmp_path, stage1={"steps": 1, "lr": 0.05, "image_every": 1,
                                               "weights": {"id": 1.0, "cls": 1.0}},
                             stage2={"steps": 1, "lr": 0.01, "image_every": 1, "weights": {"id": 1.0, "cls": 1.0}})
    (tmp_path / "attack.yaml").write_text(cfg.to_yaml())
    acfg = dict(name="tiny", attack=str(tmp_path / "attack.yaml"), targets="0-1", seeds=[0, 1], judge="off",
                variants={"baseline": {}, "+B3": {"B3": True}}, eval_model=str(tmp_path / "eval.safetensors"),
                out=str(tmp_path / "abl"))
    (tmp_path / "ablation.yaml").write_text(json.dumps(acfg))
    _launch("ablate", "--config", str(tmp_path / "ablation.yaml"), "--quiet", cwd=os.getcwd())
    summary = json.loads((tmp_path / "abl" / "summary.json").read_text())
    assert summary["complete"] and list(summary["variants"]) == ["baseline", "+B3"]
    assert len(summary["this_call"]["ran"]) == 4 - len(summary["this_call"]["skipped"])
    # A one-process rerun finds every cell finished: the shards wrote the same layout.
    again = run_ablation(AblationConfig.model_validate(acfg), progress=False)
    assert again["this_call"]["ran"] == [] and len(again["this_call"]["skipped"]) == 4
    assert again["variants"]["+B3"]["metrics"] == summary["variants"]["+B3"]["metrics"]
