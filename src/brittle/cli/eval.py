"""`brittle eval …` — generate, judge, and report safety / over-refusal / utility metrics."""

from __future__ import annotations

from pathlib import Path

import typer

from brittle.cli.common import JSON_OPT, emit, split_csv


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def eval_(
        model: str | None = typer.Option(None, "--model", help="Model or backend spec (embedded:smollm2-135m, tiny:llama, DIR, hf:…, vllm:…, openai:MODEL@URL)."),
        adapter: Path | None = typer.Option(None, "--adapter", help="LoRA adapter directory."),
        suite: str | None = typer.Option(None, "--suite", help="Comma list: harmful-eval,over-refusal,utility,prompts."),
        judge: str | None = typer.Option(None, "--judge", help="Comma list: refusal,rubric,helpfulness,classifier."),
        prompts: Path | None = typer.Option(None, "--prompts", help="Prompt file (txt one a line, or JSONL/CSV with `prompt` [+ `category`])."),
        limit: int | None = typer.Option(None, "--limit", help="At most N prompts per suite (deterministic subsample)."),
        max_new_tokens: int | None = typer.Option(None, "--max-new-tokens", help="Reply length (default 64)."),
        batch_size: int | None = typer.Option(None, "--batch-size", help="Generation batch size."),
        seed: int | None = typer.Option(None, "--seed", help="Seed (generation, judges, bootstrap)."),
        judge_backend: str | None = typer.Option(None, "--judge-backend", help="Backend for rubric/helpfulness judges, e.g. openai:gpt-4o-mini@https://api.openai.com/v1 (key from $OPENAI_API_KEY)."),
        classifier: str | None = typer.Option(None, "--classifier", help="Guard model spec for the classifier judge."),
        run_dir: Path | None = typer.Option(None, "--run-dir", help="Output directory (resumable)."),
        config: Path | None = typer.Option(None, "--config", help="EvalConfig YAML; flags override it."),
        redact: bool | None = typer.Option(None, "--redact/--no-redact", help="Redact replies to harmful prompts in index.html (default on)."),
        json_: bool = JSON_OPT,
    ) -> None:
        """Generate replies, judge them, write generations.jsonl, metrics.json and index.html."""
        from brittle.evaluate.run import EvalConfig, run_eval
        from brittle.evaluate.section import eval_section, summary_rows
        from brittle.report.html import write_report

        cfg = EvalConfig.load(
            config, model=model, adapter=adapter, suites=split_csv(suite) or None,
            judges=split_csv(judge) or None, prompts=prompts, limit=limit,
            max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed,
            judge_backend=judge_backend, classifier=classifier, run_dir=run_dir, redact=redact,
        )
        if prompts is not None and suite is None:
            cfg = cfg.model_copy(update={"suites": ["prompts"]})
        metrics = run_eval(cfg)
        section = eval_section(cfg.run_dir, title=f"Evaluation of {cfg.model}", redact=cfg.redact)
        index = write_report(cfg.run_dir, f"brittle eval: {cfg.model}", [section])
        rows = summary_rows(metrics)
        human = "\n".join(
            f"{r['suite']:<14} n={r['n']:<5} refusal {r['refusal rate']:<24} "
            + "  ".join(f"{k} {v}" for k, v in r.items() if k not in ("suite", "n", "refusal rate", "empty"))
            for r in rows
        ) + f"\nreport: {index}"
        emit({**metrics, "report": str(index)}, json_, human)
