"""Logprob judging on the tiny model: valid distributions, batching invariance, resume."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from brittle.rules.data import load_rules, load_strategies, read_scenarios
from brittle.rules.judge import (
    JudgeMember,
    OptionScorer,
    RulesJudgeConfig,
    run_judge,
    sampled_p,
    score_endpoint,
)
from brittle.rules.prompts import judge_prompt


@pytest.fixture()
def prompts():
    rules = load_rules()[:2]
    strats = load_strategies(ids=["none", "narrow"])
    scn = read_scenarios(limit=3)
    return [judge_prompt(r, s, c.messages) for r in rules for s in strats for c in scn]


def test_option_probabilities_are_a_distribution(tiny_lm, tiny_tok, prompts):
    sc = OptionScorer(tiny_lm, tiny_tok, batch_size=4)
    out = sc.score(prompts)
    p = np.array([x[0] for x in out])
    mass = np.array([x[1] for x in out])
    assert ((p > 0) & (p < 1)).all() and ((mass > 0) & (mass <= 1)).all()
    # swapping the option letters gives the complementary probability: p(A)+p(B) = 1
    from dataclasses import replace

    swapped = sc.score([replace(q, options=(q.options[1], q.options[0])) for q in prompts])
    np.testing.assert_allclose(p + np.array([x[0] for x in swapped]), 1.0, atol=1e-9)
    # temperature sharpens / flattens around 0.5 without changing the side
    hot = np.array([x[0] for x in sc.score(prompts, temperature=4.0)])
    assert (np.abs(hot - 0.5) <= np.abs(p - 0.5) + 1e-12).all()
    assert (np.sign(hot - 0.5) == np.sign(p - 0.5)).all()


def test_batched_equals_unbatched_with_and_without_shared_prefix(tiny_lm, tiny_tok, prompts):
    one = np.array(OptionScorer(tiny_lm, tiny_tok, batch_size=1, share_prefix=False).score(prompts))
    left = np.array(OptionScorer(tiny_lm, tiny_tok, batch_size=5, share_prefix=False).score(prompts))
    shared = np.array(OptionScorer(tiny_lm, tiny_tok, batch_size=3, share_prefix=True).score(prompts))
    np.testing.assert_allclose(left, one, atol=1e-5)
    np.testing.assert_allclose(shared, one, atol=1e-5)
    assert np.ptp(one[:, 0]) > 0  # the items really differ


def test_member_spec_parsing():
    m = JudgeMember.parse("embedded:smollm2-135m?template=swapped&T=2")
    assert (m.model, m.template, m.temperature, m.kind) == ("embedded:smollm2-135m", "swapped", 2.0, "hf")
    assert JudgeMember.parse("openai:gpt-x@http://h/v1").kind == "openai"
    assert JudgeMember.parse("hf:tiny:llama").load_spec == "tiny:llama"
    with pytest.raises(Exception, match="bad judge spec"):
        JudgeMember.parse("tiny:llama?foo=1")


class FakeEndpoint:
    name = "openai:fake"

    def __init__(self, logprobs=True):
        self.logprobs = logprobs
        self.calls = 0

    def choice_logprobs(self, convs, options):
        if not self.logprobs:
            return None
        return [{"A": math.log(0.6), "B": math.log(0.2)} for _ in convs]

    def generate(self, convs, config=None, prefill=None):
        self.calls += 1
        return ["A) complies" if (config.seed % 4) else "B" for _ in convs]  # 3 of 4 seeds say A


def test_endpoint_logprobs_and_sampling_fallback(prompts):
    out = score_endpoint(FakeEndpoint(True), prompts[:2])
    assert out[0][0] == pytest.approx(0.75) and out[0][1] == pytest.approx(0.8)
    fake = FakeEndpoint(False)
    out = score_endpoint(fake, prompts[:2], n_samples=4)
    assert fake.calls == 4 and out[0][0] == pytest.approx(0.75)
    assert math.isnan(sampled_p(["no idea", "??"], ("A", "B")))
    assert sampled_p([" b) violates", "A"], ("B", "A")) == 0.5


def _cfg(tmp_path, **kw):
    return RulesJudgeConfig(
        run_dir=tmp_path, n_rules=2, n_scenarios=3, strategies=["none", "narrow", "broad"],
        panel=["tiny:llama"], permutations=["default", "swapped"], batch_size=4, **kw,
    )


def test_grid_resume_equals_uninterrupted_run(tmp_path, tiny_lm, tiny_tok):
    models = {"tiny:llama": (tiny_lm, tiny_tok)}
    full = run_judge(_cfg(tmp_path / "a"), models=models)
    assert len(full) == 2 * 3 * 3 * 2
    assert set(full.columns) >= {"rule_id", "scenario_id", "strategy", "judge", "reader", "p_comply", "verdict"}
    assert set(full["judge"]) == {"tiny:llama", "tiny:llama?template=swapped"} and set(full["reader"]) == {"tiny:llama"}
    assert full["p_comply"].between(0, 1).all()
    assert set(full["verdict"]) <= {"comply", "violate"}
    # crash: keep 10 records + a partial line, then resume
    b = tmp_path / "b"
    b.mkdir()
    lines = (tmp_path / "a" / "judgments.jsonl").read_text().splitlines()
    (b / "judgments.jsonl").write_text("\n".join(lines[:10]) + "\n" + lines[10][:25])
    resumed = run_judge(_cfg(b), models=models)
    summary = json.loads((b / "judge_summary.json").read_text())
    assert summary["new"] == len(full) - 10
    key = ["judge", "rule_id", "scenario_id", "strategy"]
    pd.testing.assert_frame_equal(
        full.sort_values(key).reset_index(drop=True), resumed.sort_values(key).reset_index(drop=True), atol=1e-6
    )
    again = run_judge(_cfg(b), models=models)
    assert json.loads((b / "judge_summary.json").read_text())["new"] == 0 and len(again) == len(full)
    assert len((b / "judgments.jsonl").read_text().splitlines()) == len(full)


@pytest.mark.embedded
def test_embedded_judge_puts_mass_on_the_letters():
    from brittle.models.load import load_model

    model, tok = load_model("embedded:smollm2-135m")
    rule = load_rules()[0]
    ps = [judge_prompt(rule, None, c.messages) for c in read_scenarios(limit=2)]
    out = OptionScorer(model, tok, batch_size=2).score(ps)
    assert all(0 <= p <= 1 and 0.5 < m <= 1 for p, m in out)  # measured mass ≈ 0.9
