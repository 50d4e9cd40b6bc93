"""Ambiguity metrics on hand-made judgment tables with known answers."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from brittle.rules import metrics as M

LEAN = {"none": "neutral", "narrow": "narrow", "broad": "broad", "lenity": "narrow"}


def table(rows):
    """rows: (judge, rule, scenario, strategy, verdict 'c'/'v'/None[, p])"""
    out = []
    for r in rows:
        j, rule, s, strat, v = r[:5]
        p = r[5] if len(r) > 5 else (None if v is None else (0.9 if v == "c" else 0.1))
        verdict = {"c": "comply", "v": "violate", None: None}[v]
        out.append({"judge": j, "rule_id": rule, "scenario_id": s, "strategy": strat, "verdict": verdict, "p_comply": p})
    return pd.DataFrame(out)


def test_binary_entropy_values():
    assert M.binary_entropy(0.5) == pytest.approx(1.0)
    assert M.binary_entropy(0.0) == 0.0 and M.binary_entropy(1.0) == 0.0
    assert M.binary_entropy(0.25) == pytest.approx(-(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75)))


def test_panel_entropy_votes_and_mean_p():
    df = table([
        ("j1", "r1", "s1", "none", "c", 0.8), ("j2", "r1", "s1", "none", "v", 0.4),  # split -> H=1
        ("j1", "r1", "s2", "none", "c", 0.9), ("j2", "r1", "s2", "none", "c", 0.7),  # unanimous -> 0
        ("j1", "r2", "s1", "none", "v", 0.1), ("j2", "r2", "s1", "none", "c", 0.6),
        ("j3", "r2", "s1", "none", "c", 0.5),  # q = 2/3
    ])
    pe = M.panel_entropy(df).set_index(["rule_id", "scenario_id"])
    assert pe.loc[("r1", "s1"), "entropy"] == pytest.approx(1.0)
    assert pe.loc[("r1", "s2"), "entropy"] == 0.0
    assert pe.loc[("r2", "s1"), "q"] == pytest.approx(2 / 3)
    assert pe.loc[("r2", "s1"), "entropy"] == pytest.approx(M.binary_entropy(2 / 3))
    mp = M.panel_entropy(df, mode="mean_p").set_index(["rule_id", "scenario_id"])
    assert mp.loc[("r1", "s1"), "q"] == pytest.approx(0.6)
    assert mp.loc[("r1", "s2"), "entropy"] == pytest.approx(M.binary_entropy(0.8))
    re_ = M.rule_entropy(df).set_index("rule_id")
    assert re_.loc["r1", "entropy"] == pytest.approx(0.5)
    assert re_.loc["r1", "no_consensus"] == pytest.approx(0.5)
    assert list(M.rule_entropy(df)["rule_id"]) == ["r2", "r1"]  # most ambiguous first
    assert M.no_consensus_share(df) == pytest.approx(2 / 3)


def test_unscored_rows_are_dropped_not_counted():
    df = table([("j1", "r1", "s1", "none", "c"), ("j2", "r1", "s1", "none", None, float("nan"))])
    pe = M.panel_entropy(df)
    assert pe["n"].tolist() == [1] and pe["entropy"].tolist() == [0.0]


def test_entropy_across_strategies_pools_judgments():
    df = table([("j1", "r1", "s1", "none", "c"), ("j1", "r1", "s1", "narrow", "v")])
    assert M.panel_entropy(df)["entropy"].tolist() == [0.0]
    assert M.panel_entropy(df, strategies=None)["entropy"].tolist() == [pytest.approx(1.0)]


def _flip_table():
    # j1: none=c everywhere; narrow keeps both, broad flips both
    # j2: none=v on s1, c on s2; narrow flips s1, broad flips s2
    return table([
        ("j1", "r1", "s1", "none", "c"), ("j1", "r1", "s2", "none", "c"),
        ("j1", "r1", "s1", "narrow", "c"), ("j1", "r1", "s2", "narrow", "c"),
        ("j1", "r1", "s1", "broad", "v"), ("j1", "r1", "s2", "broad", "v"),
        ("j2", "r1", "s1", "none", "v"), ("j2", "r1", "s2", "none", "c"),
        ("j2", "r1", "s1", "narrow", "c"), ("j2", "r1", "s2", "narrow", "c"),
        ("j2", "r1", "s1", "broad", "v"), ("j2", "r1", "s2", "broad", "v"),
    ])


def test_flip_rates():
    fr = M.flip_rates(_flip_table())
    assert fr.loc["j1", "narrow"] == 0.0 and fr.loc["j1", "broad"] == 1.0
    assert fr.loc["j2", "narrow"] == 0.5 and fr.loc["j2", "broad"] == 0.5
    assert M.overall_flip_rate(_flip_table()) == pytest.approx(0.5)


def test_default_leaning_by_judge_and_rule():
    lean = M.default_leaning(_flip_table(), LEAN, by="judge").set_index("judge")
    assert lean.loc["j1", "agree_narrow"] == 1.0 and lean.loc["j1", "agree_broad"] == 0.0
    assert lean.loc["j1", "leaning"] == -1.0 and lean.loc["j1", "label"] == "narrow"
    assert lean.loc["j2", "leaning"] == 0.0 and lean.loc["j2", "label"] == "even"
    by_rule = M.default_leaning(_flip_table(), LEAN, by="rule_id").set_index("rule_id")
    assert by_rule.loc["r1", "agree_narrow"] == pytest.approx(0.75)
    assert by_rule.loc["r1", "agree_broad"] == pytest.approx(0.25)


def test_constraint_effect():
    df = table([
        ("j1", "r1", "s1", "none", "c"), ("j2", "r1", "s1", "none", "v"),  # H=1
        ("j1", "r1", "s1", "narrow", "c"), ("j2", "r1", "s1", "narrow", "c"),  # H=0
        ("j1", "r1", "s1", "broad", "v"), ("j2", "r1", "s1", "broad", "c"),  # H=1
    ])
    ce = M.constraint_effect(df).set_index("strategy")
    assert ce.loc["narrow", "delta"] == pytest.approx(1.0)
    assert ce.loc["broad", "delta"] == pytest.approx(0.0)
    s = M.summary(df, LEAN)
    assert s["mean_entropy_none"] == pytest.approx(1.0)
    assert s["mean_entropy_constrained"] == pytest.approx(0.5)
    assert s["overall_flip_rate"] == pytest.approx(0.75)  # j1 broad, j2 narrow + broad
