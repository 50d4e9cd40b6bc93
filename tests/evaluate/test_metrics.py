import math

import numpy as np
import pytest

from brittle.evaluate import metrics as M


def test_all_ones_degenerate():
    assert M.bootstrap_ci(np.ones(50)) == (1.0, 1.0, 1.0)


def test_half_half_width():
    n = 400
    x = np.array([0, 1] * (n // 2))
    p, lo, hi = M.bootstrap_ci(x, n_boot=2000)
    assert p == 0.5 and lo < 0.5 < hi
    expected = 1.96 * math.sqrt(0.25 / n)  # ≈ 0.049
    assert (hi - lo) / 2 == pytest.approx(expected, rel=0.15)


def test_seed_determinism():
    x = np.random.default_rng(1).random(100)
    assert M.bootstrap_ci(x, seed=7) == M.bootstrap_ci(x, seed=7)
    assert M.bootstrap_ci(x, seed=7) != M.bootstrap_ci(x, seed=8)


def test_custom_stat_without_axis():
    x = np.arange(10.0)
    p, lo, hi = M.bootstrap_ci(x, stat=lambda v: float(np.median(v)), n_boot=200)
    assert p == 4.5 and lo <= 4.5 <= hi


def test_empty_is_nan():
    assert all(math.isnan(v) for v in M.bootstrap_ci([]))
    assert all(math.isnan(v) for v in M.wilson_interval(0, 0))


def test_wilson_known():
    p, lo, hi = M.wilson_interval(0, 10)
    assert p == 0 and lo == pytest.approx(0, abs=1e-12) and hi == pytest.approx(0.2775, abs=1e-3)
    p, lo, hi = M.wilson_interval(5, 10)
    assert (lo, hi) == pytest.approx((0.2366, 0.7634), abs=1e-3)


def test_refusal_metrics_and_categories():
    vs = [{"refused": r, "empty": e} for r, e in [(True, False), (True, True), (False, False), (False, False)]]
    m = M.refusal_metrics(vs)
    assert m["n"] == 4 and m["refusal_rate"][0] == 0.5 and m["asr"][0] == 0.5
    assert m["asr"][1] == pytest.approx(1 - m["refusal_rate"][2])
    assert m["empty_rate"][0] == 0.25
    cats = M.per_category([("a", vs[0]), ("a", vs[1]), (None, vs[2]), ("b", vs[3])])
    assert set(cats) == {"a", "b", "uncategorised"}
    assert cats["a"]["refusal_rate"] == [1.0, 1.0, 1.0] and cats["b"]["n"] == 1


def test_nll_metrics_token_weighted():
    m = M.nll_metrics([2.0, 4.0, 0.0], [1, 3, 0])  # zero-token example dropped
    assert m["n"] == 2 and m["n_tokens"] == 4
    assert m["nll"][0] == pytest.approx(1.5) and m["ppl"][0] == pytest.approx(math.exp(1.5))
    assert m["nll"][1] <= 1.5 <= m["nll"][2]


def test_non_refusal_rate_named_and_old_key_kept():
    vs = [{"refused": r} for r in (True, False, False, False)]
    m = M.refusal_metrics(vs)
    assert m["non_refusal_rate"] == m["asr"] and m["non_refusal_rate"][0] == 0.75
    assert "not a harmfulness rate" in M.DEFINITIONS["non_refusal_rate"]
    assert "ASR by refusal phrases" in M.DEFINITIONS["non_refusal_rate"]
    assert "harmfulness judge" in M.DEFINITIONS["harmfulness_rate"]


def test_quality_metrics_counts_unchecked_topic_apart():
    vs = [
        {"complied_on_topic": True, "degenerate": False, "off_topic": False},
        {"complied_on_topic": False, "degenerate": True, "off_topic": False},
        {"complied_on_topic": False, "degenerate": False, "off_topic": True},
        {"complied_on_topic": True, "degenerate": False, "off_topic": None},
    ]
    q = M.quality_metrics(vs)
    assert q["n"] == 4 and q["complied_on_topic_rate"][0] == 0.5 and q["degenerate_rate"][0] == 0.25
    assert q["n_topic_checked"] == 3 and q["off_topic_rate"][0] == pytest.approx(1 / 3)
