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
    """Every ``ablation-schemes*`` folder an ablation has started in (its ``ablation.yaml`` is written first)."""
    return sorted(p for p in Path(results).glob("ablation-schemes*")
                  if (p / "summary.json").is_file() or (p / "ablation.yaml").is_file())


def _summaries(results: Path) -> tuple[list[dict], bool]:
    """(the summaries that could be read, whether every started ablation's could): one started but without a
    finished cell yet, or caught mid-write, has evidence still to come, and a verdict must wait for it."""
    found, all_read = [], True
    for folder in scheme_ablations(results):
        path = folder / "summary.json"
        if not path.is_file():
            log.warning("%s has started but has no summary.json yet: no scheme verdict until it has", folder)
            all_read = False
            continue
        try:
            found.append(json.loads(path.read_text()))
        except json.JSONDecodeError:  # the ablation is rewriting it right now; the next page load reads it
            log.warning("%s is being written; its evidence is left out and no scheme verdict is given", path)
            all_read = False
    return found, all_read


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


def holm(p_values: dict, alpha: float = 0.05) -> set:
    """The keys of ``p_values`` that Holm's step-down procedure rejects at family-wise error ``alpha``: sorted
    ascending, the k-th smallest (k from 0) must be below alpha / (m − k), stopping at the first that is not."""
    rejected = set()
    for k, (key, p) in enumerate(sorted(p_values.items(), key=lambda kv: kv[1])):
        if p >= alpha / (len(p_values) - k):
            break
        rejected.add(key)
    return rejected


def _helped(measured: list[tuple[dict, dict]], all_read: bool = True) -> dict[str, bool]:
    """The rule of ``scheme_helped`` on (summary, its ``_scheme_deltas``) pairs."""
    if not measured or not all_read or not all(_complete(summary) for summary, _ in measured):
        return {}
    gain_tests, gains, harmed = {}, set(), set()
    for summary, per_scheme in measured:
        for scheme, deltas in per_scheme.items():
            for key, d in deltas.items():
                if d is None:
                    continue
                better = d["diff"] < 0 if key in LOWER_IS_BETTER else d["diff"] > 0
                if key in GAIN_JUDGES:
                    gain_tests[(summary["name"], scheme, key)] = d["p_value"]
                    if better:
                        gains.add((summary["name"], scheme, key))
                if d["excludes_zero"] and not better:
                    harmed.add(scheme)
    gained = {scheme for _, scheme, _ in holm(gain_tests) & gains}
    found = {s for _, per_scheme in measured for s, d in per_scheme.items() if d["acc@1"] is not None}
    return {s: s in gained and s not in harmed for s in SCHEMES if s in found}


def scheme_helped(results: Path) -> dict[str, bool]:
    """{scheme: helped}, once *every* started scheme ablation is complete and readable ({} before: a running one's
    seeds can still turn a verdict or veto it, and the default preset must not flip with them).

    Helped = on at least one T its single-scheme row gains on E acc@1 or dlib top-1, significant after Holm's
    correction over the whole family of gain tests (4 schemes × 2 judges × every T, two-sided bootstrap p, α = 0.05
    family-wise), and on no T is any of the four judges worse with a 95% CI excluding 0 (uncorrected, so a veto
    comes easily). Both choices err towards leaving a scheme off: the default is what every user runs, and with
    an uncorrected family of 16 tests, when no scheme has an effect, one of the four would be turned on about 1
    time in 3. The README shows every Δ behind a verdict."""
    found, all_read = _summaries(results)
    return _helped([(s, _scheme_deltas(s)) for s in found], all_read)


def scheme_evidence(results: Path) -> dict[str, str]:
    """{scheme: "measured vs baseline: schemes (300 pairs): Δ E acc@1 ↑ +0.3 [-1.0, +1.7], …; schemes-bido …"}, the
    same identity-clustered CIs as the README's acceptance table; a scheme no ablation has measured is absent."""
    found, all_read = _summaries(results)
    measured = [(s, _scheme_deltas(s)) for s in found]  # read and bootstrapped once per page load
    lines: dict[str, list[str]] = {}
    for summary, per_scheme in measured:
        for scheme, deltas in per_scheme.items():
            n = next(d["n_pairs"] for d in deltas.values() if d is not None)
            text = ", ".join(f"Δ {label} {format_delta(key, deltas[key])}" for key, label in JUDGES)
            state = "" if _complete(summary) else ", provisional: still running"
            lines.setdefault(scheme, []).append(f"{summary['name']} ({n} pairs{state}): {text}")
    helped = _helped(measured, all_read)
    verdict = {True: "helped: a gain on E or dlib significant after Holm's correction, and no significant loss",
               False: "not shown to help: no gain on E or dlib significant after Holm's correction over every "
                      "scheme, judge and T, or a significant loss on some judge"}
    pending = "the scheme ablations are still running, so the default stays off; "
    return {s: (f"{verdict[helped[s]]}; " if s in helped else pending) + "measured vs baseline: " + "; ".join(v)
            for s, v in lines.items()}
