"""`brittle select …` and `brittle audit FILE …`"""

from __future__ import annotations

from pathlib import Path

import typer

from brittle.cli.common import JSON_OPT, emit, int_list, split_csv
from brittle.cli.model_args import MODEL_ARGS_OPT


def register(app: typer.Typer) -> None:
    from brittle.cli.options import field_option, uses_config
    from brittle.select.audit import AuditConfig as _AuC
    from brittle.select.run import SelectConfig as _SC

    @app.command("select")
    @uses_config(_SC)
    def select(
        model: str | None = field_option(_SC, "model"),
        adapter: str | None = field_option(_SC, "adapter"),
        pool: str | None = field_option(_SC, "pool"),
        pool_limit: int | None = field_option(_SC, "pool_limit"),
        methods: str | None = field_option(_SC, "methods", "--method"),
        k: int | None = field_option(_SC, "k"),
        anchor_source: str | None = field_option(_SC, "anchor_source"),
        anchor_category: str | None = field_option(_SC, "anchor_category"),
        seed: int | None = field_option(_SC, "seed"),
        params: str | None = field_option(_SC, "params"),
        trainable_targets: str | None = field_option(_SC, "trainable_targets"),
        gradient_checkpointing: bool | None = field_option(
            _SC, "gradient_checkpointing", "--gradient-checkpointing/--no-gradient-checkpointing"),
        gen_backend: str | None = field_option(_SC, "gen_backend"),
        workers: int | None = field_option(_SC, "workers", min=1),
        compare: bool = typer.Option(False, "--compare", help="Then fine-tune on each selection and plot ASR per selection."),
        seeds: str = typer.Option("0", "--seeds", help="Seeds for --compare (comma list)."),
        eval_limit: int | None = typer.Option(None, "--eval-limit", help="Harmful prompts per --compare evaluation."),
        config: Path | None = typer.Option(None, "--config", help="YAML SelectConfig (flags override it)."),
        run_dir: Path | None = field_option(_SC, "run_dir"),
        model_args: str | None = MODEL_ARGS_OPT,
        json_: bool = JSON_OPT,
    ) -> None:
        """Score a benign pool against harmful/safe anchors; write top-K, random-K, list-K, math-K selections."""
        from brittle.select.run import SelectConfig, compare_selections, run_select

        cfg = SelectConfig.load(
            config, run_dir=run_dir, model=model, adapter=adapter, pool=pool, pool_limit=pool_limit,
            methods=split_csv(methods) or None, k=k, anchor_source=anchor_source, anchor_category=anchor_category, seed=seed,
            params=params, trainable_targets=trainable_targets, gradient_checkpointing=gradient_checkpointing,
            gen_backend=gen_backend, workers=workers,
        )
        # --compare options are checked before the (long) scoring, not after it
        compare_seeds = int_list(seeds, "--seeds") if compare else []
        if compare and eval_limit is not None and eval_limit < 1:
            raise typer.BadParameter(f"{eval_limit} is below 1", param_hint="--eval-limit")
        summary = run_select(cfg)
        out = {"run_dir": str(cfg.run_dir), "selections": {n: v["file"] for n, v in summary["selections"].items()},
               "agreement": summary["agreement"]}
        if compare:
            from brittle.select.run import compare_table

            rows = compare_selections(cfg, seeds=compare_seeds, eval_limit=eval_limit)
            out["compare"] = compare_table(rows)
        human = "\n".join([f"selections in {cfg.run_dir}/selections:"]
                          + [f"  {n:<20} {v['n']:>4}  list {v['makeup'].get('list', 0):.0%}  math {v['makeup'].get('math', 0):.0%}"
                             for n, v in summary["selections"].items()]
                          + [f"agreement {p}: spearman {a.get('spearman')}, top-K overlap {a.get('topk_overlap'):.2f}"
                             for p, a in summary["agreement"].items()]
                          + [f"compare {r['selection']}: ASR {r['asr']}" for r in out.get("compare", [])])
        emit(out, json_, human)

    @app.command("audit")
    @uses_config(_AuC)
    def audit(
        file: Path = typer.Argument(..., help="Fine-tuning file to audit (JSONL/JSON/CSV/Parquet)."),
        model: str | None = field_option(_AuC, "model"),
        adapter: str | None = field_option(_AuC, "adapter"),
        method: str | None = field_option(_AuC, "method"),
        drop_top: float | None = field_option(_AuC, "drop_top"),
        threshold: float | None = field_option(_AuC, "threshold"),
        verify: bool | None = field_option(_AuC, "verify", "--verify/--no-verify"),
        config: Path | None = typer.Option(None, "--config", help="YAML AuditConfig (flags override it)."),
        run_dir: Path | None = field_option(_AuC, "run_dir"),
        model_args: str | None = MODEL_ARGS_OPT,
        json_: bool = JSON_OPT,
    ) -> None:
        """Risk-score every row of a fine-tuning file; write audit.html, audit.json, filtered.jsonl."""
        from brittle.select.audit import AuditConfig, run_audit

        cfg = AuditConfig.load(config, file=file, run_dir=run_dir, model=model, adapter=adapter, method=method,
                               drop_top=drop_top, threshold=threshold, verify=verify)
        res = run_audit(cfg)
        out = {k: res[k] for k in ("file", "n_rows", "n_dropped", "cut_score", "filtered_file", "html")}
        if "verify" in res:
            out["verify"] = res["verify"]
        human = (f"audited {res['n_rows']} rows; dropped {res['n_dropped']} (score >= {res['cut_score']})\n"
                 f"report: {res['html']}\nfiltered file: {res['filtered_file']}")
        emit(out, json_, human)
