"""Run an ablation: every variant and peer × seed on the same identities, judged by the same E; then summarise.

Cells (variant × seed) run one after another in this process, so the prior, T, SFace and MobileNetV2 are loaded
once (``run_attack``'s model cache) and the private-image features once (``evaluate_run``'s cache). A cell is
finished when its folder has ``metrics.json``; a rerun skips finished cells, evaluates cells whose attack finished
but whose evaluation did not, and restarts partial ones. A finished cell run with a different config is an error
(change the ablation's name or delete the cell), so one summary never mixes configs.

Pairing: variants differ from the baseline in the scheme toggles only; the seed fixes the SDEdit noise of every
candidate and T's pseudo-labels fix the sources, so cell (v, s) and (baseline, s) attack the same identities
from the same starting points. Peers keep the seed and identities too.

Layout::

    <out>/
      <variant>/seed<k>/     a run folder (config.yaml, final/, metrics.json, per_identity.csv, summary.json, ...)
      summary.json           per variant: metrics with CIs, differences to the baseline with paired CIs
      table.md               the same as a markdown table, with seeds, identities, images per identity, E's arch
      acc1.png               E's acc@1 per variant with 95% CI error bars
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from tqdm import tqdm

from mia_app.ablation.config import SCHEME_TOGGLES, AblationConfig, MIFacePeer, OursPeer
from mia_app.ablation.stats import bootstrap_mean, paired_bootstrap
from mia_app.assets import AssetError
from mia_app.attack.config import AttackConfig

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
DECIMALS = {"knn_dist": 2, "judge_dist": 3, "perc_dist": 3}  # non-percent metrics in the table


@dataclass
class Cell:
    variant: str
    seed: int
    kind: str  # "ours" for variants and our peers, "miface"
    config: AttackConfig
    folder: Path
    peer: MIFacePeer | None = None

    @property
    def finished(self) -> bool:
        return (self.folder / "metrics.json").is_file()


# ---- configs of the cells -----------------------------------------------------------------------------
def base_config(acfg: AblationConfig) -> AttackConfig:
    from mia_app.assets import REPO_ROOT

    path = Path(acfg.attack)
    if not path.is_file() and not path.is_absolute() and (REPO_ROOT / path).is_file():
        path = REPO_ROOT / path  # presets are named relative to the repository
    return AttackConfig.from_yaml(path, **acfg.attack_overrides)


def _validated(cfg: AttackConfig, **update) -> AttackConfig:
    return AttackConfig.model_validate(cfg.model_dump() | update)


def variant_config(base: AttackConfig, toggles: dict, seed: int, name: str) -> AttackConfig:
    """The preset with exactly these scheme toggles (unnamed toggles off) and this seed."""
    schemes = base.schemes.model_dump() | {k: False for k in SCHEME_TOGGLES} | dict(toggles)
    return _validated(base, schemes=schemes, seed=seed, name=name)


def peer_config(base: AttackConfig, peer: OursPeer | MIFacePeer, seed: int, name: str) -> AttackConfig:
    baseline = variant_config(base, {}, seed, name)
    if isinstance(peer, MIFacePeer):
        return _validated(baseline, name="miface")
    if peer.kind == "stage1_only":
        return _validated(baseline, stage2=baseline.stage2.model_dump() | {"steps": 0})
    if peer.kind == "plg_max_margin":
        def cls_prior(stage):
            w = stage.weights
            return stage.model_dump() | {"weights": {"prior": w.get("prior", 0.0), "cls": w.get("cls", 1.0)}}

        return _validated(baseline, cls_loss="max_margin", cls_hinge_margin=None,
                          stage1=cls_prior(baseline.stage1), stage2=cls_prior(baseline.stage2))
    raise ValueError(f"unknown peer kind {peer.kind!r}")


def plan_cells(acfg: AblationConfig, base: AttackConfig | None = None) -> list[Cell]:
    """Seed-major order: each seed's full comparison is complete before the next seed starts."""
    base = base or base_config(acfg)
    out = acfg.out_dir()
    cells = []
    for seed in acfg.seeds:
        for name, toggles in acfg.variants.items():
            cfg = variant_config(base, toggles, seed, name)
            cells.append(Cell(name, seed, "ours", cfg, out / name / f"seed{seed}"))
        for peer in acfg.peers:
            name = acfg.peer_name(peer)
            kind = "miface" if isinstance(peer, MIFacePeer) else "ours"
            cells.append(Cell(name, seed, kind, peer_config(base, peer, seed, name), out / name / f"seed{seed}",
                              peer if isinstance(peer, MIFacePeer) else None))
    return cells


