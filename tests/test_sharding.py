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
from mia_app.attack.sharding import Shard, _code_order, _final_order
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
    # targets [5, 1, 9, 3] in batches of 2: batch 0 = {5, 1} (final images sorted by class: 1, 5), batch 1 = {9, 3}
    labels = torch.tensor([9, 3, 5, 1])  # as two shards might return them
    assert labels[_final_order(labels, [5, 1, 9, 3], per_batch=2)].tolist() == [1, 5, 3, 9]
    assert labels[_code_order(labels, [5, 1, 9, 3])].tolist() == [5, 1, 9, 3]  # codes keep the targets' order


def _launch(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "MIA_THREADS": "1", "OMP_NUM_THREADS": "1"}
    # torchrun: on CPU, `accelerate launch` starts several processes only through mpirun.
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "mia_app", *args]
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_two_process_attack_equals_one_process(tmp_path):
    torch.set_num_threads(1)  # the same kernels as each launched process
    # Targets out of order, one per batch: 4 batches on 2 processes (rank 0 runs batches 0 and 2).
    cfg = tiny_attack_config(tmp_path, identities_per_batch=1)
    (tmp_path / "attack.yaml").write_text(cfg.to_yaml())
    single = tmp_path / "single"
    run_attack(cfg, [3, 0, 2, 1], single, shard=Shard())
    sharded = tmp_path / "sharded"
    _launch("attack", "--config", str(tmp_path / "attack.yaml"), "--targets", "3,0,2,1", "--out", str(sharded),
            "--quiet", cwd=os.getcwd())
    assert not list(sharded.glob("shard-*")), "the shard folders are merged and removed"
    a, b = (load_file(str(run / "final" / "images.safetensors")) for run in (single, sharded))
    assert b["labels"].tolist() == a["labels"].tolist() == [3, 0, 2, 1]
    torch.testing.assert_close(b["images"], a["images"], rtol=0, atol=1e-5)
    torch.testing.assert_close(b["conf"], a["conf"], rtol=0, atol=1e-5)
    ca, cb = (load_file(str(run / "codes.safetensors")) for run in (single, sharded))
    torch.testing.assert_close(cb["c_y"], ca["c_y"], rtol=0, atol=1e-5)
    assert cb["targets"].tolist() == ca["targets"].tolist() == [3, 0, 2, 1]
    lines = lambda run: [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    assert [(r["batch"], r["stage"], r["step"]) for r in lines(sharded)] == \
        [(r["batch"], r["stage"], r["step"]) for r in lines(single)]
    assert sorted(p.name for p in (sharded / "lora").iterdir()) == [f"batch{i:03d}.safetensors" for i in range(4)]
    summary = json.loads((sharded / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["targets"] == [3, 0, 2, 1]  # two processes really ran
    checks = json.loads((sharded / "doctor.json").read_text())
    assert [c["name"] for c in checks] == [c["name"] for c in json.loads((single / "doctor.json").read_text())]


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
    assert sorted(summary["this_call"]["ran"]) == ["+B3/seed0", "+B3/seed1", "baseline/seed0", "baseline/seed1"]
    assert summary["this_call"]["processes"] == 2
    # each cell ran in one process, whole: no shard folders inside a cell
    assert not list((tmp_path / "abl").glob("*/seed*/shard-*"))
    # A one-process rerun finds every cell finished: the shards wrote the same layout.
    again = run_ablation(AblationConfig.model_validate(acfg), progress=False)
    assert again["this_call"]["ran"] == [] and len(again["this_call"]["skipped"]) == 4
    assert again["variants"]["+B3"]["metrics"] == summary["variants"]["+B3"]["metrics"]
