"""Small pure statistics helpers shared by the diagnostics (numpy only).

Headline proportions (refusal rate, ASR, share kept) use the Wilson score interval of
:func:`brittle.evaluate.metrics.wilson_interval` (:func:`proportion_ci`): a percentile
bootstrap of a proportion collapses to [0, 0] or [1, 1] at 0/n and n/n. Differences and
paired effects keep the percentile bootstrap (:func:`bootstrap_diff_ci`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def bootstrap_mean_ci(
    values: Sequence[float] | np.ndarray, *, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05
) -> tuple[float, float, float]:
    """``(mean, lo, hi)``: percentile bootstrap CI of the mean of the non-NaN ``values``.

    mean = (1/n) Σ_i v_i ; lo/hi = the alpha/2 and 1-alpha/2 quantiles of the means of
    ``n_boot`` resamples (with replacement, size n). NaNs are dropped first; an empty
    input gives ``(nan, nan, nan)``; a single value gives ``(v, v, v)``.
    """
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, v.size, size=(n_boot, v.size))
    means = v[idx].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(v.mean()), float(lo), float(hi)


def proportion_ci(flags: Sequence[float] | np.ndarray, *, alpha: float = 0.05) -> tuple[float, float, float]:
    """``(p, lo, hi)`` for the share of true flags: p = k/n over the non-NaN flags, with the
    Wilson score interval (``brittle.evaluate.metrics.wilson_interval``); empty → NaNs."""
    from brittle.evaluate.metrics import wilson_interval

    v = np.asarray(flags, dtype=float)
    v = v[~np.isnan(v)]
    p, lo, hi = wilson_interval(int(np.count_nonzero(v)), int(v.size), alpha)
    return float(p), float(lo), float(hi)


def bootstrap_diff_ci(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, *, n_boot: int = 1000, seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float, float]:
    """Paired difference ``mean(a − b)`` with a percentile-bootstrap CI over pairs
    (a_i, b_i) (:func:`bootstrap_mean_ci` of a − b; pairs with a NaN dropped)."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    return bootstrap_mean_ci(d, n_boot=n_boot, seed=seed, alpha=alpha)


def auc(pos: Sequence[float] | np.ndarray, neg: Sequence[float] | np.ndarray) -> float:
    """ROC AUC = P(score(pos) > score(neg)) + ½ P(tie), by the Mann-Whitney U statistic."""
    p = np.asarray(pos, dtype=float)[:, None]
    n = np.asarray(neg, dtype=float)[None, :]
    if p.size == 0 or n.size == 0:
        return float("nan")
    return float(((p > n).sum() + 0.5 * (p == n).sum()) / (p.size * n.size))
