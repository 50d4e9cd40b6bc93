import json

import numpy as np
import pytest

from brittle.data.schema import Example
from brittle.select.selection import (
    Selection,
    bottom_k,
    format_k,
    format_makeup,
    random_k,
    read_selection,
    top_k,
    write_selection,
)


def _pool():
    out = []
    for i in range(20):
        if i % 4 == 0:
            r = "- a\n- b\n- c\n- d"
        elif i % 4 == 1:
            r = f"#### {i}" if i < 10 else f"So 2 + {i} = {2 + i}."
        else:
            r = " ".join(["word"] * 30) + f" {i}"
        out.append(Example.from_pair(f"q{i}", r))
    return out


def test_top_and_bottom_k():
    s = [0.2, 0.9, np.nan, 0.9, -1.0, 0.5]
    assert top_k(s, 3) == [1, 3, 5]
    assert bottom_k(s, 2) == [4, 0]
    assert 2 not in bottom_k(s, 5)  # NaN comes last either way
    assert top_k(s, 0) == [] and len(top_k(s, 100)) == 6


def test_random_k_is_deterministic_distinct_and_clipped():
    a, b = random_k(100, 10, seed=3), random_k(100, 10, seed=3)
    assert a == b and len(set(a)) == 10 and all(0 <= i < 100 for i in a)
    assert random_k(100, 10, seed=4) != a
    assert sorted(random_k(5, 10, seed=0)) == [0, 1, 2, 3, 4]


def test_format_k_uses_detectors_and_is_seeded():
    pool = _pool()
    lists = format_k(pool, "list", 3, seed=0)
    assert len(lists) == 3 and all(i % 4 == 0 for i in lists)
    assert lists == format_k(pool, "list", 3, seed=0)
    maths = format_k(pool, "math", 10, seed=0)  # only 5 math answers exist
    assert sorted(maths) == [1, 5, 9, 13, 17]


def test_format_makeup_shares():
    m = format_makeup(_pool())
    assert m["n"] == 20
    assert m["list"] == pytest.approx(5 / 20)
    assert m["math"] == pytest.approx(5 / 20)
    assert m["short"] == pytest.approx(10 / 20)  # lists and math answers are < 20 words
    assert set(m) >= {"list", "numbered", "math", "code", "short", "mean_words"}


def test_write_selection_roundtrip(tmp_path):
    from brittle.data.io import read_examples

    pool = _pool()
    sel = Selection("top-grad", [3, 1], [0.9, 0.8])
    path = write_selection(tmp_path / "s" / "top-grad.jsonl", pool, sel)
    recs = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["rank"] for r in recs] == [1, 2]
    assert [r["score"] for r in recs] == [0.9, 0.8]
    assert recs[0]["selection"] == "top-grad" and recs[0]["meta"]["select"]["pool_index"] == 3
    back = read_selection(path)
    assert [e.id for e in back] == [pool[3].id, pool[1].id]
    assert back[0].messages == pool[3].messages
    # the attack stage reads selection files with the generic reader
    assert [e.response for e in read_examples(path)] == [pool[3].response, pool[1].response]
