"""Quick-size comparisons say "inconclusive at this size" exactly when the paired interval contains 0."""

from __future__ import annotations

from brittle.report.verdict import FULL_LAB, flags_by_id, paired_difference, verdict
from brittle.train.attack import gain_verdicts


def _ids(n: int) -> list[str]:
    return [f"p{i}" for i in range(n)]


def test_paired_difference_is_over_shared_prompts_only():
    a = {"x": 1, "y": 1, "z": 0}
    b = {"y": 0, "z": 0, "w": 1}
    (p, lo, hi), n = paired_difference(a, b)
    assert n == 2 and p == 0.5 and lo <= p <= hi
    assert paired_difference({"x": 1}, {"y": 1}) is None


def test_verdict_inconclusive_when_interval_contains_zero():
    ids = _ids(50)
    base = flags_by_id(ids, [i < 5 for i in range(50)])  # 10%
    near = flags_by_id(ids, [i < 6 for i in range(50)])  # 12%: one prompt flipped
    far = flags_by_id(ids, [i < 30 for i in range(50)])  # 60%
    v = verdict("near", paired_difference(near, base))
    assert "inconclusive at this size" in v["verdict"] and FULL_LAB in v["verdict"]
    assert v["difference"].startswith("+2 pts") and "(n = 50)" in v["difference"]
    assert verdict("far", paired_difference(far, base))["verdict"] == "higher"
    assert verdict("down", paired_difference(base, far))["verdict"] == "lower"


def test_attack_gain_verdicts_pair_each_n_with_the_aligned_cell():
    ids = _ids(40)
    cells = [
        {"n": 0, "kind": "harmful", "seed": 0, "harmful_ids": ids, "harmful_flags": [0] * 40},
        {"n": 10, "kind": "harmful", "seed": 0, "harmful_ids": ids, "harmful_flags": [i < 1 for i in range(40)]},
        {"n": 50, "kind": "harmful", "seed": 0, "harmful_ids": ids, "harmful_flags": [i < 20 for i in range(40)]},
        {"n": 50, "kind": "harmful", "seed": 1, "harmful_ids": ids, "harmful_flags": [1] * 40},  # not the first seed
    ]
    rows = gain_verdicts(cells)
    assert [r["comparison"] for r in rows] == ["harmful: N = 10 − N = 0 (ASR)", "harmful: N = 50 − N = 0 (ASR)"]
    assert "inconclusive" in rows[0]["verdict"] and rows[1]["verdict"] == "higher"
    assert rows[1]["difference"].startswith("+50 pts")
