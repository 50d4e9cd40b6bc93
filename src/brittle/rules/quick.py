"""The lab's quick rules path: judge a small grid, analyze, refine the 2 most ambiguous
rules by prompting, and run a 2-step GRPO — one call for the lab.

Panel: every judge model installed here (:func:`brittle.rules.panel.installed_readers`) plus
the lab's model, each under both answer-order permutations. Refinement chooses on a
selection half and reports on a disjoint report half of the unjudged scenarios."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

BUDGETS: dict[str, dict[str, Any]] = {
    # 8 rules × 6 scenarios × 3 strategies × readers × 2 permutations (288 judgments per reader;
    # 8 scenarios took 113 s of a 2-core CPU on the embedded model, issue 18)
    "quick": {"n_rules": 8, "n_scenarios": 6, "strategies": ["none", "narrow", "broad"], "k": 2, "n_selection": 6,
              "n_report": 6, "grpo_steps": 2, "grpo_generations": 2, "grpo_scenarios": 2, "grpo_report": 6, "grpo_len": 24},
    "full": {"n_rules": None, "n_scenarios": None, "strategies": None, "k": 4, "n_selection": 16, "n_report": 16,
             "grpo_steps": 20, "grpo_generations": 4, "grpo_scenarios": 8, "grpo_report": 16, "grpo_len": 48},
}

# the quick grid covers different kinds of rules (harm, identity, advice, tone)
QUICK_RULES = [
    "sparrow-medical", "sparrow-financial", "sparrow-human-identity", "sparrow-relationship",
    "cai-offensive", "anth-children", "uo-not-evasive", "tos-objectionable",
]


def run_rules_quick(
    run_dir: str | Path,
    model_spec: str = "embedded:smollm2-135m",
    *,
    budget: str = "quick",
    panel: list[str] | None = None,
) -> dict[str, Any]:
    """judge → analyze → prompt refinement (top-2 rules) → GRPO (2 steps) into ``run_dir``.
    Panel: ``panel`` readers (default: the installed judge models plus ``model_spec``), each
    under the default and swapped-letter templates; GRPO's reward uses ``model_spec`` alone
    (default template) to stay cheap."""
    from brittle.models.load import load_model
    from brittle.rules.analyze import RulesAnalyzeConfig, run_analyze
    from brittle.rules.grpo import RulesGRPOConfig, run_grpo
    from brittle.rules.judge import RulesJudgeConfig, run_judge
    from brittle.rules.panel import resolve_readers
    from brittle.rules.refine import RulesRefineConfig, run_refine

    b = BUDGETS[budget]
    run_dir = Path(run_dir)
    panel = resolve_readers(panel or ["installed", model_spec])
    models = {model_spec: load_model(model_spec)}
    timings: dict[str, float] = {}

    t = time.perf_counter()
    jcfg = RulesJudgeConfig(
        run_dir=run_dir, panel=panel, strategies=b["strategies"],
        rule_ids=QUICK_RULES if budget == "quick" else None, n_scenarios=b["n_scenarios"],
    )
    df = run_judge(jcfg, models=models)
    timings["judge_s"] = time.perf_counter() - t

    t = time.perf_counter()
    analysis = run_analyze(RulesAnalyzeConfig(run_dir=run_dir))
    timings["analyze_s"] = time.perf_counter() - t

    t = time.perf_counter()
    refine = run_refine(
        RulesRefineConfig(run_dir=run_dir, top_rules=2, k=b["k"], proposer=model_spec, panel=panel,
                          n_selection=b["n_selection"], n_report=b["n_report"]),
        models=models,
    )
    timings["refine_s"] = time.perf_counter() - t

    t = time.perf_counter()
    top = [r["rule_id"] for r in refine["rules"]][:1]
    grpo = run_grpo(
        RulesGRPOConfig(
            run_dir=run_dir, rule_ids=top, policy=model_spec, panel=[model_spec], permutations=["default"],
            steps=b["grpo_steps"], num_generations=b["grpo_generations"], n_selection=b["grpo_scenarios"],
            n_report=b["grpo_report"], max_completion_length=b["grpo_len"],
        ),
        policy=load_model(model_spec),  # a separate copy: training must not move the judge
        judge_models=models,
    )
    timings["grpo_s"] = time.perf_counter() - t
    return {
        "judgments": len(df),
        "readers": panel,
        "mean_entropy_none": analysis.get("mean_entropy_none"),
        "no_consensus_share": analysis.get("no_consensus_share"),
        "overall_flip_rate": analysis.get("overall_flip_rate"),
        "refined_rules": [r["rule_id"] for r in refine["rules"]],
        "kept_rewrites": sum(1 for r in refine["rules"] for c in r["candidates"] if c["kept"]),
        "chosen_generalise": sum(1 for r in refine["rules"] if r["best"] and r["best"]["heldout"] == "generalises"),
        "grpo_steps": grpo["steps"],
        "timings": timings,
    }
