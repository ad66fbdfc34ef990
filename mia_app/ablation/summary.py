"""The ablation's summary: per row (variant or peer) its metrics with bootstrap CIs, and paired differences to
the baseline and to the floor over (seed, identity) pairs."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from mia_app.ablation.config import AblationConfig
from mia_app.ablation.stats import bootstrap_mean, cluster_paired_bootstrap
from mia_app.assets import AssetError

log = logging.getLogger("mia_app.ablation")

#: summary key -> (per_identity.csv column / metrics.json key, higher is better, label in the table)
METRICS: dict[str, tuple[str, bool, str]] = {
    "acc@1": ("E_acc@1", True, "E acc@1"),
    "acc@5": ("E_acc@5", True, "E acc@5"),
    "T_acc@1": ("T_acc@1", True, "T acc@1"),
    "knn_dist": ("knn_dist", False, "KNN dist"),
    "judge_dist": ("judge_dist", False, "dlib dist"),
    "judge_match@0.6": ("judge_match@0.6", True, "dlib match@0.6"),
    "judge_top1": ("judge_top1", True, "dlib top-1"),
    "perc_dist": ("perc_dist", False, "perceptual"),
}
PERCENT = {"acc@1", "acc@5", "T_acc@1", "judge_match@0.6", "judge_top1"}
FRECHET = ("frechet_sface", "frechet_mobilenet")


def _read_per_identity(folder: Path) -> dict[str, dict[int, float]]:
    import csv

    out: dict[str, dict[int, float]] = {}
    with open(folder / "per_identity.csv", newline="") as f:
        for row in csv.DictReader(f):
            c = int(row["class"])
            for col, v in row.items():
                if col != "class":
                    out.setdefault(col, {})[c] = float(v) if v not in ("", None) else float("nan")
    return out


def _arch(role: str, path: str) -> str | None:
    """'arch (width w)' of the target T or the evaluation model E for the summary; None, with a warning, when its
    checkpoint cannot be read (the summary is still useful without it)."""
    from safetensors import SafetensorError

    from mia_app.evaluation.evaluate import resolve_eval_path
    from mia_app.models.classifiers import read_meta

    try:  # the header's metadata is enough: no need to build T or E (resolve_eval_path verifies shipped files)
        meta = read_meta(resolve_eval_path(path))
        return f"{meta['arch']} (width {meta['width']})"
    # AssetError: missing or corrupt shipped file; OSError: unreadable path; SafetensorError / ValueError: not a
    # mia_app checkpoint; KeyError: metadata without arch / width.
    except (AssetError, OSError, SafetensorError, ValueError, KeyError) as err:
        log.warning("ablation summary: %s architecture of %s skipped (%s: %s)", role, path, type(err).__name__, err)
        return None


def summarize(acfg: AblationConfig, cells: list, targets: list[int]) -> dict:
    by_variant: dict[str, list] = {}
    for c in cells:
        by_variant.setdefault(c.variant, []).append(c)
    per: dict[str, dict] = {}
    for name, vcells in by_variant.items():
        done = [c for c in vcells if c.finished]
        rows = {c.seed: _read_per_identity(c.folder) for c in done}
        mets = {c.seed: json.loads((c.folder / "metrics.json").read_text()) for c in done}
        runs = {c.seed: json.loads((c.folder / "summary.json").read_text()) for c in done}
        entry: dict = {
            "kind": "variant" if name in acfg.variants else "peer",
            "schemes": vcells[0].config.schemes.active() if name in acfg.variants else None,
            "id_encoder": vcells[0].config.id_encoder if name in acfg.variants else None,
            "precision": vcells[0].config.precision if name in acfg.variants else None,
            "peer": vcells[0].peer.kind if vcells[0].peer is not None else None,
            "peer_params": vcells[0].peer.params() if vcells[0].peer is not None else None,
            "cells": {str(c.seed): str(c.folder) for c in done},
            "missing_seeds": [c.seed for c in vcells if not c.finished],
            "images_per_identity": sorted({m["n_images"] / max(m["n_identities"], 1) for m in mets.values()}),
            "metrics": {},
            "per_seed_identity": {},
        }
        for key, (col, _, _) in METRICS.items():
            groups = {s: list(r.get(col, {}).values()) for s, r in rows.items()}
            entry["metrics"][key] = bootstrap_mean(groups, acfg.bootstrap_resamples, acfg.bootstrap_seed)
            entry["per_seed_identity"][key] = {str(s): r.get(col, {}) for s, r in rows.items()}
        for key in FRECHET:
            vals = {s: m.get(key) for s, m in mets.items() if m.get(key)}
            finite = [v["value"] for v in vals.values() if v.get("value") is not None]
            first = next(iter(vals.values()), {})
            entry["metrics"][key] = {
                "value": sum(finite) / len(finite) if finite else None,
                "per_seed": {str(s): v.get("value") for s, v in vals.items()},
                "N": first.get("N"), "N_private": first.get("N_private"), "backbone": first.get("backbone"),
            }
        secs = [r.get("seconds") for r in runs.values() if r.get("seconds") is not None]
        entry["seconds"] = {"mean_per_cell": sum(secs) / len(secs) if secs else None, "total": sum(secs),
                            "per_identity": sum(secs) / len(secs) / len(targets) if secs else None,
                            "per_seed": {str(s): r.get("seconds") for s, r in runs.items()}}
        peer = vcells[0].peer
        entry["deterministic"] = bool(peer is not None and peer.deterministic)
        entry["method"] = _method(vcells[0], acfg)
        entry["judge_note"] = next((m["judge_note"] for m in mets.values() if "judge_note" in m), None)
        entry["perc_backend"] = next((m.get("perc_backend") for m in mets.values()), None)
        per[name] = entry

    for name, entry in per.items():
        entry["vs_baseline"] = None if name == acfg.baseline else paired_rows(entry, per[acfg.baseline], acfg)
        entry["vs_floor"] = None if acfg.floor in (None, name) else paired_rows(entry, per[acfg.floor], acfg)

    return {
        "name": acfg.name,
        "attack_preset": acfg.attack,
        "attack_overrides": acfg.attack_overrides,
        "targets": targets,
        "n_identities": len(targets),
        "seeds": acfg.seeds,
        "baseline": acfg.baseline,
        "floor": acfg.floor,
        "eval_model": acfg.eval_model,
        "eval_arch": _arch("eval", acfg.eval_model),
        "target_arch": _arch("target", by_variant[acfg.baseline][0].config.target),
        "bootstrap": {"resamples": acfg.bootstrap_resamples, "rng_seed": acfg.bootstrap_seed, "level": 0.95,
                      "unit": "(seed, identity) pairs; a row's level resamples identities within each seed, a "
                              "paired difference resamples identities with all their seeds; per-identity values "
                              "are means over that identity's images"},
        "complete": all(c.finished for c in cells),
        "variants": per,
    }


def _method(cell, acfg: AblationConfig) -> str:
    """One line saying what a row is, for the tables."""
    from mia_app.peers.running import describe

    c = cell.config
    if cell.peer is None:
        schemes = c.schemes.active()
        return (f"ours ({'+'.join(schemes) if schemes else 'no schemes'}), {_prior_name(c.prior)}, "
                f"{c.stage1.steps} + {c.stage2.steps} steps, E_id {c.id_encoder}, {c.precision}")
    if cell.peer.kind in ("stage1_only", "plg_max_margin"):  # built from our attack: on our prior
        return f"{describe(cell.peer)}, {_prior_name(c.prior)}"
    return describe(cell.peer)


def _prior_name(prior: str) -> str:
    """``latent prior assets/orl/latent_prior``: every row of ours says which prior it ran on."""
    from mia_app.attack.models import local_path
    from mia_app.prior.io import prior_kind

    if local_path(prior) is None and prior.startswith(("assets/", "runs/", "/", "./")):
        return f"prior {prior} (not found)"
    return f"{prior_kind(prior)} prior {prior}"


def per_seed_values(entry: dict, key: str, seeds: list) -> dict[int, dict]:
    """seed -> {identity: value} ({} when the row has no values of ``key``, e.g. a summary older than the
    metric); a deterministic row's one run stands for every seed (it has no other)."""
    per = every_seed(entry, entry.get("per_seed_identity", {}).get(key, {}), seeds)
    return {int(s): v for s, v in per.items()}


