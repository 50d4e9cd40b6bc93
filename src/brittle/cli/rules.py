"""`brittle rules judge|analyze|refine|grpo|quick` — ambiguous rules (He et al. 2025)."""

from __future__ import annotations

from pathlib import Path

import typer

from brittle.cli.common import JSON_OPT, emit, split_csv

RUN_DIR = typer.Option(Path("runs/rules"), "--run-dir", help="Run directory (inputs and outputs).")
CONFIG = typer.Option(None, "--config", help="YAML config (flags override it).")
PANEL = typer.Option(
    None, "--panel",
    help="Comma-separated readers (judge models): 'installed' (default: SmolLM2-135M, + Qwen2.5-Coder-0.5B after "
    "`make qwen`), model specs [?T=2] or openai:<model>@<url>; e.g. installed,openai:gpt-x@http://host/v1.",
)


def register(app: typer.Typer) -> None:
    from brittle.cli.options import field_option, uses_config
    from brittle.rules.analyze import RulesAnalyzeConfig as _AC
    from brittle.rules.grpo import RulesGRPOConfig as _GC
    from brittle.rules.judge import RulesJudgeConfig as _JC
    from brittle.rules.refine import RulesRefineConfig as _RC

    rules = typer.Typer(help="Ambiguous rules: judge panels, interpretive strategies, entropy, refinement.")
    app.add_typer(rules, name="rules")

    @rules.command("judge")
    @uses_config(_JC)
    def judge(
        run_dir: Path | None = field_option(_JC, "run_dir"),
        config: Path | None = CONFIG,
        rules: Path | None = field_option(_JC, "rules"),
        rule_ids: str | None = field_option(_JC, "rule_ids"),
        n_rules: int | None = field_option(_JC, "n_rules"),
        scenarios: str | None = field_option(_JC, "scenarios"),
        n_scenarios: int | None = field_option(_JC, "n_scenarios"),
        strategies: str | None = field_option(_JC, "strategies"),
        panel: str | None = field_option(_JC, "panel"),
        permutations: str | None = field_option(_JC, "permutations"),
        batch_size: int | None = field_option(_JC, "batch_size"),
        json_: bool = JSON_OPT,
    ) -> None:
        """Judge the (rule × scenario × strategy × judge) grid from next-token letter probabilities (resumable)."""
        from brittle.rules.judge import RulesJudgeConfig, run_judge
        from brittle.store import read_json

        cfg = RulesJudgeConfig.load(
            config, run_dir=run_dir, rules=rules, rule_ids=split_csv(rule_ids) or None, n_rules=n_rules,
            scenarios=scenarios, n_scenarios=n_scenarios, strategies=split_csv(strategies) or None,
            panel=split_csv(panel) or None, permutations=split_csv(permutations) or None, batch_size=batch_size,
        )
        run_judge(cfg)
        s = read_json(cfg.run_dir / "judge_summary.json")
        emit(s, json_, f"{s['judgments']} judgments ({s['new']} new) -> {cfg.run_dir / 'judgments.parquet'}")

    @rules.command("analyze")
    @uses_config(_AC)
    def analyze(
        run_dir: Path | None = field_option(_AC, "run_dir"),
        config: Path | None = CONFIG,
        mode: str | None = field_option(_AC, "mode"),
        json_: bool = JSON_OPT,
    ) -> None:
        """Entropy, consensus, flip rates, default leaning, constraint effect + plots."""
        from brittle.rules.analyze import RulesAnalyzeConfig, run_analyze

        cfg = RulesAnalyzeConfig.load(config, run_dir=run_dir, mode=mode)
        a = run_analyze(cfg)
        td = a["template_sensitivity"]["template_disagreement"]
        human = (
            f"mean entropy (none) {a['mean_entropy_none']:.3f} bits; no consensus {a['no_consensus_share']:.2f}; "
            f"flip rate {a['overall_flip_rate']:.2f}; {len(a['readers'])} reader(s), template disagreement "
            f"{'—' if td is None else f'{td:.2f}'} -> {cfg.run_dir / 'analysis.json'}"
        )
        emit({k: v for k, v in a.items() if k not in ("leaning_by_rule",)}, json_, human)

    @rules.command("refine")
    @uses_config(_RC)
    def refine(
        run_dir: Path | None = field_option(_RC, "run_dir"),
        config: Path | None = CONFIG,
        rules: Path | None = field_option(_RC, "rules"),
        rule_ids: str | None = field_option(_RC, "rule_ids"),
        top_rules: int | None = field_option(_RC, "top_rules"),
        k: int | None = field_option(_RC, "k", "--n-rewrites"),
        proposer: str | None = field_option(_RC, "proposer"),
        panel: str | None = field_option(_RC, "panel"),
        permutations: str | None = field_option(_RC, "permutations"),
        split_seed: int | None = field_option(_RC, "split_seed"),
        n_selection: int | None = field_option(_RC, "n_selection"),
        n_report: int | None = field_option(_RC, "n_report"),
        min_agreement: float | None = field_option(_RC, "min_agreement"),
        json_: bool = JSON_OPT,
    ) -> None:
        """Prompt-based refinement chosen on a selection half, reported on a disjoint report half;
        writes refinements.json and form.html."""
        from brittle.rules.refine import RulesRefineConfig, run_refine

        cfg = RulesRefineConfig.load(
            config, run_dir=run_dir, rules=rules, rule_ids=split_csv(rule_ids) or None, top_rules=top_rules,
            k=k, proposer=proposer, panel=split_csv(panel) or None, permutations=split_csv(permutations) or None,
            split_seed=split_seed, n_selection=n_selection, n_report=n_report, min_agreement=min_agreement,
        )
        out = run_refine(cfg)
        kept = sum(c["kept"] for r in out["rules"] for c in r["candidates"])
        lines = [
            f"{r['rule_id']}: report-half H {r['entropy_before']:.3f} -> {r['best']['entropy_after']:.3f} "
            f"({r['best']['heldout']})" if r["best"] else f"{r['rule_id']}: no rewrite kept"
            for r in out["rules"]
        ]
        emit(out, json_, "\n".join([*lines, f"{kept} kept rewrites -> {cfg.run_dir / 'refinements.json'}, form.html"]))

    @rules.command("grpo")
    @uses_config(_GC)
    def grpo(
        run_dir: Path | None = field_option(_GC, "run_dir"),
        config: Path | None = CONFIG,
        rule_ids: str | None = field_option(_GC, "rule_ids"),
        policy: str | None = field_option(_GC, "policy"),
        panel: str | None = field_option(_GC, "panel"),
        permutations: str | None = field_option(_GC, "permutations"),
        split_seed: int | None = field_option(_GC, "split_seed"),
        n_selection: int | None = field_option(_GC, "n_selection"),
        n_report: int | None = field_option(_GC, "n_report"),
        steps: int | None = field_option(_GC, "steps"),
        json_: bool = JSON_OPT,
    ) -> None:
        """RL refinement with trl GRPO (reward = entropy reduction on the selection half − meaning-shift
        penalty); the final rewrite is scored on the report half."""
        from brittle.rules.grpo import RulesGRPOConfig, run_grpo

        cfg = RulesGRPOConfig.load(
            config, run_dir=run_dir, rule_ids=split_csv(rule_ids) or None, policy=policy,
            panel=split_csv(panel) or None, permutations=split_csv(permutations) or None, split_seed=split_seed,
            n_selection=n_selection, n_report=n_report, steps=steps,
        )
        out = run_grpo(cfg)
        emit(out, json_, f"{out['steps']} GRPO steps -> {cfg.run_dir / 'grpo.json'}")

    @rules.command("quick")
    def quick(
        run_dir: Path = RUN_DIR,
        model: str = typer.Option("embedded:smollm2-135m", "--model", help="Proposer / policy model spec (also a reader)."),
        panel: str | None = PANEL,
        json_: bool = JSON_OPT,
    ) -> None:
        """judge → analyze → refine → 2-step GRPO on a small grid (the lab's quick mode)."""
        from brittle.rules.quick import run_rules_quick

        out = run_rules_quick(run_dir, model, panel=split_csv(panel) or None)
        emit(out, json_, f"{out['judgments']} judgments, refined {out['refined_rules']} -> {run_dir}")
