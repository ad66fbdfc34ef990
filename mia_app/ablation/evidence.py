"""What the scheme ablations measured, as one line per scheme for the dashboard's toggles.

Reads the single-scheme rows (``+B3``, ``+A``, ``+C``, ``+D``) of every ``results/ablation-schemes*/summary.json``
and gives each toggle its measured Δ against our baseline on the four judges, with 95% CIs and pair counts, so a
user sees the evidence where the choice is made; ``scheme_helped`` is the rule the dashboard's default preset
follows (tests/test_acceptance.py checks that it does).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from mia_app.ablation.acceptance import JUDGES, cluster_delta, format_delta

log = logging.getLogger(__name__)

SCHEMES = ("B3", "A", "C", "D")
#: judges on which a gain counts as "helped": the seed's metric (E) and the independent face matcher
GAIN_JUDGES = ("acc@1", "judge_top1")
# a significant loss on any of the four JUDGES vetoes a gain
LOWER_IS_BETTER = {"knn_dist", "perc_dist"}


def scheme_ablations(results: Path) -> list[Path]:
    return sorted(p for p in Path(results).glob("ablation-schemes*") if (p / "summary.json").is_file())


def _summaries(results: Path) -> list[dict]:
    found = []
    for folder in scheme_ablations(results):
        try:
            found.append(json.loads((folder / "summary.json").read_text()))
        except json.JSONDecodeError:  # the ablation is rewriting it right now; the next page load reads it
            log.warning("%s/summary.json is being written; its evidence is left out", folder)
    return found


def _complete(summary: dict) -> bool:
    variants = summary.get("variants", {}).values()
    return bool(summary.get("complete")) and not any(e.get("missing_seeds") for e in variants)


def _scheme_deltas(summary: dict) -> dict[str, dict[str, dict | None]]:
    """{scheme: {judge: its +scheme row − baseline Δ}} for the schemes this ablation measured; each bootstrap once."""
    out = {}
    for scheme in SCHEMES:
        deltas = {key: cluster_delta(summary, f"+{scheme}", key) for key, _ in JUDGES}
        if any(d is not None for d in deltas.values()):
            out[scheme] = deltas
    return out


def _helped(measured: list[tuple[dict, dict]]) -> dict[str, bool]:
    """The rule of ``scheme_helped`` on (summary, its ``_scheme_deltas``) pairs."""
    if not measured or not all(_complete(summary) for summary, _ in measured):
        return {}
    gained, harmed = set(), set()
    for _, per_scheme in measured:
        for scheme, deltas in per_scheme.items():
            for key, d in deltas.items():
                if d is None or not d["excludes_zero"]:
                    continue
                better = d["diff"] < 0 if key in LOWER_IS_BETTER else d["diff"] > 0
                if better and key in GAIN_JUDGES:
                    gained.add(scheme)
                elif not better:
                    harmed.add(scheme)
    found = {s for _, per_scheme in measured for s, d in per_scheme.items() if d["acc@1"] is not None}
    return {s: s in gained and s not in harmed for s in SCHEMES if s in found}


def scheme_helped(results: Path) -> dict[str, bool]:
    """{scheme: helped}, once *every* scheme ablation is complete ({} before: a running one's seeds can still turn
    a verdict or veto it, and the default preset must not flip with them). Helped = on at least one T its single-scheme
    row gains on E acc@1 or dlib top-1 with a 95% CI excluding 0, and on no T is any of the four judges worse with
    a CI excluding 0. Each ablation folder adds 2 one-sided gain tests at 2.5% per scheme (two folders: a scheme
    with no effect passes about 1 time in 10) and 4 two-sided loss tests (two folders: a real gain is vetoed by
    chance about 1 time in 6). The README shows every Δ behind a verdict."""
    return _helped([(s, _scheme_deltas(s)) for s in _summaries(results)])


def scheme_evidence(results: Path) -> dict[str, str]:
    """{scheme: "measured vs baseline: schemes (300 pairs): Δ E acc@1 ↑ +0.3 [-1.0, +1.7], …; schemes-bido …"}, the
    same identity-clustered CIs as the README's acceptance table; a scheme no ablation has measured is absent."""
    measured = [(s, _scheme_deltas(s)) for s in _summaries(results)]  # read and bootstrapped once per page load
    lines: dict[str, list[str]] = {}
    for summary, per_scheme in measured:
        for scheme, deltas in per_scheme.items():
            n = next(d["n_pairs"] for d in deltas.values() if d is not None)
            text = ", ".join(f"Δ {label} {format_delta(key, deltas[key])}" for key, label in JUDGES)
            state = "" if summary.get("complete") else ", provisional: still running"
            lines.setdefault(scheme, []).append(f"{summary['name']} ({n} pairs{state}): {text}")
    helped = _helped(measured)
    verdict = {True: "helped: a significant gain on E or dlib and no significant loss",
               False: "not shown to help: no significant gain on E or dlib, or a significant loss elsewhere"}
    pending = "the scheme ablations are still running, so the default stays off; "
    return {s: (f"{verdict[helped[s]]}; " if s in helped else pending) + "measured vs baseline: " + "; ".join(v)
            for s, v in lines.items()}
