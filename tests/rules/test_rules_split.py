"""Selection/report split for held-out refinement: disjoint, seeded, stratified; verdicts."""

from __future__ import annotations

from collections import Counter

import pytest

from brittle.rules.data import read_scenarios
from brittle.rules.split import (
    DOES_NOT_GENERALISE,
    GENERALISES,
    NO_GAIN,
    heldout_verdict,
    split_scenarios,
)


@pytest.fixture(scope="module")
def items():
    return [(s.id, s.category) for s in read_scenarios()]


def test_halves_are_disjoint_cover_the_pool_and_are_balanced(items):
    sp = split_scenarios(items, "sparrow-medical", seed=0)
    sel, rep = set(sp.selection), set(sp.report)
    assert not sel & rep and sel | rep == {i for i, _ in items}
    assert abs(len(sel) - len(rep)) <= 1
    assert len(sp.selection) == len(sel) and len(sp.report) == len(rep)  # no duplicates


def test_split_is_stratified_by_category(items):
    cat = dict(items)
    sp = split_scenarios(items, "cai-offensive", seed=1)
    sizes = Counter(cat.values())
    got = Counter(cat[i] for i in sp.selection)
    for c, n in sizes.items():  # each category is halved: floor or ceil of n/2 in the selection half
        assert got[c] in (n // 2, (n + 1) // 2), c
    # cutting a half keeps the categories spread: the first 8 are 8 different categories
    short = split_scenarios(items, "cai-offensive", seed=1, n_selection=8, n_report=8)
    assert short.selection == sp.selection[:8] and len({cat[i] for i in short.selection}) == 8
    assert not set(short.selection) & set(short.report)


def test_split_is_deterministic_and_depends_on_seed_and_rule(items):
    a = split_scenarios(items, "r1", seed=0)
    assert a == split_scenarios(list(reversed(items)), "r1", seed=0)  # input order does not matter
    assert a.selection != split_scenarios(items, "r1", seed=1).selection
    assert a.selection != split_scenarios(items, "r2", seed=0).selection
    assert a.to_dict()["seed"] == 0 and a.to_dict()["rule_id"] == "r1"


def test_uncategorised_and_tiny_pools():
    sp = split_scenarios([("a", None), ("b", None), ("c", None)], "r", seed=0)
    assert sorted(sp.selection + sp.report) == ["a", "b", "c"] and len(sp.selection) == 2
    one = split_scenarios([("a", "x")], "r")
    assert one.selection == ("a",) and one.report == ()


def test_heldout_verdicts():
    assert heldout_verdict(0.3, 0.1) == GENERALISES
    assert heldout_verdict(0.3, 0.0) == DOES_NOT_GENERALISE  # won on selection, not on report
    assert heldout_verdict(0.3, 1e-9) == DOES_NOT_GENERALISE and heldout_verdict(1e-9, 0.3) == NO_GAIN  # float noise
    assert heldout_verdict(0.3, -0.2) == DOES_NOT_GENERALISE
    assert heldout_verdict(0.0, 0.5) == NO_GAIN and heldout_verdict(-0.1, 0.5) == NO_GAIN
    assert heldout_verdict(float("nan"), 0.5) == NO_GAIN
