"""`brittle rules judge|analyze|refine|grpo|quick` — ambiguous rules (He et al. 2025)."""

from __future__ import annotations

from pathlib import Path

import typer

from brittle.cli.common import JSON_OPT, emit, split_csv

RUN_DIR = typer.Option(Path("runs/rules"), "--run-dir", help="Run directory (inputs and outputs).")
CONFIG = typer.Option(None, "--config", help="YAML config (flags override it).")
PANEL = typer.Option(None, "--panel", help="Comma-separated judge specs: <model>[?template=swapped&T=2] or openai:<model>@<url>.")
RULES = typer.Option(None, "--rules", help="Rules YAML (default: the shipped 56).")
RULE_IDS = typer.Option(None, "--rule-ids", help="Comma-separated rule ids.")


def register(app: typer.Typer) -> None:
    rules = typer.Typer(help="Ambiguous rules: judge panels, interpretive strategies, entropy, refinement.")
    app.add_typer(rules, name="rules")

    @rules.command("judge")
    def judge(
        run_dir: Path = RUN_DIR,
        config: Path | None = CONFIG,
        rules_file: Path | None = RULES,
        rule_ids: str | None = RULE_IDS,
        n_rules: int | None = typer.Option(None, "--n-rules", help="Only the first n rules."),
        scenarios: str | None = typer.Option(None, "--scenarios", help="'shipped', a JSONL/Parquet path, or dataset:<name>."),
        n_scenarios: int | None = typer.Option(None, "--n-scenarios", help="Only the first n scenarios."),
        strategies: str | None = typer.Option(None, "--strategies", help="Comma-separated strategy ids (default: all)."),
        panel: str | None = PANEL,
        batch_size: int | None = typer.Option(None, "--batch-size", help="Judge batch size."),
        json_: bool = JSON_OPT,
    ) -> None:
        """Judge the (rule × scenario × strategy × judge) grid from next-token letter probabilities (resumable)."""
        from brittle.rules.judge import RulesJudgeConfig, run_judge
        from brittle.store import read_json

        cfg = RulesJudgeConfig.load(
            config, run_dir=run_dir, rules=rules_file, rule_ids=split_csv(rule_ids) or None, n_rules=n_rules,
            scenarios=scenarios, n_scenarios=n_scenarios, strategies=split_csv(strategies) or None,
            panel=split_csv(panel) or None, batch_size=batch_size,
        )
        run_judge(cfg)
        s = read_json(cfg.run_dir / "judge_summary.json")
        emit(s, json_, f"{s['judgments']} judgments ({s['new']} new) -> {cfg.run_dir / 'judgments.parquet'}")

    @rules.command("analyze")
    def analyze(
        run_dir: Path = RUN_DIR,
        config: Path | None = CONFIG,
        mode: str | None = typer.Option(None, "--mode", help="Entropy variant: votes or mean_p."),
        json_: bool = JSON_OPT,
    ) -> None:
        """Entropy, consensus, flip rates, default leaning, constraint effect + plots."""
        from brittle.rules.analyze import RulesAnalyzeConfig, run_analyze

        cfg = RulesAnalyzeConfig.load(config, run_dir=run_dir, mode=mode)
        a = run_analyze(cfg)
        human = (
            f"mean entropy (none) {a['mean_entropy_none']:.3f} bits; no consensus {a['no_consensus_share']:.2f}; "
            f"flip rate {a['overall_flip_rate']:.2f} -> {cfg.run_dir / 'analysis.json'}"
        )
        emit({k: v for k, v in a.items() if k not in ("leaning_by_rule",)}, json_, human)

    @rules.command("refine")
    def refine(
        run_dir: Path = RUN_DIR,
        config: Path | None = CONFIG,
        rules_file: Path | None = RULES,
        rule_ids: str | None = RULE_IDS,
        top_rules: int | None = typer.Option(None, "--top-rules", help="Refine the n most ambiguous rules."),
        k: int | None = typer.Option(None, "--k", help="Rewrites per rule."),
        proposer: str | None = typer.Option(None, "--proposer", help="Model spec that writes rewrites."),
        panel: str | None = PANEL,
        json_: bool = JSON_OPT,
    ) -> None:
        """Prompt-based refinement; writes refinements.json and form.html."""
        from brittle.rules.refine import RulesRefineConfig, run_refine

        cfg = RulesRefineConfig.load(
            config, run_dir=run_dir, rules=rules_file, rule_ids=split_csv(rule_ids) or None, top_rules=top_rules,
            k=k, proposer=proposer, panel=split_csv(panel) or None,
        )
        out = run_refine(cfg)
        kept = sum(c["kept"] for r in out["rules"] for c in r["candidates"])
        emit(out, json_, f"{len(out['rules'])} rules, {kept} kept rewrites -> {cfg.run_dir / 'refinements.json'}, form.html")

    @rules.command("grpo")
    def grpo(
        run_dir: Path = RUN_DIR,
        config: Path | None = CONFIG,
        rule_ids: str | None = RULE_IDS,
        policy: str | None = typer.Option(None, "--policy", help="Model spec of the rewriter being trained."),
        panel: str | None = PANEL,
        steps: int | None = typer.Option(None, "--steps", help="GRPO steps."),
        json_: bool = JSON_OPT,
    ) -> None:
        """RL refinement with trl GRPO (reward = entropy reduction − meaning-shift penalty)."""
        from brittle.rules.grpo import RulesGRPOConfig, run_grpo

        cfg = RulesGRPOConfig.load(
            config, run_dir=run_dir, rule_ids=split_csv(rule_ids) or None, policy=policy,
            panel=split_csv(panel) or None, steps=steps,
        )
        out = run_grpo(cfg)
        emit(out, json_, f"{out['steps']} GRPO steps -> {cfg.run_dir / 'grpo.json'}")

    @rules.command("quick")
    def quick(
        run_dir: Path = RUN_DIR,
        model: str = typer.Option("embedded:smollm2-135m", "--model", help="Judge / proposer / policy model spec."),
        json_: bool = JSON_OPT,
    ) -> None:
        """judge → analyze → refine → 2-step GRPO on a small grid (the lab's quick mode)."""
        from brittle.rules.quick import run_rules_quick

        out = run_rules_quick(run_dir, model)
        emit(out, json_, f"{out['judgments']} judgments, refined {out['refined_rules']} -> {run_dir}")
