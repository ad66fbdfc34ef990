"""The seed's acceptance table: each claimed gain of a scheme against our measured paired Δ and its 95% CI.

The seed claimed, on E's attack accuracy against its own baseline: B3 +3-5 points, A +1-2, A+B+C +6 with the
perceptual (LPIPS) distance better by >= 0.2, all four +8 (78 -> 86). A claim is read as its lower end.

Verdicts, from the paired bootstrap CI [lo, hi] of Δ = row − baseline (for a gain g > 0; mirrored when lower is
better, g < 0):

* **reproduced**: the CI excludes 0 and the measured Δ reaches g;
* **refuted**: the CI lies entirely below g (it excludes the claimed gain);
* **inconclusive**: anything else, including a claim the metric cannot show because the baseline leaves less
  room than g (``ceiling``: 100 − baseline points), which is said in the row.

The same bars are also read on the dlib judge's top-1 (accuracy by an independent face matcher), where E has
saturated.
"""

from __future__ import annotations

from dataclasses import dataclass

from mia_app.ablation.tables import delta_ci, fmt_metric


@dataclass(frozen=True)
class Claim:
    row: str  # the ablation row (our variant names)
    metric: str  # summary key
    gain: float  # the seed's claimed change vs the baseline, in table units (points for rates); < 0: lower better
    seed_words: str


SEED_CLAIMS = (
    Claim("+B3", "acc@1", 3.0, "B3: +3-5 points"),
    Claim("+A", "acc@1", 1.0, "A: +1-2 points"),
    Claim("A+B3+C", "acc@1", 6.0, "A+B+C: +6 points"),
    Claim("A+B3+C", "perc_dist", -0.2, "A+B+C: LPIPS better by >= 0.2"),
    Claim("A+B3+C+D", "acc@1", 8.0, "all four: +8 points (78 -> 86)"),
)
#: where E saturates, the seed's accuracy bars are also read on the independent judge's top-1
JUDGE_READING = "judge_top1"
RATES = {"acc@1", "judge_top1"}


def verdict(gain: float, diff: float | None, lo: float | None, hi: float | None,
            room: float | None = None) -> str:
    """reproduced / refuted / inconclusive (see the module docstring); all in table units."""
    if diff is None or lo is None or hi is None:
        return "not run"
    if gain < 0:  # lower is better: mirror
        return verdict(-gain, -diff, -hi, -lo, room)
    if lo > 0 and diff >= gain:
        return "reproduced"
    if room is not None and room < gain:
        return f"inconclusive (ceiling: the baseline leaves {room:.1f} points)"
    if hi < gain:
        return "refuted"
    return "inconclusive"


def _scale(metric: str) -> float:
    return 100.0 if metric in RATES else 1.0


def acceptance_rows(summary: dict) -> list[dict]:
    """One dict per (claim, reading): the seed's bar, baseline level, room, measured Δ [CI], half-width, verdict."""
    variants = summary.get("variants", {})
    base = variants.get(summary.get("baseline"))
    rows = []
    for claim in SEED_CLAIMS:
        metrics = [claim.metric] + ([JUDGE_READING] if claim.metric == "acc@1" else [])
        for metric in metrics:
            entry = variants.get(claim.row)
            d = ((entry or {}).get("vs_baseline") or {}).get(metric)
            s = _scale(metric)
            level = base["metrics"][metric]["mean"] if base else None
            room = 100.0 - s * level if (level is not None and metric in RATES) else None
            diff = None if d is None or d["diff"] is None else s * d["diff"]
            lo, hi = (None, None) if d is None or d["ci95"][0] is None else (s * d["ci95"][0], s * d["ci95"][1])
            rows.append({"claim": claim.seed_words, "row": claim.row, "metric": metric, "gain": claim.gain,
                         "baseline": None if level is None else s * level, "room": room, "diff": diff,
                         "ci95": [lo, hi], "half_width": None if lo is None else (hi - lo) / 2,
                         "n_pairs": None if d is None else d["n_pairs"],
                         "verdict": verdict(claim.gain, diff, lo, hi, room), "_vs": (entry or {}).get("vs_baseline")})
    return rows


LABELS = {"acc@1": "E acc@1", "judge_top1": "dlib top-1", "perc_dist": "perceptual dist"}


def render_acceptance(summary: dict) -> str:
    """Markdown: the acceptance table of this ablation (empty string when it has none of the seed's rows)."""
    rows = acceptance_rows(summary)
    if not any(r["diff"] is not None for r in rows):
        return ""
    lines = [f"### The seed's acceptance table: `{summary['name']}`, {summary['n_identities']} identities, seeds "
             f"{', '.join(map(str, summary['seeds']))}", "",
             "Δ = row − `baseline`, paired bootstrap 95% CI over (seed, identity) pairs. Verdict: *reproduced* "
             "(CI excludes 0 and Δ reaches the bar), *refuted* (the CI lies below the bar), else *inconclusive*; "
             "rates in points. The seed's accuracy bars are read on E and again on the dlib judge.", "",
             "| seed's claim | row | metric | bar | baseline | measured Δ [95% CI] | ± (detectable) | pairs "
             "| verdict |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        bar = f"{r['gain']:+g}" + (" points" if r["metric"] in RATES else "")
        base = "n/a" if r["baseline"] is None else fmt_metric(r["metric"], r["baseline"] / _scale(r["metric"]))
        half = "n/a" if r["half_width"] is None else f"{r['half_width']:.2f}"
        lines.append(f"| {r['claim']} | {r['row']} | {LABELS[r['metric']]} | {bar} | {base} | "
                     f"{delta_ci(r['metric'], r['_vs'])} | {half} | {r['n_pairs'] or 0} | {r['verdict']} |")
    return "\n".join(lines) + "\n"
