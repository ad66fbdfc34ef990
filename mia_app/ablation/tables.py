"""Markdown tables and the acc@1 figure of an ablation summary (``summary.summarize``'s dict).

With a ``floor`` the table opens with the scoreboard: every row against the no-attack floor, the key metrics
with their CIs, seconds per identity; then the full table of differences to our baseline.
"""

from __future__ import annotations

from pathlib import Path

from mia_app.ablation.summary import FRECHET, METRICS, PERCENT

DECIMALS = {"knn_dist": 2, "judge_dist": 3, "perc_dist": 3}  # non-percent metrics in the table


def fmt_metric(key: str, v: float | None, signed: bool = False) -> str:
    """A summary value as the tables show it: rates (stored in [0, 1]) in points, distances to fixed decimals."""
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
        f"- accuracies and match rates in %; Δ = row − `{summary['baseline']}` (and − the floor "
        f"`{summary.get('floor') or 'n/a'}` in the scoreboard) with a paired bootstrap 95% CI "
        f"over (seed, identity) pairs (identities resampled with all their seeds; a row's own CI resamples "
        f"within seeds; {b['resamples']} resamples, "
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
    if summary.get("floor"):
        lines += render_scoreboard(summary) + ["", f"### Every metric, Δ against our `{summary['baseline']}`", ""]
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
            row.append(fmt_metric(key, e["metrics"][key]["mean"]))
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
                d, lo, hi = (fmt_metric(key, v, True) for v in (vs["diff"], lo, hi))
                row.append(f"{d} [{lo}, {hi}]{star}")
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
    if summary.get("floor") in names:
        colors[names.index(summary["floor"])] = "#333333"
    fig, ax = plt.subplots(figsize=(max(5.0, 0.8 * len(names) + 2), 4.0))
    bars = ax.bar(range(len(names)), means, yerr=[lo, hi], capsize=4, color=colors)
    ax.bar_label(bars, labels=[f"{m:.1f}" if m == m else "" for m in means], label_type="center", color="white",
                 fontsize=8)
    for i, m in enumerate(means):
        if m != m:  # NaN: no finished cell yet; say so rather than draw an empty slot
            ax.text(i, 3, "not run yet", rotation=90, ha="center", va="bottom", fontsize=8, color="#666666")
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color="#dd8452", label="baseline"), Patch(color="#4c72b0", label="scheme variant"),
                       Patch(color="#9a9a9a", label="peer"), Patch(color="#333333", label="floor (no attack)")],
              fontsize=7, loc="upper center", ncol=4)
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


def mean_ci(key: str, m: dict) -> str:
    """``84.5 [79.0, 89.0]``: a bootstrap mean with its 95% CI, formatted for ``key``."""
    if m["mean"] is None:
        return "n/a"
    lo, hi = m["ci95"]
    return f"{fmt_metric(key, m['mean'])} [{fmt_metric(key, lo)}, {fmt_metric(key, hi)}]"


def delta_ci(key: str, vs: dict | None) -> str:
    """``+15.5 [+12.0, +19.2] *``: a paired difference with its 95% CI (``*``: the CI excludes 0)."""
    d = (vs or {}).get(key)
    if d is None:
        return "—"
    if d["diff"] is None:
        return "n/a"
    lo, hi = d["ci95"]
    star = " *" if d["excludes_zero"] else ""
    return f"{fmt_metric(key, d['diff'], True)} [{fmt_metric(key, lo, True)}, {fmt_metric(key, hi, True)}]{star}"


def render_scoreboard(summary: dict) -> list[str]:
    """Every row against the floor: what a user would pick instead, on the same identities."""
    n = summary["n_identities"]
    floor = summary["floor"]
    lines = [f"### Scoreboard: every row against the floor `{floor}` (no attack), {n} identities",
             "",
             f"dlib top-1 chance = 1/{n} = {100 / n:.1f}%. Seeds: the seeds a row ran (deterministic rows run once "
             "and pair with every seed). `*`: the 95% CI excludes 0.",
             ""]
    head = ["row", "method", "seeds", "img/id", "E acc@1 % [95% CI] ↑", "Δ E acc@1 vs floor", "E acc@5 % ↑",
            "T acc@1 % ↑", "KNN dist ↓ [95% CI]", "Δ KNN vs floor", f"dlib top-1 % ↑ (chance {100 / n:.1f})",
            "Δ dlib top-1 vs floor", "dlib dist ↓", "perceptual ↓", "Δ perceptual vs floor", "FD SFace ↓ (N)",
            "FD MNv2 ↓ (N)", "s / identity"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, e in summary["variants"].items():
        m, vs = e["metrics"], e.get("vs_floor")
        seeds = ",".join(e["cells"]) or "none"
        fd = [f"{m[k]['value']:.4g} ({m[k]['N']})" if m[k]["value"] is not None else "n/a" for k in FRECHET]
        spi = e["seconds"].get("per_identity")
        row = [f"**{name}**" if name == floor else name, e.get("method") or "", seeds,
               "/".join(f"{x:g}" for x in e["images_per_identity"]) or "n/a",
               mean_ci("acc@1", m["acc@1"]), delta_ci("acc@1", vs), fmt_metric("acc@5", m["acc@5"]["mean"]),
               fmt_metric("T_acc@1", m["T_acc@1"]["mean"]), mean_ci("knn_dist", m["knn_dist"]),
               delta_ci("knn_dist", vs),
               mean_ci("judge_top1", m["judge_top1"]), delta_ci("judge_top1", vs),
               fmt_metric("judge_dist", m["judge_dist"]["mean"]), fmt_metric("perc_dist", m["perc_dist"]["mean"]),
               delta_ci("perc_dist", vs), *fd, "n/a" if spi is None else f"{spi:.2f}"]
        lines.append("| " + " | ".join(row) + " |")
    return lines


#: The columns a reader needs first: E, the judge and KNN, each with its Δ against the floor.
COMPACT = (("acc@1", "E acc@1 % ↑", "Δ E acc@1"), ("judge_top1", "dlib top-1 % ↑", "Δ dlib top-1"),
           ("knn_dist", "KNN dist ↓", "Δ KNN"))


def compact_table(summary: dict) -> tuple[list[str], list[list[str]]]:
    """(headers, rows): per row its seeds, and E acc@1, dlib top-1 and KNN with CIs and Δ vs the floor (vs our
    baseline when the ablation has no floor). The full table (every metric) stays in table.md."""
    ref = "floor" if summary.get("floor") else "baseline"
    n = summary["n_identities"]
    head = ["row", "seeds"]
    for key, label, delta in COMPACT:
        head += [label + (f" (chance {100 / n:.1f})" if key == "judge_top1" else ""), f"{delta} vs {ref}"]
    rows = []
    for name, e in summary["variants"].items():
        vs = e.get(f"vs_{ref}")
        row = [name, ",".join(e["cells"]) or "none"]
        for key, _, _ in COMPACT:
            row += [mean_ci(key, e["metrics"][key]), delta_ci(key, vs)]
        rows.append(row)
    return head, rows
