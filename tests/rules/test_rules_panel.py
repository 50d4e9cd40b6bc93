"""Panel of readers: installed-model detection, readers × permutations, pooled entropy,
template sensitivity and unanimous agreement (hand-made tables with known answers)."""

from __future__ import annotations

import pandas as pd
import pytest

from brittle.rules import metrics as M
from brittle.rules import panel as P


def test_installed_readers_detects_chunk_packages_without_importing(tmp_path, monkeypatch):
    from brittle.errors import MissingResource
    from brittle.models.chunked import QWEN_05B

    for mod, rel in QWEN_05B.parts:
        (tmp_path / mod / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / mod / rel).write_bytes(b"x")

    monkeypatch.setattr("brittle.resources.package_dir", lambda name: tmp_path / name)
    assert P.installed_readers() == ["embedded:smollm2-135m", "embedded:qwen2.5-coder-0.5b"]
    (tmp_path / QWEN_05B.parts[-1][0] / QWEN_05B.parts[-1][1]).unlink()  # one chunk missing
    assert P.installed_readers() == ["embedded:smollm2-135m"]

    def missing(name):
        raise MissingResource(name)

    monkeypatch.setattr("brittle.resources.package_dir", missing)
    assert P.installed_readers() == ["embedded:smollm2-135m"]


def test_panel_is_readers_times_permutations(monkeypatch):
    monkeypatch.setattr(P, "installed_readers", lambda: ["embedded:smollm2-135m", "embedded:qwen2.5-coder-0.5b"])
    members = P.expand_panel(["installed", "openai:gpt-x@http://h/v1", "embedded:smollm2-135m"])
    assert [m.name for m in members] == [
        "embedded:smollm2-135m", "embedded:smollm2-135m?template=swapped",
        "embedded:qwen2.5-coder-0.5b", "embedded:qwen2.5-coder-0.5b?template=swapped",
        "openai:gpt-x@http://h/v1", "openai:gpt-x@http://h/v1?template=swapped",
    ]
    assert len({m.reader for m in members}) == 3  # the repeated smollm2 spec is one reader
    t2 = P.expand_panel(["tiny:llama?T=2", "tiny:llama?template=swapped"], ["default"])
    assert [(m.name, m.reader, m.template) for m in t2] == [
        ("tiny:llama?T=2", "tiny:llama?T=2", "default"), ("tiny:llama?template=swapped", "tiny:llama", "swapped")
    ]
    assert M.reader_of("tiny:llama?template=swapped&T=2") == P.JudgeMember.parse("tiny:llama?template=swapped&T=2").reader
    with pytest.raises(Exception, match="unknown judge template"):
        P.expand_panel(["tiny:llama"], ["default", "nope"])
    # an old-style panel (one model listed under both templates) is the same two members
    old = P.expand_panel(["tiny:llama", "tiny:llama?template=swapped"])
    assert [m.name for m in old] == ["tiny:llama", "tiny:llama?template=swapped"]


def _rows(spec):
    """spec: {(reader, template): {scenario: p}} -> judgment table for rule r1, strategy none."""
    out = []
    for (reader, tmpl), ps in spec.items():
        for sid, p in ps.items():
            out.append({"judge": reader + ("" if tmpl == "default" else "?template=" + tmpl), "reader": reader,
                        "rule_id": "r1", "scenario_id": sid, "strategy": "none", "p_comply": p,
                        "verdict": "comply" if p >= 0.5 else "violate"})
    return pd.DataFrame(out)


def test_entropy_is_between_readers_and_template_sensitivity_is_separate():
    # s1: each reader's two permutations disagree (letter bias) but the readers agree after pooling
    # s2: the readers disagree, each consistently across its permutations
    df = _rows({
        ("m1", "default"): {"s1": 0.9, "s2": 0.8}, ("m1", "swapped"): {"s1": 0.3, "s2": 0.9},
        ("m2", "default"): {"s1": 0.8, "s2": 0.2}, ("m2", "swapped"): {"s1": 0.4, "s2": 0.1},
    })
    pe = M.panel_entropy(df).set_index("scenario_id")
    assert pe.loc["s1", "entropy"] == 0.0 and pe.loc["s1", "n"] == 2  # p̄ = 0.6, 0.6: both comply
    assert pe.loc["s2", "entropy"] == pytest.approx(1.0)
    mp = M.panel_entropy(df, mode="mean_p").set_index("scenario_id")
    assert mp.loc["s1", "q"] == pytest.approx(0.6) and mp.loc["s2", "q"] == pytest.approx((0.85 + 0.15) / 2)
    ts = M.template_sensitivity(df)
    assert ts["items"] == 4 and ts["template_disagreement"] == pytest.approx(0.5)
    assert ts["template_entropy"] == pytest.approx(0.5) and ts["by_reader"]["m1"]["template_disagreement"] == 0.5
    # the same table without a reader column: readers are derived from the judge specs
    assert M.panel_entropy(df.drop(columns="reader"))["entropy"].tolist() == pe["entropy"].tolist()
    # one reader: nobody to disagree with (votes 0); its permutations still disagree
    one = df[df["reader"] == "m1"]
    assert M.panel_entropy(one)["entropy"].tolist() == [0.0, 0.0]
    assert M.template_sensitivity(one)["template_disagreement"] == 0.5
    assert M.template_sensitivity(one[one["judge"] == "m1"])["items"] == 0  # one permutation: undefined


def test_unanimous_agreement_counts_flips_on_unanimous_scenarios_only():
    orig = _rows({("m1", "default"): {"s1": 0.9, "s2": 0.9, "s3": 0.1, "s4": 0.9},
                  ("m2", "default"): {"s1": 0.8, "s2": 0.7, "s3": 0.2, "s4": 0.1}})  # s4 not unanimous
    same = M.unanimous_agreement(orig, orig)
    assert same == {"agreement": 1.0, "unanimous": 3, "flipped": 0}
    rew = _rows({("m1", "default"): {"s1": 0.9, "s2": 0.2, "s3": 0.9, "s4": 0.1},
                 ("m2", "default"): {"s1": 0.9, "s2": 0.6, "s3": 0.3, "s4": 0.1}})
    # s1 same; s2 split 1-1 (no majority) = not the same; s3 split = not the same; s4 ignored
    got = M.unanimous_agreement(orig, rew)
    assert got["unanimous"] == 3 and got["flipped"] == 2 and got["agreement"] == pytest.approx(1 / 3)
    assert M.unanimous_agreement(orig, rew, ["s1", "s4"]) == {"agreement": 1.0, "unanimous": 1, "flipped": 0}
    assert M.unanimous_agreement(orig, rew, ["s4"])["unanimous"] == 0
