"""Analysis, prompt refinement, GRPO (2 steps, tiny models), report section and CLI."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from brittle.rules.refine import clean_rewrite


def test_clean_rewrite():
    assert clean_rewrite('\n  Rewritten rule: "Your response must be kind."\nmore') == "Your response must be kind."
    assert clean_rewrite("") == ""


@pytest.fixture()
def judged(tmp_path, tiny_lm, tiny_tok):
    from brittle.rules.judge import RulesJudgeConfig, run_judge

    models = {"tiny:llama": (tiny_lm, tiny_tok)}
    cfg = RulesJudgeConfig(
        run_dir=tmp_path, n_rules=3, n_scenarios=3, strategies=["none", "narrow", "broad"],
        panel=["tiny:llama", "tiny:llama?template=swapped"],
    )
    run_judge(cfg, models=models)
    return tmp_path, models


def test_analyze_refine_section(judged):
    from brittle.rules.analyze import RulesAnalyzeConfig, run_analyze
    from brittle.rules.refine import RulesRefineConfig, run_refine
    from brittle.rules.section import rules_section

    run_dir, models = judged
    a = run_analyze(RulesAnalyzeConfig(run_dir=run_dir))
    assert 0 <= a["mean_entropy_none"] <= 1 and len(a["rule_entropy"]) == 3
    assert set(a["figures"]) == {"rule_entropy", "flip_heatmap", "leaning", "constraint"}
    assert all((run_dir / f).stat().st_size > 1000 for f in a["figures"].values())
    out = run_refine(
        RulesRefineConfig(run_dir=run_dir, top_rules=1, k=2, proposer="tiny:llama",
                          panel=["tiny:llama", "tiny:llama?template=swapped"], n_heldout=2, max_new_tokens=12,
                          embedder="model"),
        models=models,
    )
    r = out["rules"][0]
    assert out["heldout_scenarios"] and not set(out["heldout_scenarios"]) & {"s01-medical", "s02-medical", "s03-medical"}
    assert 0 <= r["entropy_before"] <= 1 and len(r["candidates"]) >= 1
    for c in r["candidates"]:
        assert -1.0001 <= c["similarity"] <= 1.0001 and c["meaning_shift"] == pytest.approx(1 - c["similarity"])
        assert 0 <= c["same_meaning_p"] <= 1
        assert c["kept"] == (c["entropy_after"] < r["entropy_before"] and c["similarity"] >= 0.6)
    assert json.loads((run_dir / "refinements.json").read_text())["rules"][0]["rule_id"] == r["rule_id"]
    assert "meaning shifted?" in (run_dir / "form.html").read_text()
    sec = rules_section(run_dir)
    assert "weak" in sec.body and "Prompt-based refinement" in sec.body and "<img" in sec.body


def test_grpo_two_steps_on_cpu(tmp_path, tiny_tok):
    from brittle.models.tiny import tiny_model
    from brittle.rules.grpo import RulesGRPOConfig, run_grpo

    judge = tiny_model(tiny_tok)
    policy = tiny_model(tiny_tok, seed=1)
    cfg = RulesGRPOConfig(
        run_dir=tmp_path, rule_ids=["sparrow-medical"], policy="tiny:llama",
        panel=["tiny:llama", "tiny:llama?template=swapped"], n_scenarios=2, steps=2, num_generations=2,
        max_completion_length=8, embedder="model",
    )
    before = [p.detach().clone() for p in judge.parameters()]
    out = run_grpo(cfg, policy=(policy, tiny_tok), judge_models={"tiny:llama": (judge, tiny_tok)})
    assert out["steps"] == 2 and len(out["reward_history"]) == 2
    assert all(h["mean_reward"] == h["mean_reward"] for h in out["reward_history"])  # finite
    assert out["rules"][0]["rule_id"] == "sparrow-medical" and 0 <= out["rules"][0]["entropy_after"] <= 1
    assert all((a == b).all() for a, b in zip(before, judge.parameters()))  # the judge is frozen
    with pytest.raises(Exception, match="separate model object"):
        run_grpo(cfg, policy=(judge, tiny_tok), judge_models={"tiny:llama": (judge, tiny_tok)})


def test_cli_judge_and_analyze(tmp_path):
    from brittle.cli.rules import register

    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None: ...

    runner = CliRunner()
    res = runner.invoke(app, ["rules", "judge", "--run-dir", str(tmp_path), "--n-rules", "2", "--n-scenarios", "2",
                              "--strategies", "none,broad", "--panel", "tiny:llama,tiny:llama?T=2", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output[res.output.index("{"):])["judgments"] == 2 * 2 * 2 * 2
    res = runner.invoke(app, ["rules", "analyze", "--run-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "mean entropy" in res.output and (tmp_path / "analysis.json").exists()
