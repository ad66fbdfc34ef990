"""Why each scheme helped or not, from the cells' own logs (``metrics.jsonl``): one figure per scheme.

* **A** (timestep weights): ``tw_prior``, the batch-mean w(t) the prior loss was multiplied by, and ``+A``'s
  prior loss (A also switches it to the cosine ε-distance, so it is not comparable with the baseline's).
* **B3** (contrastive identity): ``b3_margin``, the hardest-negative gap cos(E_id(x̂), c_y) − max_j cos(E_id(x̂),
  n_j) that B3 is meant to widen, for every row with B3 on.
* **C** (attributes, diversity, hierarchical perception): L_attr (attribute drift from the source face) and
  L_div of ``+C``.
* **D** (uncertainty weighting): the learned task weights w_i = softmax(−s)_i of ``+D``; they start at 1/k.

Every curve is, at each step, the mean over seeds of each seed's mean over batches; stage 2's steps follow
stage 1's on the x axis (a dotted line marks the boundary). A finished cell without ``metrics.jsonl`` is named
in a warning, never skipped in silence.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from mia_app.ablation.acceptance import JUDGES, cluster_delta, format_delta
from mia_app.run_folder import RunFolder

log = logging.getLogger(__name__)

#: scheme -> (title, row whose logs show it, log keys to plot, y label)
WHY = {
    "A": ("A: timestep weights w(t) on the prior loss", "+A", ("tw_prior", "L_prior"), "value"),
    "B3": ("B3: hardest-negative gap cos(ê, c_y) − max cos(ê, n_j)", None, ("b3_margin",), "cosine gap"),
    "C": ("C: attribute drift from the source and candidate diversity", "+C", ("L_attr", "L_div"), "loss"),
    "D": ("D: learned task weights w_i = softmax(−s)_i", "+D", None, "weight"),
}

def step_series(runs: list[list[dict]], key: str) -> tuple[list[int], list[float], int]:
    """(x, mean over runs of each run's mean over batches of ``key`` at each step, stage-1 length) from the runs'
    step records (``RunFolder.steps()``); x counts stage 1's steps then stage 2's (runs of one row share their
    step counts)."""
    per_run: list[dict[tuple[int, int], float]] = []
    stage1 = 0
    for rows in runs:
        stage1 = max([stage1] + [r["steps"] for r in rows if r["stage"] == 1])
        sums: dict[tuple[int, int], float] = defaultdict(float)
        counts: dict[tuple[int, int], int] = defaultdict(int)
        for row in rows:
            value = row["logs"].get(key)
            if value is not None:
                x = (row["step"], row["stage"])
                sums[x] += value
                counts[x] += 1
        per_run.append({x: sums[x] / counts[x] for x in sums})
    joined: dict[int, list[float]] = defaultdict(list)
    for means in per_run:
        for (step, stage), v in means.items():
            joined[step + (stage1 if stage == 2 else 0)].append(v)
    xs = sorted(joined)
    return xs, [sum(joined[x]) / len(joined[x]) for x in xs], stage1


@dataclass
class Series:
    row: str
    key: str
    xs: list[int]
    ys: list[float]
    stage1: int
    seeds: int


def collect(summary: dict, out: Path) -> dict[str, list[Series]]:
    """Per scheme, every logged series of its rows; each cell's metrics.jsonl is read once."""
    found: dict[str, list[Series]] = {}
    runs: dict[str, list[list[dict]]] = {}
    for scheme, (_, _, keys, _) in WHY.items():
        for name in _rows(summary, scheme):
            if name not in runs:
                runs[name] = [RunFolder(c).steps() for c in _cells(summary, name, out)]
            for key in keys if keys is not None else _weight_keys(runs[name]):
                xs, ys, s1 = step_series(runs[name], key)
                if xs:  # older cells may predate a log key
                    found.setdefault(scheme, []).append(Series(name, key, xs, ys, s1, len(runs[name])))
    return found


def _cells(summary: dict, row: str, out: Path) -> list[Path]:
    """The row's finished cells, found under ``out`` (summary.json's own paths are relative to where it ran)."""
    entry = summary["variants"].get(row)
    cells = [out / row / f"seed{s}" for s in (entry or {}).get("cells", {})]
    for cell in cells:
        if not (cell / "metrics.jsonl").is_file():
            log.warning("%s has no metrics.jsonl: its logs are missing from the 'why' figures", cell)
    return cells


def _weight_keys(runs: list[list[dict]]) -> list[str]:
    """Every D weight any step logged: stage 2 may weight a task stage 1 has not (``reg``)."""
    return sorted({k for rows in runs for row in rows for k in row["logs"] if k.startswith("w_")})


def _rows(summary: dict, scheme: str) -> list[str]:
    variants = summary.get("variants", {})
    if scheme == "B3":
        return [n for n, e in variants.items() if e.get("schemes") and "B3" in e["schemes"] and e["cells"]]
    row = WHY[scheme][1]
    return [row] if row in variants and variants[row]["cells"] else []


def why_figures(summary: dict, out: Path, found: dict[str, list[Series]] | None = None) -> list[Path]:
    """Write ``why-<scheme>.png`` into ``out`` for each scheme whose rows have finished; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = collect(summary, out) if found is None else found
    written = []
    for scheme, series in found.items():
        title, _, _, ylabel = WHY[scheme]
        fig, ax = plt.subplots(figsize=(7.5, 3.6))
        secondary = [s.key == "L_prior" for s in series]
        right = ax.twinx() if any(secondary) else None
        for s, on_right in zip(series, secondary, strict=True):
            (right if on_right else ax).plot(s.xs, s.ys, label=f"{s.row}: {s.key}", lw=1.2,
                                             ls="--" if on_right else "-")
        stage1 = max(s.stage1 for s in series)
        ax.axvline(stage1 + 0.5, color="grey", ls=":", lw=1)
        ax.set_xlabel(f"step (stage 1: 1-{stage1}, then stage 2)")
        ax.set_ylabel(ylabel)
        if right is not None:
            right.set_ylabel("L_prior (dashed)")
        handles = [h for a in (ax, right) if a is not None for h in a.get_legend_handles_labels()[0]]
        labels = [lab for a in (ax, right) if a is not None for lab in a.get_legend_handles_labels()[1]]
        ax.legend(handles, labels, fontsize=7, loc="best")
        n_seeds = max(s.seeds for s in series)
        ax.set_title(f"{title}\nmean over batches and {n_seeds} seed(s); {summary['name']}", fontsize=9)
        fig.tight_layout()
        path = out / f"why-{scheme}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def why_readings(summary: dict, out: Path, found: dict[str, list[Series]] | None = None) -> dict[str, dict]:
    """The numbers the README's "why" sentences quote: per scheme, the logged quantity at the first step, the
    end of stage 1 and the end of stage 2 (mean over seeds of the mean over batches; None where not logged)."""
    found = collect(summary, out) if found is None else found
    readings: dict[str, dict] = {}
    for scheme, series in found.items():
        for s in series:
            end1 = dict(zip(s.xs, s.ys, strict=True)).get(s.stage1)
            readings.setdefault(scheme, {})[f"{s.row}: {s.key}"] = {
                "first": round(s.ys[0], 4), "end_stage1": None if end1 is None else round(end1, 4),
                "end_stage2": round(s.ys[-1], 4), "min": round(min(s.ys), 4), "max": round(max(s.ys), 4),
                "seeds": s.seeds}
    return readings


def _path(r: dict) -> str:
    """``0.066 → 0.118 (end of stage 1) → 0.159 (end)``"""
    mid = "" if r["end_stage1"] is None else f" → {r['end_stage1']:.3f} (end of stage 1)"
    return f"{r['first']:.3f} (step 1){mid} → {r['end_stage2']:.3f} (end)"


def _measured(summary: dict, row: str) -> str:
    deltas = [cluster_delta(summary, row, key) for key, _ in JUDGES]
    if all(d is None for d in deltas):
        return f"`{row}` has no measured Δ yet."
    n = next(d["n_pairs"] for d in deltas if d is not None)
    text = ", ".join(f"{label} {format_delta(key, d)}" for (key, label), d in zip(JUDGES, deltas, strict=True))
    return f"Measured, `{row}` − baseline ({n} pairs): {text}."


def _gap_delta(d: dict) -> str:
    vs = d.get("vs_baseline")
    if vs is None:
        return f"{d['mean']:.3f}"
    lo, hi = vs["ci95"]
    return f"{vs['diff']:+.3f} [{lo:+.3f}, {hi:+.3f}]{' *' if vs['excludes_zero'] else ''}"


def _final_gaps(gaps: dict | None, row: str, baseline: str) -> str:
    """The row's final-image identity gaps against the baseline's (``identity_gap.json``); a gap the baseline
    has no value of (cells made before codes were kept) is left out."""
    entry = (gaps or {}).get("rows", {}).get(row, {})
    base = (gaps or {}).get("rows", {}).get(baseline, {})
    words = {"code_gap": "the gap to the run's codes", "private_gap": "the gap to the real private faces"}
    parts = [f"{words[k]} moves by {_gap_delta(entry[k])} (baseline {base[k]['mean']:.3f}, "
             f"{entry[k]['vs_baseline']['n_pairs']} pairs)"
             for k in ("code_gap", "private_gap") if k in entry and "vs_baseline" in entry[k] and k in base]
    if not parts:
        return ""
    return " On the final images, " + " and ".join(parts) + " (E_id space, `identity_gap.json`)."


def why_markdown(summary: dict, readings: dict[str, dict], gaps: dict | None = None) -> str:
    """One or two sentences per scheme from the logged readings, then its measured Δ vs the baseline: the
    README's "why" paragraph, so the prose and the numbers come from the same files."""
    lines = [f"### Why, per scheme: `{summary['name']}`", "",
             "From the cells' `metrics.jsonl` (mean over batches, then over seeds; `why-<scheme>.png` plots each "
             "series). Regenerated with the ablation's outputs.", ""]
    for scheme, found in readings.items():
        seeds = max(r["seeds"] for r in found.values())
        if scheme == "A":
            tw = found.get("+A: tw_prior")
            text = ("The batch-mean w(t) on the prior loss (averaged over seeds) ranged "
                    f"{tw['min']:.3f}–{tw['max']:.3f} over the run ({_path(tw)}): on average it reweights the prior "
                    f"term by at most {100 * max(abs(tw['max'] - 1), abs(1 - tw['min'])):.1f}% either way."
                    if tw else "`tw_prior` was not logged.")
        elif scheme == "B3":
            parts = [f"`{k.split(':')[0]}` {_path(r)}" for k, r in found.items()]
            text = ("The hardest-negative gap cos(ê, c_y) − max_j cos(ê, n_j) that B3's loss targets (the baseline "
                    "does not log it): " + "; ".join(parts) + ".")
        elif scheme == "C":
            parts = [f"{k.split(': ')[1]} {_path(r)}" for k, r in found.items()]
            text = "Attribute drift from the source face and the candidates' diversity term: " + "; ".join(parts) + "."
            div = next((r for k, r in found.items() if k.endswith("L_div")), None)
            if div is not None and div["max"] < 0.005:  # the hinge relu(v_target - v) only bites on near-copies
                text += (f" The batch-and-seed mean of L_div never exceeds {div['max']:.4f}: its hinge acts only on "
                         "near-duplicate candidates, and these candidates are not.")
        else:
            stage1 = {key.split(": ")[1]: r["end_stage1"] for key, r in found.items() if r["end_stage1"] is not None}
            k1, k2 = len(stage1), len(found)  # stage 2 weights its own task set (it may add reg)
            moved = max(abs(r["end_stage2"] - 1 / k2) for r in found.values())
            text = (f"The learned weights start at 1/{k1} = {1 / k1:.3f} in stage 1 and end it at "
                    + ", ".join(f"{name} {v:.3f}" for name, v in stage1.items()) + ". " if stage1 else "")
            text += (f"Stage 2 restarts them at 1/{k2} (its own task set) and they end within {moved:.3f} of "
                     f"1/{k2}.")
        row = "+B3" if scheme == "B3" else WHY[scheme][1]
        text += _final_gaps(gaps, row, summary["baseline"])
        lines += [f"- **{scheme}** ({seeds} seed(s)). {text} {_measured(summary, row)}", ""]
    return "\n".join(lines)


def write_why(summary: dict, out: Path) -> None:
    """The figures, ``why.json`` (their numbers), ``identity_gap.json`` and ``why.md``, from one read of the
    cells' logs and one pass of E_id over the final images."""
    from mia_app.ablation.identity_gap import identity_gaps

    found = collect(summary, out)
    why_figures(summary, out, found)
    if readings := why_readings(summary, out, found):
        (out / "why.json").write_text(json.dumps(readings, indent=2))
        gaps = identity_gaps(summary, out)
        (out / "identity_gap.json").write_text(json.dumps(gaps, indent=2))
        (out / "why.md").write_text(why_markdown(summary, readings, gaps) + "\n")
