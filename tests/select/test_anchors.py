import pytest

from brittle.errors import BrittleError
from brittle.select.anchors import build_anchor_sets, refusal_styles


def test_anchor_sets_share_prompts_and_use_two_refusal_styles(harmful_anchors):
    sets = build_anchor_sets(5, harmful=harmful_anchors, seed=0)
    assert set(sets) == {"harmful", "safe1", "safe2"}
    assert all(len(v) == 5 for v in sets.values())
    prompts = [e.prompt for e in sets["harmful"]]
    assert [e.prompt for e in sets["safe1"]] == prompts == [e.prompt for e in sets["safe2"]]
    styles = refusal_styles()
    assert all(e.response in styles["canned"] for e in sets["safe1"])
    assert all(e.response not in styles["canned"] for e in sets["safe2"])
    assert all(e.response.startswith("Sure") for e in sets["harmful"])
    ids = [e.id for v in sets.values() for e in v]
    assert len(set(ids)) == len(ids)
    # explanatory refusals are diverse
    assert len({e.response for e in sets["safe2"]}) >= 3


def test_anchor_sets_are_seeded(harmful_anchors):
    a = build_anchor_sets(5, harmful=harmful_anchors, seed=1)
    b = build_anchor_sets(5, harmful=harmful_anchors, seed=1)
    c = build_anchor_sets(5, harmful=harmful_anchors, seed=2)
    assert [e.id for e in a["safe2"]] == [e.id for e in b["safe2"]]
    assert [e.response for e in a["safe2"]] == [e.response for e in b["safe2"]]
    assert [e.id for e in a["harmful"]] != [e.id for e in c["harmful"]]


def test_category_filter_and_pair_refusals(harmful_anchors):
    sets = build_anchor_sets(10, harmful=harmful_anchors, category="ILLEG")
    assert len(sets["harmful"]) == 6 and all(e.category == "illegal" for e in sets["harmful"])
    with pytest.raises(BrittleError):
        build_anchor_sets(3, harmful=harmful_anchors, category="nope")
    for e in harmful_anchors:
        e.meta["refusal"] = "I will not help with " + e.prompt
    sets = build_anchor_sets(3, harmful=harmful_anchors, use_pair_refusals=True)
    assert all(e.response.startswith("I will not help") for e in sets["safe2"])
    assert not any(e.response.startswith("I will not help") for e in sets["safe1"])
