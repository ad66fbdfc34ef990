"""Paired bootstrap over (seed, identity) pairs.

Two variants attacked on the same identities with the same seeds (same SDEdit noise, same sources) give one
paired difference per (seed, identity). The CI resamples identities *within each seed* (with replacement, as
many as that seed has), averages the resampled differences over all pairs, and takes percentiles of that mean
over ``n_resamples`` draws from a fixed-seed RNG, so the same data always give the same interval.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

N_RESAMPLES = 2000
RNG_SEED = 12345


def _clean(groups: Mapping[object, np.ndarray]) -> dict[object, np.ndarray]:
    out = {}
    for k, v in groups.items():
        a = np.asarray(v, dtype=np.float64).ravel()
        a = a[np.isfinite(a)]
        if len(a):
            out[k] = a
    return out


def bootstrap_mean(groups: Mapping[object, np.ndarray], n_resamples: int = N_RESAMPLES, seed: int = RNG_SEED,
                   level: float = 0.95) -> dict[str, float | int | list[float] | None]:
    """Mean over all values of ``groups`` (seed -> per-identity values) with a stratified bootstrap CI.

    Non-finite values are dropped. Returns ``{"mean", "ci95": [lo, hi], "n_pairs", "n_resamples"}``; the mean is
    None (and the CI [None, None]) when nothing is left.
    """
    g = _clean(groups)
    n = sum(len(v) for v in g.values())
    if n == 0:
        return {"mean": None, "ci95": [None, None], "n_pairs": 0, "n_resamples": n_resamples}
    rng = np.random.default_rng(seed)
    sums = np.zeros(n_resamples)
    for key in sorted(g, key=str):  # fixed order: the RNG stream does not depend on dict order
        v = g[key]
        idx = rng.integers(0, len(v), size=(n_resamples, len(v)))
        sums += v[idx].sum(1)
    means = sums / n
    alpha = (1 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    mean = float(np.mean(np.concatenate(list(g.values()))))
    return {"mean": mean, "ci95": [float(lo), float(hi)], "n_pairs": n, "n_resamples": n_resamples}


def paired_bootstrap(variant: Mapping[object, Mapping[int, float]], baseline: Mapping[object, Mapping[int, float]],
                     n_resamples: int = N_RESAMPLES, seed: int = RNG_SEED, level: float = 0.95) -> dict:
    """Difference variant − baseline over the (seed, identity) pairs both have, with a paired bootstrap CI.

    ``variant`` / ``baseline``: seed -> {identity: value}. Pairs where either value is missing or non-finite are
    dropped. Returns ``bootstrap_mean``'s dict with ``diff`` for the mean difference and ``excludes_zero``.
    """
    diffs = {}
    for s in variant:
        if s not in baseline:
            continue
        ids = sorted(set(variant[s]) & set(baseline[s]))
        d = [_num(variant[s][i]) - _num(baseline[s][i]) for i in ids]
        diffs[s] = np.array(d, dtype=np.float64)
    out = bootstrap_mean(diffs, n_resamples, seed, level)
    out["diff"] = out.pop("mean")
    lo, hi = out["ci95"]
    out["excludes_zero"] = None if lo is None else bool(lo > 0 or hi < 0)
    return out


def _num(v) -> float:
    if v is None or v == "":
        return math.nan
    return float(v)


def cluster_paired_bootstrap(variant: Mapping[object, Mapping[object, float]],
                             baseline: Mapping[object, Mapping[object, float]], n_resamples: int = N_RESAMPLES,
                             seed: int = RNG_SEED, level: float = 0.95) -> dict:
    """Difference variant − baseline with identities as clusters: each draw resamples identities with replacement
    and takes all of a drawn identity's (seed, identity) differences together.

    The same identities recur in every seed, so their differences are correlated across seeds; resampling within
    each seed (``paired_bootstrap``) treats them as independent and gives too narrow an interval when they are.
    This one does not. Returns ``paired_bootstrap``'s keys plus ``n_identities`` and ``p_value``: the two-sided
    bootstrap p of "the mean difference is 0", 2·min(share of draws ≤ 0, share ≥ 0) capped at 1, which is below
    1 − ``level`` when (up to the quantiles' interpolation) the CI excludes 0; Holm's correction needs it.
    """
    per_identity: dict[str, list[float]] = {}
    for s in variant:
        if s not in baseline:
            continue
        for i in set(variant[s]) & set(baseline[s]):
            d = _num(variant[s][i]) - _num(baseline[s][i])
            if math.isfinite(d):
                per_identity.setdefault(str(i), []).append(d)
    ids = sorted(per_identity)
    n = sum(len(v) for v in per_identity.values())
    out = {"diff": None, "ci95": [None, None], "n_pairs": n, "n_identities": len(ids), "n_resamples": n_resamples,
           "excludes_zero": None, "p_value": None}
    if not ids:
        return out
    sums = np.array([sum(per_identity[i]) for i in ids])
    counts = np.array([len(per_identity[i]) for i in ids], dtype=np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(ids), size=(n_resamples, len(ids)))
    means = sums[idx].sum(1) / counts[idx].sum(1)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    p_value = min(1.0, 2 * min(float(np.mean(means <= 0)), float(np.mean(means >= 0))))
    out.update(diff=float(sums.sum() / counts.sum()), ci95=[float(lo), float(hi)],
               excludes_zero=bool(lo > 0 or hi < 0), p_value=p_value)
    return out
