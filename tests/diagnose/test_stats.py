import math

import pytest

from brittle.diagnose.stats import bootstrap_diff_ci, proportion_ci

Z2 = 1.959963984540054 ** 2


def test_proportion_ci_is_wilson_and_never_collapses():
    assert proportion_ci([1.0] * 12) == (1.0, pytest.approx(12 / (12 + Z2)), 1.0)
    assert proportion_ci([0.0] * 12) == (0.0, 0.0, pytest.approx(Z2 / (12 + Z2)))
    p, lo, hi = proportion_ci([1, 0, 1, 0, float("nan")])  # NaN = unscored, dropped
    assert p == 0.5 and lo == pytest.approx(1 - hi) and 0 < lo < 0.5
    assert all(math.isnan(x) for x in proportion_ci([]))


def test_bootstrap_diff_ci_is_paired():
    a = [1.0, 0.0, 1.0, 1.0]
    assert bootstrap_diff_ci(a, a) == (0.0, 0.0, 0.0)  # identical pairs: no spread at all
    m, lo, hi = bootstrap_diff_ci([1, 1, 1, 0], [0, 0, 1, 0], n_boot=200)
    assert m == 0.5 and lo <= 0.5 <= hi
