"""The identity gap of every row's final images in E_id's space: why B3 (and the others) did or did not help.

B3 logs its hardest-negative gap while it runs; the baseline does not (it has no negative bank), so the logs
cannot say whether B3 widened the gap more than the identity loss alone. This scores the *final* images of
every row the same way, after the fact:

* ``code_gap``: cos(ê, c_y) − max_{j≠y} cos(ê, c_j), ê = E_id(x̂), c the row's own final codes of the attacked
  classes (``codes.safetensors``): the separation B3's loss asks for, against the other targets' codes (the run's
  bank also held public faces; those are not saved). Rows without codes (the floor, PPA) have none.
* ``private_gap``: the same with c replaced by each attacked class's mean E_id over its private-train images.
  The attacker never has these; it says whether a wider code gap is a wider gap to the real person.

Each row − baseline is a paired bootstrap over (seed, identity) pairs resampling identities with all their
seeds (``cluster_paired_bootstrap``); the floor's one run pairs with every seed.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from mia_app.ablation.stats import N_RESAMPLES, RNG_SEED, cluster_paired_bootstrap
from mia_app.ablation.summary import every_seed

log = logging.getLogger(__name__)

GAPS = ("code_gap", "private_gap")


def gap(e_hat: torch.Tensor, labels: torch.Tensor, refs: torch.Tensor, ref_labels: torch.Tensor) -> torch.Tensor:
    """cos(ê_i, r_{y_i}) − max_{j: label ≠ y_i} cos(ê_i, r_j) per image; all vectors L2-normalised first."""
    cos = F.normalize(e_hat, dim=1) @ F.normalize(refs, dim=1).T
    own = labels[:, None] == ref_labels[None, :]
    if (own.sum(1) != 1).any():
        raise ValueError("every image's class must appear exactly once among the references")
    return cos[own] - cos.masked_fill(own, float("-inf")).max(1).values


def final_from_png(cell: Path, pad: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """A run's kept images from its ``final/class{y}_rank{r}.png`` (committed with every cell; the tensors are
    not) -> (images N×3×R×R in [-1, 1], labels N). ``pad``: the white border ``save_grid`` draws."""
    import numpy as np
    from PIL import Image

    from mia_app.run_folder import RunFolder

    entries = RunFolder(cell).final_entries()
    if not entries:
        raise ValueError(f"{cell}/final holds no class*_rank*.png")
    arrays = [np.asarray(Image.open(path).convert("RGB"))[pad:-pad, pad:-pad] for _, _, path in entries]
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div(127.5).sub(1)
    return images, torch.tensor([y for y, _, _ in entries])


def _per_identity(values: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    return {str(int(y)): values[labels == y].mean().item() for y in labels.unique()}


@torch.no_grad()
def identity_gaps(summary: dict, out: Path) -> dict:
    """Per row: each gap's mean over (seed, identity) pairs and its Δ vs the baseline with a 95% CI."""
    from mia_app.attack.config import AttackConfig
    from mia_app.data import load_benchmark, to_signed
    from mia_app.models.id_encoders import load_id_encoder

    cfg = AttackConfig.from_yaml(summary["attack_preset"], **summary.get("attack_overrides", {}))
    encoder = load_id_encoder(cfg.id_encoder).eval()
    bench = load_benchmark(cfg.data)
    targets = torch.tensor(summary["targets"])
    centroids = torch.stack([encoder(to_signed(bench.private_train.of_class(int(c)))).mean(0) for c in targets])
    seeds = [str(s) for s in summary["seeds"]]
    rows: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    no_codes = []
    for name, entry in summary["variants"].items():
        for seed in entry["cells"]:
            cell = out / name / f"seed{seed}"
            images, labels = final_from_png(cell)
            e_hat = encoder(images)
            found = {"private_gap": gap(e_hat, labels, centroids, targets)}
            if not (cell / "codes.safetensors").is_file() and entry.get("peer") in (None, "stage1_only"):
                # our own rows save their codes; cells made before codes were committed lack them
                log.warning("%s has no codes.safetensors: its code gap is left out", cell)
                no_codes.append(str(cell))
            if (cell / "codes.safetensors").is_file():
                codes = load_file(str(cell / "codes.safetensors"))
                found["code_gap"] = gap(e_hat, labels, codes["c_y"], codes["targets"])
            for key, values in found.items():
                rows.setdefault(name, {}).setdefault(key, {})[seed] = _per_identity(values, labels)
        for key, per_seed in rows.get(name, {}).items():  # a deterministic row's one run stands for every seed
            rows[name][key] = every_seed(entry, per_seed, seeds)
    base, boot = rows.get(summary["baseline"], {}), summary.get("bootstrap", {})
    report = {"id_encoder": cfg.id_encoder, "n_identities": len(targets), "cells_without_codes": no_codes, "rows": {}}
    for name, per_key in rows.items():
        row = {}
        for key in GAPS:
            if key not in per_key:
                continue
            vals = [v for s in per_key[key].values() for v in s.values()]
            row[key] = {"mean": round(sum(vals) / len(vals), 4), "seeds": sorted(per_key[key])}
            if name != summary["baseline"] and key in base:
                d = cluster_paired_bootstrap(per_key[key], base[key], boot.get("resamples", N_RESAMPLES),
                                             boot.get("rng_seed", RNG_SEED))
                if d["diff"] is None:  # no (seed, identity) pair in common with the baseline yet
                    continue
                row[key]["vs_baseline"] = {"diff": round(d["diff"], 4), "ci95": [round(x, 4) for x in d["ci95"]],
                                           "n_pairs": d["n_pairs"], "excludes_zero": d["excludes_zero"]}
        report["rows"][name] = row
    return report
