"""`brittle eval …` — generate, judge, and report safety / over-refusal / utility metrics."""

from __future__ import annotations

from pathlib import Path

import typer

from brittle.cli.common import JSON_OPT, emit, split_csv
from brittle.cli.model_args import MODEL_ARGS_OPT


def register(app: typer.Typer) -> None:
    # option help = the config field's description
    from brittle.cli.options import field_option, uses_config
    from brittle.evaluate.run import EvalConfig as _EC

    @app.command("eval")
    @uses_config(_EC)
    def eval_(
        model: str | None = field_option(_EC, "model"),
        adapter: Path | None = field_option(_EC, "adapter"),
        suites: str | None = field_option(_EC, "suites", "--suite"),
        judges: str | None = field_option(_EC, "judges", "--judge"),
        rubric: list[Path] = typer.Option([], "--rubric", help="Custom rubric YAML judge (template with {{question}}/{{answer}}, #thescore answers); repeatable."),
        prompts: Path | None = field_option(_EC, "prompts"),
        prompts_kind: str | None = field_option(_EC, "prompts_kind"),
        prompt_field: str | None = field_option(_EC, "prompt_field"),
        category_field: str | None = field_option(_EC, "category_field"),
        limit: int | None = field_option(_EC, "limit"),
        max_new_tokens: int | None = field_option(_EC, "max_new_tokens"),
        batch_size: int | None = field_option(_EC, "batch_size"),
        seed: int | None = field_option(_EC, "seed"),
        judge_backend: str | None = field_option(_EC, "judge_backend"),
        classifier: str | None = field_option(_EC, "classifier"),
        classifier_mode: str | None = field_option(_EC, "classifier_mode"),
        unsafe_labels: str | None = field_option(_EC, "unsafe_labels"),
        run_dir: Path | None = field_option(_EC, "run_dir"),
        request_timeout: float | None = field_option(_EC, "request_timeout"),
        max_retries: int | None = field_option(_EC, "max_retries"),
        report_to: str | None = field_option(_EC, "report_to"),
        config: Path | None = typer.Option(None, "--config", help="EvalConfig YAML; flags override it."),
        redact: bool | None = field_option(_EC, "redact", "--redact/--no-redact"),
        model_args: str | None = MODEL_ARGS_OPT,
        json_: bool = JSON_OPT,
    ) -> None:
        """Generate replies, judge them, write generations.jsonl, metrics.json and index.html."""
        from brittle.evaluate.run import EvalConfig, run_eval
        from brittle.evaluate.section import eval_section, summary_rows
        from brittle.evaluate.suites import USER_SUITES
        from brittle.report.html import write_report

        cfg = EvalConfig.load(
            config, model=model, adapter=adapter, suites=split_csv(suites) or None,
            judges=(split_csv(judges) or (["refusal"] if rubric else [])) + [f"rubric:{r}" for r in rubric] or None,
            prompts=prompts, prompts_kind=prompts_kind, prompt_field=prompt_field,
            category_field=category_field, limit=limit,
            max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed,
            judge_backend=judge_backend, classifier=classifier, classifier_mode=classifier_mode,
            unsafe_labels=split_csv(unsafe_labels) or None, run_dir=run_dir, redact=redact,
            request_timeout=request_timeout, max_retries=max_retries, report_to=report_to,
        )
        if prompts is not None and suites is None:
            cfg = cfg.model_copy(update={"suites": [USER_SUITES[cfg.prompts_kind]]})
        metrics = run_eval(cfg)
        from brittle.redaction import redact_url

        shown = redact_url(cfg.model)  # URL credentials never reach the page
        section = eval_section(cfg.run_dir, title=f"Evaluation of {shown}", redact=cfg.redact)
        index = write_report(cfg.run_dir, f"brittle eval: {shown}", [section])
        rows = summary_rows(metrics)
        human = "\n".join(
            f"{r['suite']:<14} n={r['n']:<5} refusal {r['refusal rate']:<24} "
            + "  ".join(f"{k} {v}" for k, v in r.items() if k not in ("suite", "n", "refusal rate", "empty"))
            for r in rows
        ) + f"\nreport: {index}"
        emit({**metrics, "report": str(index)}, json_, human)