# ---- running ------------------------------------------------------------------------------------------
def _miface_params(peer: MIFacePeer) -> dict:
    return peer.model_dump(exclude={"kind", "name", "backend"})


def _same_config(cell: Cell) -> bool:
    saved = cell.folder / "config.yaml"
    if not saved.is_file():
        return False
    if AttackConfig.from_yaml(saved).model_dump() != cell.config.model_dump():
        return False
    if cell.peer is not None:
        note = cell.folder / "method.json"
        return note.is_file() and json.loads(note.read_text()).get("params") == _miface_params(cell.peer)
    return True


def run_cell(cell: Cell, targets: list[int]) -> None:
    if cell.folder.exists():
        shutil.rmtree(cell.folder)  # a partial run: start it again from scratch
    if cell.kind == "miface":
        from mia_app.peers.miface import run_miface

        p = cell.peer
        run_miface(cell.config, targets, cell.folder, p.max_iter, p.window_length, p.threshold, p.learning_rate,
                   p.images_per_class, p.init_noise, p.backend)
    else:
        from mia_app.attack.run import run_attack

        run_attack(cell.config, targets, cell.folder)


def run_ablation(acfg: AblationConfig, progress: bool = True) -> dict:
    """Run (or resume) every cell, then write summary.json, table.md and acc1.png; returns the summary."""
    from mia_app.evaluation.evaluate import evaluate_run, resolve_eval_path

    targets = acfg.target_list()
    if not resolve_eval_path(acfg.eval_model).is_file():  # fail before the first attack, not after it
        raise FileNotFoundError(f"evaluation model {acfg.eval_model} not found")
    out = acfg.out_dir()
    out.mkdir(parents=True, exist_ok=True)
    (out / "ablation.yaml").write_text(yaml.safe_dump(acfg.model_dump(mode="json"), sort_keys=False))
    cells = plan_cells(acfg)
    ran, evaluated, skipped = [], [], []
    bar = tqdm(cells, desc=f"ablation {acfg.name}", unit="cell", disable=not progress)
    for cell in bar:
        bar.set_postfix_str(f"{cell.variant} seed {cell.seed}")
        tag = f"{cell.variant}/seed{cell.seed}"
        if cell.finished:
            if not _same_config(cell):
                raise ValueError(f"cell {cell.folder} was run with a different config than {acfg.attack} and this "
                                 f"ablation now give; delete that folder or give the ablation another name")
            skipped.append(tag)
            continue
        has_images = (cell.folder / "final" / "images.safetensors").is_file()
        if not (has_images and (cell.folder / "summary.json").is_file() and _same_config(cell)):
            run_cell(cell, targets)
            ran.append(tag)
        t0 = time.time()
        metrics = evaluate_run(cell.folder, acfg.eval_model, judge=acfg.judge)
        (cell.folder / "ablation_cell.json").write_text(json.dumps(
            {"variant": cell.variant, "seed": cell.seed, "kind": cell.kind, "eval_seconds": round(time.time() - t0, 2)}
        ))
        evaluated.append(tag)
        if progress:
            tqdm.write(f"{tag}: E acc@1 {metrics['E_acc@1']:.3f}, T acc@1 {metrics['T_acc@1']:.3f}")
    summary = summarize(acfg, cells, targets)
    summary["this_call"] = {"ran": ran, "evaluated": evaluated, "skipped": skipped}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "table.md").write_text(render_table(summary))
    plot_acc(summary, out / "acc1.png")
    return summary


# ---- summarising --------------------------------------------------------------------------------------
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


