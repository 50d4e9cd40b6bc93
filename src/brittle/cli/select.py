"""`brittle select …` and `brittle audit FILE …`"""

from __future__ import annotations

from pathlib import Path

import typer

from brittle.cli.common import JSON_OPT, emit, split_csv


def register(app: typer.Typer) -> None:
    @app.command("select")
    def select(
        model: str | None = typer.Option(None, "--model", help="Model spec of the aligned model [default: embedded:smollm2-135m]."),
        adapter: str | None = typer.Option(None, "--adapter", help="Adapter dir (e.g. the installed alignment)."),
        pool: str | None = typer.Option(None, "--pool", help="Embedded data set name or a data file [default: benign]."),
        pool_limit: int | None = typer.Option(None, "--pool-limit", help="Keep the first N pool examples."),
        method: str | None = typer.Option(None, "--method", help="exact-anchor | grad | repr | outlier, comma list [default: exact-anchor,repr]."),
        k: int | None = typer.Option(None, "--k", help="Selection size K [default: 100]."),
        anchor_source: str | None = typer.Option(None, "--anchor-source", help="harmful-pairs | attack"),
        anchor_category: str | None = typer.Option(None, "--anchor-category", help="Anchor on one harm category."),
        seed: int | None = typer.Option(None, "--seed"),
        compare: bool = typer.Option(False, "--compare", help="Then fine-tune on each selection and plot ASR per selection."),
        seeds: str = typer.Option("0", "--seeds", help="Seeds for --compare (comma list)."),
        eval_limit: int | None = typer.Option(None, "--eval-limit", help="Harmful prompts per --compare evaluation."),
        config: Path | None = typer.Option(None, "--config", help="YAML SelectConfig (flags override it)."),
        run_dir: Path | None = typer.Option(None, "--run-dir", help="Output directory (default runs/select)."),
        json_: bool = JSON_OPT,
    ) -> None:
        """Score a benign pool against harmful/safe anchors; write top-K, random-K, list-K, math-K selections."""
        from brittle.select.run import SelectConfig, compare_selections, run_select

        cfg = SelectConfig.load(
            config, run_dir=run_dir, model=model, adapter=adapter, pool=pool, pool_limit=pool_limit,
            methods=split_csv(method) or None, k=k, anchor_source=anchor_source, anchor_category=anchor_category, seed=seed,
        )
        summary = run_select(cfg)
        out = {"run_dir": str(cfg.run_dir), "selections": {n: v["file"] for n, v in summary["selections"].items()},
               "agreement": summary["agreement"]}
        if compare:
            from brittle.select.run import compare_table

            rows = compare_selections(cfg, seeds=[int(s) for s in split_csv(seeds)], eval_limit=eval_limit)
            out["compare"] = compare_table(rows)
        human = "\n".join([f"selections in {cfg.run_dir}/selections:"]
                          + [f"  {n:<20} {v['n']:>4}  list {v['makeup'].get('list', 0):.0%}  math {v['makeup'].get('math', 0):.0%}"
                             for n, v in summary["selections"].items()]
                          + [f"agreement {p}: spearman {a.get('spearman')}, top-K overlap {a.get('topk_overlap'):.2f}"
                             for p, a in summary["agreement"].items()]
                          + [f"compare {r['selection']}: ASR {r['asr']}" for r in out.get("compare", [])])
        emit(out, json_, human)

    @app.command("audit")
    def audit(
        file: Path = typer.Argument(..., help="Fine-tuning file to audit (JSONL/JSON/CSV/Parquet)."),
        model: str | None = typer.Option(None, "--model", help="Model spec that will be fine-tuned [default: embedded:smollm2-135m]."),
        adapter: str | None = typer.Option(None, "--adapter"),
        method: str | None = typer.Option(None, "--method", help="exact-anchor | grad | repr | outlier [default: exact-anchor]."),
        drop_top: float | None = typer.Option(None, "--drop-top", help="Share of riskiest rows to drop [default: 0.1]."),
        threshold: float | None = typer.Option(None, "--threshold", help="Drop rows with score >= this instead."),
        verify: bool = typer.Option(False, "--verify", help="Fine-tune on original vs filtered and compare safety."),
        config: Path | None = typer.Option(None, "--config", help="YAML AuditConfig (flags override it)."),
        run_dir: Path | None = typer.Option(None, "--run-dir", help="Output directory (default runs/audit)."),
        json_: bool = JSON_OPT,
    ) -> None:
        """Risk-score every row of a fine-tuning file; write audit.html, audit.json, filtered.jsonl."""
        from brittle.select.audit import AuditConfig, run_audit

        cfg = AuditConfig.load(config, file=file, run_dir=run_dir, model=model, adapter=adapter, method=method,
                               drop_top=drop_top, threshold=threshold, verify=verify or None)
        res = run_audit(cfg)
        out = {k: res[k] for k in ("file", "n_rows", "n_dropped", "cut_score", "filtered_file", "html")}
        if "verify" in res:
            out["verify"] = res["verify"]
        human = (f"audited {res['n_rows']} rows; dropped {res['n_dropped']} (score >= {res['cut_score']})\n"
                 f"report: {res['html']}\nfiltered file: {res['filtered_file']}")
        emit(out, json_, human)
