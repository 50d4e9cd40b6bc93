"""`brittle finetune`, `brittle align`, `brittle attack`."""

from __future__ import annotations

from pathlib import Path

import typer

from brittle.cli.common import JSON_OPT, emit, split_csv
from brittle.cli.model_args import MODEL_ARGS_OPT


def register(app: typer.Typer) -> None:
    from brittle.cli.options import field_option, uses_config
    from brittle.data.fields import FieldMap
    from brittle.train.attack import AttackConfig as _AC
    from brittle.train.sft import FinetuneConfig as _FC

    @app.command("finetune")
    @uses_config(_FC, FieldMap)
    def finetune_cmd(
        data: Path = typer.Option(..., "--data", help="Training examples (JSONL/JSON/CSV/Parquet: alpaca, messages, TRL prompt/completion; see --prompt-field)."),
        prompt_field: str | None = field_option(FieldMap, "prompt_field"),
        response_field: str | None = field_option(FieldMap, "response_field"),
        category_field: str | None = field_option(FieldMap, "category_field"),
        model: str | None = field_option(_FC, "model"),
        adapter: Path | None = field_option(_FC, "adapter"),
        preset: str | None = field_option(_FC, "preset"),
        method: str | None = field_option(_FC, "method"),
        epochs: float | None = field_option(_FC, "epochs"),
        lr: float | None = field_option(_FC, "lr"),
        batch_size: int | None = field_option(_FC, "batch_size"),
        grad_accum: int | None = field_option(_FC, "grad_accum"),
        max_length: int | None = field_option(_FC, "max_length"),
        max_steps: int | None = field_option(_FC, "max_steps"),
        lora_r: int | None = field_option(_FC, "lora_r"),
        lora_alpha: int | None = field_option(_FC, "lora_alpha"),
        seed: int | None = field_option(_FC, "seed"),
        gradient_checkpointing: bool | None = field_option(
            _FC, "gradient_checkpointing", "--gradient-checkpointing/--no-gradient-checkpointing"),
        device: str | None = field_option(_FC, "device"),
        run_dir: Path | None = field_option(_FC, "run_dir"),
        report_to: str | None = field_option(_FC, "report_to"),
        config: Path | None = typer.Option(None, "--config", help="YAML FinetuneConfig; flags override it."),
        model_args: str | None = MODEL_ARGS_OPT,
        json_: bool = JSON_OPT,
    ) -> None:
        """Supervised fine-tuning (LoRA by default) with response-only loss."""
        from brittle.data.io import read_examples
        from brittle.train.sft import FinetuneConfig, train_model

        cfg = FinetuneConfig.load(
            config, model=model, adapter=str(adapter) if adapter else None,
            preset=preset, method=method, epochs=epochs, lr=lr, batch_size=batch_size,
            grad_accum=grad_accum, max_length=max_length, max_steps=max_steps, lora_r=lora_r,
            lora_alpha=lora_alpha, seed=seed, gradient_checkpointing=gradient_checkpointing, device=device,
            run_dir=run_dir, report_to=report_to,
        )
        fields = FieldMap.build(prompt_field=prompt_field, response_field=response_field,
                                category_field=category_field)
        res = train_model(cfg, read_examples(data, fields=fields))
        out = {k: v for k, v in res.stats.items() if k != "dropped_ids"}
        emit({"run_dir": str(cfg.run_dir), **out}, json_,
             f"saved {res.path}\n{out['n_trained']} examples ({out['n_dropped']} dropped), "
             f"{out['steps']} steps, loss {out['first_loss']:.4f} -> {out['final_loss']:.4f} "
             f"in {out['seconds']:.1f}s; log {cfg.run_dir / 'train_log.jsonl'}")

    @app.command("align")
    def align_cmd(
        model: str = typer.Option("embedded:smollm2-135m", "--model", help="Model spec."),
        quick: bool = typer.Option(True, "--quick/--full", help="Quick recipe (CPU, ~10 min) or full."),
        n_harmful: int | None = typer.Option(None, "--n-harmful", help="Harmful prompts + refusals."),
        n_benign: int | None = typer.Option(None, "--n-benign", help="Benign pairs."),
        n_contrast: int | None = typer.Option(
            None, "--n-contrast", help="Risky-sounding benign prompts answered by the model itself."
        ),
        epochs: float | None = typer.Option(None, "--epochs"),
        seed: int = typer.Option(0, "--seed"),
        force: bool = typer.Option(False, "--force", help="Retrain even if cached."),
        evaluate: bool = typer.Option(True, "--eval/--no-eval", help="Evaluate before and after."),
        eval_limit: int | None = typer.Option(None, "--eval-limit", help="Prompts per eval suite."),
        device: str = typer.Option("auto", "--device"),
        run_dir: Path = typer.Option(Path("runs/align"), "--run-dir"),
        model_args: str | None = MODEL_ARGS_OPT,
        json_: bool = JSON_OPT,
    ) -> None:
        """Install alignment: train (or reuse) the cached safety LoRA adapter; evaluate it."""
        from brittle.train.align import install_alignment

        adapter = install_alignment(
            model, run_dir=run_dir / "train", quick=quick, n_harmful=n_harmful,
            n_benign=n_benign, n_contrast=n_contrast, epochs=epochs, seed=seed, force=force, device=device,
        )
        result: dict = {"adapter": str(adapter), "run_dir": str(run_dir)}
        if evaluate:
            from brittle.evaluate.run import EvalConfig, run_eval

            for label, ad in (("unaligned", None), ("aligned", adapter)):
                m = run_eval(EvalConfig(run_dir=run_dir / f"eval-{label}", model=model,
                                        adapter=ad, limit=eval_limit, seed=seed))
                result[label] = _headline(m)
        lines = [f"adapter: {adapter}"] + [
            f"{k:>9}: " + ", ".join(f"{n}={_pct(v)}" for n, v in result[k].items())
            for k in ("unaligned", "aligned") if k in result
        ]
        emit(result, json_, "\n".join(lines))

    @app.command("attack")
    @uses_config(_AC, _FC)  # epochs / lr are fine-tuning overrides (AttackConfig.train)
    def attack_cmd(
        n: str | None = field_option(_AC, "n"),
        kinds: str | None = field_option(_AC, "kinds", "--kind"),
        seeds: str | None = field_option(_AC, "seeds"),
        data: Path | None = field_option(_AC, "data"),
        model: str | None = field_option(_AC, "model"),
        adapter: str | None = field_option(_AC, "adapter"),
        preset: str | None = field_option(_AC, "preset"),
        epochs: float | None = field_option(_FC, "epochs"),
        lr: float | None = field_option(_FC, "lr"),
        demo_model: str | None = field_option(_AC, "demo_model"),
        demo_judge: str | None = field_option(_AC, "demo_judge"),
        eval_limit: int | None = field_option(_AC, "eval_limit"),
        device: str | None = field_option(_AC, "device"),
        gen_backend: str | None = field_option(_AC, "gen_backend"),
        run_dir: Path | None = field_option(_AC, "run_dir"),
        report_to: str | None = field_option(_AC, "report_to"),
        workers: int | None = field_option(_AC, "workers", min=1),
        worker: str | None = field_option(_AC, "worker"),
        config: Path | None = typer.Option(None, "--config", help="YAML AttackConfig; flags override it."),
        model_args: str | None = MODEL_ARGS_OPT,
        json_: bool = JSON_OPT,
    ) -> None:
        """Fine-tune the aligned model on N examples per kind/seed and measure ASR vs N."""
        from brittle.train.attack import AttackConfig, run_attack

        kind_list = split_csv(kinds) or None
        if data is not None and kind_list is None:
            kind_list = ["data"]
        train = {k: v for k, v in {"epochs": epochs, "lr": lr}.items() if v is not None} or None
        cfg = AttackConfig.load(
            config, n=n, kinds=kind_list, seeds=seeds, data=str(data) if data else None, model=model,
            adapter=adapter, preset=preset, train=train, demo_model=demo_model, demo_judge=demo_judge,
            eval_limit=eval_limit, device=device, run_dir=run_dir, report_to=report_to,
            gen_backend=gen_backend, workers=workers, worker=worker,
        )
        df = run_attack(cfg)
        import pandas as pd

        summary = pd.read_csv(cfg.run_dir / "summary.csv") if (cfg.run_dir / "summary.csv").exists() else df
        emit({"run_dir": str(cfg.run_dir), "summary": summary.to_dict(orient="records")}, json_,
             summary.to_string(index=False) + f"\n\nresults: {cfg.run_dir / 'results.csv'}")


def _headline(m: dict) -> dict:
    from brittle.evaluate.suites import primary_harmful_suite

    s = m.get("suites", {})
    return {
        "harmful_refusal": (s.get(primary_harmful_suite(list(s)) or "") or {}).get("refusal_rate"),
        "over_refusal": (s.get("over-refusal") or {}).get("refusal_rate"),
        "utility_nll": ((s.get("utility") or {}).get("utility") or {}).get("nll"),
    }


def _pct(v) -> str:
    if not v:
        return "n/a"
    return f"{v[0]:.3f} [{v[1]:.3f}, {v[2]:.3f}]"
