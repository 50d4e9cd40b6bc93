"""Small pure statistics helpers shared by the diagnostics (numpy only).

Kept local to ``brittle.diagnose`` so the diagnostics do not depend on the evaluation
stage; the bootstrap here is the ordinary percentile bootstrap of a mean.
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


def auc(pos: Sequence[float] | np.ndarray, neg: Sequence[float] | np.ndarray) -> float:
    """ROC AUC = P(score(pos) > score(neg)) + ½ P(tie), by the Mann-Whitney U statistic."""
    p = np.asarray(pos, dtype=float)[:, None]
    n = np.asarray(neg, dtype=float)[None, :]
    if p.size == 0 or n.size == 0:
        return float("nan")
    return float(((p > n).sum() + 0.5 * (p == n).sum()) / (p.size * n.size))
