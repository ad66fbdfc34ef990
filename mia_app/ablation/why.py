"""Why each scheme helped or not, from the cells' own logs (``metrics.jsonl``): one figure per scheme.

* **A** (timestep weights): ``tw_prior``, the batch-mean w(t) the prior loss was multiplied by, and the prior
  loss L_prior of ``+A`` beside the baseline's.
* **B3** (contrastive identity): ``b3_margin``, the hardest-negative gap cos(E_id(x̂), c_y) − max_j cos(E_id(x̂),
  n_j) that B3 is meant to widen, for every row with B3 on.
* **C** (attributes, diversity, hierarchical perception): L_attr (attribute drift from the source face) and
  L_div of ``+C``.
* **D** (uncertainty weighting): the learned task weights w_i = softmax(−s)_i of ``+D``; they start at 1/k.

Every curve is the mean over batches and seeds at each step; stage 2's steps follow stage 1's on the x axis
(a dotted line marks the boundary).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from mia_app.run_folder import RunFolder

#: scheme -> (title, row whose logs show it, log keys to plot, y label)
WHY = {
    "A": ("A: timestep weights w(t) on the prior loss", "+A", ("tw_prior", "L_prior"), "value"),
    "B3": ("B3: hardest-negative gap cos(ê, c_y) − max cos(ê, n_j)", None, ("b3_margin",), "cosine gap"),
    "C": ("C: attribute drift from the source and candidate diversity", "+C", ("L_attr", "L_div"), "loss"),
    "D": ("D: learned task weights w_i = softmax(−s)_i", "+D", None, "weight"),
}


def step_series(cells: list[Path], key: str) -> tuple[list[int], list[float], int]:
    """(x, mean of ``key`` over batches and cells at each step, stage-1 length) of the cells' metrics.jsonl;
    x counts stage 1's steps then stage 2's."""
    sums: dict[int, float] = defaultdict(float)
    counts: dict[int, int] = defaultdict(int)
    stage1 = 0
    for cell in cells:
        for row in RunFolder(cell).steps():
            if row["stage"] == 1:
                stage1 = max(stage1, row["steps"])
    for cell in cells:
        for row in RunFolder(cell).steps():
            value = row["logs"].get(key)
            if value is None:
                continue
            x = row["step"] + (stage1 if row["stage"] == 2 else 0)
            sums[x] += value
            counts[x] += 1
    xs = sorted(sums)
    return xs, [sums[x] / counts[x] for x in xs], stage1


def _cells(summary: dict, row: str) -> list[Path]:
    entry = summary["variants"].get(row)
    return [Path(p) for p in entry["cells"].values()] if entry else []


def _weight_keys(cells: list[Path]) -> list[str]:
    for cell in cells:
        for row in RunFolder(cell).steps():
            keys = sorted(k for k in row["logs"] if k.startswith("w_"))
            if keys:
                return keys
    return []


def why_figures(summary: dict, out: Path) -> list[Path]:
    """Write ``why-<scheme>.png`` into ``out`` for each scheme whose rows have finished; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    variants = summary.get("variants", {})
    for scheme, (title, row, keys, ylabel) in WHY.items():
        if scheme == "B3":
            rows = [n for n, e in variants.items() if e.get("schemes") and "B3" in e["schemes"]]
        else:
            rows = [row] if row in variants and variants[row]["cells"] else []
        series = []  # (label, xs, ys, stage1, secondary axis)
        for name in rows:
            cells = _cells(summary, name)
            plot_keys = keys if keys is not None else _weight_keys(cells)
            for key in plot_keys:
                xs, ys, s1 = step_series(cells, key)
                if xs:
                    series.append((f"{name}: {key}", xs, ys, s1, key == "L_prior"))
        if scheme == "A" and series and summary.get("baseline") in variants:  # the prior loss without A
            xs, ys, s1 = step_series(_cells(summary, summary["baseline"]), "L_prior")
            if xs:
                series.append((f"{summary['baseline']}: L_prior", xs, ys, s1, True))
        if not series:
            continue
        fig, ax = plt.subplots(figsize=(7.5, 3.6))
        right = ax.twinx() if any(s[4] for s in series) else None
        for label, xs, ys, _, secondary in series:
            (right if secondary else ax).plot(xs, ys, label=label, lw=1.2,
                                                ls="--" if secondary else "-")
        stage1 = max(s[3] for s in series)
        ax.axvline(stage1 + 0.5, color="grey", ls=":", lw=1)
        ax.set_xlabel(f"step (stage 1: 1-{stage1}, then stage 2)")
        ax.set_ylabel(ylabel)
        if right is not None:
            right.set_ylabel("L_prior (dashed)")
        handles = [h for a in (ax, right) if a is not None for h in a.get_legend_handles_labels()[0]]
        labels = [lab for a in (ax, right) if a is not None for lab in a.get_legend_handles_labels()[1]]
        ax.legend(handles, labels, fontsize=7, loc="best")
        n_seeds = len(_cells(summary, rows[0]))
        ax.set_title(f"{title}\nmean over batches and {n_seeds} seed(s); {summary['name']}", fontsize=9)
        fig.tight_layout()
        path = out / f"why-{scheme}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def why_readings(summary: dict) -> dict[str, dict]:
    """The numbers the README's "why" sentences quote: per scheme, the logged quantity at the first step, the
    end of stage 1 and the end of stage 2 (mean over batches and seeds)."""
    out = {}
    variants = summary.get("variants", {})
    for scheme, (_, row, keys, _) in WHY.items():
        rows = ([n for n, e in variants.items() if e.get("schemes") and "B3" in e["schemes"]] if scheme == "B3"
                else [row] if row in variants else [])
        for name in rows:
            cells = _cells(summary, name)
            for key in keys if keys is not None else _weight_keys(cells):
                xs, ys, s1 = step_series(cells, key)
                if not xs:
                    continue
                at = dict(zip(xs, ys, strict=True))
                out.setdefault(scheme, {})[f"{name}: {key}"] = {
                    "first": round(ys[0], 4), "end_stage1": round(at.get(s1, float("nan")), 4),
                    "end_stage2": round(ys[-1], 4)}
    return out


def write_why(summary: dict, out: Path) -> None:
    """The figures and ``why.json`` (their numbers)."""
    why_figures(summary, out)
    readings = why_readings(summary)
    if readings:
        (out / "why.json").write_text(json.dumps(readings, indent=2))
