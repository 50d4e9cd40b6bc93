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


JUDGED = {"s01-medical", "s02-medical", "s03-medical"}


@pytest.fixture()
def judged(tmp_path, tiny_lm, tiny_tok):
    from brittle.rules.judge import RulesJudgeConfig, run_judge

    models = {"tiny:llama": (tiny_lm, tiny_tok)}
    cfg = RulesJudgeConfig(
        run_dir=tmp_path, n_rules=3, n_scenarios=3, strategies=["none", "narrow", "broad"], panel=["tiny:llama"],
    )
    run_judge(cfg, models=models)
    return tmp_path, models


def test_analyze_refine_section(judged):
    from brittle.rules.analyze import RulesAnalyzeConfig, run_analyze
    from brittle.rules.refine import RulesRefineConfig, run_refine
    from brittle.rules.section import rules_section
    from brittle.rules.split import DOES_NOT_GENERALISE, GENERALISES, NO_GAIN

    run_dir, models = judged
    a = run_analyze(RulesAnalyzeConfig(run_dir=run_dir))
    assert 0 <= a["mean_entropy_none"] <= 1 and len(a["rule_entropy"]) == 3
    assert a["readers"] == ["tiny:llama"] and len(a["judges"]) == 2
    assert a["template_sensitivity"]["items"] == 3 * 3 * 3  # every (rule, scenario, strategy) has both permutations
    assert set(a["figures"]) == {"rule_entropy", "flip_heatmap", "leaning", "constraint"}
    assert all((run_dir / f).stat().st_size > 1000 for f in a["figures"].values())
    out = run_refine(
        RulesRefineConfig(run_dir=run_dir, top_rules=1, k=2, proposer="tiny:llama", panel=["tiny:llama"],
                          n_selection=3, n_report=3, max_new_tokens=12, embedder="model"),
        models=models,
    )
    r = out["rules"][0]
    sel, rep = set(r["split"]["selection"]), set(r["split"]["report"])
    assert len(sel) == len(rep) == 3 and not sel & rep and not (sel | rep) & JUDGED
    assert out["split"]["seed"] == 0 and out["split"]["n_report"] == 3
    assert 0 <= r["entropy_before"] <= 1 and 0 <= r["entropy_before_selection"] <= 1 and len(r["candidates"]) >= 1
    for c in r["candidates"]:
        assert -1.0001 <= c["similarity"] <= 1.0001 and c["meaning_shift"] == pytest.approx(1 - c["similarity"])
        assert 0 <= c["same_meaning_p"] <= 1
        assert c["unanimous"] == 3  # one reader is always unanimous with itself
        assert c["kept"] == (c["delta_selection"] > 1e-6 and not c["meaning_shifted"])
        assert c["heldout"] in (GENERALISES, DOES_NOT_GENERALISE, NO_GAIN)
        assert c["entropy_after"] == pytest.approx(r["entropy_before"] - c["delta_report"])
    assert json.loads((run_dir / "refinements.json").read_text())["rules"][0]["rule_id"] == r["rule_id"]
    assert "meaning shifted?" in (run_dir / "form.html").read_text()
    sec = rules_section(run_dir)
    assert "weak" in sec.body and "Prompt-based refinement" in sec.body and "<img" in sec.body
    assert "report half" in sec.body and "tiny:llama" in sec.body