def summarize(acfg: AblationConfig, cells: list[Cell], targets: list[int]) -> dict:
    by_variant: dict[str, list[Cell]] = {}
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
            "peer": next((p.kind for p in acfg.peers if acfg.peer_name(p) == name), None),
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
                            "per_seed": {str(s): r.get("seconds") for s, r in runs.items()}}
        entry["judge_note"] = next((m["judge_note"] for m in mets.values() if "judge_note" in m), None)
        entry["perc_backend"] = next((m.get("perc_backend") for m in mets.values()), None)
        per[name] = entry

    base = per[acfg.baseline]
    for name, entry in per.items():
        if name == acfg.baseline:
            entry["vs_baseline"] = None
            continue
        vs = {}
        for key in METRICS:
            a = {int(s): v for s, v in entry["per_seed_identity"][key].items()}
            b = {int(s): v for s, v in base["per_seed_identity"][key].items()}
            vs[key] = paired_bootstrap(a, b, acfg.bootstrap_resamples, acfg.bootstrap_seed)
        for key in FRECHET:
            pa, pb = entry["metrics"][key]["per_seed"], base["metrics"][key]["per_seed"]
            d = [pa[s] - pb[s] for s in pa if s in pb and pa[s] is not None and pb[s] is not None]
            vs[key] = {"diff": sum(d) / len(d) if d else None, "n_seeds": len(d), "ci95": None,
                       "note": "one value per run: mean over seeds of the per-seed difference, no CI"}
        entry["vs_baseline"] = vs

    return {
        "name": acfg.name,
        "attack_preset": acfg.attack,
        "attack_overrides": acfg.attack_overrides,
        "targets": targets,
        "n_identities": len(targets),
        "seeds": acfg.seeds,
        "baseline": acfg.baseline,
        "eval_model": acfg.eval_model,
        "eval_arch": _arch("eval", acfg.eval_model),
        "target_arch": _arch("target", by_variant[acfg.baseline][0].config.target),
        "bootstrap": {"resamples": acfg.bootstrap_resamples, "rng_seed": acfg.bootstrap_seed, "level": 0.95,
                      "unit": "(seed, identity) pairs; identities resampled with replacement within each seed; "
                              "per-identity values are means over that identity's images"},
        "complete": all(c.finished for c in cells),
        "variants": per,
    }


def _fmt(key: str, v: float | None, signed: bool = False) -> str:
    if v is None:
        return "n/a"
    if key in PERCENT:
        return f"{100 * v:+.1f}" if signed else f"{100 * v:.1f}"
    nd = DECIMALS.get(key, 3)
    return f"{v:+.{nd}f}" if signed else f"{v:.{nd}f}"


