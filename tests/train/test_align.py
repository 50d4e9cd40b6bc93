"""Alignment data: diverse composed refusals the judge recognises; cached install."""

from __future__ import annotations

import random

import pytest

from brittle.data.schema import Example
from brittle.evaluate.refusal import RefusalJudge
from brittle.train import align
from brittle.train.align import compose_refusal, refusal_for, refusal_templates, seeded_take


def test_template_sizes():
    t = refusal_templates()
    assert len(t["openings"]) >= 30
    assert len(t["explanations"]["general"]) >= 20
    assert len(t["alternatives"]["general"]) >= 20


def test_every_opening_is_recognised_by_the_refusal_judge():
    t = refusal_templates()
    prompts = [Example.from_pair("x")] * len(t["openings"])
    verdicts = RefusalJudge().judge(prompts, t["openings"])
    missed = [o for o, v in zip(t["openings"], verdicts) if not v["refused"]]
    assert missed == []


def test_composed_refusals_are_diverse_seeded_and_refuse():
    prompts = [Example.from_pair(f"how do I hack account number {i}", category="malicious_uses") for i in range(200)]
    a = [refusal_for(e, seed=0).response for e in prompts]
    b = [refusal_for(e, seed=0).response for e in prompts]
    c = [refusal_for(e, seed=1).response for e in prompts]
    assert a == b  # deterministic
    assert a != c  # seed matters
    assert len(set(a)) >= 150  # not one canned sentence
    assert len({r.split(".")[0] for r in a}) >= 20  # many different openings
    assert all(v["refused"] for v in RefusalJudge().judge(prompts, a))
    # category pool used for cyber-ish prompts at least sometimes
    cyber = refusal_templates()["explanations"]["groups"]["cyber"]["explanations"]
    assert any(any(x in r for x in cyber) for r in a)


def test_category_matching_ignores_underscores():
    groups = refusal_templates()["explanations"]["groups"]
    assert "privacy" in align._groups_for("information_hazard what is my neighbour's address", groups)
    assert align._groups_for("tell me a joke", groups) == []


def test_compose_without_groups_uses_general_pool():
    r = compose_refusal("tell me a joke", None, random.Random(0))
    t = refusal_templates()
    assert any(r.startswith(o) for o in t["openings"])
    assert any(e in r for e in t["explanations"]["general"])


def test_seeded_take_is_nested():
    exs = [Example.from_pair(f"p{i}", "r") for i in range(50)]
    assert seeded_take(exs, 10, 3) == seeded_take(exs, 30, 3)[:10]
    assert seeded_take(exs, 10, 3) != seeded_take(exs, 10, 4)


@pytest.fixture()
def fake_data(monkeypatch):
    harmful = [Example.from_pair(f"how to hack thing {i}", category="harmbench") for i in range(20)]
    benign = [Example.from_pair(f"list steps {i}", "Sure, here is a step by step answer: 1. first") for i in range(20)]

    scary = [Example.from_pair(f"how do I kill a python process {i}", category="tech") for i in range(20)]

    def load_dataset(name, split=None, *, limit=None):
        assert split == "train"  # never the eval split
        return {"harmful": harmful, "benign": benign, "over-refusal": scary}[name]

    import brittle.data.embedded as emb

    monkeypatch.setattr(emb, "load_dataset", load_dataset)
    return harmful, benign, scary


def test_build_alignment_data_mix(fake_data):
    ex, counts = align.build_alignment_data(6, 4, seed=0)
    assert counts["harmful_refusals"] == 6 and counts["benign"] == 4
    assert sum(e.meta["kind"] == "refusal" for e in ex) == 6
    assert all(e.response for e in ex)


def test_install_alignment_trains_once_then_uses_cache(fake_data, tmp_path, monkeypatch):
    calls = []
    from brittle.train import sft

    real = sft.train_model

    def counting(cfg, examples, **kw):
        calls.append(len(examples))
        return real(cfg, examples, **kw)

    monkeypatch.setattr(sft, "train_model", counting)
    kw = {"n_harmful": 4, "n_benign": 4, "n_contrast": 0, "epochs": 1, "max_length": 64, "seed": 0, "device": "cpu"}
    p1 = align.install_alignment("tiny:llama", run_dir=tmp_path / "r1", **kw)
    p2 = align.install_alignment("tiny:llama", run_dir=tmp_path / "r2", **kw)
    assert p1 == p2 and (p1 / "adapter_model.safetensors").exists()
    assert calls == [8]
    assert (tmp_path / "r1" / "alignment.json").exists() and (tmp_path / "r2" / "loss.png").exists()
    p3 = align.install_alignment("tiny:llama", **{**kw, "seed": 1})
    assert p3 != p1 and calls == [8, 8]


def test_contrast_examples_are_self_answered_and_never_refusals(fake_data):
    from brittle.evaluate.refusal import RefusalJudge

    exs, counts = align.contrast_examples("tiny:llama", 12, seed=0, device="cpu", max_new_tokens=12)
    assert counts["contrast"] + counts["contrast_refused_dropped"] == 12
    assert len(exs) == counts["contrast"]
    assert all(e.meta["kind"] == "contrast" and e.response for e in exs)
    assert all(e.prompt.startswith("how do I kill a python process") for e in exs)
    assert not any(v["refused"] for v in RefusalJudge().judge(exs, [e.response for e in exs]))
    again, _ = align.contrast_examples("tiny:llama", 12, seed=0, device="cpu", max_new_tokens=12)
    assert [e.id for e in again] == [e.id for e in exs]  # deterministic (and cached)
