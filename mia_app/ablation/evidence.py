"""What the scheme ablations measured, as one line per scheme for the dashboard's toggles.

Reads the single-scheme rows (``+B3``, ``+A``, ``+C``, ``+D``) of every ``results/ablation-schemes*/summary.json``
and gives each toggle its measured Δ against our baseline on the four judges, with 95% CIs and pair counts, so a
user sees the evidence where the choice is made.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from mia_app.ablation.acceptance import JUDGES, cluster_delta, format_delta

log = logging.getLogger(__name__)

SCHEMES = ("B3", "A", "C", "D")


def scheme_ablations(results: Path) -> list[Path]:
    return sorted(p for p in Path(results).glob("ablation-schemes*") if (p / "summary.json").is_file())


def scheme_evidence(results: Path) -> dict[str, str]:
    """{scheme: "measured vs baseline: schemes (300 pairs): Δ E acc@1 ↑ +0.3 [-1.0, +1.7], …; schemes-bido …"}, the
    same identity-clustered CIs as the README's acceptance table; a scheme no ablation has measured is absent."""
    lines: dict[str, list[str]] = {}
    for folder in scheme_ablations(results):
        try:
            summary = json.loads((folder / "summary.json").read_text())
        except json.JSONDecodeError:  # the ablation is rewriting it right now; the next page load reads it
            log.warning("%s/summary.json is being written; its evidence is left out", folder)
            continue
        for scheme in SCHEMES:
            found = [(key, label, cluster_delta(summary, f"+{scheme}", key)) for key, label in JUDGES]
            if all(d is None for _, _, d in found):
                continue
            n = next(d["n_pairs"] for _, _, d in found if d is not None)
            deltas = ", ".join(f"Δ {label} {format_delta(key, d)}" for key, label, d in found)
            state = "" if summary.get("complete") else ", provisional: still running"
            lines.setdefault(scheme, []).append(f"{summary['name']} ({n} pairs{state}): {deltas}")
    return {s: "measured vs baseline: " + "; ".join(v) for s, v in lines.items()}