def render_table(summary: dict) -> str:
    variants = summary["variants"]
    ipi = sorted({x for e in variants.values() for x in e["images_per_identity"]})
    b = summary["bootstrap"]
    lines = [
        f"# Ablation `{summary['name']}`",
        "",
        f"- attack preset: `{summary['attack_preset']}`; target T: {summary['target_arch'] or 'n/a'}; "
        f"evaluation model E: {summary['eval_arch'] or 'n/a'} (`{summary['eval_model']}`), never used by any attack",
        f"- identities: {summary['n_identities']} (classes {_ranges(summary['targets'])}); "
        f"seeds: {', '.join(map(str, summary['seeds']))}; images per identity: "
        f"{'/'.join(f'{x:g}' for x in ipi) or 'n/a'} (per variant in the img/id column)",
        f"- accuracies and match rates in %; Δ = variant − `{summary['baseline']}` with a paired bootstrap 95% CI "
        f"over (seed, identity) pairs (identities resampled within seeds, {b['resamples']} resamples, "
        f"RNG seed {b['rng_seed']}); ↑ higher is better, ↓ lower is better",
        "- dlib: distance of each image to the nearest private image of its class (dlib ResNet), match = "
        "below 0.6; dlib top-1: the nearest private image among the attacked classes is of the right class "
        "(chance = 1 / identities); perceptual: LPIPS-style distance to the nearest private image "
        f"({next((e['perc_backend'] for e in variants.values() if e['perc_backend']), 'n/a')})",
    ]
    fd = next((e["metrics"]["frechet_sface"] for e in variants.values() if e["metrics"]["frechet_sface"]["N"]), None)
    fm = next((e["metrics"]["frechet_mobilenet"] for e in variants.values()
               if e["metrics"]["frechet_mobilenet"]["N"]), None)
    if fd and fm:
        lines.append(f"- Fréchet distance, mean over seeds, attack images (N per run in the column) vs "
                     f"{fd['N_private']} private images of the attacked classes; backbones: {fd['backbone']}; "
                     f"{fm['backbone']}. Biased upwards at small N: compare only at equal N")
    notes = {e["judge_note"] for e in variants.values() if e.get("judge_note")}
    lines += [f"- note: {n}" for n in sorted(notes)]
    incomplete = {n: e["missing_seeds"] for n, e in variants.items() if e["missing_seeds"]}
    if incomplete:
        lines.append(f"- INCOMPLETE: missing seeds {incomplete}")
    lines.append("")
    head = ["variant", "img/id"]
    for key, (_, higher, label) in METRICS.items():
        arrow = "↑" if higher else "↓"
        head += [f"{label} {arrow}"] + ([f"Δ {label} [95% CI]"] if key != "T_acc@1" else [])
    head += ["FD SFace ↓ (N)", "FD MNv2 ↓ (N)", "attack s/cell"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, e in variants.items():
        label = name if e["kind"] == "variant" else f"{name} (peer)"
        row = [label, "/".join(f"{x:g}" for x in e["images_per_identity"]) or "n/a"]
        for key in METRICS:
            row.append(_fmt(key, e["metrics"][key]["mean"]))
            if key == "T_acc@1":
                continue
            vs = (e["vs_baseline"] or {}).get(key)
            if vs is None:
                row.append("—")
            elif vs["diff"] is None:
                row.append("n/a")
            else:
                lo, hi = vs["ci95"]
                star = " *" if vs["excludes_zero"] else ""
                row.append(f"{_fmt(key, vs['diff'], True)} [{_fmt(key, lo, True)}, {_fmt(key, hi, True)}]{star}")
        for key in FRECHET:
            f = e["metrics"][key]
            row.append(f"{f['value']:.4g} ({f['N']})" if f["value"] is not None else "n/a")
        s = e["seconds"]["mean_per_cell"]
        row.append("n/a" if s is None else f"{s:.0f}" if s >= 10 else f"{s:.1f}")
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "`*`: the 95% CI excludes 0.", ""]
    return "\n".join(lines)


def _ranges(ids: list[int]) -> str:
    ids = sorted(ids)
    parts, start = [], None
    for i, v in enumerate(ids):
        if start is None:
            start = v
        if i == len(ids) - 1 or ids[i + 1] != v + 1:
            parts.append(f"{start}" if start == v else f"{start}-{v}")
            start = None
    return ",".join(parts)


def plot_acc(summary: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary["variants"])
    entries = [summary["variants"][n]["metrics"]["acc@1"] for n in names]
    means = [100 * (e["mean"] if e["mean"] is not None else float("nan")) for e in entries]
    lo = [m - 100 * e["ci95"][0] if e["ci95"][0] is not None else 0 for m, e in zip(means, entries, strict=True)]
    hi = [100 * e["ci95"][1] - m if e["ci95"][1] is not None else 0 for m, e in zip(means, entries, strict=True)]
    colors = ["#4c72b0" if summary["variants"][n]["kind"] == "variant" else "#9a9a9a" for n in names]
    colors[names.index(summary["baseline"])] = "#dd8452"
    fig, ax = plt.subplots(figsize=(max(5.0, 0.8 * len(names) + 2), 4.0))
    bars = ax.bar(range(len(names)), means, yerr=[lo, hi], capsize=4, color=colors)
    ax.bar_label(bars, labels=[f"{m:.1f}" for m in means], label_type="center", color="white", fontsize=8)
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color="#dd8452", label="baseline"), Patch(color="#4c72b0", label="scheme variant"),
                       Patch(color="#9a9a9a", label="peer")], fontsize=7, loc="upper center", ncol=3)
    ax.set_xticks(range(len(names)), names, rotation=35, ha="right")
    ax.set_ylabel("E acc@1 (%)")
    ax.set_ylim(0, 112)
    ax.set_yticks(range(0, 101, 20))
    ax.set_title(f"{summary['name']}: {summary['n_identities']} identities × seeds {summary['seeds']} "
                 f"(95% bootstrap CI)", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
