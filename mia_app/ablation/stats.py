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