def test_refine_winner_on_selection_only_is_flagged(tmp_path, tiny_lm, tiny_tok, monkeypatch):
    """Synthetic panel: rewrite A is confident only on the selection half (wins there, chosen),
    rewrite B is a bit less confident everywhere (generalises), rewrite C flips the unanimous
    selection verdicts (meaning shift, never kept). The judge sees selection ∪ report; the
    choice reads only the selection half."""
    import pandas as pd

    from brittle.rules import refine as R
    from brittle.rules.metrics import binary_entropy
    from brittle.rules.split import DOES_NOT_GENERALISE, GENERALISES

    rule = "sparrow-medical"
    pool = R.scenario_pool("shipped", set())  # no judgments.parquet here: the whole pool
    sp = R.rule_split(pool, rule, seed=3, n_selection=5, n_report=5)
    sel = set(sp.selection)
    texts = ["A-rewrite", "B-rewrite", "C-rewrite"]
    monkeypatch.setattr(R, "propose", lambda backend, originals, k, **kw: [texts])
    monkeypatch.setattr("brittle.rules.embed.similarity", lambda o, rs, **kw: [0.9] * len(rs))
    seen: list[list[str]] = []

    def fake_judge(rule_texts, scenarios, members, models, batch_size=8):
        seen.append([s.id for s in scenarios])
        rows = []
        for i, text in enumerate(rule_texts):
            for s in scenarios:
                p = {0: 0.6, 1: 0.99 if s.id in sel else 0.6, 2: 0.9, 3: 0.01 if s.id in sel else 0.9}[i]
                for m in members:
                    rows.append({"rule_id": f"r{i}", "scenario_id": s.id, "strategy": "none", "judge": m.name,
                                 "reader": m.reader, "p_comply": p, "verdict": "comply" if p >= 0.5 else "violate"})
        return pd.DataFrame(rows)

    monkeypatch.setattr(R, "judge_texts", fake_judge)
    out = R.run_refine(
        R.RulesRefineConfig(run_dir=tmp_path, rule_ids=[rule], k=3, proposer="tiny:llama", panel=["tiny:llama"],
                            n_selection=5, n_report=5, split_seed=3),
        models={"tiny:llama": (tiny_lm, tiny_tok)},
    )
    r = out["rules"][0]
    assert r["split"]["selection"] == list(sp.selection) and r["split"]["report"] == list(sp.report)
    assert not set(r["split"]["selection"]) & set(r["split"]["report"])
    assert sorted(seen[0]) == sorted(sp.selection + sp.report)
    a, b, c = r["candidates"]
    assert r["entropy_before"] == pytest.approx(binary_entropy(0.6))
    assert a["kept"] and a["heldout"] == DOES_NOT_GENERALISE and a["delta_report"] == pytest.approx(0.0)
    assert b["kept"] and b["heldout"] == GENERALISES
    assert c["meaning_shifted"] and not c["kept"] and c["unanimous_agreement"] == 0.0 and c["flipped_unanimous"] == 5
    assert r["best"]["id"] == a["id"]  # chosen on selection: the winner's curse is visible, not hidden
    from brittle.rules.section import rules_section

    assert DOES_NOT_GENERALISE in rules_section(tmp_path).body


def test_grpo_two_steps_on_cpu(tmp_path, tiny_tok, monkeypatch):
    from brittle.models.tiny import tiny_model
    from brittle.rules import grpo as G

    seen: dict[str, list[str]] = {}
    make_reward = G.make_reward

    def spy(cfg, scenarios_by_text, members, judge_models):
        seen.update({t: [s.id for s in v] for t, v in scenarios_by_text.items()})
        return make_reward(cfg, scenarios_by_text, members, judge_models)

    monkeypatch.setattr(G, "make_reward", spy)
    judge = tiny_model(tiny_tok)
    policy = tiny_model(tiny_tok, seed=1)
    cfg = G.RulesGRPOConfig(
        run_dir=tmp_path, rule_ids=["sparrow-medical"], policy="tiny:llama", panel=["tiny:llama"],
        n_selection=2, n_report=3, steps=2, num_generations=2, max_completion_length=8, embedder="model",
    )
    before = [p.detach().clone() for p in judge.parameters()]
    out = G.run_grpo(cfg, policy=(policy, tiny_tok), judge_models={"tiny:llama": (judge, tiny_tok)})
    assert out["steps"] == 2 and len(out["reward_history"]) == 2
    assert all(h["mean_reward"] == h["mean_reward"] for h in out["reward_history"])  # finite
    row = out["rules"][0]
    assert row["rule_id"] == "sparrow-medical" and 0 <= row["entropy_after"] <= 1
    trained_on = set(next(iter(seen.values())))
    assert trained_on == set(row["split"]["selection"]) and len(row["split"]["report"]) == 3
    assert not trained_on & set(row["split"]["report"])  # reported on scenarios the reward never saw
    assert row["heldout"] in ("generalises", "does not generalise", "no gain")
    assert all((a == b).all() for a, b in zip(before, judge.parameters()))  # the judge is frozen
    with pytest.raises(Exception, match="separate model object"):
        G.run_grpo(cfg, policy=(judge, tiny_tok), judge_models={"tiny:llama": (judge, tiny_tok)})


def test_cli_judge_and_analyze(tmp_path):
    from brittle.cli.rules import register

    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None: ...

    runner = CliRunner()
    res = runner.invoke(app, ["rules", "judge", "--run-dir", str(tmp_path), "--n-rules", "2", "--n-scenarios", "2",
                              "--strategies", "none,broad", "--panel", "tiny:llama,tiny:llama?T=2",
                              "--permutations", "default", "--json"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.output[res.output.index("{"):])
    assert s["judgments"] == 2 * 2 * 2 * 2 and s["readers"] == ["tiny:llama", "tiny:llama?T=2"]
    res = runner.invoke(app, ["rules", "analyze", "--run-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "mean entropy" in res.output and "template disagreement" in res.output and (tmp_path / "analysis.json").exists()
    for cmd in ("refine", "grpo"):
        res = runner.invoke(app, ["rules", cmd, "--help"], env={"COLUMNS": "200"})
        assert all(opt in res.output for opt in ("--n-selection", "--n-report", "--split-seed", "--permutations"))