def every_seed(entry: dict, per_seed: dict, seeds: list) -> dict:
    """``per_seed`` (seed -> anything) of a row; a deterministic row's one run stands for every seed of ``seeds``
    (keys as strings, as in ``summary.json``), whichever side of a difference the row is on."""
    if entry.get("deterministic") and len(per_seed) == 1:
        return {str(s): next(iter(per_seed.values())) for s in seeds}
    return per_seed


def paired_rows(entry: dict, ref: dict, acfg: AblationConfig) -> dict | None:
    """Row − reference row: per metric a paired bootstrap over the (seed, identity) pairs both have that resamples
    identities with all their seeds (the same people recur in every seed, and a deterministic row's one run
    stands for every seed: resampling within seeds would treat those copies as independent)."""
    if not ref["cells"] or not entry["cells"]:
        return None
    seeds = acfg.seeds
    vs = {key: cluster_paired_bootstrap(per_seed_values(entry, key, seeds), per_seed_values(ref, key, seeds),
                                        acfg.bootstrap_resamples, acfg.bootstrap_seed) for key in METRICS}
    for key in FRECHET:
        pa, pb = (every_seed(e, e["metrics"][key]["per_seed"], seeds) for e in (entry, ref))
        d = [pa[s] - pb[s] for s in pa if s in pb and pa[s] is not None and pb[s] is not None]
        vs[key] = {"diff": sum(d) / len(d) if d else None, "n_seeds": len(d), "ci95": None,
                   "note": "one value per run: mean over seeds of the per-seed difference, no CI"}
    return vs


def write_summary(path: Path, summary: dict) -> None:
    """Write ``summary.json`` atomically: the dashboard and the default-preset rule read it while the ablation runs,
    and must see the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(summary, indent=2))
    os.replace(tmp, path)
